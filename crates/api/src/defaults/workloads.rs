//! Defaults of apps/v1 and batch/v1 workloads (upstream's
//! `pkg/apis/apps/v1/defaults.go` and `pkg/apis/batch/v1/defaults.go`),
//! including the pod templates they carry.

use serde_json::{json, Map, Value};

use super::pod::default_template;
use super::{default_pvc, members, set_default, slot_in};

pub(crate) fn deployment(spec: &mut Map<String, Value>) {
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = slot_in(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(ru) = slot_in(strategy, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

pub(crate) fn replica_set(spec: &mut Map<String, Value>) {
    set_default(spec, "replicas", json!(1));
    template(spec);
}

pub(crate) fn daemon_set(spec: &mut Map<String, Value>) {
    if let Some(us) = slot_in(spec, "updateStrategy") {
        set_default(us, "type", json!("RollingUpdate"));
        if us.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(ru) = slot_in(us, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
}

pub(crate) fn stateful_set(spec: &mut Map<String, Value>) {
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(us) = slot_in(spec, "updateStrategy") {
        if us.get("type").is_none_or(|t| t.is_null() || t == "") {
            us.insert("type".into(), json!("RollingUpdate"));
            set_default(us, "rollingUpdate", json!({}));
        }
        if us.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(Value::Object(ru)) = us.get_mut("rollingUpdate") {
                set_default(ru, "partition", json!(0));
            }
        }
    }
    if let Some(pol) = slot_in(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default(pol, "whenDeleted", json!("Retain"));
        set_default(pol, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for pvc in members(spec, "volumeClaimTemplates") {
        default_pvc(pvc);
    }
    template(spec);
}

/// `SetDefaults_Job`; `labels` are the Job's own labels, defaulted from
/// the template's when empty.
pub(crate) fn job(obj: &mut Map<String, Value>) {
    let template_labels = obj
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, slot_in(obj, "metadata")) {
        let empty = meta
            .get("labels")
            .is_none_or(|l| l.as_object().is_none_or(Map::is_empty));
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
    let Some(spec) = slot_in(obj, "spec") else {
        return;
    };
    let unset = |s: &Map<String, Value>, k: &str| s.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX as i64
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let has_pfp = !unset(spec, "podFailurePolicy");
    if let Some(Value::Object(pfp)) = spec.get_mut("podFailurePolicy") {
        for rule in members(pfp, "rules") {
            for cond in members(rule, "onPodConditions") {
                set_default(cond, "status", json!("True"));
            }
        }
    }
    set_default(
        spec,
        "podReplacementPolicy",
        json!(if has_pfp {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    template(spec);
}

pub(crate) fn cron_job(spec: &mut Map<String, Value>) {
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(Value::Object(jt)) = spec.get_mut("jobTemplate") {
        if let Some(Value::Object(js)) = jt.get_mut("spec") {
            template(js);
        }
    }
}

fn template(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template").filter(|t| t.is_object()) {
        default_template(t);
    }
}

//! apps/v1 validation: Deployment, ReplicaSet, DaemonSet and StatefulSet
//! (upstream's `pkg/apis/apps/validation`), including selector/template
//! agreement, strategies and the update rules (immutable selector,
//! StatefulSet spec restrictions).

use serde_json::Value;

use super::meta::{
    selector_has_no_terms, validate_label_selector, validate_object_meta,
    validate_object_meta_update, Selector,
};
use super::pod::{validate_pod_template_spec, validate_template_metadata};
use super::util::*;
use crate::field::Path;
use crate::names::{is_valid_percent, name_is_dns_label, name_is_dns_subdomain};

/// Which workload is being validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
}

pub(crate) fn validate_create(e: &mut Errs, kind: Workload, obj: &Value) {
    let name_fn = if kind == Workload::StatefulSet {
        name_is_dns_label
    } else {
        name_is_dns_subdomain
    };
    validate_object_meta(e, obj, true, name_fn);
    validate_spec(e, kind, obj);
}

pub(crate) fn validate_update(e: &mut Errs, kind: Workload, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    validate_spec(e, kind, new);
    let sp = Path::new("spec");
    let (ns, os) = (
        get(new, "spec").unwrap_or(&Value::Null),
        get(old, "spec").unwrap_or(&Value::Null),
    );
    if kind == Workload::StatefulSet {
        let mut n = ns.as_object().cloned().unwrap_or_default();
        for key in [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ] {
            match get(os, key) {
                Some(v) => n.insert(key.to_string(), v.clone()),
                None => n.remove(key),
            };
        }
        if !semantic_eq(&Value::Object(n), os) {
            e.push(forbidden(&sp, "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        }
        return;
    }
    let (nsel, osel) = (get(ns, "selector"), get(os, "selector"));
    if !same(nsel, osel) {
        e.push(invalid_raw(
            &sp.child("selector"),
            &go_label_selector(nsel),
            IMMUTABLE,
        ));
    }
}

fn validate_spec(e: &mut Errs, kind: Workload, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    match kind {
        Workload::Deployment | Workload::ReplicaSet => replica_spec(e, kind, spec, &sp),
        Workload::DaemonSet => daemon_set_spec(e, spec, &sp),
        Workload::StatefulSet => stateful_set_spec(e, spec, &sp),
    }
}

/// Common selector checks; returns the converted selector, or `None` when
/// conversion fails (after reporting "invalid label selector" if asked).
fn selector(e: &mut Errs, spec: &Value, sp: &Path, what: &str, require: bool) -> Option<Selector> {
    let sel = object(e, spec, sp, "selector");
    match sel {
        None if require => e.push(required(&sp.child("selector"), "")),
        None => {}
        Some(s) => {
            validate_label_selector(e, Some(s), &sp.child("selector"));
            if selector_has_no_terms(s) {
                e.push(invalid_raw(
                    &sp.child("selector"),
                    &go_label_selector(Some(s)),
                    &format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
    Selector::from_json(sel).ok()
}

fn template_labels_match(e: &mut Errs, sel: &Selector, spec: &Value, tp: &Path) {
    let labels = at(spec, &["template", "metadata", "labels"]);
    if !sel.is_empty() && !sel.matches(labels) {
        e.push(invalid_raw(
            &tp.child("metadata").child("labels"),
            &go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

fn restart_always(e: &mut Errs, spec: &Value, tp: &Path) {
    let rp = str_at(spec, &["template", "spec", "restartPolicy"]);
    if rp != "Always" {
        e.push(not_supported(
            &tp.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
}

fn replica_spec(e: &mut Errs, kind: Workload, spec: &Value, sp: &Path) {
    nonneg_at(e, spec, sp, "replicas");
    if kind == Workload::ReplicaSet {
        nonneg_at(e, spec, sp, "minReadySeconds");
    }
    let tp = sp.child("template");
    match selector(e, spec, sp, "deployment", true) {
        None => {
            let sel = get(spec, "selector");
            e.push(invalid_raw(
                &sp.child("selector"),
                &go_label_selector(sel),
                "invalid label selector",
            ));
        }
        Some(sel) => match object(e, spec, sp, "template") {
            None => e.push(required(&tp, "")),
            Some(t) => {
                template_labels_match(e, &sel, spec, &tp);
                validate_pod_template_spec(e, t, &tp);
                restart_always(e, spec, &tp);
                if at(spec, &["template", "spec", "activeDeadlineSeconds"]).is_some() {
                    e.push(forbidden(
                        &tp.child("spec").child("activeDeadlineSeconds"),
                        "activeDeadlineSeconds in ReplicaSet is not Supported",
                    ));
                }
            }
        },
    }
    if kind == Workload::ReplicaSet {
        return;
    }
    deployment_strategy(e, spec, sp);
    let min_ready = nonneg_at(e, spec, sp, "minReadySeconds").unwrap_or(0);
    nonneg_at(e, spec, sp, "revisionHistoryLimit");
    if let Some(pds) = nonneg_at(e, spec, sp, "progressDeadlineSeconds") {
        if pds <= min_ready {
            e.push(invalid(
                &sp.child("progressDeadlineSeconds"),
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn deployment_strategy(e: &mut Errs, spec: &Value, sp: &Path) {
    let p = sp.child("strategy");
    let strategy = object(e, spec, sp, "strategy").unwrap_or(&Value::Null);
    let ru = object(e, strategy, &p, "rollingUpdate");
    match string(e, strategy, &p, "type") {
        "Recreate" => {
            if ru.is_some() {
                e.push(forbidden(
                    &p.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => e.push(required(
                &p.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = p.child("rollingUpdate");
                let mu = get(ru, "maxUnavailable");
                let ms = get(ru, "maxSurge");
                positive_int_or_percent(e, mu, &rp.child("maxUnavailable"));
                positive_int_or_percent(e, ms, &rp.child("maxSurge"));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    e.push(invalid_raw(
                        &rp.child("maxUnavailable"),
                        &render_ios(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(e, mu, &rp.child("maxUnavailable"));
            }
        },
        _ => e.push(not_supported_raw(
            &p,
            &go_strategy(
                "apps.DeploymentStrategy",
                "apps.RollingUpdateDeployment",
                strategy,
            ),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// `apps.DeploymentStrategy{Type:"X", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}`.
fn go_strategy(ty: &str, ru_ty: &str, v: &Value) -> String {
    let ru = if get(v, "rollingUpdate").is_some() {
        "0xc000000000"
    } else {
        "nil"
    };
    format!(
        "{ty}{{Type:{}, RollingUpdate:(*{ru_ty})({ru})}}",
        go_quote(str_at(v, &["type"]))
    )
}

fn render_ios(v: Option<&Value>) -> String {
    v.map(go_int_or_string).unwrap_or_else(|| "null".into())
}

/// Upstream's `ValidatePositiveIntOrPercent`.
pub(crate) fn positive_int_or_percent(e: &mut Errs, v: Option<&Value>, p: &Path) {
    match v {
        Some(Value::String(s)) => {
            for m in is_valid_percent(s) {
                e.push(invalid_raw(
                    p,
                    &go_int_or_string(&Value::String(s.clone())),
                    &m,
                ));
            }
        }
        Some(Value::Number(n)) => nonnegative(e, n.as_i64(), p),
        Some(other) => e.push(invalid(
            p,
            other.clone(),
            "must be an integer or percentage (e.g '5%%')",
        )),
        None => {}
    }
}

/// Upstream's `IsNotMoreThan100Percent`.
pub(crate) fn not_more_than_100_percent(e: &mut Errs, v: Option<&Value>, p: &Path) {
    if let Some(Value::String(s)) = v {
        if percent(s).is_some_and(|n| n > 100) {
            e.push(invalid_raw(
                p,
                &go_int_or_string(&Value::String(s.clone())),
                "must not be greater than 100%",
            ));
        }
    }
}

fn percent(s: &str) -> Option<i64> {
    if !is_valid_percent(s).is_empty() {
        return None;
    }
    s.trim_end_matches('%').parse().ok()
}

/// Upstream's `getIntOrPercentValue`.
pub(crate) fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => percent(s).unwrap_or(0),
        Some(n) => n.as_i64().unwrap_or(0),
        None => 0,
    }
}

fn daemon_set_spec(e: &mut Errs, spec: &Value, sp: &Path) {
    let sel = object(e, spec, sp, "selector");
    validate_label_selector(e, sel, &sp.child("selector"));
    let tp = sp.child("template");
    if let Ok(s) = Selector::from_json(sel) {
        if !s.matches(at(spec, &["template", "metadata", "labels"])) {
            let labels = at(spec, &["template", "metadata", "labels"]);
            e.push(invalid_raw(
                &tp.child("metadata").child("labels"),
                &go_string_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(s) = sel {
        if selector_has_no_terms(s) {
            e.push(invalid_raw(
                &sp.child("selector"),
                &go_label_selector(Some(s)),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    let t = object(e, spec, sp, "template").unwrap_or(&Value::Null);
    validate_pod_template_spec(e, t, &tp);
    restart_always(e, spec, &tp);
    if at(spec, &["template", "spec", "activeDeadlineSeconds"]).is_some() {
        e.push(forbidden(
            &tp.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    nonneg_at(e, spec, sp, "minReadySeconds");
    nonneg_at(e, spec, sp, "templateGeneration");
    let p = sp.child("updateStrategy");
    let us = object(e, spec, sp, "updateStrategy").unwrap_or(&Value::Null);
    match string(e, us, &p, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match object(e, us, &p, "rollingUpdate") {
            None => e.push(required(&p.child("rollingUpdate"), "")),
            Some(ru) => {
                let rp = p.child("rollingUpdate");
                let (mu, ms) = (get(ru, "maxUnavailable"), get(ru, "maxSurge"));
                positive_int_or_percent(e, mu, &rp.child("maxUnavailable"));
                positive_int_or_percent(e, ms, &rp.child("maxSurge"));
                not_more_than_100_percent(e, mu, &rp.child("maxUnavailable"));
                not_more_than_100_percent(e, ms, &rp.child("maxSurge"));
                match (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0) {
                    (true, true) => e.push(invalid_raw(
                        &rp.child("maxSurge"),
                        &render_ios(ms),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => e.push(required(
                        &rp.child("maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    )),
                    _ => {}
                }
            }
        },
        _ => e.push(not_supported_raw(
            &p,
            &go_strategy(
                "apps.DaemonSetUpdateStrategy",
                "apps.RollingUpdateDaemonSet",
                us,
            ),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    nonneg_at(e, spec, sp, "revisionHistoryLimit");
}

fn stateful_set_spec(e: &mut Errs, spec: &Value, sp: &Path) {
    match string(e, spec, sp, "podManagementPolicy") {
        "" => e.push(required(&sp.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => e.push(invalid(
            &sp.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let up = sp.child("updateStrategy");
    let us = object(e, spec, sp, "updateStrategy").unwrap_or(&Value::Null);
    let ru = object(e, us, &up, "rollingUpdate");
    match string(e, us, &up, "type") {
        "" => e.push(required(&up, "")),
        "OnDelete" => {
            if let Some(ru) = ru {
                e.push(invalid(
                    &up.child("rollingUpdate"),
                    ru.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                let rp = up.child("rollingUpdate");
                nonneg_at(e, ru, &rp, "partition");
                if let Some(mu) = get(ru, "maxUnavailable") {
                    let mp = rp.child("maxUnavailable");
                    positive_int_or_percent(e, Some(mu), &mp);
                    if int_or_percent_value(Some(mu)) == 0 {
                        e.push(invalid_raw(&mp, &go_int_or_string(mu), "cannot be 0"));
                    }
                    not_more_than_100_percent(e, Some(mu), &mp);
                }
            }
        }
        other => e.push(invalid(&up, other, "must be 'RollingUpdate' or 'OnDelete'")),
    }
    if let Some(pol) = object(e, spec, sp, "persistentVolumeClaimRetentionPolicy") {
        let pp = sp.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let v = string(e, pol, &pp, key);
            if v != "Retain" && v != "Delete" {
                e.push(not_supported(&pp.child(key), v, &["Retain", "Delete"]));
            }
        }
    }
    nonneg_at(e, spec, sp, "replicas");
    nonneg_at(e, spec, sp, "minReadySeconds");
    if let Some(o) = object(e, spec, sp, "ordinals") {
        nonneg_at(e, o, &sp.child("ordinals"), "start");
    }
    let tp = sp.child("template");
    match selector(e, spec, sp, "statefulset", true) {
        None => {
            let sel = get(spec, "selector");
            e.push(invalid_raw(
                &sp.child("selector"),
                &go_label_selector(sel),
                "",
            ));
        }
        Some(sel) => {
            let t = object(e, spec, sp, "template").unwrap_or(&Value::Null);
            template_labels_match(e, &sel, spec, &tp);
            // Upstream validates only the template's metadata here.
            validate_template_metadata(e, t, &tp);
        }
    }
    restart_always(e, spec, &tp);
    if at(spec, &["template", "spec", "activeDeadlineSeconds"]).is_some() {
        e.push(forbidden(
            &tp.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
}

/// ControllerRevision (upstream `ValidateControllerRevision`, metadata
/// aside): `data` is mandatory and `revision` not negative. On update the
/// generic path adds that `data` is immutable.
pub(crate) fn validate_controller_revision(e: &mut Errs, obj: &Value) {
    if matches!(get(obj, "data"), None | Some(Value::Null)) {
        e.push(required(&Path::new("data"), "data is mandatory"));
    }
    nonneg_at(e, obj, &Path::new(""), "revision");
}

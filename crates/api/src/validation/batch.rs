//! batch/v1 validation: Job and CronJob (upstream's
//! `pkg/apis/batch/validation`), including schedule syntax and the Job
//! update rules (immutable selector, template, completion mode).

use serde_json::Value;

use super::cron::parse_standard;
use super::meta::{
    validate_label_selector, validate_object_meta, validate_object_meta_update, Selector,
};
use super::pod::validate_pod_template_spec;
use super::util::*;
use crate::field::Path;
use crate::names::{is_dns1123_label, name_is_dns_subdomain};

pub(crate) fn validate_job(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    job_spec_with_selector(e, spec, &sp);
    let completions = get(spec, "completions").and_then(Value::as_i64);
    if str_at(spec, &["completionMode"]) == "Indexed" {
        if let Some(c) = completions.filter(|c| *c > 0) {
            let name = str_at(obj, &["metadata", "name"]);
            let host = format!("{name}-{}", c - 1);
            if !is_dns1123_label(&host).is_empty() {
                e.push(invalid(
                    &Path::new("metadata").child("name"),
                    name,
                    format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
}

pub(crate) fn validate_job_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    let sp = Path::new("spec");
    let ns = get(new, "spec").unwrap_or(&Value::Null);
    let os = get(old, "spec").unwrap_or(&Value::Null);
    job_spec_with_selector(e, ns, &sp);
    // completions: immutable, except for Indexed jobs scaled in tandem
    // with parallelism (ElasticIndexedJob).
    let (nc, oc) = (get(ns, "completions"), get(os, "completions"));
    if !same(nc, oc) {
        if str_at(ns, &["completionMode"]) == "Indexed" {
            if let Some(n) = nc.and_then(Value::as_i64) {
                if Some(n) != get(ns, "parallelism").and_then(Value::as_i64) {
                    e.push(invalid(
                        &sp.child("completions"),
                        n,
                        "can only be modified in tandem with spec.parallelism",
                    ));
                }
            }
        } else {
            immutable(e, nc, oc, &sp.child("completions"));
        }
    }
    immutable(
        e,
        get(ns, "selector"),
        get(os, "selector"),
        &sp.child("selector"),
    );
    let (mut nt, mut ot) = (
        get(ns, "template").cloned().unwrap_or_default(),
        get(os, "template").cloned().unwrap_or_default(),
    );
    let suspended = get(ns, "suspend") == Some(&Value::Bool(true))
        && get(os, "suspend") == Some(&Value::Bool(true));
    let not_started = at(old, &["status", "startTime"]).is_none();
    if suspended && not_started {
        // Scheduling directives of a suspended, never-started job may change.
        for t in [&mut nt, &mut ot] {
            if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["nodeSelector", "affinity", "tolerations", "schedulingGates"] {
                    s.remove(k);
                }
            }
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
        }
    }
    if !semantic_eq(&nt, &ot) {
        e.push(invalid(
            &sp.child("template"),
            get(ns, "template").cloned().unwrap_or_default(),
            IMMUTABLE,
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(e, get(ns, key), get(os, key), &sp.child(key));
    }
}

/// Upstream's `ValidateJobSpec`: the spec, a required selector, and the
/// selector matching the template labels.
fn job_spec_with_selector(e: &mut Errs, spec: &Value, sp: &Path) {
    job_spec(e, spec, sp);
    let sel = object(e, spec, sp, "selector");
    match sel {
        None => e.push(required(&sp.child("selector"), "")),
        Some(s) => validate_label_selector(e, Some(s), &sp.child("selector")),
    }
    if let (Some(_), Ok(selector)) = (sel, Selector::from_json(sel)) {
        let labels = at(spec, &["template", "metadata", "labels"]);
        if !selector.matches(labels) {
            e.push(invalid_raw(
                &sp.child("template").child("metadata").child("labels"),
                &go_string_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
}

/// Upstream's `validateJobSpec` (shared with CronJob's jobTemplate).
fn job_spec(e: &mut Errs, spec: &Value, sp: &Path) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonneg_at(e, spec, sp, key);
    }
    let mode = opt_string(e, spec, sp, "completionMode");
    if let Some(b) = nonneg_at(e, spec, sp, "backoffLimitPerIndex") {
        if mode != Some("Indexed") {
            e.push(invalid(
                &sp.child("backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
    }
    match mode {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if get(spec, "completions").is_none() {
                e.push(required(
                    &sp.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = get(spec, "parallelism").and_then(Value::as_i64) {
                if p > 100_000 {
                    e.push(invalid(
                        &sp.child("parallelism"),
                        p,
                        "must be less than or equal to 100000 when completion mode is Indexed",
                    ));
                }
            }
        }
        Some(other) => e.push(not_supported(
            &sp.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let has_pfp = get(spec, "podFailurePolicy").is_some();
    if let Some(prp) = opt_string(e, spec, sp, "podReplacementPolicy") {
        if has_pfp && prp != "Failed" {
            e.push(not_supported(
                &sp.child("podReplacementPolicy"),
                prp,
                &["Failed"],
            ));
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            e.push(not_supported(
                &sp.child("podReplacementPolicy"),
                prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let tp = sp.child("template");
    let t = object(e, spec, sp, "template").unwrap_or(&Value::Null);
    validate_pod_template_spec(e, t, &tp);
    let rp = tp.child("spec").child("restartPolicy");
    match str_at(spec, &["template", "spec", "restartPolicy"]) {
        "" | "Always" => e.push(required(&rp, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" if has_pfp => e.push(invalid(
            &rp,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => e.push(not_supported(&rp, other, &["OnFailure", "Never"])),
    }
}

pub(crate) fn validate_cron_job(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    cron_job_spec(e, spec, None);
    let name = str_at(obj, &["metadata", "name"]);
    if name.len() > 52 {
        e.push(invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
}

pub(crate) fn validate_cron_job_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    cron_job_spec(
        e,
        get(new, "spec").unwrap_or(&Value::Null),
        Some(get(old, "spec").unwrap_or(&Value::Null)),
    );
}

fn cron_job_spec(e: &mut Errs, spec: &Value, old: Option<&Value>) {
    let sp = Path::new("spec");
    let schedule = string(e, spec, &sp, "schedule");
    let tz = opt_string(e, spec, &sp, "timeZone");
    if schedule.is_empty() {
        e.push(required(&sp.child("schedule"), ""));
    } else {
        let allow_tz = old.is_some_and(|o| str_at(o, &["schedule"]).contains("TZ"));
        if let Err(msg) = parse_standard(schedule) {
            e.push(invalid(&sp.child("schedule"), schedule, msg));
        }
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            e.push(invalid(
                &sp.child("schedule"),
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            e.push(invalid(
                &sp.child("schedule"),
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonneg_at(e, spec, &sp, "startingDeadlineSeconds");
    if old.is_none_or(|o| get(o, "timeZone").and_then(Value::as_str) != tz) {
        validate_time_zone(e, tz, &sp.child("timeZone"));
    }
    match string(e, spec, &sp, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => e.push(required(&sp.child("concurrencyPolicy"), "")),
        other => e.push(not_supported(
            &sp.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jp = sp.child("jobTemplate");
    let jt = object(e, spec, &sp, "jobTemplate").unwrap_or(&Value::Null);
    let jspec = get(jt, "spec").unwrap_or(&Value::Null);
    job_spec(e, jspec, &jp.child("spec"));
    if let Some(sel) = get(jspec, "selector") {
        e.push(invalid_raw(
            &jp.child("spec").child("selector"),
            &go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if get(jspec, "manualSelector") == Some(&Value::Bool(true)) {
        e.push(not_supported(
            &jp.child("spec").child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    nonneg_at(e, spec, &sp, "successfulJobsHistoryLimit");
    nonneg_at(e, spec, &sp, "failedJobsHistoryLimit");
}

fn validate_time_zone(e: &mut Errs, tz: Option<&str>, p: &Path) {
    let Some(tz) = tz else { return };
    if tz.is_empty() {
        e.push(invalid(p, tz, "timeZone must be nil or non-empty string"));
        return;
    }
    if tz.eq_ignore_ascii_case("local") {
        e.push(invalid(
            p,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    let db = jiff::tz::db();
    let known = tz == "UTC" || db.get(tz).is_ok();
    // Without a time zone database on this host, accept any name.
    if !known && !tz.eq_ignore_ascii_case("local") && db.available().next().is_some() {
        e.push(invalid(p, tz, format!("unknown time zone {tz}")));
    }
}

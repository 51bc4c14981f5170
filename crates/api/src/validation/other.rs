//! The remaining groups: Lease, PriorityClass, PodDisruptionBudget, RBAC
//! (Role, ClusterRole and their bindings), RuntimeClass and
//! events.k8s.io Event.

use serde_json::Value;

use super::apps::{not_more_than_100_percent, positive_int_or_percent};
use super::meta::{
    validate_label_selector, validate_labels, validate_object_meta, validate_qualified_name,
};
use super::pod::{preemption_policy, validate_tolerations};
use super::resources::resource_quantity;
use super::util::*;
use crate::field::Path;
use crate::names::*;

pub(crate) fn validate_lease(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    if let Some(d) = int(e, spec, &sp, "leaseDurationSeconds") {
        if d <= 0 {
            e.push(invalid(
                &sp.child("leaseDurationSeconds"),
                d,
                "must be greater than 0",
            ));
        }
    }
    nonneg_at(e, spec, &sp, "leaseTransitions");
    let preferred = string(e, spec, &sp, "preferredHolder");
    if !preferred.is_empty() && string(e, spec, &sp, "strategy").is_empty() {
        e.push(forbidden(
            &sp.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
}

const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub(crate) fn validate_priority_class(e: &mut Errs, obj: &Value) {
    let name = str_at(obj, &["metadata", "name"]);
    let value = get(obj, "value").and_then(Value::as_i64).unwrap_or(0);
    if name.starts_with("system-") {
        let err = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            // Neither system class is the global default.
            Some(_) if get(obj, "globalDefault").and_then(Value::as_bool) == Some(true) => Some(
                format!("globalDefault of {name} PriorityClass must be false"),
            ),
            Some(_) => None,
        };
        if let Some(err) = err {
            e.push(forbidden(
                &Path::new("metadata").child("name"),
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {err}"),
            ));
        }
    } else if value > 1_000_000_000 {
        e.push(forbidden(
            &Path::new("value"),
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(p) = opt_string(e, obj, &Path::new(""), "preemptionPolicy") {
        preemption_policy(e, p, &Path::new("preemptionPolicy"));
    }
}

pub(crate) fn validate_priority_class_update(e: &mut Errs, new: &Value, old: &Value) {
    if get(new, "value") != get(old, "value") {
        e.push(forbidden(
            &Path::new("value"),
            "may not be changed in an update.",
        ));
    }
    immutable(
        e,
        get(new, "preemptionPolicy"),
        get(old, "preemptionPolicy"),
        &Path::new("preemptionPolicy"),
    );
}

pub(crate) fn validate_pdb(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let (min, max) = (get(spec, "minAvailable"), get(spec, "maxUnavailable"));
    if min.is_some() && max.is_some() {
        e.push(invalid(
            &sp,
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (key, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        if v.is_some() {
            positive_int_or_percent(e, v, &sp.child(key));
            not_more_than_100_percent(e, v, &sp.child(key));
        }
    }
    let sel = object(e, spec, &sp, "selector");
    validate_label_selector(e, sel, &sp.child("selector"));
    if let Some(p) = opt_string(e, spec, &sp, "unhealthyPodEvictionPolicy") {
        if p != "AlwaysAllow" && p != "IfHealthyBudget" {
            e.push(not_supported(
                &sp.child("unhealthyPodEvictionPolicy"),
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Role and ClusterRole rules; `namespaced` is true for Role.
pub(crate) fn validate_role(e: &mut Errs, obj: &Value, namespaced: bool) {
    let rp = Path::new("rules");
    for (i, rule) in objects(e, obj, &Path::new(""), "rules") {
        let p = rp.index(i);
        if array(e, rule, &p, "verbs").is_empty() {
            e.push(required(
                &p.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = get(rule, "nonResourceURLs");
        if urls
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            let rendered = go_string_slice(urls);
            if namespaced {
                e.push(invalid_raw(
                    &p.child("nonResourceURLs"),
                    &rendered,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            let has = |k: &str| {
                get(rule, k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            if has("apiGroups") || has("resources") || has("resourceNames") {
                e.push(invalid_raw(
                    &p.child("nonResourceURLs"),
                    &rendered,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if array(e, rule, &p, "apiGroups").is_empty() {
            e.push(required(
                &p.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if array(e, rule, &p, "resources").is_empty() {
            e.push(required(
                &p.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    if let Some(agg) = object(e, obj, &Path::new(""), "aggregationRule") {
        let ap = Path::new("aggregationRule");
        let selectors = objects(e, agg, &ap, "clusterRoleSelectors");
        if selectors.is_empty() {
            e.push(required(
                &ap.child("clusterRoleSelectors"),
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in selectors {
            validate_label_selector(e, Some(s), &ap.child("clusterRoleSelectors").index(i));
        }
    }
}

/// RoleBinding and ClusterRoleBinding; `namespaced` is true for RoleBinding.
pub(crate) fn validate_binding(e: &mut Errs, obj: &Value, namespaced: bool) {
    let rr = Path::new("roleRef");
    let role_ref = get(obj, "roleRef").unwrap_or(&Value::Null);
    let group = string(e, role_ref, &rr, "apiGroup");
    if group != RBAC_GROUP {
        e.push(not_supported(&rr.child("apiGroup"), group, &[RBAC_GROUP]));
    }
    let kind = string(e, role_ref, &rr, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        e.push(not_supported(&rr.child("kind"), kind, kinds));
    }
    let name = string(e, role_ref, &rr, "name");
    if name.is_empty() {
        e.push(required(&rr.child("name"), ""));
    } else {
        for m in is_valid_path_segment_name(name, false) {
            e.push(invalid(&rr.child("name"), name, m));
        }
    }
    let sp = Path::new("subjects");
    for (i, s) in objects(e, obj, &Path::new(""), "subjects") {
        let p = sp.index(i);
        let name = string(e, s, &p, "name");
        if name.is_empty() {
            e.push(required(&p.child("name"), ""));
        }
        let group = string(e, s, &p, "apiGroup");
        match string(e, s, &p, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for m in name_is_dns_subdomain(name, false) {
                        e.push(invalid(&p.child("name"), name, m));
                    }
                }
                if !group.is_empty() {
                    e.push(not_supported(&p.child("apiGroup"), group, &[""]));
                }
                if !namespaced && string(e, s, &p, "namespace").is_empty() {
                    e.push(required(&p.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    e.push(not_supported(&p.child("apiGroup"), group, &[RBAC_GROUP]));
                }
            }
            other => e.push(not_supported(
                &p.child("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

pub(crate) fn validate_binding_update(e: &mut Errs, new: &Value, old: &Value) {
    let (n, o) = (get(new, "roleRef"), get(old, "roleRef"));
    if !same(n, o) {
        let r = n.unwrap_or(&Value::Null);
        let rendered = format!(
            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
            go_quote(str_at(r, &["apiGroup"])),
            go_quote(str_at(r, &["kind"])),
            go_quote(str_at(r, &["name"]))
        );
        e.push(invalid_raw(
            &Path::new("roleRef"),
            &rendered,
            "cannot change roleRef",
        ));
    }
}

pub(crate) fn validate_runtime_class(e: &mut Errs, obj: &Value) {
    let root = Path::new("");
    let handler = string(e, obj, &root, "handler");
    for m in name_is_dns_label(handler, false) {
        e.push(invalid(&Path::new("handler"), handler, m));
    }
    if let Some(o) = object(e, obj, &root, "overhead") {
        let op = Path::new("overhead");
        for (name, q) in map(e, o, &op, "podFixed").into_iter().flatten() {
            resource_quantity(e, name, q, &op.child("podFixed").key(name));
        }
    }
    if let Some(s) = object(e, obj, &root, "scheduling") {
        let sp = Path::new("scheduling");
        let ns = string_map(e, s, &sp, "nodeSelector");
        validate_labels(e, ns.as_deref(), &sp.child("nodeSelector"));
        validate_tolerations(e, s, &sp, "tolerations");
    }
}

/// events.k8s.io/v1 Event (strict validation).
pub(crate) fn validate_events_event(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    let root = Path::new("");
    if get(obj, "eventTime").is_none() {
        e.push(required(&Path::new("eventTime"), ""));
    }
    let t = string(e, obj, &root, "type");
    if t != "Normal" && t != "Warning" {
        e.push(invalid(
            &Path::new("type"),
            "",
            format!("has invalid value: {t}"),
        ));
    }
    let rc = string(e, obj, &root, "reportingController");
    if rc.is_empty() {
        e.push(required(&Path::new("reportingController"), ""));
    }
    validate_qualified_name(e, rc, &Path::new("reportingController"));
    for (key, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = string(e, obj, &root, key);
        if v.is_empty() {
            e.push(required(&Path::new(key), ""));
        }
        if v.len() > limit {
            e.push(invalid(
                &Path::new(key),
                "",
                format!("can have at most {limit} characters"),
            ));
        }
    }
    if string(e, obj, &root, "note").len() > 1024 {
        e.push(invalid(
            &Path::new("note"),
            "",
            "can have at most 1024 characters",
        ));
    }
    for key in ["deprecatedFirstTimestamp", "deprecatedLastTimestamp"] {
        if get(obj, key).is_some() {
            e.push(invalid(&Path::new(key), "", "needs to be unset"));
        }
    }
    if get(obj, "deprecatedCount")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0)
    {
        e.push(invalid(
            &Path::new("deprecatedCount"),
            "",
            "needs to be unset",
        ));
    }
    if get(obj, "deprecatedSource").is_some_and(|s| !same(Some(s), None)) {
        e.push(invalid(
            &Path::new("deprecatedSource"),
            "",
            "needs to be unset",
        ));
    }
}

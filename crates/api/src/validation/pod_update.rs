//! Pod update validation (upstream's `ValidatePodUpdate`): the spec is
//! immutable except container images, activeDeadlineSeconds (decrease
//! only), tolerations (additions only), schedulingGates (removals only),
//! terminationGracePeriodSeconds (negative to 1) and, for gated pods,
//! nodeSelector additions.

use serde_json::{Map, Value};

use super::meta::validate_object_meta_update;
use super::pod::validate_pod_spec;
use super::util::*;
use crate::field::Path;
use crate::names::inclusive_range_error;

const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(crate) fn validate_pod_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    let sp = Path::new("spec");
    let ns = get(new, "spec").unwrap_or(&Value::Null);
    let os = get(old, "spec").unwrap_or(&Value::Null);
    validate_pod_spec(e, ns, &sp);

    for key in ["containers", "initContainers"] {
        if container_updates(e, ns, os, &sp, key) {
            return;
        }
    }
    let new_ads = int(e, ns, &sp, "activeDeadlineSeconds");
    let old_ads = get(os, "activeDeadlineSeconds").and_then(Value::as_i64);
    let ads_path = sp.child("activeDeadlineSeconds");
    match (new_ads, old_ads) {
        (Some(n), _) if !(0..=i32::MAX as i64).contains(&n) => {
            e.push(invalid(
                &ads_path,
                n,
                inclusive_range_error(0, i32::MAX as i64),
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            e.push(invalid(
                &ads_path,
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => e.push(invalid(
            &ads_path,
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    only_added_tolerations(e, ns, os, &sp);
    only_deleted_scheduling_gates(e, ns, os, &sp);

    if semantic_eq(ns, os) {
        return;
    }
    let mut munged = ns.as_object().cloned().unwrap_or_default();
    for key in ["containers", "initContainers"] {
        if let (Some(Value::Array(nc)), Some(oc)) =
            (munged.get_mut(key), get(os, key).and_then(Value::as_array))
        {
            for (c, o) in nc.iter_mut().zip(oc) {
                if let Some(c) = c.as_object_mut() {
                    match get(o, "image") {
                        Some(img) => c.insert("image".into(), img.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        copy_member(&mut munged, os, key);
    }
    let old_grace = get(os, "terminationGracePeriodSeconds").and_then(Value::as_i64);
    let new_grace = munged
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
        copy_member(&mut munged, os, "terminationGracePeriodSeconds");
    }
    let gated = get(os, "schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if gated {
        let new_sel = munged.get("nodeSelector").cloned();
        if !same(new_sel.as_ref(), get(os, "nodeSelector")) {
            let old_sel = get(os, "nodeSelector").and_then(Value::as_object);
            let removed_or_changed = old_sel
                .into_iter()
                .flatten()
                .any(|(k, v)| new_sel.as_ref().and_then(|n| n.get(k)) != Some(v));
            if removed_or_changed {
                e.push(invalid(
                    &sp.child("nodeSelector"),
                    new_sel.clone().unwrap_or(Value::Null),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            copy_member(&mut munged, os, "nodeSelector");
        }
        // Node affinity may be narrowed on gated pods; other affinity
        // changes stay forbidden.
        let old_na = at(os, &["affinity", "nodeAffinity"]).cloned();
        if let Some(Value::Object(aff)) = munged.get_mut("affinity") {
            match old_na {
                Some(na) => aff.insert("nodeAffinity".into(), na),
                None => aff.remove("nodeAffinity"),
            };
        }
        if get(os, "affinity").is_none()
            && munged.get("affinity").is_some_and(|a| same(Some(a), None))
        {
            munged.remove("affinity");
        }
    }
    let munged = Value::Object(munged);
    if !semantic_eq(&munged, os) {
        e.push(forbidden(
            &sp,
            format!(
                "pod updates may not change fields other than {UPDATABLE_FIELDS}\n{}",
                spec_diff("core.PodSpec", os, &munged)
            ),
        ));
    }
}

fn copy_member(dst: &mut Map<String, Value>, src: &Value, key: &str) {
    match get(src, key) {
        Some(v) => dst.insert(key.to_string(), v.clone()),
        None => dst.remove(key),
    };
}

/// Returns true when validation must stop (containers added or removed).
fn container_updates(e: &mut Errs, ns: &Value, os: &Value, sp: &Path, key: &str) -> bool {
    let p = sp.child(key);
    let new = array(e, ns, sp, key);
    let old = get(os, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if new.len() != old.len() {
        e.push(forbidden(
            &p,
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, c) in new.iter().enumerate() {
        let image = str_at(c, &["image"]);
        if image.is_empty() {
            e.push(required(&p.index(i).child("image"), ""));
        }
        if image.trim() != image {
            e.push(invalid(
                &p.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

fn only_added_tolerations(e: &mut Errs, ns: &Value, os: &Value, sp: &Path) {
    let new = get(ns, "tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let without_secs = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    for old in get(os, "tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o = without_secs(old);
        if !new.iter().any(|n| semantic_eq(&without_secs(n), &o)) {
            e.push(forbidden(
                &sp.child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            return;
        }
    }
}

fn only_deleted_scheduling_gates(e: &mut Errs, ns: &Value, os: &Value, sp: &Path) {
    let names = |v: &Value| -> Vec<String> {
        get(v, "schedulingGates")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|g| str_at(g, &["name"]).to_string()).collect())
            .unwrap_or_default()
    };
    let old = names(os);
    for (i, gate) in names(ns).iter().enumerate() {
        if !old.contains(gate) {
            e.push(forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                format!("only deletion is allowed, but found new scheduling gate '{gate}'"),
            ));
        }
    }
}

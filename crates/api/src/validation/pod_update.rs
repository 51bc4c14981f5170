//! Pod update validation (upstream's `ValidatePodUpdate`): the spec is
//! immutable except container images, activeDeadlineSeconds (decrease
//! only), tolerations (additions only), schedulingGates (removals only),
//! terminationGracePeriodSeconds (negative to 1) and, for gated pods,
//! nodeSelector additions and narrower required node affinity.

use serde_json::{json, Map, Value};

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
        gated_pod_updates(e, &mut munged, os, &sp);
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

/// Upstream's relaxations for gated pods: `spec.nodeSelector` may gain
/// entries, and required node affinity may only be narrowed. Both are
/// checked here and taken from the old spec in `munged`.
fn gated_pod_updates(e: &mut Errs, munged: &mut Map<String, Value>, os: &Value, sp: &Path) {
    let old_sel = get(os, "nodeSelector");
    if !same(munged.get("nodeSelector"), old_sel) {
        let new_sel = munged.get("nodeSelector");
        let kept = |(k, v): (&String, &Value)| new_sel.and_then(|n| get(n, k)) == Some(v);
        if !old_sel
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .all(kept)
        {
            e.push(invalid_raw(
                &sp.child("nodeSelector"),
                &go_string_map(new_sel),
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            ));
        }
        copy_member(munged, os, "nodeSelector");
    }

    let old_na = at(os, &["affinity", "nodeAffinity"]).filter(|v| !v.is_null());
    let new_na = munged
        .get("affinity")
        .and_then(|a| get(a, "nodeAffinity"))
        .filter(|v| !v.is_null())
        .cloned();
    if same(old_na, new_na.as_ref()) {
        return;
    }
    node_affinity_mutation(
        e,
        &sp.child("affinity").child("nodeAffinity"),
        new_na.as_ref(),
        old_na,
    );
    let present = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    let munged_aff = munged.get("affinity").filter(|v| !v.is_null()).cloned();
    match (munged_aff, old_na) {
        (None, None) => {}
        (None, Some(na)) => {
            munged.insert("affinity".into(), json!({"nodeAffinity": na}));
        }
        (Some(aff), _)
            if !present(get(os, "affinity"))
                && !present(get(&aff, "podAntiAffinity"))
                && !present(get(&aff, "podAffinity")) =>
        {
            munged.remove("affinity");
        }
        (Some(_), na) => {
            if let Some(Value::Object(aff)) = munged.get_mut("affinity") {
                match na {
                    Some(na) => aff.insert("nodeAffinity".into(), na.clone()),
                    None => aff.remove("nodeAffinity"),
                };
            }
        }
    }
}

/// Upstream's `validateNodeAffinityMutation`: on a gated pod, a non-empty
/// list of required node selector terms keeps its length, and each term
/// may only gain match expressions or match fields.
fn node_affinity_mutation(e: &mut Errs, p: &Path, new: Option<&Value>, old: Option<&Value>) {
    let Some(old_req) = old
        .and_then(|o| get(o, "requiredDuringSchedulingIgnoredDuringExecution"))
        .filter(|v| !v.is_null())
    else {
        return;
    };
    let terms_path = p
        .child("requiredDuringSchedulingIgnoredDuringExecution")
        .child("nodeSelectorTerms");
    let old_terms = get(old_req, "nodeSelectorTerms")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let new_terms = new
        .and_then(|n| get(n, "requiredDuringSchedulingIgnoredDuringExecution"))
        .and_then(|r| get(r, "nodeSelectorTerms"))
        .filter(|v| !v.is_null());
    let new_list = new_terms
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !old_terms.is_empty() && old_terms.len() != new_list.len() {
        e.push(invalid_raw(
            &terms_path,
            &go_node_selector_terms(new_terms),
            "no additions/deletions to non-empty NodeSelectorTerms list are allowed",
        ));
        return;
    }
    for (i, (n, o)) in new_list.iter().zip(old_terms).enumerate() {
        if !term_has_only_additions(n, o) {
            e.push(invalid_raw(
                &terms_path.index(i),
                &go_node_selector_term(n),
                "only additions are allowed (no mutations or deletions)",
            ));
        }
    }
}

/// Upstream's `validateNodeSelectorTermHasOnlyAdditions`.
fn term_has_only_additions(new: &Value, old: &Value) -> bool {
    let list = |v: &Value, key: &str| -> Vec<Value> {
        get(v, key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (old_exprs, old_fields) = (list(old, "matchExpressions"), list(old, "matchFields"));
    let (new_exprs, new_fields) = (list(new, "matchExpressions"), list(new, "matchFields"));
    if old_exprs.is_empty()
        && old_fields.is_empty()
        && (!new_exprs.is_empty() || !new_fields.is_empty())
    {
        return false;
    }
    let prefix_kept = |new: &[Value], old: &[Value]| {
        new.len() >= old.len() && semantic_eq(&json!(new[..old.len()]), &json!(old))
    };
    prefix_kept(&new_exprs, &old_exprs) && prefix_kept(&new_fields, &old_fields)
}

/// `%#v` of a `[]core.NodeSelectorTerm`.
fn go_node_selector_terms(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]core.NodeSelectorTerm(nil)".to_string(),
        Some(terms) => format!(
            "[]core.NodeSelectorTerm{{{}}}",
            terms
                .iter()
                .map(go_node_selector_term)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `%#v` of a `core.NodeSelectorTerm`.
fn go_node_selector_term(t: &Value) -> String {
    let reqs = |key: &str| match get(t, key).and_then(Value::as_array) {
        None => "[]core.NodeSelectorRequirement(nil)".to_string(),
        Some(items) => format!(
            "[]core.NodeSelectorRequirement{{{}}}",
            items
                .iter()
                .map(|r| format!(
                    "core.NodeSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                    go_quote(str_at(r, &["key"])),
                    go_quote(str_at(r, &["operator"])),
                    go_string_slice(get(r, "values"))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "core.NodeSelectorTerm{{MatchExpressions:{}, MatchFields:{}}}",
        reqs("matchExpressions"),
        reqs("matchFields")
    )
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

//! ObjectMeta validation (upstream's `ValidateObjectMetaAccessor` and
//! `ValidateObjectMetaAccessorUpdate`), labels, annotations, finalizers,
//! owner references, and label selectors (validation and matching).

use serde_json::Value;

use super::util::*;
use crate::field::Path;
use crate::names::{is_label_value, is_qualified_name, name_is_dns_label};

/// A name validator: `(name, is_generate_name_prefix) -> messages`.
pub(crate) type NameFn = fn(&str, bool) -> Vec<String>;

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Validates `obj.metadata` on create.
pub(crate) fn validate_object_meta(e: &mut Errs, obj: &Value, namespaced: bool, name_fn: NameFn) {
    let p = Path::new("metadata");
    let meta = get(obj, "metadata").unwrap_or(&Value::Null);
    if !meta.is_object() && !meta.is_null() {
        e.push(invalid(&p, meta.clone(), "must be an object"));
        return;
    }
    let generate_name = string(e, meta, &p, "generateName");
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            e.push(invalid(&p.child("generateName"), generate_name, msg));
        }
    }
    let name = string(e, meta, &p, "name");
    if name.is_empty() {
        e.push(required(
            &p.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_fn(name, false) {
            e.push(invalid(&p.child("name"), name, msg));
        }
    }
    let namespace = string(e, meta, &p, "namespace");
    if namespaced {
        if namespace.is_empty() {
            e.push(required(&p.child("namespace"), ""));
        } else {
            for msg in name_is_dns_label(namespace, false) {
                e.push(invalid(&p.child("namespace"), namespace, msg));
            }
        }
    } else if !namespace.is_empty() {
        e.push(forbidden(&p.child("namespace"), "not allowed on this type"));
    }
    nonneg_at(e, meta, &p, "generation");
    validate_meta_common(e, meta, &p);
}

/// Labels, annotations, owner references and finalizers: checked on both
/// create and update.
fn validate_meta_common(e: &mut Errs, meta: &Value, p: &Path) {
    let labels = string_map(e, meta, p, "labels");
    validate_labels(e, labels.as_deref(), &p.child("labels"));
    let annotations = string_map(e, meta, p, "annotations");
    validate_annotations(e, annotations.as_deref(), &p.child("annotations"));
    validate_owner_references(e, meta, p);
    let finalizers = strings(e, meta, p, "finalizers");
    validate_finalizers(e, &finalizers, &p.child("finalizers"));
}

/// Upstream's `ValidateLabels`: keys are qualified names, values label values.
pub(crate) fn validate_labels(e: &mut Errs, labels: Option<&[(&str, &str)]>, p: &Path) {
    for (k, v) in labels.unwrap_or_default() {
        validate_label_name(e, k, p);
        for msg in is_label_value(v) {
            e.push(invalid(p, *v, msg));
        }
    }
}

/// Upstream's `ValidateLabelName`.
pub(crate) fn validate_label_name(e: &mut Errs, name: &str, p: &Path) {
    for msg in is_qualified_name(name) {
        e.push(invalid(p, name, msg));
    }
}

/// Upstream's `ValidateQualifiedName`.
pub(crate) fn validate_qualified_name(e: &mut Errs, name: &str, p: &Path) {
    validate_label_name(e, name, p);
}

/// Upstream's `ValidateAnnotations`: keys are qualified names (case
/// insensitive), total size of keys and values at most 256 KiB.
pub(crate) fn validate_annotations(e: &mut Errs, annotations: Option<&[(&str, &str)]>, p: &Path) {
    let mut total = 0usize;
    for (k, v) in annotations.unwrap_or_default() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            e.push(invalid(p, *k, msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        e.push(too_long(p, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_owner_references(e: &mut Errs, meta: &Value, p: &Path) {
    let path = p.child("ownerReferences");
    let mut first_controller: Option<String> = None;
    for (_, r) in objects(e, meta, p, "ownerReferences") {
        // Upstream reports these at the list path, without the index.
        let api_version = string(e, r, &path, "apiVersion");
        let kind = string(e, r, &path, "kind");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            e.push(invalid(
                &path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            e.push(invalid(&path.child("kind"), kind, "must not be empty"));
        }
        let name = string(e, r, &path, "name");
        if name.is_empty() {
            e.push(invalid(&path.child("name"), name, "must not be empty"));
        }
        let uid = string(e, r, &path, "uid");
        if uid.is_empty() {
            e.push(invalid(&path.child("uid"), uid, "must not be empty"));
        }
        if api_version == "v1" && kind == "Event" {
            e.push(invalid(
                &path,
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if boolean(e, r, &path, "controller") == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => e.push(invalid(
                    &path,
                    get(meta, "ownerReferences").cloned().unwrap_or(Value::Null),
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
}

/// Upstream's `ValidateFinalizers` (reported at the list path).
pub(crate) fn validate_finalizers(e: &mut Errs, finalizers: &[&str], p: &Path) {
    for f in finalizers {
        for msg in is_qualified_name(f) {
            e.push(invalid(p, *f, msg));
        }
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        let list: Vec<Value> = finalizers.iter().map(|s| Value::from(*s)).collect();
        e.push(invalid(
            p,
            list,
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// Validates `metadata` on update against the stored object. Fields the
/// server fills from the stored object (uid, creationTimestamp, deletion
/// fields, generation, resourceVersion) are only compared when the request
/// carries them.
pub(crate) fn validate_object_meta_update(e: &mut Errs, new: &Value, old: &Value) {
    let p = Path::new("metadata");
    let nm = get(new, "metadata").unwrap_or(&Value::Null);
    let om = get(old, "metadata").unwrap_or(&Value::Null);
    if get(om, "deletionTimestamp").is_some() {
        let old_f = str_list(om, "finalizers");
        let mut extra: Vec<&str> = str_list(nm, "finalizers")
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list = extra
                .iter()
                .map(|s| go_quote(s))
                .collect::<Vec<_>>()
                .join(", ");
            e.push(forbidden(
                &p.child("finalizers"),
                format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            ));
        }
    }
    for key in ["name", "namespace"] {
        immutable(e, get(nm, key), get(om, key), &p.child(key));
    }
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        if get(nm, key).is_some() {
            immutable(e, get(nm, key), get(om, key), &p.child(key));
        }
    }
    validate_meta_common(e, nm, &p);
}

fn str_list<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    get(v, key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Label selectors.

/// Upstream's `ValidateLabelSelector`.
pub(crate) fn validate_label_selector(e: &mut Errs, sel: Option<&Value>, p: &Path) {
    let Some(sel) = sel else { return };
    let labels = string_map(e, sel, p, "matchLabels");
    validate_labels(e, labels.as_deref(), &p.child("matchLabels"));
    for (i, r) in objects(e, sel, p, "matchExpressions") {
        let rp = p.child("matchExpressions").index(i);
        let op = string(e, r, &rp, "operator");
        let values = strings(e, r, &rp, "values");
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    e.push(required(
                        &rp.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    e.push(forbidden(
                        &rp.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => e.push(invalid(
                &rp.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = string(e, r, &rp, "key");
        validate_label_name(e, key, &rp.child("key"));
        for (j, v) in values.iter().enumerate() {
            for msg in is_label_value(v) {
                e.push(invalid(&rp.child("values").index(j), *v, msg));
            }
        }
    }
}

/// A label selector converted for matching (upstream's
/// `LabelSelectorAsSelector`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selector {
    /// A nil selector: matches nothing.
    Nothing,
    /// Requirements `(key, operator, values)`; empty matches everything.
    Reqs(Vec<(String, String, Vec<String>)>),
}

impl Selector {
    /// Converts a selector; `Err` when upstream's conversion fails.
    pub(crate) fn from_json(sel: Option<&Value>) -> Result<Selector, ()> {
        let Some(sel) = sel else {
            return Ok(Selector::Nothing);
        };
        let mut reqs = Vec::new();
        if let Some(m) = get(sel, "matchLabels") {
            for (k, v) in m.as_object().ok_or(())? {
                let v = v.as_str().ok_or(())?;
                if !is_qualified_name(k).is_empty() || !is_label_value(v).is_empty() {
                    return Err(());
                }
                reqs.push((k.clone(), "In".to_string(), vec![v.to_string()]));
            }
        }
        if let Some(exprs) = get(sel, "matchExpressions") {
            for r in exprs.as_array().ok_or(())? {
                let key = str_at(r, &["key"]).to_string();
                let op = str_at(r, &["operator"]).to_string();
                let values: Vec<String> = match get(r, "values") {
                    None => Vec::new(),
                    Some(v) => v
                        .as_array()
                        .ok_or(())?
                        .iter()
                        .map(|x| x.as_str().map(String::from).ok_or(()))
                        .collect::<Result<_, _>>()?,
                };
                let ok = match op.as_str() {
                    "In" | "NotIn" => !values.is_empty(),
                    "Exists" | "DoesNotExist" => values.is_empty(),
                    _ => false,
                };
                if !ok
                    || !is_qualified_name(&key).is_empty()
                    || values.iter().any(|v| !is_label_value(v).is_empty())
                {
                    return Err(());
                }
                reqs.push((key, op, values));
            }
        }
        Ok(Selector::Reqs(reqs))
    }

    /// True for a selector that matches everything.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Selector::Reqs(r) if r.is_empty())
    }

    /// Whether `labels` (a JSON object, or absent) satisfies the selector.
    pub(crate) fn matches(&self, labels: Option<&Value>) -> bool {
        let Selector::Reqs(reqs) = self else {
            return false;
        };
        let lookup = |k: &str| labels.and_then(|l| get(l, k)).and_then(Value::as_str);
        reqs.iter().all(|(k, op, values)| match op.as_str() {
            "In" => lookup(k).is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => lookup(k).is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => lookup(k).is_some(),
            _ => lookup(k).is_none(),
        })
    }
}

/// True when the selector has neither matchLabels nor matchExpressions.
pub(crate) fn selector_has_no_terms(sel: &Value) -> bool {
    let n = |k| {
        get(sel, k).map_or(0, |v| {
            v.as_object()
                .map(|m| m.len())
                .or(v.as_array().map(Vec::len))
                .unwrap_or(1)
        })
    };
    n("matchLabels") + n("matchExpressions") == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::name_is_dns_subdomain;
    use serde_json::json;

    fn meta_errs(obj: Value, namespaced: bool) -> Vec<String> {
        let mut e = Vec::new();
        validate_object_meta(&mut e, &obj, namespaced, name_is_dns_subdomain);
        e.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn name_and_namespace() {
        assert_eq!(
            meta_errs(json!({"metadata": {"namespace": "default"}}), true),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(
            meta_errs(json!({"metadata": {"name": "a", "namespace": "x"}}), false),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let e = meta_errs(
            json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
            true,
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert!(meta_errs(json!({"metadata": {"name": "ok", "namespace": "default", "uid": "u", "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "5", "generation": 2}}), true).is_empty());
    }

    #[test]
    fn labels_annotations_finalizers_owners() {
        let long = "a".repeat(64);
        let e = meta_errs(
            json!({"metadata": {"name": "a", "labels": {"app": long, "bad key": "x"}}}),
            false,
        );
        assert_eq!(
            e[0],
            format!(
                "metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
        assert!(e[1]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"));
        let big = "x".repeat(262_144);
        let e = meta_errs(
            json!({"metadata": {"name": "a", "annotations": {"k": big}}}),
            false,
        );
        assert_eq!(
            e,
            vec!["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        let e = meta_errs(
            json!({"metadata": {"name": "a", "finalizers": ["a/b/c"]}}),
            false,
        );
        assert!(e[0].starts_with(
            "metadata.finalizers: Invalid value: \"a/b/c\": a qualified name must consist"
        ));
        let e = meta_errs(
            json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "", "name": "x", "uid": ""}]}}),
            false,
        );
        assert_eq!(
            e,
            vec![
                "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"
            ]
        );
    }

    #[test]
    fn update_rules() {
        let old = json!({"metadata": {"name": "a", "namespace": "n", "uid": "1", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x"]}});
        let new = json!({"metadata": {"name": "b", "namespace": "n", "finalizers": ["x", "y"]}});
        let mut e = Vec::new();
        validate_object_meta_update(&mut e, &new, &old);
        let msgs: Vec<String> = e.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"y\"}",
                "metadata.name: Invalid value: \"b\": field is immutable",
            ]
        );
    }

    #[test]
    fn selectors() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
        let s = Selector::from_json(Some(&sel)).unwrap();
        assert!(s.matches(Some(&json!({"app": "web"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "tier": "db"}))));
        assert!(!Selector::Nothing.matches(Some(&json!({}))));
        assert!(Selector::from_json(Some(&json!({}))).unwrap().is_empty());
        assert!(Selector::from_json(Some(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
        ))
        .is_err());
        let mut e = Vec::new();
        validate_label_selector(
            &mut e,
            Some(&json!({"matchExpressions": [{"key": "a", "operator": "Foo", "values": ["x"]}]})),
            &Path::new("spec.selector"),
        );
        assert_eq!(e[0].to_string(), "spec.selector.matchExpressions[0].operator: Invalid value: \"Foo\": not a valid selector operator");
        assert!(selector_has_no_terms(&json!({"matchLabels": {}})));
    }
}

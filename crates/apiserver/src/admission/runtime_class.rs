//! Upstream's `RuntimeClass` admission plugin
//! (plugin/pkg/admission/runtimeclass): a new pod naming a RuntimeClass
//! gets the class's `overhead.podFixed` as `spec.overhead` (refused when
//! it set another), the class's `scheduling.nodeSelector` merged into its
//! node selector (refused on a conflicting value) and the class's
//! `scheduling.tolerations` merged into its own (a toleration another one
//! covers is dropped). Validation refuses a pod overhead no RuntimeClass
//! defined.

use std::collections::BTreeMap;

use rkube_api::quantity::Quantity;
use serde_json::{Map, Value};

use super::{get_cluster_object, spec_field, spec_mut, Attributes, Operation};
use crate::error::ApiResult;
use crate::rest::Rest;

const GROUP: &str = "node.k8s.io";
const PLURAL: &str = "runtimeclasses";

/// Why the plugin refuses a pod (each a 403 Forbidden upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeClassError {
    #[error("pod rejected: RuntimeClass {0:?} not found")]
    NotFound(String),
    #[error("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")]
    OverheadMismatch,
    #[error("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")]
    OverheadWithoutRuntimeClass,
    #[error("conflict: runtimeClass.scheduling.nodeSelector[{key}] = {class_value}; pod.spec.nodeSelector[{key}] = {pod_value}")]
    NodeSelectorConflict {
        key: String,
        class_value: String,
        pod_value: String,
    },
}

/// `overhead.podFixed` of a RuntimeClass that defines an overhead
/// (`Some(None)` for an overhead without podFixed).
fn class_overhead(rc: &Value) -> Option<Option<&Value>> {
    rc.get("overhead")
        .filter(|o| !o.is_null())
        .map(|o| o.get("podFixed").filter(|p| !p.is_null()))
}

/// Semantic equality of two resource lists: the same names, equal
/// quantities; absent and empty are the same.
fn same_resources(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn parse(v: Option<&Value>) -> Option<BTreeMap<String, Quantity>> {
        v.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, q)| Quantity::from_json(q).ok().map(|q| (k.clone(), q)))
            .collect()
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(|m| !m.is_empty())
}

/// Upstream's `setOverhead`.
pub fn set_overhead(pod: &mut Value, rc: &Value) -> Result<(), RuntimeClassError> {
    let Some(pod_fixed) = class_overhead(rc) else {
        return Ok(());
    };
    let current = spec_field(pod, "overhead");
    if non_empty(current) && !same_resources(pod_fixed, current) {
        return Err(RuntimeClassError::OverheadMismatch);
    }
    let pod_fixed = pod_fixed.cloned();
    if let Some(spec) = spec_mut(pod) {
        match pod_fixed {
            Some(o) => spec.insert("overhead".into(), o),
            None => spec.remove("overhead"),
        };
    }
    Ok(())
}

/// Upstream's `setScheduling`.
pub fn set_scheduling(pod: &mut Value, rc: &Value) -> Result<(), RuntimeClassError> {
    let Some(scheduling) = rc.get("scheduling").filter(|s| !s.is_null()) else {
        return Ok(());
    };
    let class_selector = scheduling.get("nodeSelector").and_then(Value::as_object);
    let selector: Option<Map<String, Value>> =
        match spec_field(pod, "nodeSelector").and_then(Value::as_object) {
            None => class_selector.cloned(),
            Some(own) => {
                let mut merged = own.clone();
                // Upstream walks a Go map (random order); sorted here, so a
                // pod with several conflicts always hears of the same one.
                let mut entries: Vec<(&String, &Value)> =
                    class_selector.into_iter().flatten().collect();
                entries.sort_by_key(|(k, _)| *k);
                for (key, class_value) in entries {
                    match own.get(key) {
                        Some(pod_value) if pod_value != class_value => {
                            return Err(RuntimeClassError::NodeSelectorConflict {
                                key: key.clone(),
                                class_value: class_value.as_str().unwrap_or("").to_string(),
                                pod_value: pod_value.as_str().unwrap_or("").to_string(),
                            });
                        }
                        _ => {
                            merged.insert(key.clone(), class_value.clone());
                        }
                    }
                }
                Some(merged)
            }
        };
    let own_tolerations = spec_field(pod, "tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let class_tolerations = scheduling
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerations = merge_tolerations(own_tolerations, class_tolerations);
    if let Some(spec) = spec_mut(pod) {
        match selector {
            Some(s) => spec.insert("nodeSelector".into(), Value::Object(s)),
            None => spec.remove("nodeSelector"),
        };
        if tolerations.is_empty() {
            spec.remove("tolerations");
        } else {
            spec.insert("tolerations".into(), Value::Array(tolerations));
        }
    }
    Ok(())
}

/// Upstream's `validateOverhead`.
pub fn validate_overhead(pod: &Value, rc: Option<&Value>) -> Result<(), RuntimeClassError> {
    let current = spec_field(pod, "overhead");
    if !non_empty(current) {
        return Ok(());
    }
    match rc.and_then(class_overhead) {
        Some(pod_fixed) if same_resources(pod_fixed, current) => Ok(()),
        Some(_) => Err(RuntimeClassError::OverheadMismatch),
        None => Err(RuntimeClassError::OverheadWithoutRuntimeClass),
    }
}

/// A toleration's fields, as upstream's `core.Toleration` compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Toleration {
    key: String,
    operator: String,
    value: String,
    effect: String,
    seconds: Option<i64>,
}

impl Toleration {
    fn of(v: &Value) -> Toleration {
        let s = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        Toleration {
            key: s("key"),
            operator: s("operator"),
            value: s("value"),
            effect: s("effect"),
            seconds: v.get("tolerationSeconds").and_then(Value::as_i64),
        }
    }

    /// Upstream's `isSuperset(ss, t)`: whether `self` tolerates a superset
    /// of what `t` tolerates.
    fn is_superset_of(&self, t: &Toleration) -> bool {
        if self == t {
            return true;
        }
        // An empty key with Exists matches every key.
        if t.key != self.key && (!self.key.is_empty() || self.operator != "Exists") {
            return false;
        }
        // An empty effect matches every effect.
        if t.effect != self.effect && !self.effect.is_empty() {
            return false;
        }
        if self.effect == "NoExecute" {
            if let Some(ss) = self.seconds {
                if t.seconds.is_none_or(|s| s > ss) {
                    return false;
                }
            }
        }
        match self.operator.as_str() {
            "Equal" | "" => t.operator == "Equal" && t.value == self.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// Upstream's `tolerations.MergeTolerations`: both lists, with every
/// toleration another one covers left out (of equal ones, the first stays).
pub fn merge_tolerations(first: Vec<Value>, second: Vec<Value>) -> Vec<Value> {
    let all: Vec<(Value, Toleration)> = first
        .into_iter()
        .chain(second)
        .map(|v| {
            let t = Toleration::of(&v);
            (v, t)
        })
        .collect();
    let mut merged: Vec<usize> = Vec::new();
    'next: for (i, (_, t)) in all.iter().enumerate() {
        if merged.iter().any(|&m| all[m].1.is_superset_of(t)) {
            continue;
        }
        for (_, t2) in &all[i + 1..] {
            if t2 != t && t2.is_superset_of(t) {
                continue 'next;
            }
        }
        merged.push(i);
    }
    merged.into_iter().map(|i| all[i].0.clone()).collect()
}

/// The RuntimeClass a pod names, if any: `Ok(None)` when it names none.
async fn runtime_class_of(
    rest: &Rest,
    a: &Attributes<'_>,
    pod: &Value,
) -> ApiResult<Option<std::sync::Arc<Value>>> {
    let Some(name) = spec_field(pod, "runtimeClassName") else {
        return Ok(None);
    };
    let name = name.as_str().unwrap_or("");
    match get_cluster_object(rest, GROUP, PLURAL, name).await? {
        Some(rc) => Ok(Some(rc)),
        None => Err(a.forbidden(RuntimeClassError::NotFound(name.to_string()))),
    }
}

fn applies(a: &Attributes<'_>) -> bool {
    a.is_pod() && a.operation == Operation::Create
}

/// The mutating half: pods on create.
pub(super) async fn admit(rest: &Rest, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
    if !applies(a) {
        return Ok(());
    }
    let Some(rc) = runtime_class_of(rest, a, obj).await? else {
        return Ok(());
    };
    set_overhead(obj, &rc).map_err(|e| a.forbidden(e))?;
    set_scheduling(obj, &rc).map_err(|e| a.forbidden(e))
}

/// The validating half: pods on create.
pub(super) async fn validate(rest: &Rest, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if !applies(a) {
        return Ok(());
    }
    let rc = runtime_class_of(rest, a, obj).await?;
    validate_overhead(obj, rc.as_deref()).map_err(|e| a.forbidden(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kata() -> Value {
        json!({"metadata": {"name": "kata"}, "handler": "kata",
            "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
            "scheduling": {"nodeSelector": {"runtime": "kata"},
                "tolerations": [{"key": "kata", "operator": "Exists", "effect": "NoSchedule"}]}})
    }

    #[test]
    fn overhead_comes_from_the_class() {
        let mut p = json!({"spec": {"runtimeClassName": "kata"}});
        set_overhead(&mut p, &kata()).unwrap();
        assert_eq!(
            p["spec"]["overhead"],
            json!({"cpu": "250m", "memory": "120Mi"})
        );
        // The same overhead written differently is the same.
        let mut same = json!({"spec": {"overhead": {"cpu": "0.25", "memory": "120Mi"}}});
        assert_eq!(set_overhead(&mut same, &kata()), Ok(()));
        let mut other = json!({"spec": {"overhead": {"cpu": "1"}}});
        assert_eq!(
            set_overhead(&mut other, &kata()).unwrap_err().to_string(),
            "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
        );
        let mut none = json!({"spec": {}});
        set_overhead(&mut none, &json!({"handler": "runc"})).unwrap();
        assert!(none["spec"].get("overhead").is_none());
    }

    #[test]
    fn overhead_without_a_class_is_refused() {
        let p = json!({"spec": {"overhead": {"cpu": "1"}}});
        assert_eq!(
            validate_overhead(&p, None).unwrap_err().to_string(),
            "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
        );
        assert_eq!(validate_overhead(&json!({"spec": {}}), None), Ok(()));
        let ok = json!({"spec": {"overhead": {"cpu": "250m", "memory": "120Mi"}}});
        assert_eq!(validate_overhead(&ok, Some(&kata())), Ok(()));
    }

    #[test]
    fn scheduling_merges_selector_and_tolerations() {
        let mut p = json!({"spec": {"nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}});
        set_scheduling(&mut p, &kata()).unwrap();
        assert_eq!(
            p["spec"]["nodeSelector"],
            json!({"disk": "ssd", "runtime": "kata"})
        );
        assert_eq!(
            p["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "kata", "operator": "Exists", "effect": "NoSchedule"},
            ])
        );
        let mut none = json!({"spec": {}});
        set_scheduling(&mut none, &kata()).unwrap();
        assert_eq!(none["spec"]["nodeSelector"], json!({"runtime": "kata"}));

        let mut conflict = json!({"spec": {"nodeSelector": {"runtime": "runc"}}});
        assert_eq!(
            set_scheduling(&mut conflict, &kata())
                .unwrap_err()
                .to_string(),
            "conflict: runtimeClass.scheduling.nodeSelector[runtime] = kata; pod.spec.nodeSelector[runtime] = runc"
        );
        assert_eq!(
            RuntimeClassError::NotFound("x".into()).to_string(),
            "pod rejected: RuntimeClass \"x\" not found"
        );
    }

    #[test]
    fn merged_tolerations_drop_covered_ones() {
        let t = |v: Value| v;
        let exists_all = t(json!({"operator": "Exists"}));
        let a = t(json!({"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}));
        let a_any = t(json!({"key": "a", "operator": "Exists"}));
        let short = t(
            json!({"key": "n", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}),
        );
        let long = t(
            json!({"key": "n", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        // An Exists with an empty key covers everything.
        assert_eq!(
            merge_tolerations(vec![a.clone()], vec![exists_all.clone()]),
            vec![exists_all.clone()]
        );
        // A key's Exists covers its Equal.
        assert_eq!(
            merge_tolerations(vec![a.clone(), a_any.clone()], vec![]),
            vec![a_any.clone()]
        );
        // Longer NoExecute seconds do not cover a shorter one's superset:
        // the one with fewer seconds tolerates less time, so the longer wins.
        assert_eq!(
            merge_tolerations(vec![short.clone()], vec![long.clone()]),
            vec![long.clone()]
        );
        assert_eq!(
            merge_tolerations(vec![long.clone()], vec![short.clone()]),
            vec![long.clone()]
        );
        // Equal ones: the first stays.
        assert_eq!(
            merge_tolerations(vec![a.clone()], vec![a.clone()]),
            vec![a.clone()]
        );
        // An empty operator means Equal: it covers its explicit twin, but
        // not the other way round (upstream compares the operator literally).
        let implicit = t(json!({"key": "a", "value": "1", "effect": "NoSchedule"}));
        assert_eq!(
            merge_tolerations(vec![implicit.clone()], vec![a.clone()]),
            vec![implicit.clone()]
        );
        assert_eq!(
            merge_tolerations(vec![a.clone()], vec![implicit.clone()]),
            vec![implicit]
        );
    }
}

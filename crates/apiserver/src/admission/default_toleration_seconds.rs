//! Upstream's `DefaultTolerationSeconds` admission plugin
//! (plugin/pkg/admission/defaulttolerationseconds): every pod, on create
//! and update, tolerates the `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` NoExecute taints for 300 seconds unless
//! it already tolerates them (a toleration with that key or an empty key,
//! and effect NoExecute or empty).

use serde_json::{json, Value};

use super::{spec_field, spec_mut, Attributes};

pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds` defaults.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Whether `t` tolerates the NoExecute taint with `key`, as the plugin
/// judges it (operator and value are not looked at).
fn tolerates(t: &Value, key: &str) -> bool {
    let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or("");
    let k = field("key");
    let effect = field("effect");
    (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
}

/// Appends the missing default tolerations to `pod`.
pub fn add_default_tolerations(pod: &mut Value) {
    let existing = spec_field(pod, "tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let missing: Vec<Value> = [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE]
        .into_iter()
        .filter(|key| !existing.iter().any(|t| tolerates(t, key)))
        .map(|key| {
            json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            })
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    if let Some(spec) = spec_mut(pod) {
        let mut all = existing;
        all.extend(missing);
        spec.insert("tolerations".into(), Value::Array(all));
    }
}

/// Pods on create and update.
pub(super) fn admit(a: &Attributes<'_>, obj: &mut Value) {
    if a.is_pod() {
        add_default_tolerations(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Value) -> Vec<(String, i64)> {
        pod["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_string(),
                    t["tolerationSeconds"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn both_defaults_are_added() {
        let mut p = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut p);
        assert_eq!(
            p["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Idempotent: a second run (an update) adds nothing.
        let before = p.clone();
        add_default_tolerations(&mut p);
        assert_eq!(p, before);
    }

    #[test]
    fn existing_tolerations_are_kept_and_counted() {
        let mut p = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
            {"key": "other", "operator": "Exists", "effect": "NoSchedule"},
        ]}});
        add_default_tolerations(&mut p);
        assert_eq!(
            keys(&p),
            vec![
                ("node.kubernetes.io/not-ready".into(), 10),
                ("other".into(), -1),
                ("node.kubernetes.io/unreachable".into(), 300),
            ]
        );
    }

    #[test]
    fn an_empty_key_or_effect_tolerates_everything_it_names() {
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut all);
        assert_eq!(keys(&all), vec![(String::new(), -1)]);
        // An empty key with a NoSchedule effect covers neither.
        let mut no_schedule =
            json!({"spec": {"tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}});
        add_default_tolerations(&mut no_schedule);
        assert_eq!(keys(&no_schedule).len(), 3);
        // A key with an empty effect covers its own taint.
        let mut unreachable = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}});
        add_default_tolerations(&mut unreachable);
        assert_eq!(
            keys(&unreachable),
            vec![
                ("node.kubernetes.io/unreachable".into(), -1),
                ("node.kubernetes.io/not-ready".into(), 300),
            ]
        );
    }
}

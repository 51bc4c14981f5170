//! Admission of a pod under node pressure, as upstream's eviction manager
//! admits: with no pressure every pod; critical pods (static, mirror, or
//! priority ≥ upstream's SystemCriticalPriority, 2,000,000,000) always; under memory
//! pressure alone, pods that are not BestEffort and BestEffort pods that
//! tolerate the `node.kubernetes.io/memory-pressure:NoSchedule` taint; under
//! disk pressure no other pod. A rejected pod fails with reason `Evicted`
//! and upstream's message.

use k8s_openapi::api::core::v1::{Pod, Toleration};

use crate::facts::Conditions;

/// Upstream's `SystemCriticalPriority`.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";

fn is_critical(pod: &Pod) -> bool {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    mirror || priority >= SYSTEM_CRITICAL_PRIORITY
}

/// Whether `t` tolerates the taint `key` (no value) with effect NoSchedule.
fn tolerates_no_schedule(t: &Toleration, key: &str) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoSchedule");
    let key_ok = match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) => k == key,
    };
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        None | Some("Equal") => t.value.as_deref().unwrap_or("").is_empty(),
        Some(_) => false,
    };
    effect_ok && key_ok && value_ok
}

fn best_effort(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) == Some("BestEffort")
}

/// `Some(message)` when `pod` must be rejected under `conditions`.
pub fn pressure_rejection(pod: &Pod, conditions: &Conditions) -> Option<String> {
    let memory = conditions.memory.is_some_and(|p| p.pressure);
    let disk = conditions.disk.is_some_and(|p| p.pressure);
    if !memory && !disk || is_critical(pod) {
        return None;
    }
    if memory && !disk {
        let tolerates = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|ts| {
                ts.iter()
                    .any(|t| tolerates_no_schedule(t, MEMORY_PRESSURE_TAINT))
            });
        if !best_effort(pod) || tolerates {
            return None;
        }
    }
    let mut names = Vec::new();
    if memory {
        names.push("MemoryPressure");
    }
    if disk {
        names.push("DiskPressure");
    }
    Some(format!(
        "Pod was rejected: The node had condition: [{}]. ",
        names.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Pressure;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn conds(memory: bool, disk: bool) -> Conditions {
        let p = |pressure| {
            Some(Pressure {
                pressure,
                since: Timestamp::UNIX_EPOCH,
            })
        };
        Conditions {
            memory: p(memory),
            disk: p(disk),
        }
    }

    #[test]
    fn memory_pressure_rejects_only_best_effort_pods() {
        let be = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"qosClass": "BestEffort"}}),
        );
        let burst = pod(
            json!({"metadata": {"name": "b"}, "spec": {"containers": []}, "status": {"qosClass": "Burstable"}}),
        );
        assert_eq!(pressure_rejection(&be, &conds(false, false)), None);
        assert_eq!(
            pressure_rejection(&be, &conds(true, false)).as_deref(),
            Some("Pod was rejected: The node had condition: [MemoryPressure]. ")
        );
        assert_eq!(pressure_rejection(&burst, &conds(true, false)), None);
        assert_eq!(pressure_rejection(&be, &Conditions::default()), None);
    }

    #[test]
    fn a_memory_pressure_toleration_admits_a_best_effort_pod() {
        let tolerating = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]},
            "status": {"qosClass": "BestEffort"}}),
        );
        let other = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}]},
            "status": {"qosClass": "BestEffort"}}),
        );
        let everything = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "tolerations": [
            {"operator": "Exists"}]}, "status": {"qosClass": "BestEffort"}}),
        );
        assert_eq!(pressure_rejection(&tolerating, &conds(true, false)), None);
        assert!(pressure_rejection(&other, &conds(true, false)).is_some());
        assert_eq!(pressure_rejection(&everything, &conds(true, false)), None);
        // Disk pressure is not tolerated that way.
        assert!(pressure_rejection(&tolerating, &conds(true, true)).is_some());
    }

    #[test]
    fn disk_pressure_rejects_every_pod_but_critical_ones() {
        let burst = pod(
            json!({"metadata": {"name": "b"}, "spec": {"containers": []}, "status": {"qosClass": "Burstable"}}),
        );
        assert_eq!(
            pressure_rejection(&burst, &conds(false, true)).as_deref(),
            Some("Pod was rejected: The node had condition: [DiskPressure]. ")
        );
        assert_eq!(
            pressure_rejection(&burst, &conds(true, true)).as_deref(),
            Some("Pod was rejected: The node had condition: [MemoryPressure DiskPressure]. ")
        );
        let critical = pod(
            json!({"metadata": {"name": "c"}, "spec": {"containers": [], "priority": 2000001000}}),
        );
        assert_eq!(pressure_rejection(&critical, &conds(true, true)), None);
        let mirror = pod(
            json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": []}}),
        );
        assert_eq!(pressure_rejection(&mirror, &conds(false, true)), None);
    }
}

//! Helpers every controller uses (upstream's `controller_utils` and
//! `podutil`): object keys, owner references, and pod readiness.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

pub use rkube_api::scheduling::{label_selector_matches, Selector};

/// The work-queue key of an object: `namespace/name`, or `name` when
/// cluster-scoped.
pub fn key_of<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", obj.name_any()),
        _ => obj.name_any(),
    }
}

/// Splits a key into namespace (empty for cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The owner reference a controller puts on what it creates
/// (`controller: true`, `blockOwnerDeletion: true`).
pub fn controller_ref_to<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn is_controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    controller_of(obj).is_some_and(|r| r.uid == uid)
}

/// Whether a typed label selector matches `labels`; an absent selector
/// matches nothing, as upstream's workload controllers treat it.
pub fn selector_matches(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    sel.is_some_and(|s| label_selector_matches(s, labels))
}

/// Whether the object is being deleted.
pub fn is_deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// A pod that still counts toward its owner: not Succeeded/Failed and not
/// being deleted (upstream `controller.IsPodActive`).
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && !is_deleting(pod)
}

/// The pod's Ready condition, with its last transition time.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now`
/// (upstream `podutil.IsPodAvailable`).
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::from_second(since).unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = ready_pod(1000);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(pod_is_ready(&p));
        assert!(pod_is_available(&p, 0, at(1000)));
        assert!(!pod_is_available(&p, 10, at(1009)));
        assert!(pod_is_available(&p, 10, at(1010)));
        assert!(!pod_is_available(&Pod::default(), 0, at(1010)));
    }

    #[test]
    fn keys_and_activity() {
        let mut p = ready_pod(0);
        p.metadata.namespace = Some("ns".into());
        p.metadata.name = Some("a".into());
        assert_eq!(key_of(&p), "ns/a");
        assert_eq!(split_key("ns/a"), ("ns", "a"));
        assert_eq!(split_key("node1"), ("", "node1"));
        assert!(pod_is_active(&p));
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!pod_is_active(&p));
    }
}

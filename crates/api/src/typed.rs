//! Dispatch from a kind to its `k8s-openapi` type, for decoding objects
//! through the typed schema (type checks, unknown-field detection) without
//! writing a generic function per call site.

use std::marker::PhantomData;

use k8s_openapi::api;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Operations on one typed kind.
pub trait TypedKind: Sync {
    /// Decodes `v` into the typed struct and encodes it back: the result has
    /// exactly the fields the schema knows. Errors carry the JSON path.
    fn round_trip(&self, v: Value) -> Result<Value, serde_path_to_error::Error<serde_json::Error>>;
}

struct Typed<K>(PhantomData<fn() -> K>);

impl<K: DeserializeOwned + Serialize> TypedKind for Typed<K> {
    fn round_trip(&self, v: Value) -> Result<Value, serde_path_to_error::Error<serde_json::Error>> {
        let k: K = serde_path_to_error::deserialize(v)?;
        // Serializing a value we just decoded cannot fail (no non-string map keys).
        Ok(serde_json::to_value(&k).unwrap_or(Value::Null))
    }
}

macro_rules! typed {
    ($t:ty) => {
        Some(&Typed::<$t>(PhantomData) as &'static dyn TypedKind)
    };
}

/// The typed schema of `group`/`kind` (version v1 for every served group),
/// including the subresource kinds Binding, Eviction and Scale.
pub fn typed_kind(group: &str, kind: &str) -> Option<&'static dyn TypedKind> {
    match (group, kind) {
        ("", "ConfigMap") => typed!(api::core::v1::ConfigMap),
        ("", "Endpoints") => typed!(api::core::v1::Endpoints),
        ("", "Event") => typed!(api::core::v1::Event),
        ("", "LimitRange") => typed!(api::core::v1::LimitRange),
        ("", "Namespace") => typed!(api::core::v1::Namespace),
        ("", "Node") => typed!(api::core::v1::Node),
        ("", "PersistentVolumeClaim") => typed!(api::core::v1::PersistentVolumeClaim),
        ("", "PersistentVolume") => typed!(api::core::v1::PersistentVolume),
        ("", "Pod") => typed!(api::core::v1::Pod),
        ("", "ResourceQuota") => typed!(api::core::v1::ResourceQuota),
        ("", "Secret") => typed!(api::core::v1::Secret),
        ("", "ServiceAccount") => typed!(api::core::v1::ServiceAccount),
        ("", "Service") => typed!(api::core::v1::Service),
        ("", "Binding") => typed!(api::core::v1::Binding),
        ("apps", "ControllerRevision") => typed!(api::apps::v1::ControllerRevision),
        ("apps", "DaemonSet") => typed!(api::apps::v1::DaemonSet),
        ("apps", "Deployment") => typed!(api::apps::v1::Deployment),
        ("apps", "ReplicaSet") => typed!(api::apps::v1::ReplicaSet),
        ("apps", "StatefulSet") => typed!(api::apps::v1::StatefulSet),
        ("autoscaling", "Scale") => typed!(api::autoscaling::v1::Scale),
        ("batch", "CronJob") => typed!(api::batch::v1::CronJob),
        ("batch", "Job") => typed!(api::batch::v1::Job),
        ("coordination.k8s.io", "Lease") => typed!(api::coordination::v1::Lease),
        ("discovery.k8s.io", "EndpointSlice") => typed!(api::discovery::v1::EndpointSlice),
        ("events.k8s.io", "Event") => typed!(api::events::v1::Event),
        ("networking.k8s.io", "IngressClass") => typed!(api::networking::v1::IngressClass),
        ("networking.k8s.io", "Ingress") => typed!(api::networking::v1::Ingress),
        ("networking.k8s.io", "NetworkPolicy") => typed!(api::networking::v1::NetworkPolicy),
        ("node.k8s.io", "RuntimeClass") => typed!(api::node::v1::RuntimeClass),
        ("policy", "PodDisruptionBudget") => typed!(api::policy::v1::PodDisruptionBudget),
        ("policy", "Eviction") => typed!(api::policy::v1::Eviction),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            typed!(api::rbac::v1::ClusterRoleBinding)
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => typed!(api::rbac::v1::ClusterRole),
        ("rbac.authorization.k8s.io", "RoleBinding") => typed!(api::rbac::v1::RoleBinding),
        ("rbac.authorization.k8s.io", "Role") => typed!(api::rbac::v1::Role),
        ("scheduling.k8s.io", "PriorityClass") => typed!(api::scheduling::v1::PriorityClass),
        ("storage.k8s.io", "StorageClass") => typed!(api::storage::v1::StorageClass),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;

    #[test]
    fn every_resource_has_a_typed_schema() {
        for r in RESOURCES {
            assert!(
                typed_kind(r.group, r.kind).is_some(),
                "{} has no typed schema",
                r.qualified_kind()
            );
        }
    }
}

//! Strategic-merge-patch metadata (`x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`) of the list and struct fields that carry
//! `patchStrategy`/`patchMergeKey` tags in the Kubernetes Go types.
//!
//! `k8s-openapi` does not expose these, yet kubectl's client-side `apply`
//! computes its three-way strategic merge patch from the served OpenAPI v3
//! schema: without a merge key a list is diffed as atomic, so a removed
//! container or env var would never be deleted by the server-side merge.

use serde_json::{Map, Value};

/// One tagged field: definition name, property, strategy, merge key.
pub(crate) struct PatchField {
    pub definition: &'static str,
    pub property: &'static str,
    pub strategy: &'static str,
    pub merge_key: Option<&'static str>,
}

macro_rules! pf {
    ($def:literal, $prop:literal, $strategy:literal) => {
        PatchField {
            definition: $def,
            property: $prop,
            strategy: $strategy,
            merge_key: None,
        }
    };
    ($def:literal, $prop:literal, $strategy:literal, $key:literal) => {
        PatchField {
            definition: $def,
            property: $prop,
            strategy: $strategy,
            merge_key: Some($key),
        }
    };
}

/// The tagged fields reachable from the served kinds.
#[rustfmt::skip]
pub(crate) static PATCH_FIELDS: &[PatchField] = &[
    pf!("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge"),
    pf!("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
    pf!("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    pf!("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", "topologyKey"),
    pf!("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", "name"),
    pf!("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", "name"),
    pf!("io.k8s.api.core.v1.Container", "ports", "merge", "containerPort"),
    pf!("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    pf!("io.k8s.api.core.v1.Container", "volumeMounts", "merge", "mountPath"),
    pf!("io.k8s.api.core.v1.Container", "volumeDevices", "merge", "devicePath"),
    pf!("io.k8s.api.core.v1.EphemeralContainer", "ports", "merge", "containerPort"),
    pf!("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", "name"),
    pf!("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", "mountPath"),
    pf!("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "merge", "devicePath"),
    pf!("io.k8s.api.core.v1.PodStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", "ip"),
    pf!("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", "ip"),
    pf!("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", "name"),
    pf!("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    pf!("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", "name"),
    pf!("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge"),
    pf!("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", "type"),
    pf!("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys"),
    pf!("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", "type"),
    pf!("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", "type"),
];

/// Writes the extensions of [`PATCH_FIELDS`] onto the property schemas of
/// `definitions`. Entries whose definition or property is absent are skipped.
pub(crate) fn apply(definitions: &mut Map<String, Value>) {
    for f in PATCH_FIELDS {
        let Some(prop) = definitions
            .get_mut(f.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(f.property))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(key) = f.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), Value::from(key));
        }
        prop.insert(
            "x-kubernetes-patch-strategy".into(),
            Value::from(f.strategy),
        );
    }
}

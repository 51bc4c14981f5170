//! Patch metadata of the served kinds: for each field, the type it holds
//! and its list strategy and merge key, as the `patchStrategy` /
//! `patchMergeKey` struct tags of k8s.io/api declare them. Fields not named
//! here merge maps recursively and replace lists whole (atomic).

/// The struct types whose fields carry patch metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// No metadata: maps merge, lists are atomic.
    Any,
    /// A top-level object with only `metadata` of note.
    Object,
    ObjectMeta,
    Pod,
    PodTemplate,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController.
    Workload,
    WorkloadSpec,
    /// A status whose `conditions` merge by `type`.
    ConditionsStatus,
    Job,
    JobSpec,
    JobTemplateSpec,
    CronJob,
    CronJobSpec,
    Service,
    ServiceSpec,
    Node,
    NodeSpec,
    NodeStatus,
    Namespace,
    PersistentVolumeClaim,
    ServiceAccount,
    PodDisruptionBudget,
}

/// How a field's value merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Maps merge key by key, lists are replaced.
    Default,
    /// `patchStrategy:"merge"`: list items merge by key (primitives: union).
    Merge,
}

/// A field's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub ty: Ty,
    pub strategy: Strategy,
    pub merge_key: Option<&'static str>,
}

const fn plain(ty: Ty) -> Meta {
    Meta {
        ty,
        strategy: Strategy::Default,
        merge_key: None,
    }
}

const fn merge(ty: Ty, key: &'static str) -> Meta {
    Meta {
        ty,
        strategy: Strategy::Merge,
        merge_key: Some(key),
    }
}

/// A list of primitives with `patchStrategy:"merge"` (set union).
const PRIMITIVE_MERGE: Meta = Meta {
    ty: Ty::Any,
    strategy: Strategy::Merge,
    merge_key: None,
};

/// The type of a kind's top-level object.
pub(crate) fn root(group: &str, kind: &str) -> Ty {
    match (group, kind) {
        ("", "Pod") => Ty::Pod,
        ("", "PodTemplate") => Ty::PodTemplate,
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
        | ("", "ReplicationController") => Ty::Workload,
        ("batch", "Job") => Ty::Job,
        ("batch", "CronJob") => Ty::CronJob,
        ("", "Service") => Ty::Service,
        ("", "Node") => Ty::Node,
        ("", "Namespace") => Ty::Namespace,
        ("", "PersistentVolumeClaim") => Ty::PersistentVolumeClaim,
        ("", "ServiceAccount") => Ty::ServiceAccount,
        ("policy", "PodDisruptionBudget") => Ty::PodDisruptionBudget,
        _ => Ty::Object,
    }
}

fn has_object_meta(ty: Ty) -> bool {
    !matches!(
        ty,
        Ty::Any
            | Ty::ObjectMeta
            | Ty::PodSpec
            | Ty::Container
            | Ty::PodStatus
            | Ty::WorkloadSpec
            | Ty::ConditionsStatus
            | Ty::JobSpec
            | Ty::CronJobSpec
            | Ty::ServiceSpec
            | Ty::NodeSpec
            | Ty::NodeStatus
    )
}

/// The metadata of field `name` of a value of type `ty`.
pub(crate) fn field(ty: Ty, name: &str) -> Meta {
    use Ty::*;
    if name == "metadata" && has_object_meta(ty) {
        return plain(ObjectMeta);
    }
    match (ty, name) {
        (ObjectMeta, "finalizers") => PRIMITIVE_MERGE,
        (ObjectMeta, "ownerReferences") => merge(Any, "uid"),

        (Pod | PodTemplateSpec, "spec") => plain(PodSpec),
        (Pod, "status") => plain(PodStatus),
        (PodTemplate, "template") => plain(PodTemplateSpec),
        (Workload, "spec") => plain(WorkloadSpec),
        (WorkloadSpec | JobSpec, "template") => plain(PodTemplateSpec),
        (Job | JobTemplateSpec, "spec") => plain(JobSpec),
        (CronJob, "spec") => plain(CronJobSpec),
        (CronJobSpec, "jobTemplate") => plain(JobTemplateSpec),
        (
            Workload | Job | Service | Namespace | PersistentVolumeClaim | PodDisruptionBudget,
            "status",
        ) => plain(ConditionsStatus),
        (ConditionsStatus, "conditions") => merge(Any, "type"),

        (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            merge(Container, "name")
        }
        (PodSpec, "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
            merge(Any, "name")
        }
        (PodSpec, "hostAliases") => merge(Any, "ip"),
        (PodSpec, "topologySpreadConstraints") => merge(Any, "topologyKey"),
        (Container, "ports") => merge(Any, "containerPort"),
        (Container, "env") => merge(Any, "name"),
        (Container, "volumeMounts") => merge(Any, "mountPath"),
        (Container, "volumeDevices") => merge(Any, "devicePath"),
        (PodStatus, "conditions") => merge(Any, "type"),
        (PodStatus, "podIPs" | "hostIPs") => merge(Any, "ip"),
        (PodStatus, "resourceClaimStatuses") => merge(Any, "name"),

        (Service, "spec") => plain(ServiceSpec),
        (ServiceSpec, "ports") => merge(Any, "port"),
        (Node, "spec") => plain(NodeSpec),
        (Node, "status") => plain(NodeStatus),
        (NodeSpec, "podCIDRs") => PRIMITIVE_MERGE,
        (NodeStatus, "conditions" | "addresses") => merge(Any, "type"),
        (ServiceAccount, "secrets") => merge(Any, "name"),
        _ => plain(Any),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_templates_are_found_in_every_workload() {
        let spec_of = |group: &str, kind: &str| {
            let spec = field(root(group, kind), "spec");
            field(spec.ty, "template").ty
        };
        for (g, k) in [
            ("apps", "Deployment"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("batch", "Job"),
        ] {
            assert_eq!(spec_of(g, k), Ty::PodTemplateSpec, "{k}");
        }
        let cj = field(field(root("batch", "CronJob"), "spec").ty, "jobTemplate").ty;
        assert_eq!(
            field(field(cj, "spec").ty, "template").ty,
            Ty::PodTemplateSpec
        );
        assert_eq!(field(Ty::PodTemplateSpec, "metadata").ty, Ty::ObjectMeta);
    }

    #[test]
    fn merge_keys_follow_struct_tags() {
        assert_eq!(field(Ty::PodSpec, "containers").merge_key, Some("name"));
        assert_eq!(
            field(Ty::Container, "ports").merge_key,
            Some("containerPort")
        );
        assert_eq!(
            field(Ty::Container, "volumeMounts").merge_key,
            Some("mountPath")
        );
        assert_eq!(field(Ty::ServiceSpec, "ports").merge_key, Some("port"));
        assert_eq!(field(Ty::ObjectMeta, "finalizers"), PRIMITIVE_MERGE);
        assert_eq!(
            field(Ty::PodSpec, "tolerations").strategy,
            Strategy::Default
        );
        assert_eq!(field(root("", "Node"), "status").ty, Ty::NodeStatus);
        assert_eq!(field(Ty::Container, "args").strategy, Strategy::Default);
    }
}

//! Server-side printing for `kubectl get`: the columns and row cells of the
//! `meta.k8s.io/v1` Table the API server returns for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Mirrors upstream's built-in printers (`pkg/printers/internalversion`)
//! for the resources rkube serves, and upstream's default table convertor
//! (Name, Created At) for the rest. As on the upstream server, rows always
//! carry the wide (priority 1) cells too; clients hide them unless `-o wide`.

mod apps;
mod core;
mod docs;
mod duration;
mod other;
mod pod;
mod util;

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::resources::ResourceInfo;

pub use duration::{human_duration, short_human_duration};

/// One column definition (`metav1.TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Col {
    /// A priority-0 column.
    pub(crate) const fn new(
        name: &'static str,
        ty: &'static str,
        description: &'static str,
    ) -> Col {
        Col {
            name,
            ty,
            format: "",
            description,
            priority: 0,
        }
    }

    /// The same column shown only with `-o wide`.
    pub(crate) const fn wide(self) -> Col {
        Col {
            priority: 1,
            ..self
        }
    }

    /// The "Name" column every printer starts with.
    pub(crate) const fn name() -> Col {
        Col {
            format: "name",
            ..Col::new("Name", "string", docs::META_NAME)
        }
    }

    /// The "Age" column (time since creation).
    pub(crate) const fn age() -> Col {
        Col::new("Age", "string", docs::META_CREATION)
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Which printer renders a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Node,
    Namespace,
    Service,
    Endpoints,
    Event,
    /// events.k8s.io Events, printed like core Events after mapping fields.
    EventV1,
    ConfigMap,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ResourceQuota,
    ControllerRevision,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Lease,
    EndpointSlice,
    Ingress,
    IngressClass,
    NetworkPolicy,
    RuntimeClass,
    PodDisruptionBudget,
    RoleBinding,
    ClusterRoleBinding,
    PriorityClass,
    StorageClass,
    /// Upstream's default table convertor: Name, Created At.
    Default,
}

fn printer(res: &ResourceInfo) -> Printer {
    match (res.group, res.plural) {
        ("", "pods") => Printer::Pod,
        ("", "nodes") => Printer::Node,
        ("", "namespaces") => Printer::Namespace,
        ("", "services") => Printer::Service,
        ("", "endpoints") => Printer::Endpoints,
        ("", "events") => Printer::Event,
        ("events.k8s.io", "events") => Printer::EventV1,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "secrets") => Printer::Secret,
        ("", "serviceaccounts") => Printer::ServiceAccount,
        ("", "persistentvolumes") => Printer::PersistentVolume,
        ("", "persistentvolumeclaims") => Printer::PersistentVolumeClaim,
        ("", "resourcequotas") => Printer::ResourceQuota,
        ("apps", "controllerrevisions") => Printer::ControllerRevision,
        ("apps", "deployments") => Printer::Deployment,
        ("apps", "replicasets") => Printer::ReplicaSet,
        ("apps", "daemonsets") => Printer::DaemonSet,
        ("apps", "statefulsets") => Printer::StatefulSet,
        ("batch", "jobs") => Printer::Job,
        ("batch", "cronjobs") => Printer::CronJob,
        ("coordination.k8s.io", "leases") => Printer::Lease,
        ("discovery.k8s.io", "endpointslices") => Printer::EndpointSlice,
        ("networking.k8s.io", "ingresses") => Printer::Ingress,
        ("networking.k8s.io", "ingressclasses") => Printer::IngressClass,
        ("networking.k8s.io", "networkpolicies") => Printer::NetworkPolicy,
        ("node.k8s.io", "runtimeclasses") => Printer::RuntimeClass,
        ("policy", "poddisruptionbudgets") => Printer::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "rolebindings") => Printer::RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => Printer::ClusterRoleBinding,
        ("scheduling.k8s.io", "priorityclasses") => Printer::PriorityClass,
        ("storage.k8s.io", "storageclasses") => Printer::StorageClass,
        // LimitRanges, Roles and ClusterRoles have no upstream printer
        // either: they use the default table.
        _ => Printer::Default,
    }
}

const DEFAULT_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Created At", "date", docs::META_CREATION),
];

fn columns(p: Printer) -> &'static [Col] {
    match p {
        Printer::Pod => pod::COLUMNS,
        Printer::Node => core::NODE_COLUMNS,
        Printer::Namespace => core::NAMESPACE_COLUMNS,
        Printer::Service => core::SERVICE_COLUMNS,
        Printer::Endpoints => core::ENDPOINTS_COLUMNS,
        Printer::Event | Printer::EventV1 => core::EVENT_COLUMNS,
        Printer::ConfigMap => core::CONFIGMAP_COLUMNS,
        Printer::Secret => core::SECRET_COLUMNS,
        Printer::ServiceAccount => core::SERVICEACCOUNT_COLUMNS,
        Printer::PersistentVolume => core::PV_COLUMNS,
        Printer::PersistentVolumeClaim => core::PVC_COLUMNS,
        Printer::ResourceQuota => core::RESOURCEQUOTA_COLUMNS,
        Printer::ControllerRevision => apps::CONTROLLERREVISION_COLUMNS,
        Printer::Deployment => apps::DEPLOYMENT_COLUMNS,
        Printer::ReplicaSet => apps::REPLICASET_COLUMNS,
        Printer::DaemonSet => apps::DAEMONSET_COLUMNS,
        Printer::StatefulSet => apps::STATEFULSET_COLUMNS,
        Printer::Job => apps::JOB_COLUMNS,
        Printer::CronJob => apps::CRONJOB_COLUMNS,
        Printer::Lease => other::LEASE_COLUMNS,
        Printer::EndpointSlice => other::ENDPOINTSLICE_COLUMNS,
        Printer::Ingress => other::INGRESS_COLUMNS,
        Printer::IngressClass => other::INGRESSCLASS_COLUMNS,
        Printer::NetworkPolicy => other::NETWORKPOLICY_COLUMNS,
        Printer::RuntimeClass => other::RUNTIMECLASS_COLUMNS,
        Printer::PodDisruptionBudget => other::PDB_COLUMNS,
        Printer::RoleBinding => other::ROLEBINDING_COLUMNS,
        Printer::ClusterRoleBinding => other::CLUSTERROLEBINDING_COLUMNS,
        Printer::PriorityClass => other::PRIORITYCLASS_COLUMNS,
        Printer::StorageClass => other::STORAGECLASS_COLUMNS,
        Printer::Default => DEFAULT_COLUMNS,
    }
}

/// The Table's `columnDefinitions` for a resource: objects with `name`,
/// `type`, `format`, `description` and `priority` (1 = `-o wide` only),
/// in upstream's order.
pub fn column_definitions(res: &ResourceInfo) -> Vec<Value> {
    columns(printer(res)).iter().map(|c| c.to_json()).collect()
}

/// The cells of one object's row, one per column of
/// [`column_definitions`]. Age-like cells are relative to `now`. Objects
/// with missing or oddly typed fields print upstream's placeholders
/// ("<none>", "<unknown>", "") instead of failing.
pub fn row_cells(res: &ResourceInfo, obj: &Value, now: Timestamp) -> Vec<Value> {
    let p = printer(res);
    let cells = match p {
        Printer::Pod => pod::cells(obj, now),
        Printer::Node => core::node(obj, now),
        Printer::Namespace => core::namespace(obj, now),
        Printer::Service => core::service(obj, now),
        Printer::Endpoints => core::endpoints(obj, now),
        Printer::Event => core::event(&core::EventFields::CORE, obj, now),
        Printer::EventV1 => core::event(&core::EventFields::EVENTS_V1, obj, now),
        Printer::ConfigMap => core::configmap(obj, now),
        Printer::Secret => core::secret(obj, now),
        Printer::ServiceAccount => core::serviceaccount(obj, now),
        Printer::PersistentVolume => core::persistent_volume(obj, now),
        Printer::PersistentVolumeClaim => core::persistent_volume_claim(obj, now),
        Printer::ResourceQuota => core::resource_quota(obj, now),
        Printer::ControllerRevision => apps::controllerrevision(obj, now),
        Printer::Deployment => apps::deployment(obj, now),
        Printer::ReplicaSet => apps::replicaset(obj, now),
        Printer::DaemonSet => apps::daemonset(obj, now),
        Printer::StatefulSet => apps::statefulset(obj, now),
        Printer::Job => apps::job(obj, now),
        Printer::CronJob => apps::cronjob(obj, now),
        Printer::Lease => other::lease(obj, now),
        Printer::EndpointSlice => other::endpointslice(obj, now),
        Printer::Ingress => other::ingress(obj, now),
        Printer::IngressClass => other::ingressclass(obj, now),
        Printer::NetworkPolicy => other::networkpolicy(obj, now),
        Printer::RuntimeClass => other::runtimeclass(obj, now),
        Printer::PodDisruptionBudget => other::pdb(obj, now),
        Printer::RoleBinding | Printer::ClusterRoleBinding => other::rolebinding(obj, now),
        Printer::PriorityClass => other::priorityclass(obj, now),
        Printer::StorageClass => other::storageclass(obj, now),
        Printer::Default => default_cells(obj),
    };
    debug_assert_eq!(cells.len(), columns(p).len(), "{p:?}");
    cells
}

/// The row `conditions` upstream attaches (pods only: a `Completed`
/// condition for Succeeded/Failed pods), or `None`.
pub fn row_conditions(res: &ResourceInfo, obj: &Value) -> Option<Vec<Value>> {
    match printer(res) {
        Printer::Pod => pod::conditions(obj),
        _ => None,
    }
}

/// Upstream's default convertor: the name and the creation timestamp as
/// RFC 3339 in UTC (Go's zero time when unset).
fn default_cells(obj: &Value) -> Vec<Value> {
    let created = duration::parse_time(util::get(obj, &["metadata", "creationTimestamp"]))
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![util::name(obj), Value::from(created)]
}

#[cfg(test)]
mod tests;

//! Object validation per kind, shaped like upstream Kubernetes 1.33: the
//! same field paths, reasons and messages. Entry points take the decoded,
//! defaulted object as a `serde_json::Value` and return the field errors
//! (empty when valid), metadata errors first. Wrong JSON types are reported
//! as Invalid field errors; nothing here panics on untrusted input.

mod apps;
mod batch;
mod container;
mod core_misc;
mod cron;
mod meta;
mod networking;
mod other;
mod pod;
mod pod_update;
mod probes;
mod quantity;
mod resources;
mod service;
mod storage;
mod util;
mod volumes;

#[cfg(test)]
mod misc_tests;
#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod workload_tests;

pub use cron::Schedule as CronSchedule;
use serde_json::Value;

use crate::field::{FieldError, Path};
use crate::names::{is_valid_path_segment_name, name_is_dns_subdomain};
use crate::resources::ResourceInfo;
use apps::Workload;
use meta::{validate_object_meta, validate_object_meta_update};
use util::Errs;

fn workload(kind: &str) -> Option<Workload> {
    match kind {
        "Deployment" => Some(Workload::Deployment),
        "ReplicaSet" => Some(Workload::ReplicaSet),
        "DaemonSet" => Some(Workload::DaemonSet),
        "StatefulSet" => Some(Workload::StatefulSet),
        _ => None,
    }
}

/// Validates an object about to be created.
pub fn validate_create(res: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut e = Vec::new();
    create(&mut e, res, obj);
    e
}

fn create(e: &mut Errs, res: &ResourceInfo, obj: &Value) {
    let ns = res.namespaced;
    match (res.group, res.kind) {
        ("", "Pod") => pod::validate_pod(e, obj),
        ("", "Service") => service::validate_service(e, obj),
        ("", "Endpoints") => service::validate_endpoints(e, obj, true),
        ("", "Namespace") => core_misc::validate_namespace(e, obj),
        ("", "ConfigMap") => core_misc::validate_config_map(e, obj, true),
        ("", "Secret") => core_misc::validate_secret(e, obj, true),
        ("", "Node") => core_misc::validate_node(e, obj),
        ("", "Event") => {
            validate_object_meta(e, obj, ns, is_valid_path_segment_name);
            core_misc::validate_event(e, obj);
        }
        ("", "LimitRange") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            core_misc::validate_limit_range(e, obj);
        }
        ("", "ResourceQuota") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            core_misc::validate_resource_quota(e, obj);
        }
        ("", "PersistentVolume") => storage::validate_pv(e, obj),
        ("", "PersistentVolumeClaim") => storage::validate_pvc(e, obj),
        ("apps", "ControllerRevision") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            apps::validate_controller_revision(e, obj);
        }
        ("apps", kind) => match workload(kind) {
            Some(w) => apps::validate_create(e, w, obj),
            None => validate_object_meta(e, obj, ns, name_is_dns_subdomain),
        },
        ("batch", "Job") => batch::validate_job(e, obj),
        ("batch", "CronJob") => batch::validate_cron_job(e, obj),
        ("coordination.k8s.io", "Lease") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            other::validate_lease(e, obj);
        }
        ("discovery.k8s.io", "EndpointSlice") => service::validate_endpoint_slice(e, obj),
        ("events.k8s.io", "Event") => other::validate_events_event(e, obj),
        ("networking.k8s.io", "Ingress") => networking::validate_ingress(e, obj),
        ("networking.k8s.io", "IngressClass") => networking::validate_ingress_class(e, obj, true),
        ("networking.k8s.io", "NetworkPolicy") => networking::validate_network_policy(e, obj),
        ("node.k8s.io", "RuntimeClass") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            other::validate_runtime_class(e, obj);
        }
        ("policy", "PodDisruptionBudget") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            other::validate_pdb(e, obj);
        }
        ("rbac.authorization.k8s.io", kind) => {
            validate_object_meta(e, obj, ns, is_valid_path_segment_name);
            match kind {
                "Role" | "ClusterRole" => other::validate_role(e, obj, ns),
                _ => other::validate_binding(e, obj, ns),
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            validate_object_meta(e, obj, ns, name_is_dns_subdomain);
            other::validate_priority_class(e, obj);
        }
        ("storage.k8s.io", "StorageClass") => storage::validate_storage_class(e, obj),
        _ => validate_object_meta(e, obj, ns, name_is_dns_subdomain),
    }
}

/// Metadata fields that create-time validation checks and update-time
/// validation either does not re-check (names) or already checked
/// (labels, annotations…): dropped when reusing create checks on update.
fn is_create_meta_error(err: &FieldError) -> bool {
    const FIELDS: &[&str] = &[
        "metadata.name",
        "metadata.generateName",
        "metadata.namespace",
        "metadata.generation",
        "metadata.labels",
        "metadata.annotations",
        "metadata.ownerReferences",
        "metadata.finalizers",
        "metadata",
    ];
    FIELDS.iter().any(|f| {
        err.field == *f
            || err
                .field
                .strip_prefix(f)
                .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
    }) && !err.field.starts_with("metadata.annotations[")
}

/// Validates an update of `old` into `new`: the create-time checks of the
/// new object (names aside) and the kind's immutability rules.
pub fn validate_update(res: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut e = Vec::new();
    match (res.group, res.kind) {
        ("", "Pod") => pod_update::validate_pod_update(&mut e, new, old),
        ("", "Service") => service::validate_service_update(&mut e, new, old),
        ("", "ConfigMap") => core_misc::validate_config_map_update(&mut e, new, old, false),
        ("", "Secret") => core_misc::validate_config_map_update(&mut e, new, old, true),
        ("", "Node") => core_misc::validate_node_update(&mut e, new, old),
        ("", "Namespace") | ("", "ServiceAccount") => validate_object_meta_update(&mut e, new, old),
        ("", "PersistentVolume") => storage::validate_pv_update(&mut e, new, old),
        ("", "PersistentVolumeClaim") => storage::validate_pvc_update(&mut e, new, old),
        ("storage.k8s.io", "StorageClass") => {
            storage::validate_storage_class_update(&mut e, new, old)
        }
        ("apps", kind) if workload(kind).is_some() => {
            if let Some(w) = workload(kind) {
                apps::validate_update(&mut e, w, new, old);
            }
        }
        ("batch", "Job") => batch::validate_job_update(&mut e, new, old),
        ("batch", "CronJob") => batch::validate_cron_job_update(&mut e, new, old),
        ("scheduling.k8s.io", "PriorityClass") => {
            validate_object_meta_update(&mut e, new, old);
            other::validate_priority_class_update(&mut e, new, old);
        }
        _ => {
            validate_object_meta_update(&mut e, new, old);
            let mut c = Vec::new();
            create(&mut c, res, new);
            e.extend(c.into_iter().filter(|x| !is_create_meta_error(x)));
            immutable_fields(&mut e, res, new, old);
        }
    }
    e
}

/// Per-kind immutable fields for kinds validated by the generic update path.
fn immutable_fields(e: &mut Errs, res: &ResourceInfo, new: &Value, old: &Value) {
    let field = |k: &str| Path::new(k);
    match (res.group, res.kind) {
        ("discovery.k8s.io", "EndpointSlice") => util::immutable(
            e,
            util::get(new, "addressType"),
            util::get(old, "addressType"),
            &field("addressType"),
        ),
        ("node.k8s.io", "RuntimeClass") => util::immutable(
            e,
            util::get(new, "handler"),
            util::get(old, "handler"),
            &field("handler"),
        ),
        ("networking.k8s.io", "IngressClass") => util::immutable(
            e,
            util::at(new, &["spec", "controller"]),
            util::at(old, &["spec", "controller"]),
            &field("spec").child("controller"),
        ),
        ("apps", "ControllerRevision") => util::immutable(
            e,
            util::get(new, "data"),
            util::get(old, "data"),
            &field("data"),
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            other::validate_binding_update(e, new, old)
        }
        _ => {}
    }
}

/// Validates a status (or other subresource) update: metadata rules, plus
/// the Namespace phase rules.
pub fn validate_status_update(res: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut e = Vec::new();
    validate_object_meta_update(&mut e, new, old);
    if (res.group, res.kind) == ("", "Namespace") {
        core_misc::validate_namespace_status_update(&mut e, new);
    }
    e
}

//! Dispatch from a (group, kind) to the schemars schema of its `k8s-openapi`
//! type, plus the apimachinery types every OpenAPI document refers to.

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};

/// Registers a type's schema (and everything it references) with the
/// generator and returns the `$ref` schema pointing at it.
pub(crate) type SubschemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A type whose schema is published: its definition name and registrar.
#[derive(Clone, Copy)]
pub(crate) struct TypeSchema {
    pub name: fn() -> std::borrow::Cow<'static, str>,
    pub register: SubschemaFn,
}

fn register<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn of<T: JsonSchema>() -> TypeSchema {
    TypeSchema {
        name: T::schema_name,
        register: register::<T>,
    }
}

/// The schema of `group`/`kind` (version v1 for every served group),
/// including the subresource kinds Binding, Eviction and Scale.
pub(crate) fn kind_schema(group: &str, kind: &str) -> Option<TypeSchema> {
    use api::core::v1 as core;
    let t = match (group, kind) {
        ("", "ConfigMap") => of::<core::ConfigMap>(),
        ("", "Endpoints") => of::<core::Endpoints>(),
        ("", "Event") => of::<core::Event>(),
        ("", "LimitRange") => of::<core::LimitRange>(),
        ("", "Namespace") => of::<core::Namespace>(),
        ("", "Node") => of::<core::Node>(),
        ("", "PersistentVolumeClaim") => of::<core::PersistentVolumeClaim>(),
        ("", "PersistentVolume") => of::<core::PersistentVolume>(),
        ("", "Pod") => of::<core::Pod>(),
        ("", "ResourceQuota") => of::<core::ResourceQuota>(),
        ("", "Secret") => of::<core::Secret>(),
        ("", "ServiceAccount") => of::<core::ServiceAccount>(),
        ("", "Service") => of::<core::Service>(),
        ("", "Binding") => of::<core::Binding>(),
        ("apps", "ControllerRevision") => of::<api::apps::v1::ControllerRevision>(),
        ("apps", "DaemonSet") => of::<api::apps::v1::DaemonSet>(),
        ("apps", "Deployment") => of::<api::apps::v1::Deployment>(),
        ("apps", "ReplicaSet") => of::<api::apps::v1::ReplicaSet>(),
        ("apps", "StatefulSet") => of::<api::apps::v1::StatefulSet>(),
        ("autoscaling", "Scale") => of::<api::autoscaling::v1::Scale>(),
        ("batch", "CronJob") => of::<api::batch::v1::CronJob>(),
        ("batch", "Job") => of::<api::batch::v1::Job>(),
        ("coordination.k8s.io", "Lease") => of::<api::coordination::v1::Lease>(),
        ("discovery.k8s.io", "EndpointSlice") => of::<api::discovery::v1::EndpointSlice>(),
        ("events.k8s.io", "Event") => of::<api::events::v1::Event>(),
        ("networking.k8s.io", "IngressClass") => of::<api::networking::v1::IngressClass>(),
        ("networking.k8s.io", "Ingress") => of::<api::networking::v1::Ingress>(),
        ("networking.k8s.io", "NetworkPolicy") => of::<api::networking::v1::NetworkPolicy>(),
        ("node.k8s.io", "RuntimeClass") => of::<api::node::v1::RuntimeClass>(),
        ("policy", "PodDisruptionBudget") => of::<api::policy::v1::PodDisruptionBudget>(),
        ("policy", "Eviction") => of::<api::policy::v1::Eviction>(),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            of::<api::rbac::v1::ClusterRoleBinding>()
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => of::<api::rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "RoleBinding") => of::<api::rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "Role") => of::<api::rbac::v1::Role>(),
        ("scheduling.k8s.io", "PriorityClass") => of::<api::scheduling::v1::PriorityClass>(),
        ("storage.k8s.io", "StorageClass") => of::<api::storage::v1::StorageClass>(),
        _ => return None,
    };
    Some(t)
}

/// apimachinery types referenced by operations of every document.
pub(crate) struct MetaSchemas;

impl MetaSchemas {
    pub fn status() -> TypeSchema {
        of::<meta::Status>()
    }
    pub fn delete_options() -> TypeSchema {
        of::<meta::DeleteOptions>()
    }
    pub fn patch() -> TypeSchema {
        of::<meta::Patch>()
    }
    pub fn watch_event() -> TypeSchema {
        of::<meta::WatchEvent<serde_json::Value>>()
    }
    pub fn list_meta() -> TypeSchema {
        of::<meta::ListMeta>()
    }
    pub fn api_resource_list() -> TypeSchema {
        of::<meta::APIResourceList>()
    }
    pub fn api_group() -> TypeSchema {
        of::<meta::APIGroup>()
    }
    pub fn api_group_list() -> TypeSchema {
        of::<meta::APIGroupList>()
    }
    pub fn api_versions() -> TypeSchema {
        of::<meta::APIVersions>()
    }

    /// Every apimachinery type above, for registration.
    pub fn all() -> [TypeSchema; 9] {
        [
            Self::status(),
            Self::delete_options(),
            Self::patch(),
            Self::watch_event(),
            Self::list_meta(),
            Self::api_resource_list(),
            Self::api_group(),
            Self::api_group_list(),
            Self::api_versions(),
        ]
    }
}

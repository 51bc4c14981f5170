//! Admission: upstream's built-in admission plugins that scheduling depends
//! on, run by the write path between defaulting and validation (mutating)
//! and after validation (validating), dry-run requests included.
//!
//! The mutating chain runs in the order of upstream's `AllOrderedPlugins`
//! (pkg/kubeapiserver/options/plugins.go): Priority, then
//! DefaultTolerationSeconds, then RuntimeClass — so the RuntimeClass's
//! tolerations merge with the default ones. The validating chain runs
//! Priority (PriorityClass `globalDefault`) and RuntimeClass (pod
//! overhead). Every plugin ignores subresources, as upstream's do.
//!
//! The plugins read PriorityClasses and RuntimeClasses from the watch cache
//! (upstream's informers), falling back to the store for a name the cache
//! has not seen yet. A write to either kind answers only once the cache has
//! caught up with it, so a client that created a class sees it admitted.

mod default_toleration_seconds;
mod priority;
mod runtime_class;

use std::sync::Arc;
use std::time::Duration;

use rkube_api::{resources, ResourceInfo};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::rest::{Rest, Target};

pub use priority::system_priority_classes;

/// The operation being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// What a plugin knows of the request (upstream's `admission.Attributes`).
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub res: &'static ResourceInfo,
    pub subresource: Option<&'a str>,
    /// The object's name as upstream's `admission.NewForbidden` names it:
    /// the name, else the generateName prefix.
    pub name: &'a str,
    pub operation: Operation,
}

impl<'a> Attributes<'a> {
    pub fn new(t: &'a Target, name: &'a str, operation: Operation) -> Self {
        Attributes {
            res: t.res,
            subresource: t.subresource.as_deref(),
            name,
            operation,
        }
    }

    fn is(&self, group: &str, plural: &str) -> bool {
        self.subresource.is_none() && self.res.group == group && self.res.plural == plural
    }

    fn is_pod(&self) -> bool {
        self.is("", "pods")
    }

    /// A 403 for this request, as `admission.NewForbidden` builds it.
    fn forbidden(&self, why: impl std::fmt::Display) -> ApiError {
        let name = if self.name.is_empty() {
            "Unknown"
        } else {
            self.name
        };
        ApiError::forbidden(self.res, name, &why.to_string())
    }
}

/// Runs the mutating plugins on `obj` (`old` is the stored object on update).
pub async fn mutate(
    rest: &Rest,
    a: &Attributes<'_>,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    priority::admit(rest, a, obj, old).await?;
    default_toleration_seconds::admit(a, obj);
    runtime_class::admit(rest, a, obj).await?;
    Ok(())
}

/// Runs the validating plugins on the mutated, validated `obj`.
pub async fn validate(rest: &Rest, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    priority::validate(rest, a, obj)?;
    runtime_class::validate(rest, a, obj).await?;
    Ok(())
}

/// Refuses deleting what may not be deleted one by one (upstream's
/// PriorityClass storage keeps the system classes).
pub fn check_delete(t: &Target) -> ApiResult<()> {
    priority::check_delete(t)
}

/// Waits (briefly) until the watch cache holds a write of revision `rev`
/// to a kind the plugins read, so admission sees it from then on.
pub async fn settle(rest: &Rest, res: &ResourceInfo, rev: i64) {
    let read_by_admission = matches!(
        (res.group, res.plural),
        ("scheduling.k8s.io", "priorityclasses") | ("node.k8s.io", "runtimeclasses")
    );
    if read_by_admission {
        if let Err(e) = rest.cache.wait_for(rev, Duration::from_secs(3)).await {
            tracing::debug!(error = %e, resource = res.plural, "cache did not catch up with a write");
        }
    }
}

/// A cluster-scoped object of `group`/`plural` by name: the cache first,
/// then the store (the cache may lag a moment behind a write).
async fn get_cluster_object(
    rest: &Rest,
    group: &str,
    plural: &str,
    name: &str,
) -> ApiResult<Option<Arc<Value>>> {
    let res = lookup(group, plural)?;
    let key = res.key(None, name);
    if let Some(v) = rest.cache.resource(res).and_then(|c| c.get(&key)) {
        return Ok(Some(v));
    }
    let kv = rest
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(kv
        .and_then(|kv| crate::cache::decode_stored(&kv.value, kv.mod_revision))
        .map(Arc::new))
}

/// Every cached object of a cluster-scoped `group`/`plural` that `keep`s.
fn select_cluster_objects(
    rest: &Rest,
    group: &str,
    plural: &str,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult<Vec<Arc<Value>>> {
    let res = lookup(group, plural)?;
    Ok(rest
        .cache
        .resource(res)
        .map(|c| c.select(&res.namespace_prefix(None), keep))
        .unwrap_or_default())
}

fn lookup(group: &str, plural: &str) -> ApiResult<&'static ResourceInfo> {
    let version = "v1";
    resources::lookup(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("no resource {plural}.{group}/{version}")))
}

/// `obj.spec` as a mutable map, created when missing.
fn spec_mut(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let o = obj.as_object_mut()?;
    let spec = o
        .entry("spec")
        .or_insert_with(|| Value::Object(Default::default()));
    if !spec.is_object() {
        *spec = Value::Object(Default::default());
    }
    spec.as_object_mut()
}

/// `obj.spec.<key>` unless absent or null.
fn spec_field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get("spec")
        .and_then(|s| s.get(key))
        .filter(|v| !v.is_null())
}

//! The `orphan` and `foregroundDeletion` finalizers that deletion with
//! `propagationPolicy: Orphan|Foreground` records: orphaning strips the
//! owner's reference from its dependents, foreground deletion deletes the
//! dependents and waits for them, then the finalizer is removed and the owner
//! goes. Upstream's garbage collector (kube-controller-manager) does this;
//! rkube's API server does it until the controllers crate has a GC, so that
//! `kubectl delete --cascade=orphan|foreground` completes.

use std::sync::Arc;
use std::time::Duration;

use rkube_api::resources::RESOURCES;
use serde_json::{json, Value};

use crate::rest::write::{self, DeleteOptions, PatchType};
use crate::rest::{name_of, FieldValidation, Rest, Target, WriteOptions};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

fn opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Ignore,
        field_manager: None,
    }
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == f))
}

fn target_of(obj: &Value) -> Option<Target> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str)?;
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let res = RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)?;
    Some(Target {
        res,
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        name: Some(name_of(obj).to_string()),
        subresource: None,
    })
}

/// Every cached object (in `namespace`, or anywhere for `None`) that names
/// `uid` among its ownerReferences.
fn dependents(rest: &Rest, uid: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
    let owned_by = |obj: &Value| {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
            })
    };
    rest.cache
        .caches()
        .filter(|c| namespace.is_none() || c.info.namespaced)
        .flat_map(|c| c.select(&c.info.namespace_prefix(namespace), owned_by))
        .collect()
}

async fn remove_finalizer(rest: &Rest, owner: &Value, finalizer: &str) {
    let Some(t) = target_of(owner) else { return };
    let left: Vec<Value> = owner
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| *v != finalizer).cloned().collect())
        .unwrap_or_default();
    let rv = owner
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let patch = json!({"metadata": {"finalizers": left, "resourceVersion": rv}});
    if let Err(e) = write::patch(rest, &t, PatchType::Merge, patch, &opts()).await {
        tracing::debug!(error = %e.message, "removing finalizer {finalizer} failed; will retry");
    }
}

async fn process(rest: &Rest, owner: &Value) {
    let uid = owner
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ns = owner.pointer("/metadata/namespace").and_then(Value::as_str);
    let deps = dependents(rest, &uid, ns);
    if has_finalizer(owner, ORPHAN) {
        for dep in &deps {
            let Some(t) = target_of(dep) else { continue };
            let refs: Vec<Value> = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            // An emptied list goes away, as Go's omitempty drops it upstream.
            let refs = if refs.is_empty() {
                Value::Null
            } else {
                json!(refs)
            };
            let patch = json!({"metadata": {"ownerReferences": refs}});
            if let Err(e) = write::patch(rest, &t, PatchType::Merge, patch, &opts()).await {
                tracing::debug!(error = %e.message, "orphaning a dependent failed; will retry");
                return;
            }
        }
        remove_finalizer(rest, owner, ORPHAN).await;
    } else if has_finalizer(owner, FOREGROUND) {
        if deps.is_empty() {
            remove_finalizer(rest, owner, FOREGROUND).await;
            return;
        }
        for dep in deps
            .iter()
            .filter(|d| d.pointer("/metadata/deletionTimestamp").is_none())
        {
            if let Some(t) = target_of(dep) {
                let _ = write::delete(rest, &t, &DeleteOptions::default()).await;
            }
        }
    }
}

/// Runs forever: every second, finishes the orphan/foreground deletions in progress.
pub async fn run(rest: Arc<Rest>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let in_progress = |o: &Value| {
            o.pointer("/metadata/deletionTimestamp").is_some()
                && (has_finalizer(o, ORPHAN) || has_finalizer(o, FOREGROUND))
        };
        let pending: Vec<Arc<Value>> = rest
            .cache
            .caches()
            .flat_map(|c| c.select("", in_progress))
            .collect();
        for owner in pending {
            process(&rest, &owner).await;
        }
    }
}

//! Built-in objects and the namespace lifecycle: the four system namespaces
//! and the two system PriorityClasses exist from the start, and a namespace
//! marked for deletion has its content deleted, then its `kubernetes`
//! finalizer removed, after which it goes.
//! (Upstream runs the latter in kube-controller-manager's namespace
//! controller; rkube's API server runs it until the controllers crate exists.)

use std::sync::Arc;
use std::time::Duration;

use rkube_api::resources;
use serde_json::{json, Value};

use crate::rest::write::{self, DeleteOptions, PatchType};
use crate::rest::{FieldValidation, Rest, Target, WriteOptions};

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Ignore,
        field_manager: None,
    }
}

/// Creates the system namespaces, the `default/kubernetes` Service and
/// Endpoints that point in-cluster clients at the API server, and the
/// system PriorityClasses (`system-node-critical`,
/// `system-cluster-critical`), if missing.
pub async fn ensure_builtins(rest: &Rest, advertise: std::net::SocketAddr) {
    let ip = if advertise.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        advertise.ip().to_string()
    };
    let mut builtins: Vec<(&str, &str, Value)> = SYSTEM_NAMESPACES
        .iter()
        .map(|name| {
            (
                "",
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
        })
        .collect();
    builtins.push((
        "",
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertise.port()}]}}),
    ));
    // Endpoints may not name loopback addresses (upstream validation), so a
    // server listening on loopback publishes the Service alone.
    if !advertise.ip().is_loopback() {
        builtins.push((
            "",
            "endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}]}]}),
        ));
    }
    builtins.extend(
        crate::admission::system_priority_classes()
            .into_iter()
            .map(|pc| ("scheduling.k8s.io", "priorityclasses", pc)),
    );
    for (group, plural, body) in builtins {
        let Some(res) = resources::lookup(group, "v1", plural) else {
            continue;
        };
        let namespace = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = crate::rest::name_of(&body).to_string();
        let t = Target {
            res,
            namespace,
            name: Some(name.clone()),
            subresource: None,
        };
        let result = if plural == "endpoints" {
            // The address follows the server's; keep it current.
            write::update(rest, &t, body, &opts()).await
        } else {
            write::create(rest, &t, body, &opts()).await
        };
        match result {
            Ok(_) => tracing::debug!(resource = plural, %name, "ensured built-in object"),
            Err(e) if e.code == http::StatusCode::CONFLICT => {}
            Err(e) => {
                tracing::warn!(resource = plural, %name, error = %e.message, "could not create built-in object")
            }
        }
    }
}

/// Runs the namespace finalizer loop forever.
pub async fn run_namespace_controller(rest: Arc<Rest>) {
    let Some(ns_res) = resources::lookup("", "v1", "namespaces") else {
        return;
    };
    let Some(cache) = rest.cache.resource(ns_res).cloned() else {
        return;
    };
    loop {
        for ns in cache.select("", |n| n.pointer("/metadata/deletionTimestamp").is_some()) {
            let name = crate::rest::name_of(&ns).to_string();
            if let Err(e) = finalize_namespace(&rest, &name, &ns).await {
                tracing::warn!(namespace = %name, error = %e, "namespace cleanup failed; will retry");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn finalize_namespace(
    rest: &Rest,
    name: &str,
    ns: &Value,
) -> Result<(), crate::error::ApiError> {
    let mut remaining = 0usize;
    for cache in rest.cache.caches().filter(|c| c.info.namespaced) {
        let res = cache.info;
        let items = cache.list(&res.namespace_prefix(Some(name)));
        remaining += items.len();
        for item in items {
            if item.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let t = Target {
                res,
                namespace: Some(name.to_string()),
                name: Some(crate::rest::name_of(&item).to_string()),
                subresource: None,
            };
            match write::delete(rest, &t, &DeleteOptions::default()).await {
                Ok(_) => {}
                Err(e)
                    if e.code == http::StatusCode::NOT_FOUND
                        || e.code == http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(());
    }
    let Some(ns_res) = resources::lookup("", "v1", "namespaces") else {
        return Ok(());
    };
    let t = Target {
        res: ns_res,
        namespace: None,
        name: Some(name.to_string()),
        subresource: None,
    };
    let fins = ns
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let left: Vec<Value> = fins.into_iter().filter(|f| f != "kubernetes").collect();
    // Removing the last spec finalizer of a deleting namespace deletes it.
    write::patch(
        rest,
        &t,
        PatchType::Merge,
        json!({"spec": {"finalizers": left}}),
        &opts(),
    )
    .await?;
    Ok(())
}

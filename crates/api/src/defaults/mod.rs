//! Defaulting per kind, as upstream's `SetDefaults_*` functions for the v1
//! APIs (core, apps, batch, networking, rbac, scheduling, storage,
//! discovery). Runs on a decoded object before validation; fields of the
//! wrong JSON type are left alone for validation to report. Values the API
//! server itself assigns (clusterIP, nodePorts, uid, Job selectors,
//! serviceAccountName) are not defaulted here.

mod pod;

pub use pod::default_pull_policy;
mod workloads;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Fills in upstream's defaults for `obj`, an object of resource `res`.
pub fn apply_defaults(res: &ResourceInfo, obj: &mut Value) {
    match (res.group, res.kind) {
        ("", "Pod") => pod::default_pod(obj),
        ("", "Service") => service(obj),
        ("", "Namespace") => namespace(obj),
        ("", "Secret") => secret(obj),
        ("", "Node") => node(obj),
        ("", "PersistentVolume") => persistent_volume(obj),
        ("", "PersistentVolumeClaim") => {
            if let Value::Object(m) = obj {
                default_pvc(m);
            }
        }
        ("", "Endpoints") => {
            for subset in obj
                .as_object_mut()
                .map(|m| members(m, "subsets"))
                .into_iter()
                .flatten()
            {
                for port in members(subset, "ports") {
                    set_default(port, "protocol", json!("TCP"));
                }
            }
        }
        ("", "LimitRange") => limit_range(obj),
        ("apps", kind) => {
            let Some(spec) = slot(obj, "spec") else {
                return;
            };
            match kind {
                "Deployment" => workloads::deployment(spec),
                "ReplicaSet" => workloads::replica_set(spec),
                "DaemonSet" => workloads::daemon_set(spec),
                "StatefulSet" => workloads::stateful_set(spec),
                _ => {}
            }
        }
        ("batch", "Job") => {
            if let Value::Object(m) = obj {
                workloads::job(m);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = slot(obj, "spec") {
                workloads::cron_job(spec);
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in obj
                .as_object_mut()
                .map(|m| members(m, "ports"))
                .into_iter()
                .flatten()
            {
                set_default(port, "name", json!(""));
                set_default(port, "protocol", json!("TCP"));
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("networking.k8s.io", "IngressClass") => {
            if let Some(Value::Object(p)) =
                obj.get_mut("spec").and_then(|s| s.get_mut("parameters"))
            {
                set_default(p, "scope", json!("Cluster"));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => rbac_binding(obj),
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Value::Object(m) = obj {
                set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Value::Object(m) = obj {
                set_default(m, "reclaimPolicy", json!("Delete"));
                set_default(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// `v[key]` as a mutable object, created when absent or null; `None` when
/// `v` is not an object or the member has another type.
pub(crate) fn slot<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    slot_in(v.as_object_mut()?, key)
}

/// Like [`slot`], on a map.
pub(crate) fn slot_in<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let member = m.entry(key).or_insert_with(|| json!({}));
    if member.is_null() {
        *member = json!({});
    }
    member.as_object_mut()
}

/// Sets `m[key]` when it is absent or null.
pub(crate) fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// The object items of the array `m[key]`.
pub(crate) fn members<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

// ---------------------------------------------------------------------------
// Per-kind defaults.

fn service(obj: &mut Value) {
    let Some(spec) = slot(obj, "spec") else {
        return;
    };
    set_default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_default(spec, "type", json!("ClusterIP"));
    for port in members(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(n) => n.as_i64() == Some(0),
        };
        if unset {
            if let Some(p) = port.get("port").cloned() {
                port.insert("targetPort".into(), p);
            }
        }
    }
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = svc_type == "NodePort"
        || svc_type == "LoadBalancer"
        || (svc_type == "ClusterIP" && has_external_ips);
    if externally_accessible
        && spec
            .get("externalTrafficPolicy")
            .is_none_or(|v| v.is_null() || v == "")
    {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&svc_type.as_str()) {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn namespace(obj: &mut Value) {
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let deleting = obj
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null());
    if !name.is_empty() {
        if let Some(labels) = slot(obj, "metadata").and_then(|m| slot_in(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    let terminating = obj.get("status").and_then(|s| s.get("phase")) == Some(&json!("Terminating"));
    if let Some(status) = slot(obj, "status") {
        set_default(status, "phase", json!("Active"));
    }
    // On create the namespace controller's finalizer is required; it is
    // never re-added once removed from a terminating namespace.
    if !deleting && !terminating {
        if let Some(spec) = slot(obj, "spec") {
            if spec
                .get("finalizers")
                .is_none_or(|f| f.as_array().is_some_and(Vec::is_empty) || f.is_null())
            {
                spec.insert("finalizers".into(), json!(["kubernetes"]));
            }
        }
    }
}

/// Secret type Opaque; `stringData` is merged into `data` (base64), as
/// upstream's conversion does, and never stored.
fn secret(obj: &mut Value) {
    let Value::Object(m) = obj else { return };
    set_default(m, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return;
    };
    let Some(data) = slot_in(m, "data") else {
        return;
    };
    for (k, v) in string_data {
        if let Some(s) = v.as_str() {
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
            );
        }
    }
}

fn node(obj: &mut Value) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null) {
        if let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned() {
            status.insert("allocatable".into(), cap);
        }
    }
}

fn persistent_volume(obj: &mut Value) {
    if let Some(status) = slot(obj, "status") {
        set_default(status, "phase", json!("Pending"));
    }
    if let Some(spec) = slot(obj, "spec") {
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
        pod::default_volume_sources(spec);
    }
}

/// PVC (and StatefulSet volumeClaimTemplates) defaults.
pub(crate) fn default_pvc(pvc: &mut Map<String, Value>) {
    if let Some(status) = slot_in(pvc, "status") {
        set_default(status, "phase", json!("Pending"));
    }
    if let Some(spec) = slot_in(pvc, "spec") {
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
}

fn limit_range(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for item in members(spec, "limits") {
        if item.get("type") != Some(&json!("Container")) {
            continue;
        }
        let get = |item: &Map<String, Value>, k: &str| {
            item.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (max, min) = (get(item, "max"), get(item, "min"));
        let mut default = get(item, "default");
        for (k, v) in &max {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut default_request = get(item, "defaultRequest");
        for (k, v) in default.iter().chain(&min) {
            default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        if !default.is_empty() {
            item.insert("default".into(), Value::Object(default));
        }
        if !default_request.is_empty() {
            item.insert("defaultRequest".into(), Value::Object(default_request));
        }
    }
}

fn network_policy(obj: &mut Value) {
    let Some(spec) = slot(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in members(spec, dir) {
            for port in members(rule, "ports") {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
    if spec
        .get("policyTypes")
        .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty))
    {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

fn rbac_binding(obj: &mut Value) {
    let Value::Object(m) = obj else { return };
    if let Some(role_ref) = slot_in(m, "roleRef") {
        if role_ref
            .get("apiGroup")
            .is_none_or(|g| g.is_null() || g == "")
        {
            role_ref.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
        }
    }
    for subject in members(m, "subjects") {
        if subject
            .get("apiGroup")
            .is_none_or(|g| g.is_null() || g == "")
        {
            // ServiceAccount subjects keep the empty (omitted) group.
            if let Some("User" | "Group") = subject.get("kind").and_then(Value::as_str) {
                subject.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Per-kind hooks of the generic storage, as upstream's registry strategies
//! implement them: what the server sets on create (uid, timestamps,
//! generation, initial status, Service cluster IPs, Job selectors,
//! namespace labels), what an update may change (spec vs status), and when
//! `metadata.generation` moves.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use rkube_api::ResourceInfo;
use serde_json::{json, Map, Value};

use super::{meta_mut, name_of, now_rfc3339};
use crate::cache::Cacher;
use crate::error::{ApiError, ApiResult};

/// Kinds whose `metadata.generation` tracks spec changes.
pub fn tracks_generation(res: &ResourceInfo) -> bool {
    matches!(
        (res.group, res.kind),
        ("apps", _)
            | ("batch", _)
            | ("policy", "PodDisruptionBudget")
            | ("networking.k8s.io", "Ingress")
            | ("networking.k8s.io", "NetworkPolicy")
    )
}

/// Kinds whose status is written only through the status subresource, and
/// reset on create.
fn status_is_subresource(res: &ResourceInfo) -> bool {
    res.has_subresource("status")
        && !matches!(
            res.kind,
            "Node" | "PersistentVolume" | "PersistentVolumeClaim"
        )
}

/// Allocation of Service cluster IPs (10.96.0.0/12) and node ports.
pub struct Allocators {
    ips: Mutex<HashSet<Ipv4Addr>>,
    ports: Mutex<HashSet<u16>>,
}

/// The service network and the first address in it, which the
/// `kubernetes` Service takes.
pub const SERVICE_CIDR: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 96, 0, 0), 12);
const NODE_PORTS: (u16, u16) = (30000, 32767);

impl Allocators {
    pub fn new() -> Self {
        Allocators {
            ips: Mutex::new(HashSet::new()),
            ports: Mutex::new(HashSet::new()),
        }
    }

    /// Marks every IP and node port the cached Services hold as used.
    pub fn seed(&self, cache: &Cacher) {
        let Some(svcs) =
            rkube_api::resources::lookup("", "v1", "services").and_then(|r| cache.resource(r))
        else {
            return;
        };
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        for s in svcs.list("") {
            if let Some(ip) = s
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                ips.insert(ip);
            }
            for p in s
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                    ports.insert(n as u16);
                }
            }
        }
    }

    fn allocate_ip(&self, requested: Option<&str>) -> ApiResult<Ipv4Addr> {
        let (base, bits) = SERVICE_CIDR;
        let size = 1u32 << (32 - bits);
        let base = u32::from(base);
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = requested {
            let ip: Ipv4Addr = r.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "spec.clusterIP: Invalid value: {r:?}: must be a valid IP address"
                ))
            })?;
            let n = u32::from(ip);
            if n < base || n >= base + size {
                return Err(ApiError::bad_request(format!(
                    "spec.clusterIPs: Invalid value: [\"{r}\"]: failed to allocate IP {r}: the provided IP ({r}) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                )));
            }
            if !ips.insert(ip) {
                return Err(ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("spec.clusterIPs: Invalid value: [\"{r}\"]: failed to allocate IP {r}: provided IP is already allocated"),
                ));
            }
            return Ok(ip);
        }
        // Start at a pseudo-random offset; skip .0 and the .1 kept for the
        // `kubernetes` Service.
        let start = (uuid::Uuid::new_v4().as_u128() as u32) % (size - 2) + 2;
        for i in 0..size - 2 {
            let off = (start + i - 2) % (size - 2) + 2;
            let ip = Ipv4Addr::from(base + off);
            if ips.insert(ip) {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    fn allocate_node_port(&self, requested: Option<u64>) -> ApiResult<u16> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = requested {
            let p16 = u16::try_from(p).unwrap_or(0);
            if p16 < NODE_PORTS.0 || p16 > NODE_PORTS.1 || !ports.insert(p16) {
                return Err(ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("spec.ports[0].nodePort: Invalid value: {p}: provided port is already allocated or out of the range 30000-32767"),
                ));
            }
            return Ok(p16);
        }
        let span = (NODE_PORTS.1 - NODE_PORTS.0 + 1) as u32;
        let start = (uuid::Uuid::new_v4().as_u128() as u32) % span;
        for i in 0..span {
            let p = NODE_PORTS.0 + ((start + i) % span) as u16;
            if ports.insert(p) {
                return Ok(p);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    /// Returns a deleted Service's addresses to the pools.
    pub fn release(&self, svc: &Value) {
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            self.ips
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ip);
        }
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                ports.remove(&(n as u16));
            }
        }
    }
}

impl Default for Allocators {
    fn default() -> Self {
        Self::new()
    }
}

/// Upstream's pod QoS class from container requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    let mut any = false;
    let mut guaranteed = true;
    for c in containers.into_iter().flatten() {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Sets what the server owns on a new object, after defaulting and before
/// validation.
pub fn prepare_create(
    res: &ResourceInfo,
    obj: &mut Value,
    alloc: &Allocators,
    dry_run: bool,
) -> ApiResult<()> {
    let name = name_of(obj).to_string();
    {
        let m = meta_mut(obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("resourceVersion");
        if tracks_generation(res) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    if status_is_subresource(res) {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    match (res.group, res.kind) {
        ("", "Pod") => {
            let qos = qos_class(obj);
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                if spec
                    .get("serviceAccountName")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    spec.insert("serviceAccountName".into(), json!("default"));
                }
                let sa = spec
                    .get("serviceAccountName")
                    .cloned()
                    .unwrap_or(json!("default"));
                spec.insert("serviceAccount".into(), sa);
            }
            let gated = obj
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty());
            let mut status = json!({"phase": "Pending", "qosClass": qos});
            if gated {
                // As upstream's pod strategy: a gated pod says why it waits.
                status["conditions"] = json!([{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                    "lastProbeTime": null,
                    "lastTransitionTime": now_rfc3339(),
                }]);
            }
            if let Some(o) = obj.as_object_mut() {
                o.insert("status".into(), status);
            }
        }
        ("", "Namespace") => {
            meta_mut(obj)
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
            if let Some(o) = obj.as_object_mut() {
                o.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        ("", "Service") => prepare_service(obj, alloc, dry_run)?,
        ("batch", "Job") => prepare_job(obj),
        _ => {}
    }
    Ok(())
}

fn prepare_service(obj: &mut Value, alloc: &Allocators, dry_run: bool) -> ApiResult<()> {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if requested.as_deref() != Some("None") {
        let ip = if dry_run {
            requested.clone().unwrap_or_else(|| "10.96.0.0".into())
        } else {
            alloc.allocate_ip(requested.as_deref())?.to_string()
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    } else {
        spec.insert("clusterIPs".into(), json!(["None"]));
    }
    spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
    spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                let req = p
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .filter(|n| *n != 0);
                let n = if dry_run {
                    req.unwrap_or(30000) as u16
                } else {
                    alloc.allocate_node_port(req)?
                };
                if let Some(po) = p.as_object_mut() {
                    po.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.insert("status".into(), json!({"loadBalancer": {}}));
    }
    Ok(())
}

/// Jobs get a generated selector and matching template labels unless
/// `spec.manualSelector` is true.
fn prepare_job(obj: &mut Value) {
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = name_of(obj).to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let labels = json!({
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    });
    let tmpl = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(t) = tmpl.as_object_mut() {
        let m = t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = m.as_object_mut() {
            let l = m.entry("labels").or_insert_with(|| json!({}));
            if let (Some(l), Some(add)) = (l.as_object_mut(), labels.as_object()) {
                for (k, v) in add {
                    l.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Everything of an object but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.remove("kind");
        o.remove("apiVersion");
    }
    v
}

/// Carries over what an update may not change, for the main resource
/// (`subresource` None) or the status subresource.
pub fn prepare_update(res: &ResourceInfo, new: &mut Value, old: &Value, subresource: Option<&str>) {
    // Server-owned metadata always comes from the stored object.
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    {
        let m = meta_mut(new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
    }
    match subresource {
        Some("status") => {
            // Only status changes; everything else is the stored object's.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            if let Some(o) = merged.as_object_mut() {
                match status {
                    Some(s) => o.insert("status".into(), s),
                    None => o.remove("status"),
                };
            }
            *new = merged;
        }
        _ => {
            // Status changes only through the status subresource; even the
            // kinds that may carry a status on create (Node, PV, PVC) keep
            // the stored one on a main-resource update, as upstream.
            if res.has_subresource("status") {
                if let Some(o) = new.as_object_mut() {
                    match old.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
            }
            if tracks_generation(res) && spec_part(new) != spec_part(old) {
                let g = old_meta
                    .get("generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    + 1;
                meta_mut(new).insert("generation".into(), json!(g));
            }
            if res.kind == "Service" && res.group.is_empty() {
                // clusterIP is immutable once allocated; an update that omits
                // it keeps the allocated one.
                for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                    let oldv = old.pointer(&format!("/spec/{k}")).cloned();
                    if let (Some(spec), Some(ov)) =
                        (new.get_mut("spec").and_then(Value::as_object_mut), oldv)
                    {
                        if spec.get(k).is_none_or(|v| v.is_null() || v == "") {
                            spec.insert(k.into(), ov);
                        }
                    }
                }
            }
        }
    }
}

/// Upstream's `generateName` suffix: five characters from an alphabet
/// without vowels and look-alike digits.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let r = uuid::Uuid::new_v4().as_u128();
    let suffix: String = (0..5)
        .map(|i| ALPHABET[((r >> (i * 8)) % ALPHABET.len() as u128) as usize] as char)
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn generation_moves_on_spec_changes_only() {
        let deploy = rkube_api::resources::lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 3, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut same = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {}});
        prepare_update(deploy, &mut same, &old, None);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(
            same["status"],
            json!({"replicas": 1}),
            "status is kept from the stored object"
        );
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}});
        prepare_update(deploy, &mut changed, &old, None);
        assert_eq!(changed["metadata"]["generation"], 4);
        let mut status =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 9}, "status": {"replicas": 2}});
        prepare_update(deploy, &mut status, &old, Some("status"));
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 2);
    }

    #[test]
    fn service_ips_are_unique_and_released() {
        let a = Allocators::new();
        let x = a.allocate_ip(None).unwrap();
        assert!(a.allocate_ip(Some(&x.to_string())).is_err());
        a.release(&json!({"spec": {"clusterIP": x.to_string()}}));
        assert_eq!(a.allocate_ip(Some(&x.to_string())).unwrap(), x);
        assert!(a.allocate_ip(Some("192.168.1.1")).is_err());
        let p = a.allocate_node_port(None).unwrap();
        assert!((30000..=32767).contains(&p));
    }

    #[test]
    fn generated_names_have_a_five_char_suffix() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
    }
}

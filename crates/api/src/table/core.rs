//! Printers of core/v1 resources other than Pods: Nodes, Namespaces,
//! Services, Endpoints, Events (and events.k8s.io Events), ConfigMaps,
//! Secrets, ServiceAccounts, PersistentVolumes(Claims) and ResourceQuotas.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::docs;
use super::duration::{parse_time, since, translate_timestamp_since};
use super::util::{
    age, arr_at, bool_at, format_labels, get, int_at, is_deleting, len_at, name, obj_at, opt_str,
    quantity, str_at,
};
use super::Col;

pub(crate) const NODE_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", "The status of the node"),
    Col::new("Roles", "string", "The roles of the node"),
    Col::age(),
    Col::new("Version", "string", docs::NODE_KUBELET),
    Col::new("Internal-IP", "string", docs::NODE_ADDRESSES).wide(),
    Col::new("External-IP", "string", docs::NODE_ADDRESSES).wide(),
    Col::new("OS-Image", "string", docs::NODE_OS_IMAGE).wide(),
    Col::new("Kernel-Version", "string", docs::NODE_KERNEL).wide(),
    Col::new("Container-Runtime", "string", docs::NODE_CRI).wide(),
];

const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_address(node: &Value, ty: &str) -> Value {
    let addr = arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == ty);
    Value::from(addr.map(|a| str_at(a, &["address"])).unwrap_or("<none>"))
}

fn or_unknown(s: &str) -> Value {
    Value::from(if s.is_empty() { "<unknown>" } else { s })
}

pub(crate) fn node(node: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as upstream's condition map does.
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = obj_at(node, &["metadata", "labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(NODE_ROLE_PREFIX).filter(|r| !r.is_empty()) {
                roles.insert(role);
            } else if k == NODE_ROLE_LABEL {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v);
                }
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let info = |f: &str| str_at(node, &["status", "nodeInfo", f]);
    vec![
        name(node),
        Value::from(status.join(",")),
        Value::from(roles),
        age(node, now),
        Value::from(info("kubeletVersion")),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        or_unknown(info("osImage")),
        or_unknown(info("kernelVersion")),
        or_unknown(info("containerRuntimeVersion")),
    ]
}

pub(crate) const NAMESPACE_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", "The status of the namespace"),
    Col::age(),
];

pub(crate) fn namespace(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(ns),
        Value::from(str_at(ns, &["status", "phase"])),
        age(ns, now),
    ]
}

pub(crate) const SERVICE_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Type", "string", docs::SVC_TYPE),
    Col::new("Cluster-IP", "string", docs::SVC_CLUSTER_IP),
    Col::new("External-IP", "string", docs::SVC_EXTERNAL_IPS),
    Col::new("Port(s)", "string", docs::SVC_PORTS),
    Col::age(),
    Col::new("Selector", "string", docs::SVC_SELECTOR).wide(),
];

/// Load-balancer ingress points: sorted, de-duplicated IPs or hostnames
/// joined by "," (upstream's `loadBalancerStatusStringer`, wide form).
pub(crate) fn load_balancer_ingress(status: Option<&Value>) -> String {
    let mut set = BTreeSet::new();
    for ing in status.map(|s| arr_at(s, &["ingress"])).unwrap_or(&[]) {
        let (ip, host) = (str_at(ing, &["ip"]), str_at(ing, &["hostname"]));
        if !ip.is_empty() {
            set.insert(ip);
        } else if !host.is_empty() {
            set.insert(host);
        }
    }
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr_at(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let lb = load_balancer_ingress(get(svc, &["status", "loadBalancer"]));
            if !external.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() {
                    Vec::new()
                } else {
                    lb.split(',').collect()
                };
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// "80/TCP,443:30443/TCP" (upstream's `makePortString`).
pub(crate) fn service_ports(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let (port, proto) = (int_at(p, &["port"]), str_at(p, &["protocol"]));
            match int_at(p, &["nodePort"]) {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    pieces.join(",")
}

pub(crate) fn service(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(svc, &["spec", "clusterIP"]).filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    let ports = service_ports(arr_at(svc, &["spec", "ports"]));
    vec![
        name(svc),
        Value::from(str_at(svc, &["spec", "type"])),
        Value::from(cluster_ip),
        Value::from(service_external_ip(svc)),
        Value::from(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        }),
        age(svc, now),
        Value::from(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

pub(crate) const ENDPOINTS_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Endpoints", "string", docs::ENDPOINTS_SUBSETS),
    Col::age(),
];

/// `net.JoinHostPort`: brackets around IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Up to three "ip:port" endpoints, then " + N more..." (upstream's
/// `formatEndpoints` for all ports).
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let (mut more, mut count) = (false, 0usize);
    for ss in subsets {
        let addrs = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, &["ip"]), int_at(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

pub(crate) fn endpoints(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(ep), Value::from(format_endpoints(ep)), age(ep, now)]
}

pub(crate) const EVENT_COLUMNS: &[Col] = &[
    Col::new("Last Seen", "string", docs::EV_LAST),
    Col::new("Type", "string", docs::EV_TYPE),
    Col::new("Reason", "string", docs::EV_REASON),
    Col::new("Object", "string", docs::EV_INVOLVED),
    Col::new("Subobject", "string", docs::EV_FIELD_PATH).wide(),
    Col::new("Source", "string", docs::EV_SOURCE).wide(),
    Col::new("Message", "string", docs::EV_MESSAGE),
    Col::new("First Seen", "string", docs::EV_FIRST).wide(),
    Col::new("Count", "string", docs::EV_COUNT).wide(),
    Col {
        priority: 1,
        ..Col::name()
    },
];

/// Where an Event schema keeps the fields the core printer reads
/// (events.k8s.io renamed them; upstream converts to the core form first).
pub(crate) struct EventFields {
    involved: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
}

impl EventFields {
    pub(crate) const CORE: EventFields = EventFields {
        involved: "involvedObject",
        message: "message",
        source: "source",
        first: "firstTimestamp",
        last: "lastTimestamp",
        count: "count",
    };
    pub(crate) const EVENTS_V1: EventFields = EventFields {
        involved: "regarding",
        message: "note",
        source: "deprecatedSource",
        first: "deprecatedFirstTimestamp",
        last: "deprecatedLastTimestamp",
        count: "deprecatedCount",
    };
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

pub(crate) fn event(f: &EventFields, ev: &Value, now: Timestamp) -> Vec<Value> {
    let first_ts = parse_time(get(ev, &[f.first]));
    let first = match first_ts {
        Some(t) => since(t, now),
        None => translate_timestamp_since(get(ev, &["eventTime"]), now),
    };
    let mut last = match parse_time(get(ev, &[f.last])) {
        Some(t) => since(t, now),
        None => first.clone(),
    };
    let mut count = int_at(ev, &[f.count]);
    if obj_at(ev, &["series"]).is_some() {
        last = translate_timestamp_since(get(ev, &["series", "lastObservedTime"]), now);
        count = int_at(ev, &["series", "count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = str_at(ev, &[f.involved, "kind"]).to_lowercase();
    let obj_name = str_at(ev, &[f.involved, "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = first_non_empty(
        str_at(ev, &[f.source, "component"]),
        str_at(ev, &["reportingController"]),
    );
    let host = first_non_empty(
        str_at(ev, &[f.source, "host"]),
        str_at(ev, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        Value::from(last),
        Value::from(str_at(ev, &["type"])),
        Value::from(str_at(ev, &["reason"])),
        Value::from(target),
        Value::from(str_at(ev, &[f.involved, "fieldPath"])),
        Value::from(source),
        Value::from(str_at(ev, &[f.message]).trim()),
        Value::from(first),
        Value::from(count),
        name(ev),
    ]
}

pub(crate) const CONFIGMAP_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Data", "string", docs::CM_DATA),
    Col::age(),
];

pub(crate) fn configmap(cm: &Value, now: Timestamp) -> Vec<Value> {
    let n = len_at(cm, &["data"]) + len_at(cm, &["binaryData"]);
    vec![name(cm), Value::from(n), age(cm, now)]
}

pub(crate) const SECRET_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Type", "string", docs::SECRET_TYPE),
    Col::new("Data", "string", docs::SECRET_DATA),
    Col::age(),
];

pub(crate) fn secret(s: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(s),
        Value::from(str_at(s, &["type"])),
        Value::from(len_at(s, &["data"])),
        age(s, now),
    ]
}

pub(crate) const SERVICEACCOUNT_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Secrets", "string", docs::SA_SECRETS),
    Col::age(),
];

pub(crate) fn serviceaccount(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(sa),
        Value::from(len_at(sa, &["secrets"])),
        age(sa, now),
    ]
}

pub(crate) const PV_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Capacity", "string", docs::PV_CAPACITY),
    Col::new("Access Modes", "string", docs::PV_ACCESS_MODES),
    Col::new("Reclaim Policy", "string", docs::PV_RECLAIM),
    Col::new("Status", "string", docs::PV_PHASE),
    Col::new("Claim", "string", docs::PV_CLAIM),
    Col::new("StorageClass", "string", "StorageClass of the pv"),
    Col::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    Col::new("Reason", "string", docs::PV_REASON),
    Col::age(),
    Col::new("VolumeMode", "string", docs::PV_VOLUME_MODE).wide(),
];

/// "RWO,ROX,RWX,RWOP" in that fixed order (upstream's
/// `GetAccessModesAsString`).
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const STORAGE_CLASS_BETA_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The beta storage-class annotation wins over `spec.storageClassName`.
fn storage_class(obj: &Value) -> &str {
    opt_str(
        obj,
        &["metadata", "annotations", STORAGE_CLASS_BETA_ANNOTATION],
    )
    .unwrap_or_else(|| str_at(obj, &["spec", "storageClassName"]))
}

/// The phase, or "Terminating" once deletion started.
fn phase_or_terminating(obj: &Value) -> &str {
    if is_deleting(obj) {
        "Terminating"
    } else {
        str_at(obj, &["status", "phase"])
    }
}

/// `spec.volumeAttributesClassName`, or "<unset>".
fn volume_attributes_class(obj: &Value) -> &str {
    opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")
}

/// `spec.volumeMode`; upstream defaults it to Filesystem on read.
fn volume_mode(obj: &Value) -> &str {
    match get(obj, &["spec", "volumeMode"]) {
        None | Some(Value::Null) => "Filesystem",
        Some(Value::String(s)) => s,
        Some(_) => "<unset>",
    }
}

pub(crate) fn persistent_volume(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match obj_at(pv, &["spec", "claimRef"]) {
        Some(_) => format!(
            "{}/{}",
            str_at(pv, &["spec", "claimRef", "namespace"]),
            str_at(pv, &["spec", "claimRef", "name"])
        ),
        None => String::new(),
    };
    vec![
        name(pv),
        Value::from(quantity(get(pv, &["spec", "capacity", "storage"]))),
        Value::from(access_modes(arr_at(pv, &["spec", "accessModes"]))),
        Value::from(str_at(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        Value::from(phase_or_terminating(pv)),
        Value::from(claim),
        Value::from(storage_class(pv)),
        Value::from(volume_attributes_class(pv)),
        Value::from(str_at(pv, &["status", "reason"])),
        age(pv, now),
        Value::from(volume_mode(pv)),
    ]
}

pub(crate) const PVC_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", docs::PVC_PHASE),
    Col::new("Volume", "string", docs::PVC_VOLUME_NAME),
    Col::new("Capacity", "string", docs::PVC_CAPACITY),
    Col::new("Access Modes", "string", docs::PVC_ACCESS_MODES),
    Col::new("StorageClass", "string", "StorageClass of the pvc"),
    Col::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    Col::age(),
    Col::new("VolumeMode", "string", docs::PVC_VOLUME_MODE).wide(),
];

pub(crate) fn persistent_volume_claim(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(get(pvc, &["status", "capacity", "storage"])),
            access_modes(arr_at(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        name(pvc),
        Value::from(phase_or_terminating(pvc)),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class(pvc)),
        Value::from(volume_attributes_class(pvc)),
        age(pvc, now),
        Value::from(volume_mode(pvc)),
    ]
}

pub(crate) const RESOURCEQUOTA_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    Col::new(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    Col::age(),
];

/// "cpu: 100m/1, pods: 2/10" for requests, "limits.cpu: 0/2" for limits,
/// resources sorted by name.
pub(crate) fn resource_quota(rq: &Value, now: Timestamp) -> Vec<Value> {
    let mut request = Vec::new();
    let mut limit = Vec::new();
    if let Some(hard) = obj_at(rq, &["status", "hard"]) {
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for r in names {
            let used = quantity(get(rq, &["status", "used", r.as_str()]));
            let entry = format!("{r}: {used}/{}", quantity(hard.get(r.as_str())));
            if r.split('.').count() > 1 && r.split('.').next() == Some("limits") {
                limit.push(entry);
            } else {
                request.push(entry);
            }
        }
    }
    vec![
        name(rq),
        Value::from(request.join(", ")),
        Value::from(limit.join(", ")),
        age(rq, now),
    ]
}

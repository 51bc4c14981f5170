//! The pure part of the Endpoints controller: which pods back a Service,
//! on which ports, and the subsets that result.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::util::pod_is_ready;

/// Upstream's cap on the addresses of one Endpoints object.
pub const MAX_CAPACITY: usize = 1000;

/// The label marking a headless Service's Endpoints and slices.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// What the Endpoints of a Service should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub subsets: Vec<EndpointSubset>,
    /// More than [`MAX_CAPACITY`] addresses were found; some were dropped.
    pub truncated: bool,
    /// The latest change among the Service and its pods.
    pub trigger_time: Option<Timestamp>,
}

/// Whether a Service's selector (a plain label map) selects `pod`, in the
/// Service's namespace. An empty selector selects nothing here (upstream
/// treats it as "select everything" only through a nil check, and the API
/// server drops empty selectors).
pub fn service_selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    pod.namespace() == svc.namespace()
        && !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| pod.labels().get(k).is_some_and(|pv| pv == v))
}

/// Whether the Service has a selector (the controllers manage only those).
pub fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// A headless Service (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The pod's primary IP, if it has one.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    let st = pod.status.as_ref()?;
    st.pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| st.pod_ips.as_ref()?.first().map(|p| p.ip.as_str()))
}

/// Succeeded or Failed.
pub fn pod_is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Upstream `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !pod_is_terminal(pod)
        && pod_ip(pod).is_some()
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The container port a Service port sends to on `pod` (upstream
/// `podutil.FindPort`): a named targetPort is looked up among the pod's
/// container ports of the same protocol; a number is used as is; no
/// targetPort means the Service port itself.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            // Sidecars (restartable init containers) serve too.
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The endpoint ports `pod` serves for the Service, in Service port order
/// (a port that cannot be resolved on the pod is left out).
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: find_port(pod, sp)?,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The hostname a pod publishes under the Service: its `spec.hostname`
/// when its `spec.subdomain` names the Service.
pub fn pod_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| host.to_string())
}

/// A reference to the pod for `targetRef`.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// When the pod last changed in a way endpoints care about: its Ready
/// condition's transition, else its creation.
pub fn pod_change_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The latest change among the Service and `pods`.
pub fn trigger_time<'a>(svc: &Service, pods: impl Iterator<Item = &'a Pod>) -> Option<Timestamp> {
    pods.filter_map(pod_change_time)
        .chain(svc.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .max()
}

/// The labels of a Service's Endpoints: the Service's, plus the headless
/// marker for a headless Service.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// A port list with its ready and not-ready addresses.
type Group = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// Computes the Endpoints subsets of `svc` from every pod in the store.
pub fn desired_endpoints(svc: &Service, pods: &[Arc<Pod>]) -> Desired {
    let tolerate_unready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let no_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_none_or(|p| p.is_empty());
    // Addresses grouped by the exact port list they serve.
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let selected: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| service_selects(svc, p))
        .collect();
    for pod in &selected {
        if !should_pod_be_in_endpoints(pod, false) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let mut ports = pod_ports(svc, pod);
        if ports.is_empty() && !(no_ports && is_headless(svc)) {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let addr = EndpointAddress {
            ip: ip.to_string(),
            hostname: pod_hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let entry = groups.entry(key).or_insert_with(|| (ports, vec![], vec![]));
        if tolerate_unready || pod_is_ready(pod) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    let truncated = truncate(&mut subsets, MAX_CAPACITY);
    Desired {
        subsets,
        truncated,
        trigger_time: trigger_time(svc, selected.into_iter()),
    }
}

/// Splits `budget` across `counts` in proportion (upstream's
/// `allocateAddresses`), the remainder going to the first entries.
fn allocate(counts: &[usize], budget: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total <= budget {
        return counts.to_vec();
    }
    let mut out: Vec<usize> = counts.iter().map(|c| c * budget / total).collect();
    let mut left = budget - out.iter().sum::<usize>();
    for (o, c) in out.iter_mut().zip(counts) {
        if left == 0 {
            break;
        }
        if *o < *c {
            *o += 1;
            left -= 1;
        }
    }
    out
}

/// Keeps at most `max` addresses, ready ones first, spread over subsets in
/// proportion (upstream's `truncateEndpoints`). Returns whether any were
/// dropped.
pub fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let len = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: Vec<usize> = subsets.iter().map(|s| len(&s.addresses)).collect();
    let not_ready: Vec<usize> = subsets
        .iter()
        .map(|s| len(&s.not_ready_addresses))
        .collect();
    let total_ready: usize = ready.iter().sum();
    if total_ready + not_ready.iter().sum::<usize>() <= max {
        return false;
    }
    let keep_ready = allocate(&ready, max);
    let keep_not_ready = allocate(&not_ready, max.saturating_sub(total_ready.min(max)));
    for ((s, r), n) in subsets.iter_mut().zip(keep_ready).zip(keep_not_ready) {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(r);
        }
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(n);
        }
        if s.addresses.as_ref().is_some_and(Vec::is_empty) {
            s.addresses = None;
        }
        if s.not_ready_addresses.as_ref().is_some_and(Vec::is_empty) {
            s.not_ready_addresses = None;
        }
    }
    true
}

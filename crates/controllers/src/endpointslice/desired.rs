//! Which endpoints a Service's slices should hold, grouped by the port
//! list they serve (upstream's `desiredEndpointSlices` by port mapping).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

use crate::endpoints::{
    has_selector, is_headless, pod_hostname, pod_ports, pod_ref, service_selects,
    should_pod_be_in_endpoints,
};
use crate::util::pod_is_ready;

/// Endpoints sharing one port list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortGroup {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The key a port list is grouped by (order-insensitive).
pub fn ports_key(ports: &[EndpointPort]) -> String {
    let mut v: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or(""),
                p.port.unwrap_or(0),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.app_protocol.as_deref().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v.join(",")
}

/// The identity of an endpoint within a Service: its addresses.
pub fn endpoint_key(ep: &Endpoint) -> String {
    ep.addresses.join(",")
}

/// The pod's IPv4 address (slices of address type IPv4 only).
fn pod_ipv4(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.pod_ip
        .iter()
        .chain(st.pod_ips.iter().flatten().map(|p| &p.ip))
        .find(|ip| !ip.is_empty() && !ip.contains(':'))
        .cloned()
}

/// The endpoint for `pod` (upstream semantics: `serving` is the pod's
/// readiness, `terminating` its deletion, and `ready` is serving and not
/// terminating, or always true with `publishNotReadyAddresses`).
pub fn pod_endpoint(svc: &Service, pod: &Pod, zone: Option<String>) -> Option<Endpoint> {
    let ip = pod_ipv4(pod)?;
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = pod_is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(svc, pod),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_ref(pod)),
        zone,
        ..Default::default()
    })
}

/// The endpoints of `svc` grouped by port list; `zone_of` gives a node's
/// `topology.kubernetes.io/zone`.
pub fn desired_groups(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, PortGroup> {
    let mut groups: BTreeMap<String, PortGroup> = BTreeMap::new();
    if !has_selector(svc) {
        return groups;
    }
    let no_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_none_or(|p| p.is_empty());
    let mut pods: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| service_selects(svc, p) && should_pod_be_in_endpoints(p, true))
        .collect();
    pods.sort_by_key(|p| p.metadata.name.clone());
    for pod in pods {
        let ports: Vec<EndpointPort> = pod_ports(svc, pod)
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name,
                port: Some(p.port),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty() && !(no_ports && is_headless(svc)) {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(ep) = pod_endpoint(svc, pod, node.and_then(zone_of)) else {
            continue;
        };
        let g = groups
            .entry(ports_key(&ports))
            .or_insert_with(|| PortGroup {
                ports,
                endpoints: vec![],
            });
        g.endpoints.push(ep);
    }
    groups
}

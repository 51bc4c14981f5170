//! NodePorts (PreFilter, Filter): a pod asking for host ports only fits
//! nodes where none of them is taken. A port is a (protocol, host IP, port)
//! triple; `0.0.0.0` binds every address, so it conflicts with any IP on
//! the same protocol and port, and any IP conflicts with it.

use std::sync::Arc;

use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::types::{host_ports, HostPort};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin, Snapshot, Status,
};

pub const NAME: &str = "NodePorts";
/// The reason upstream reports.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const PRE_FILTER_KEY: &str = "PreFilterNodePorts";
const BIND_ALL: &str = "0.0.0.0";

/// The host ports the pod wants, computed once per cycle.
#[derive(Clone)]
struct PreFilterState(Vec<HostPort>);

pub struct NodePorts;

/// Empty protocol means TCP and empty IP means all addresses (upstream
/// `sanitize`).
fn normalized(hp: &HostPort) -> (&str, &str, i32) {
    let (proto, ip, port) = hp;
    let proto = if proto.is_empty() { "TCP" } else { proto };
    let ip = if ip.is_empty() { BIND_ALL } else { ip };
    (proto, ip, *port)
}

/// Whether `want` conflicts with a port in `used` (upstream
/// `HostPortInfo.CheckConflict`): same protocol and port, and the same IP
/// or either side binding `0.0.0.0`. Ports ≤ 0 never conflict.
pub fn port_conflicts(used: &[HostPort], want: &HostPort) -> bool {
    let (proto, ip, port) = normalized(want);
    if port <= 0 {
        return false;
    }
    used.iter()
        .map(normalized)
        .any(|(p, i, n)| n == port && p == proto && (ip == BIND_ALL || i == BIND_ALL || i == ip))
}

/// Whether all wanted ports are free given the used ones.
pub fn fits_ports(want: &[HostPort], used: &[HostPort]) -> bool {
    !want.iter().any(|w| port_conflicts(used, w))
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        let want = host_ports(&pod.pod);
        if want.is_empty() {
            return Status::skip();
        }
        state.write(PRE_FILTER_KEY, PreFilterState(want));
        Status::success()
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let computed;
        let want = match state.read::<PreFilterState>(PRE_FILTER_KEY) {
            Some(s) => &s.0,
            None => {
                // PreFilter did not run (e.g. disabled): compute here.
                computed = host_ports(&pod.pod);
                &computed
            }
        };
        if fits_ports(want, &node.used_ports) {
            Status::success()
        } else {
            Status::unschedulable(REASON)
        }
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    let pl = Arc::new(NodePorts);
    Ok(Extensions {
        pre_filter: Some(pl.clone()),
        filter: Some(pl),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{info, node, pod};
    use k8s_openapi::api::core::v1::{ContainerPort, Pod};

    /// A pod with host ports given as (protocol, host IP, port); empty
    /// strings leave the field unset.
    fn with_ports(name: &str, ports: &[(&str, &str, i32)]) -> Pod {
        let mut p = pod(name).build();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        p.spec.as_mut().unwrap().containers[0].ports = Some(
            ports
                .iter()
                .map(|(proto, ip, port)| ContainerPort {
                    container_port: 8080,
                    host_port: Some(*port),
                    host_ip: opt(ip),
                    protocol: opt(proto),
                    name: None,
                })
                .collect(),
        );
        p
    }

    fn node_with(pods: &[Pod]) -> NodeInfo {
        let mut ni = NodeInfo::new(Arc::new(node("n").build()));
        for p in pods {
            ni.add_pod(Arc::new(info(p.clone())));
        }
        ni
    }

    fn check(want: &[(&str, &str, i32)], used: &[(&str, &str, i32)]) -> Status {
        let p = info(with_ports("want", want));
        let n = node_with(&[with_ports("used", used)]);
        let mut st = CycleState::default();
        let pre = NodePorts.pre_filter(&mut st, &p, &Snapshot::default());
        assert!(pre.is_success());
        let s = NodePorts.filter(&st, &p, &n);
        // Same answer without PreFilter state.
        assert_eq!(s, NodePorts.filter(&CycleState::default(), &p, &n));
        s
    }

    #[test]
    fn pre_filter_skips_pods_without_host_ports() {
        let mut st = CycleState::default();
        let plain = info(pod("p").build());
        assert_eq!(
            NodePorts
                .pre_filter(&mut st, &plain, &Snapshot::default())
                .code,
            Code::Skip
        );
        let container_only = info(with_ports("p", &[("TCP", "", 0)]));
        assert_eq!(
            NodePorts
                .pre_filter(&mut st, &container_only, &Snapshot::default())
                .code,
            Code::Skip
        );
    }

    #[test]
    fn same_port_conflicts() {
        let s = check(&[("TCP", "", 80)], &[("TCP", "", 80)]);
        assert_eq!(s, Status::unschedulable(REASON));
        assert!(check(&[("TCP", "", 80)], &[("TCP", "", 81)]).is_success());
        assert!(
            check(&[("", "", 80)], &[("TCP", "0.0.0.0", 80)]).is_rejected(),
            "defaults"
        );
    }

    #[test]
    fn protocols_are_separate() {
        assert!(check(&[("UDP", "", 53)], &[("TCP", "", 53)]).is_success());
        assert!(check(&[("TCP", "", 53)], &[("UDP", "", 53)]).is_success());
        assert!(check(&[("UDP", "", 53)], &[("UDP", "", 53)]).is_rejected());
        assert!(check(&[("SCTP", "10.0.0.1", 9)], &[("SCTP", "", 9)]).is_rejected());
    }

    #[test]
    fn bind_all_conflicts_with_specific_ips() {
        // 0.0.0.0 wanted vs a specific IP in use, and vice versa.
        assert!(check(&[("TCP", "0.0.0.0", 80)], &[("TCP", "10.0.0.1", 80)]).is_rejected());
        assert!(check(&[("TCP", "10.0.0.1", 80)], &[("TCP", "0.0.0.0", 80)]).is_rejected());
        assert!(check(&[("TCP", "", 80)], &[("TCP", "10.0.0.1", 80)]).is_rejected());
        // Distinct specific IPs do not conflict; the same one does.
        assert!(check(&[("TCP", "10.0.0.2", 80)], &[("TCP", "10.0.0.1", 80)]).is_success());
        assert!(check(&[("TCP", "10.0.0.1", 80)], &[("TCP", "10.0.0.1", 80)]).is_rejected());
        // Different protocol on 0.0.0.0 is still free.
        assert!(check(&[("UDP", "0.0.0.0", 80)], &[("TCP", "10.0.0.1", 80)]).is_success());
    }

    #[test]
    fn any_wanted_port_in_use_rejects() {
        let s = check(&[("TCP", "", 80), ("TCP", "", 443)], &[("TCP", "", 443)]);
        assert_eq!(s.code, Code::Unschedulable);
        assert!(check(
            &[("TCP", "", 80), ("UDP", "", 443)],
            &[("TCP", "", 443), ("TCP", "", 8080)]
        )
        .is_success());
        // Empty node, and ports freed when the pod leaves.
        let p = info(with_ports("want", &[("TCP", "", 80)]));
        let mut n = node_with(&[with_ports("used", &[("TCP", "", 80)])]);
        assert!(NodePorts
            .filter(&CycleState::default(), &p, &n)
            .is_rejected());
        assert!(n.remove_pod("uid-used"));
        assert!(NodePorts
            .filter(&CycleState::default(), &p, &n)
            .is_success());
    }

    #[test]
    fn conflict_helper_edge_cases() {
        let used = vec![("TCP".to_string(), "0.0.0.0".to_string(), 80)];
        assert!(!port_conflicts(&used, &("TCP".into(), "".into(), 0)));
        assert!(port_conflicts(&used, &("".into(), "".into(), 80)));
        assert!(fits_ports(&[], &used));
    }
}

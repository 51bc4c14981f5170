//! Pure builders of the Node and Pod objects and statuses the agent posts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState as K8sContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, DaemonEndpoint, HostIP, Node, NodeAddress,
    NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::config::NodeConfig;
use crate::facts::{Conditions, Pressure};
use crate::lifecycle::{PodView, State};

/// The kubelet version the agent reports.
pub const KUBELET_VERSION: &str = concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION"));

/// The node's resources, for capacity and allocatable.
pub fn resources(cfg: &NodeConfig) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cfg.cpu.clone())),
        ("memory".to_string(), Quantity(cfg.memory.clone())),
        ("pods".to_string(), Quantity(cfg.max_pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(cfg.ephemeral_storage.clone()),
        ),
    ])
}

/// The node's allocatable: its resources, less what the config reserves.
pub fn allocatable(cfg: &NodeConfig) -> BTreeMap<String, Quantity> {
    let mut r = resources(cfg);
    for (k, v) in &cfg.allocatable {
        r.insert(k.clone(), Quantity(v.clone()));
    }
    r
}

/// The node labels: well-known ones plus the configured extras.
pub fn node_labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.node_name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), cfg.arch.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), cfg.arch.clone()),
    ]);
    l.extend(cfg.labels.clone());
    l
}

fn node_condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    heartbeat: Timestamp,
    since: Timestamp,
) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(heartbeat)),
        last_transition_time: Some(Time(since)),
    }
}

/// The conditions of a healthy node: no pressure, Ready since `since`.
pub fn node_conditions(heartbeat: Timestamp, since: Timestamp) -> Vec<NodeCondition> {
    node_conditions_with(heartbeat, since, &Conditions::default())
}

/// The node's conditions with measured pressure (upstream's reasons and
/// messages); unmeasured ones are False since `since`.
pub fn node_conditions_with(
    heartbeat: Timestamp,
    since: Timestamp,
    measured: &Conditions,
) -> Vec<NodeCondition> {
    let mem = measured.memory.unwrap_or(Pressure {
        pressure: false,
        since,
    });
    let disk = measured.disk.unwrap_or(Pressure {
        pressure: false,
        since,
    });
    vec![
        if mem.pressure {
            node_condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                heartbeat,
                mem.since,
            )
        } else {
            node_condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                heartbeat,
                mem.since,
            )
        },
        if disk.pressure {
            node_condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                heartbeat,
                disk.since,
            )
        } else {
            node_condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                heartbeat,
                disk.since,
            )
        },
        node_condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            heartbeat,
            since,
        ),
        node_condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
            heartbeat,
            since,
        ),
    ]
}

fn node_info(
    name: &str,
    arch: &str,
    runtime_version: &str,
    host: Option<&crate::sysinfo::HostSystem>,
) -> NodeSystemInfo {
    let mut info = NodeSystemInfo {
        architecture: arch.to_string(),
        boot_id: String::new(),
        container_runtime_version: runtime_version.to_string(),
        kernel_version: String::new(),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.to_string(),
        machine_id: name.to_string(),
        operating_system: "linux".into(),
        os_image: "rkube simulated node".into(),
        system_uuid: name.to_string(),
        ..Default::default()
    };
    if let Some(h) = host {
        info.os_image = h.os_image.clone();
        info.kernel_version = h.kernel_version.clone();
        info.machine_id = h.machine_id.clone();
        info.boot_id = h.boot_id.clone();
        info.system_uuid = h.system_uuid.clone();
    }
    info
}

fn addresses(name: &str, host_ip: &str) -> Vec<NodeAddress> {
    vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: host_ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: name.to_string(),
        },
    ]
}

/// The full node status the agent posts.
pub fn node_status(cfg: &NodeConfig, now: Timestamp) -> NodeStatus {
    NodeStatus {
        capacity: Some(resources(cfg)),
        allocatable: Some(allocatable(cfg)),
        addresses: Some(addresses(&cfg.node_name, &cfg.host_ip)),
        conditions: Some(node_conditions_with(
            now,
            now,
            &cfg.facts.as_ref().map(|f| f.get()).unwrap_or_default(),
        )),
        node_info: Some(node_info(
            &cfg.node_name,
            &cfg.arch,
            &cfg.runtime_version,
            cfg.host.as_ref(),
        )),
        daemon_endpoints: cfg.kubelet_port.map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: port.into() }),
        }),
        ..Default::default()
    }
}

/// The status a simulator posts for a Node it adopts: what the Node was
/// created with is kept; missing capacity gets the simulator's defaults,
/// missing allocatable the capacity, missing addresses `host_ip`.
pub fn adopted_status(node: &Node, host_ip: &str, now: Timestamp) -> NodeStatus {
    let name = node.metadata.name.clone().unwrap_or_default();
    let given = node.status.clone().unwrap_or_default();
    let defaults = NodeConfig::new(name.clone());
    let capacity = given
        .capacity
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| resources(&defaults));
    let allocatable = given
        .allocatable
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| capacity.clone());
    let arch = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/arch"))
        .cloned()
        .unwrap_or_else(|| defaults.arch.clone());
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        addresses: given
            .addresses
            .filter(|a| !a.is_empty())
            .or_else(|| Some(addresses(&name, host_ip))),
        conditions: Some(node_conditions(now, now)),
        node_info: given
            .node_info
            .or_else(|| Some(node_info(&name, &arch, &defaults.runtime_version, None))),
        ..Default::default()
    }
}

/// The node's pod capacity from its status, if it gives one.
pub fn capacity_pods(node: &Node) -> Option<u32> {
    node.status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("pods")?
        .0
        .parse()
        .ok()
}

/// The node's InternalIP from its status, if it gives one.
pub fn internal_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

fn pod_condition(type_: &str, ok: bool, since: Timestamp) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(Time(since)),
        ..Default::default()
    }
}

fn container_state(s: &State) -> K8sContainerState {
    match s {
        State::Running { started_at } => K8sContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated {
            started_at,
            finished_at,
            exit_code,
        } => K8sContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into(),
                ),
                started_at: Some(Time(*started_at)),
                finished_at: Some(Time(*finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        },
        State::Waiting { reason, message } => K8sContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
    }
}

/// Where and since when a pod runs, for its status.
#[derive(Debug, Clone)]
pub struct PodPlacement<'a> {
    pub uid: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    /// When the Ready condition last changed.
    pub ready_since: Timestamp,
}

/// The pod status for `view`.
pub fn pod_status(view: &PodView, at: &PodPlacement<'_>) -> PodStatus {
    let containers = view
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: String::new(),
            container_id: Some(format!("simulated://{}/{}", at.uid, c.name)),
            ready: c.ready,
            started: Some(matches!(c.state, State::Running { .. })),
            restart_count: c.restart_count,
            state: Some(container_state(&c.state)),
            last_state: c.last_state.as_ref().map(container_state),
            ..Default::default()
        })
        .collect();
    let started = view.started_at;
    PodStatus {
        phase: Some(view.phase.as_str().to_string()),
        host_ip: Some(at.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: at.host_ip.to_string(),
        }]),
        pod_ip: Some(at.pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: at.pod_ip.to_string(),
        }]),
        start_time: Some(Time(started)),
        conditions: Some(vec![
            pod_condition("PodReadyToStartContainers", true, started),
            pod_condition("Initialized", true, started),
            pod_condition("Ready", view.ready, at.ready_since),
            pod_condition("ContainersReady", view.ready, at.ready_since),
            pod_condition("PodScheduled", true, started),
        ]),
        container_statuses: Some(containers),
        ..Default::default()
    }
}

/// The status of a pod the node rejected (upstream's `rejectPod`).
pub fn rejected_status(reason: &str, message: String) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(reason.into()),
        message: Some(message),
        ..Default::default()
    }
}

/// The status of a pod rejected because the node is full.
pub fn out_of_pods_status(max_pods: u32) -> PodStatus {
    rejected_status(
        "OutOfpods",
        format!("Pod was rejected: Node didn't have enough resource: pods, capacity: {max_pods}"),
    )
}

/// The status of a pod the runtime could not start.
pub fn start_error_status(message: String) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some("StartError".into()),
        message: Some(message),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_pressure_gives_upstreams_reasons_and_times() {
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let c = Conditions {
            memory: Some(Pressure {
                pressure: true,
                since: t(5),
            }),
            disk: None,
        };
        let conds = node_conditions_with(t(9), t(1), &c);
        let get = |ty: &str| conds.iter().find(|c| c.type_ == ty).unwrap().clone();
        let m = get("MemoryPressure");
        assert_eq!(m.status, "True");
        assert_eq!(m.reason.as_deref(), Some("KubeletHasInsufficientMemory"));
        assert_eq!(
            m.message.as_deref(),
            Some("kubelet has insufficient memory available")
        );
        assert_eq!(m.last_transition_time, Some(Time(t(5))));
        assert_eq!(m.last_heartbeat_time, Some(Time(t(9))));
        let d = get("DiskPressure");
        assert_eq!(d.status, "False");
        assert_eq!(d.reason.as_deref(), Some("KubeletHasNoDiskPressure"));
        assert_eq!(d.last_transition_time, Some(Time(t(1))));
        let disk_on = Conditions {
            memory: None,
            disk: Some(Pressure {
                pressure: true,
                since: t(2),
            }),
        };
        let d = node_conditions_with(t(9), t(1), &disk_on)[1].clone();
        assert_eq!(
            (d.status.as_str(), d.reason.as_deref(), d.message.as_deref()),
            (
                "True",
                Some("KubeletHasDiskPressure"),
                Some("kubelet has disk pressure")
            )
        );
    }

    #[test]
    fn allocatable_overrides_capacity() {
        let mut cfg = NodeConfig::new("n");
        assert_eq!(allocatable(&cfg), resources(&cfg), "simulated: the same");
        assert_eq!(resources(&cfg)["ephemeral-storage"].0, "100Gi");
        cfg.allocatable.insert("memory".into(), "15Gi".into());
        let st = node_status(&cfg, Timestamp::UNIX_EPOCH);
        assert_eq!(st.allocatable.unwrap()["memory"].0, "15Gi");
        assert_eq!(st.capacity.unwrap()["memory"].0, "16Gi");
    }
}

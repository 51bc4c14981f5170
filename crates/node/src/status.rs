//! Pure builders of the Node and Pod objects and statuses the agent posts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState as K8sContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStatus, HostIP, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, PodCondition,
    PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::agent::NodeConfig;
use crate::runtime::{ContainerState, PodRuntimeStatus, RuntimePhase};

/// The kubelet version the agent reports.
pub const KUBELET_VERSION: &str = concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION"));

/// The node's resources, for capacity and allocatable.
pub fn resources(cfg: &NodeConfig) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cfg.cpu.clone())),
        ("memory".to_string(), Quantity(cfg.memory.clone())),
        ("pods".to_string(), Quantity(cfg.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ])
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

fn node_condition(type_: &str, ok: bool, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The full node status the agent posts.
pub fn node_status(cfg: &NodeConfig, now: Timestamp) -> NodeStatus {
    let now = Time(now);
    NodeStatus {
        capacity: Some(resources(cfg)),
        allocatable: Some(resources(cfg)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.node_name.clone(),
            },
        ]),
        conditions: Some(vec![
            node_condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                &now,
            ),
            node_condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                &now,
            ),
            node_condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                &now,
            ),
            node_condition(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
                &now,
            ),
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: cfg.arch.clone(),
            boot_id: String::new(),
            container_runtime_version: format!("simulated://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: String::new(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_string(),
            machine_id: cfg.node_name.clone(),
            operating_system: "linux".into(),
            os_image: "rkube simulated node".into(),
            system_uuid: cfg.node_name.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_condition(type_: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

/// The pod status for a pod the runtime runs, with address `pod_ip`.
pub fn pod_status(rt: &PodRuntimeStatus, pod_ip: &str, host_ip: &str, uid: &str) -> PodStatus {
    let now = Time(Timestamp::now());
    let phase = rt.phase();
    let ready = phase == RuntimePhase::Running && rt.ready();
    let containers = rt
        .containers
        .iter()
        .map(|c| {
            let state = match &c.state {
                ContainerState::Running { started_at } => K8sContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(Time(*started_at)),
                    }),
                    ..Default::default()
                },
                ContainerState::Terminated {
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
            };
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone(),
                image_id: String::new(),
                container_id: Some(format!("simulated://{uid}/{}", c.name)),
                ready: c.ready,
                started: Some(matches!(c.state, ContainerState::Running { .. })),
                restart_count: 0,
                state: Some(state),
                ..Default::default()
            }
        })
        .collect();
    PodStatus {
        phase: Some(phase.as_str().to_string()),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: Some(pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: pod_ip.to_string(),
        }]),
        start_time: Some(Time(rt.started_at)),
        conditions: Some(vec![
            pod_condition("PodScheduled", true, &now),
            pod_condition("Initialized", true, &now),
            pod_condition("ContainersReady", ready, &now),
            pod_condition("Ready", ready, &now),
        ]),
        container_statuses: Some(containers),
        ..Default::default()
    }
}

/// The status of a pod rejected because the node is full.
pub fn out_of_pods_status(max_pods: u32) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some("OutOfpods".into()),
        message: Some(format!(
            "Pod was rejected: Node didn't have enough resource: pods, capacity: {max_pods}"
        )),
        ..Default::default()
    }
}

//! The scheduler benchmarks' workloads, named after upstream's
//! `test/integration/scheduler_perf` configurations, with their node and
//! pod templates (as JSON, shared by the API-server harness and the
//! in-process algorithm benchmark), default sizes and targets.
//!
//! Templates follow upstream's `config/templates`: nodes of 4 CPU, 32Gi and
//! 110 pods (`node-default.yaml`) labelled with hostname and a zone; pods of
//! one `pause` container requesting 100m CPU and 500Mi (`pod-default.yaml`);
//! spreading, anti-affinity, large-CPU and low/high-priority variants.

use clap::ValueEnum;
use serde_json::{json, Value};

/// A scheduler_perf workload.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
#[value(rename_all = "verbatim")]
pub enum Workload {
    /// Pods requesting 100m CPU / 500Mi on empty nodes.
    SchedulingBasic,
    /// Pods spread over zones (maxSkew 1) and hostnames (maxSkew 5), both
    /// DoNotSchedule.
    TopologySpreading,
    /// Pods with required anti-affinity over hostnames to pods of their
    /// group (10 groups by default).
    #[value(alias = "AntiAffinity")]
    SchedulingPodAntiAffinity,
    /// Default pods while pods that never fit (9 CPU) wait in the
    /// unschedulable queue, and a node and a pod are re-created every second.
    #[value(alias = "SchedulingWithMixedChurn")]
    Unschedulable,
    /// High-priority pods that each must preempt a low-priority pod.
    PreemptionBasic,
}

/// What kind of pod a name prefix stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodKind {
    Default,
    Spreading,
    AntiAffinity,
    /// Requests 9 CPU: fits no 4-CPU node.
    LargeCpu,
    /// PriorityClass `low` (100), 900m CPU, terminationGracePeriodSeconds 0.
    Low,
    /// PriorityClass `high` (1000), 900m CPU.
    High,
}

/// Default sizes and targets of a workload.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub nodes: u64,
    pub pods: u64,
    pub init_pods: u64,
    /// Target throughput, pods/s.
    pub target: f64,
    /// Upstream's threshold for the same size, pods/s, if it has one.
    pub upstream_floor: Option<f64>,
}

/// Values of the PriorityClasses `low` and `high`.
pub const LOW_PRIORITY: i32 = 100;
pub const HIGH_PRIORITY: i32 = 1000;

/// Node capacity (upstream's node-default.yaml).
pub const NODE_CPU: &str = "4";
pub const NODE_MEMORY: &str = "32Gi";
pub const NODE_PODS: &str = "110";

impl Workload {
    /// Upstream's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::SchedulingBasic => "SchedulingBasic",
            Workload::TopologySpreading => "TopologySpreading",
            Workload::SchedulingPodAntiAffinity => "SchedulingPodAntiAffinity",
            Workload::Unschedulable => "Unschedulable",
            Workload::PreemptionBasic => "PreemptionBasic",
        }
    }

    /// Sizes and targets (issue 4's table).
    pub fn spec(self) -> Spec {
        match self {
            Workload::SchedulingBasic => Spec {
                nodes: 5000,
                pods: 10_000,
                init_pods: 1000,
                target: 2000.0,
                upstream_floor: Some(270.0),
            },
            Workload::TopologySpreading => Spec {
                nodes: 5000,
                pods: 5000,
                init_pods: 5000,
                target: 500.0,
                upstream_floor: Some(85.0),
            },
            Workload::SchedulingPodAntiAffinity => Spec {
                nodes: 5000,
                pods: 5000,
                init_pods: 1000,
                target: 500.0,
                upstream_floor: None,
            },
            Workload::Unschedulable => Spec {
                nodes: 5000,
                pods: 10_000,
                init_pods: 200,
                target: 1000.0,
                upstream_floor: Some(140.0),
            },
            Workload::PreemptionBasic => Spec {
                nodes: 500,
                pods: 2000,
                init_pods: 2000,
                target: 100.0,
                upstream_floor: Some(18.0),
            },
        }
    }

    /// The kind of the init pods.
    pub fn init_kind(self) -> PodKind {
        match self {
            Workload::SchedulingBasic | Workload::TopologySpreading => PodKind::Default,
            Workload::SchedulingPodAntiAffinity => PodKind::AntiAffinity,
            Workload::Unschedulable => PodKind::LargeCpu,
            Workload::PreemptionBasic => PodKind::Low,
        }
    }

    /// The kind of the measured pods.
    pub fn measured_kind(self) -> PodKind {
        match self {
            Workload::SchedulingBasic | Workload::Unschedulable => PodKind::Default,
            Workload::TopologySpreading => PodKind::Spreading,
            Workload::SchedulingPodAntiAffinity => PodKind::AntiAffinity,
            Workload::PreemptionBasic => PodKind::High,
        }
    }

    /// One line describing the pods, for the table.
    pub fn describe(self, groups: u64, zones: u64) -> String {
        match self {
            Workload::SchedulingBasic => "pods request 100m CPU / 500Mi".into(),
            Workload::TopologySpreading => format!(
                "{zones} zones; init pods 100m/500Mi; measured pods (label foo=bar) spread with \
                 maxSkew 1 over topology.kubernetes.io/zone and 5 over kubernetes.io/hostname, \
                 both DoNotSchedule"
            ),
            Workload::SchedulingPodAntiAffinity => format!(
                "{groups} label groups; every pod (init and measured) has required \
                 anti-affinity over kubernetes.io/hostname to its group"
            ),
            Workload::Unschedulable => "init pods request 9 CPU (fit no node) and stay \
                 unschedulable; measured pods 100m/500Mi"
                .into(),
            Workload::PreemptionBasic => format!(
                "init pods PriorityClass low ({LOW_PRIORITY}), 900m CPU, 4 per node; measured \
                 pods PriorityClass high ({HIGH_PRIORITY}), 900m CPU: each preempts one"
            ),
        }
    }
}

/// The priority fields of a pod: by class name (resolved by the API
/// server's Priority admission) or, with `direct`, `spec.priority` itself.
fn priority(spec: &mut Value, class: &str, value: i32, direct: bool) {
    if direct {
        spec["priority"] = json!(value);
    } else {
        spec["priorityClassName"] = json!(class);
    }
}

/// One pause container requesting `cpu` and `memory` (limits equal).
fn container(cpu: &str, memory: &str) -> Value {
    let r = json!({"cpu": cpu, "memory": memory});
    json!({
        "name": "pause",
        "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": r, "limits": r},
    })
}

/// A pod of `kind` named `name`; `n` picks the anti-affinity group
/// (`n % groups`); `direct_priority` sets `spec.priority` instead of a
/// PriorityClass name.
pub fn pod(name: &str, kind: PodKind, n: u64, groups: u64, direct_priority: bool) -> Value {
    let mut labels = json!({});
    let mut spec = json!({"containers": [container("100m", "500Mi")]});
    match kind {
        PodKind::Default => {}
        PodKind::Spreading => {
            labels = json!({"foo": "bar"});
            let sel = json!({"matchLabels": {"foo": "bar"}});
            spec["topologySpreadConstraints"] = json!([
                {"maxSkew": 5, "topologyKey": "kubernetes.io/hostname",
                 "whenUnsatisfiable": "DoNotSchedule", "labelSelector": sel},
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                 "whenUnsatisfiable": "DoNotSchedule", "labelSelector": sel},
            ]);
        }
        PodKind::AntiAffinity => {
            let group = format!("g{}", n % groups.max(1));
            labels = json!({"group": group});
            spec["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"group": group}},
                    "topologyKey": "kubernetes.io/hostname",
                }],
            }});
        }
        PodKind::LargeCpu => spec["containers"] = json!([container("9", "500Mi")]),
        PodKind::Low => {
            spec["containers"] = json!([container("900m", "500Mi")]);
            spec["terminationGracePeriodSeconds"] = json!(0);
            priority(&mut spec, "low", LOW_PRIORITY, direct_priority);
        }
        PodKind::High => {
            spec["containers"] = json!([container("900m", "500Mi")]);
            spec["terminationGracePeriodSeconds"] = json!(0);
            priority(&mut spec, "high", HIGH_PRIORITY, direct_priority);
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec,
    })
}

/// The zone of node `i`.
pub fn zone_of(i: u64, zones: u64) -> String {
    format!("zone-{}", i % zones.max(1))
}

/// Node `i` named `name`, labelled with its hostname and zone, with
/// upstream's node-default capacity in its status. A `simulated` node has
/// the annotation that makes the server's simulator adopt it (it reports
/// Ready, renews a Lease and runs the pods); otherwise the node is created
/// Ready and nothing runs its pods, as in upstream's scheduler_perf.
pub fn node(name: &str, i: u64, zones: u64, simulated: bool) -> Value {
    let cap = json!({"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS});
    let mut status = json!({"capacity": cap, "allocatable": cap});
    if !simulated {
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        status["conditions"] = json!([{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]);
    }
    let annotations = if simulated {
        json!({"rkube.io/simulated": "true"})
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": annotations,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone_of(i, zones),
            },
        },
        "status": status,
    })
}

/// A PriorityClass.
pub fn priority_class(name: &str, value: i32) -> Value {
    json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "preemptionPolicy": "PreemptLowerPriority",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_k8s_objects() {
        use k8s_openapi::api::core::v1::{Node, Pod};
        for kind in [
            PodKind::Default,
            PodKind::Spreading,
            PodKind::AntiAffinity,
            PodKind::LargeCpu,
            PodKind::Low,
            PodKind::High,
        ] {
            let p: Pod = serde_json::from_value(pod("p", kind, 13, 10, true)).expect("pod");
            assert_eq!(p.spec.expect("spec").containers.len(), 1);
        }
        let p = pod("p", PodKind::AntiAffinity, 13, 10, false);
        assert_eq!(p["metadata"]["labels"]["group"], "g3");
        assert_eq!(
            pod("p", PodKind::High, 0, 1, false)["spec"]["priorityClassName"],
            "high"
        );
        assert_eq!(
            pod("p", PodKind::Low, 0, 1, true)["spec"]["priority"],
            LOW_PRIORITY
        );
        let n: Node = serde_json::from_value(node("node-7", 7, 3, false)).expect("node");
        let labels = n.metadata.labels.expect("labels");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-1");
        assert!(n.status.expect("status").conditions.is_some());
        let sim = node("node-7", 7, 3, true);
        assert_eq!(sim["metadata"]["annotations"]["rkube.io/simulated"], "true");
    }
}

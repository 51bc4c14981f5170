//! Builders of pods and nodes for unit tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, NodeSpec, NodeStatus, Pod, PodSpec, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use crate::framework::{PodInfo, QueuedPodInfo};

/// A pod in namespace `default` with one container.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    })
}

pub struct PodBuilder(pub Pod);

impl PodBuilder {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }

    /// Requests of the first container, e.g. `&[("cpu", "500m")]`.
    pub fn requests(mut self, r: &[(&str, &str)]) -> Self {
        let c = &mut self.0.spec.as_mut().unwrap().containers[0];
        let res = c.resources.get_or_insert_with(Default::default);
        let req = res.requests.get_or_insert_with(BTreeMap::new);
        for (k, v) in r {
            req.insert(k.to_string(), Quantity(v.to_string()));
        }
        self
    }

    pub fn node(mut self, n: &str) -> Self {
        self.0.spec.as_mut().unwrap().node_name = Some(n.into());
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

/// A node with 4 CPUs, 16Gi, 110 pods.
pub fn node(name: &str) -> NodeBuilder {
    let alloc: BTreeMap<String, Quantity> = [("cpu", "4"), ("memory", "16Gi"), ("pods", "110")]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    NodeBuilder(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            ..Default::default()
        }),
    })
}

pub struct NodeBuilder(pub Node);

impl NodeBuilder {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }

    /// Sets allocatable (and capacity) entries, e.g. `&[("cpu", "2")]`.
    pub fn allocatable(mut self, r: &[(&str, &str)]) -> Self {
        let st = self.0.status.as_mut().unwrap();
        for (k, v) in r {
            for list in [st.allocatable.as_mut(), st.capacity.as_mut()]
                .into_iter()
                .flatten()
            {
                list.insert(k.to_string(), Quantity(v.to_string()));
            }
        }
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.to_string()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

/// The PodInfo of a pod.
pub fn info(p: Pod) -> PodInfo {
    PodInfo::with(Arc::new(p), crate::resources::pod_requests)
}

/// A queued pod; each call is later than the previous one.
pub fn queued(p: Pod) -> QueuedPodInfo {
    let now = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(1));
    QueuedPodInfo {
        info: Arc::new(info(p)),
        initial_attempt: now,
        timestamp: now,
        attempts: 0,
        unschedulable_plugins: Default::default(),
    }
}

/// A NodeInfo of `n` with `pods` bound to it.
pub fn node_info(n: NodeBuilder, pods: Vec<Pod>) -> crate::framework::NodeInfo {
    let n = n.build();
    let name = n.metadata.name.clone().unwrap();
    let mut ni = crate::framework::NodeInfo::new(Arc::new(n));
    for mut p in pods {
        p.spec.as_mut().unwrap().node_name = Some(name.clone());
        ni.add_pod(Arc::new(info(p)));
    }
    ni
}

/// A snapshot of nodes with their pods.
pub fn snap(nodes: Vec<(NodeBuilder, Vec<Pod>)>) -> crate::framework::Snapshot {
    crate::framework::Snapshot::new(
        nodes
            .into_iter()
            .map(|(n, pods)| Arc::new(node_info(n, pods)))
            .collect(),
    )
}

/// A plugin's PreFilter, then its Filter on every node (all pass when
/// PreFilter skips).
pub fn run_filter<P>(
    pl: &P,
    p: &Pod,
    s: &crate::framework::Snapshot,
) -> Vec<crate::framework::Status>
where
    P: crate::framework::PreFilterPlugin + crate::framework::FilterPlugin,
{
    use crate::framework::{Code, CycleState, Status};
    let pi = info(p.clone());
    let mut st = CycleState::default();
    let status = pl.pre_filter(&mut st, &pi, s);
    if status.code == Code::Skip {
        return s.nodes.iter().map(|_| Status::success()).collect();
    }
    assert!(status.is_success(), "{status:?}");
    s.nodes.iter().map(|n| pl.filter(&st, &pi, n)).collect()
}

//! Builders shared by PodTopologySpread's unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use serde_json::Value;

use super::{
    PodTopologySpread, DO_NOT_SCHEDULE, LABEL_HOSTNAME, LABEL_ZONE, NAME,
    REASON_CONSTRAINTS_NOT_MATCH, REASON_NODE_LABEL_NOT_MATCH, SCHEDULE_ANYWAY,
};
use crate::framework::{
    Code, CycleState, NodeInfo, NodeScore, PreScorePlugin, ScorePlugin, Snapshot, Status,
};
use crate::listers::Listers;
use crate::plugins::{parse_args, Handle};
use crate::testing::{info, node, pod, NodeBuilder, PodBuilder};
pub(super) use crate::testing::{run_filter, snap};

pub(super) const HOST: &str = LABEL_HOSTNAME;
pub(super) const ZONE: &str = LABEL_ZONE;

pub(super) fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn tsc(
    key: &str,
    max_skew: i32,
    when: &str,
    sel: &[(&str, &str)],
) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        topology_key: key.into(),
        max_skew,
        when_unsatisfiable: when.into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(map(sel)),
            match_expressions: None,
        }),
        ..Default::default()
    }
}

pub(super) fn hard(key: &str, max_skew: i32) -> TopologySpreadConstraint {
    tsc(key, max_skew, DO_NOT_SCHEDULE, &[("app", "web")])
}

pub(super) fn soft(key: &str, max_skew: i32) -> TopologySpreadConstraint {
    tsc(key, max_skew, SCHEDULE_ANYWAY, &[("app", "web")])
}

pub(super) fn spread(p: PodBuilder, constraints: Vec<TopologySpreadConstraint>) -> Pod {
    let mut p = p.build();
    p.spec.as_mut().unwrap().topology_spread_constraints = Some(constraints);
    p
}

pub(super) fn web(name: &str) -> Pod {
    pod(name).label("app", "web").build()
}

pub(super) fn webs(prefix: &str, n: usize) -> Vec<Pod> {
    (0..n).map(|i| web(&format!("{prefix}-{i}"))).collect()
}

pub(super) fn handle(services: Vec<Service>, replica_sets: Vec<ReplicaSet>) -> Handle {
    Handle {
        client: None,
        listers: Listers::fill(vec![], services, replica_sets, vec![]),
        waiting: Default::default(),
    }
}

pub(super) fn plugin_with(args: Value, h: &Handle) -> PodTopologySpread {
    PodTopologySpread::with_args(parse_args(NAME, &args).unwrap(), h).unwrap()
}

pub(super) fn plugin() -> PodTopologySpread {
    plugin_with(Value::Null, &Handle::default())
}

pub(super) fn zone_node(name: &str, zone: &str) -> NodeBuilder {
    node(name).label(ZONE, zone)
}

pub(super) fn ok() -> Status {
    Status::success()
}
pub(super) fn skew() -> Status {
    Status::unschedulable(REASON_CONSTRAINTS_NOT_MATCH)
}
pub(super) fn no_label() -> Status {
    Status::unresolvable(REASON_NODE_LABEL_NOT_MATCH)
}

/// PreScore (over `filtered`, by index), Score and NormalizeScore:
/// (raw, normalized), or None when PreScore skips.
pub(super) fn run_score(
    pl: &PodTopologySpread,
    p: &Pod,
    s: &Snapshot,
    filtered: Option<&[usize]>,
) -> Option<(Vec<i64>, Vec<i64>)> {
    let pi = info(p.clone());
    let nodes: Vec<Arc<NodeInfo>> = match filtered {
        Some(idx) => idx.iter().map(|&i| s.nodes[i].clone()).collect(),
        None => s.nodes.clone(),
    };
    let mut st = CycleState::default();
    let status = pl.pre_score(&mut st, &pi, &nodes, s);
    if status.code == Code::Skip {
        return None;
    }
    assert!(status.is_success(), "{status:?}");
    let mut scores: Vec<NodeScore> = nodes
        .iter()
        .map(|n| {
            let (score, st) = pl.score(&st, &pi, n);
            assert!(st.is_success());
            NodeScore {
                name: n.name.clone(),
                score,
            }
        })
        .collect();
    let raw = scores.iter().map(|s| s.score).collect();
    assert!(pl.normalize(&st, &pi, &mut scores).is_success());
    Some((raw, scores.iter().map(|s| s.score).collect()))
}

pub(super) fn service(name: &str, ns: &str, selector: Option<&[(&str, &str)]>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: selector.map(map),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn defaults_snapshot() -> Snapshot {
    snap(vec![
        (zone_node("n1", "z1"), webs("a", 2)),
        (zone_node("n2", "z1"), vec![]),
        (zone_node("n3", "z2"), webs("c", 1)),
        (node("n4"), webs("d", 1)),
    ])
}

//! Builders shared by InterPodAffinity's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Namespace, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use serde_json::Value;

use super::{
    InterPodAffinity, NAME, REASON_AFFINITY, REASON_ANTI_AFFINITY, REASON_EXISTING_ANTI_AFFINITY,
};
use crate::framework::Status;
use crate::listers::Listers;
use crate::plugins::{parse_args, Handle};
use crate::testing::{node, NodeBuilder, PodBuilder};
pub(super) use crate::testing::{run_filter, snap};

pub(super) const ZONE: &str = "topology.kubernetes.io/zone";
pub(super) const HOST: &str = "kubernetes.io/hostname";

pub(super) fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn term(key: &str, sel: &[(&str, &str)]) -> PodAffinityTerm {
    PodAffinityTerm {
        topology_key: key.into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(map(sel)),
            match_expressions: None,
        }),
        ..Default::default()
    }
}

/// A pod's pod-affinity terms: required affinity and anti-affinity, and
/// weighted preferred ones.
#[derive(Default)]
pub(super) struct Aff {
    pub(super) req: Vec<PodAffinityTerm>,
    pub(super) anti: Vec<PodAffinityTerm>,
    pub(super) pref: Vec<(i32, PodAffinityTerm)>,
    pub(super) pref_anti: Vec<(i32, PodAffinityTerm)>,
}

pub(super) fn weighted(v: Vec<(i32, PodAffinityTerm)>) -> Option<Vec<WeightedPodAffinityTerm>> {
    (!v.is_empty()).then(|| {
        v.into_iter()
            .map(|(weight, pod_affinity_term)| WeightedPodAffinityTerm {
                weight,
                pod_affinity_term,
            })
            .collect()
    })
}

pub(super) fn with(p: PodBuilder, a: Aff) -> Pod {
    let mut p = p.build();
    let some = |v: Vec<PodAffinityTerm>| (!v.is_empty()).then_some(v);
    let has_aff = !a.req.is_empty() || !a.pref.is_empty();
    let has_anti = !a.anti.is_empty() || !a.pref_anti.is_empty();
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        pod_affinity: has_aff.then(|| PodAffinity {
            required_during_scheduling_ignored_during_execution: some(a.req),
            preferred_during_scheduling_ignored_during_execution: weighted(a.pref),
        }),
        pod_anti_affinity: has_anti.then(|| PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: some(a.anti),
            preferred_during_scheduling_ignored_during_execution: weighted(a.pref_anti),
        }),
        node_affinity: None,
    });
    p
}

pub(super) fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(map(labels)),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(super) fn handle(namespaces: Vec<Namespace>) -> Handle {
    Handle {
        client: None,
        listers: Listers::fill(namespaces, vec![], vec![], vec![]),
        waiting: Default::default(),
    }
}

pub(super) fn plugin_with(args: Value, namespaces: Vec<Namespace>) -> InterPodAffinity {
    let args = parse_args(NAME, &args).unwrap();
    InterPodAffinity::with_args(args, &handle(namespaces)).unwrap()
}

pub(super) fn plugin() -> InterPodAffinity {
    plugin_with(Value::Null, vec![])
}

pub(super) fn zone_node(name: &str, zone: &str) -> NodeBuilder {
    node(name).label(ZONE, zone)
}

pub(super) fn ok() -> Status {
    Status::success()
}
pub(super) fn no_aff() -> Status {
    Status::unresolvable(REASON_AFFINITY)
}
pub(super) fn no_anti() -> Status {
    Status::unschedulable(REASON_ANTI_AFFINITY)
}
pub(super) fn existing() -> Status {
    Status::unschedulable(REASON_EXISTING_ANTI_AFFINITY)
}

pub(super) fn namespaces() -> Vec<Namespace> {
    vec![
        namespace("default", &[("team", "a")]),
        namespace("other", &[("team", "b")]),
        namespace("third", &[("team", "a")]),
    ]
}

//! InterPodAffinity's PreFilter (with AddPod/RemovePod) and Filter: pod
//! counts per topology pair for the existing pods' required anti-affinity
//! (symmetry) and the incoming pod's required affinity and anti-affinity.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::terms::{
    matches_all, owner_term_matches, parse_terms, required_affinity_terms,
    required_anti_affinity_terms, Target, Term, TopologyCounts,
};
use super::{
    InterPodAffinity, PRE_FILTER_KEY, REASON_AFFINITY, REASON_ANTI_AFFINITY,
    REASON_EXISTING_ANTI_AFFINITY,
};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, Snapshot, Status,
};
use crate::listers::Listers;

/// The incoming pod's parsed required terms.
#[derive(Debug, Default)]
pub(super) struct Required {
    pub(super) affinity: Vec<Term>,
    pub(super) anti_affinity: Vec<Term>,
}

/// What Filter reads (upstream's `preFilterState`).
#[derive(Clone)]
pub(super) struct PreFilterState {
    /// Existing pods whose required anti-affinity terms match the pod.
    pub(super) existing_anti: TopologyCounts,
    /// Existing pods matching all of the pod's required affinity terms.
    pub(super) affinity: TopologyCounts,
    /// Existing pods matching each of the pod's required anti-affinity terms.
    pub(super) anti_affinity: TopologyCounts,
    pub(super) terms: Arc<Required>,
    /// The pod matches all its own affinity terms (first-pod rule).
    pub(super) self_match: bool,
    /// The labels of the pod's namespace.
    pub(super) namespace_labels: Arc<BTreeMap<String, String>>,
}

impl PreFilterState {
    /// Counts `other` (on `node`) in or out (upstream `updateWithPod`).
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let target = Target {
            namespace: pod.namespace(),
            labels: pod.labels(),
            namespace_labels: &self.namespace_labels,
        };
        for t in required_anti_affinity_terms(&other.pod) {
            if owner_term_matches(t, other, &target) {
                self.existing_anti.add_on(node, &t.topology_key, delta);
            }
        }
        if matches_all(&self.terms.affinity, other) {
            for t in &self.terms.affinity {
                self.affinity.add_on(node, &t.topology_key, delta);
            }
        }
        for t in &self.terms.anti_affinity {
            if t.matches(other) {
                self.anti_affinity.add_on(node, &t.topology_key, delta);
            }
        }
    }
}

pub(super) fn namespace_labels(listers: &Listers, ns: &str) -> BTreeMap<String, String> {
    listers.namespace_labels(ns).unwrap_or_default()
}

/// Existing pods' required anti-affinity terms matching the pod, on the
/// nodes that have such pods.
fn existing_anti_affinity_counts(
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    snapshot: &Snapshot,
) -> TopologyCounts {
    let target = Target {
        namespace: pod.namespace(),
        labels: pod.labels(),
        namespace_labels: ns_labels,
    };
    let mut counts = TopologyCounts::default();
    for &i in &snapshot.have_pods_with_required_anti_affinity {
        let node = &snapshot.nodes[i];
        for existing in &node.pods {
            for t in required_anti_affinity_terms(&existing.pod) {
                if owner_term_matches(t, existing, &target) {
                    counts.add_on(node, &t.topology_key, 1);
                }
            }
        }
    }
    counts
}

/// Existing pods matching the pod's required affinity (all terms) and
/// anti-affinity (per term) terms, over all nodes.
fn incoming_counts(terms: &Required, snapshot: &Snapshot) -> (TopologyCounts, TopologyCounts) {
    let mut affinity = TopologyCounts::default();
    let mut anti = TopologyCounts::default();
    if terms.affinity.is_empty() && terms.anti_affinity.is_empty() {
        return (affinity, anti);
    }
    let mut anti_matched = vec![0i64; terms.anti_affinity.len()];
    for node in &snapshot.nodes {
        let mut matched = 0i64;
        anti_matched.iter_mut().for_each(|n| *n = 0);
        for existing in &node.pods {
            matched += matches_all(&terms.affinity, existing) as i64;
            for (n, t) in anti_matched.iter_mut().zip(&terms.anti_affinity) {
                *n += t.matches(existing) as i64;
            }
        }
        for t in &terms.affinity {
            affinity.add_on(node, &t.topology_key, matched);
        }
        for (n, t) in anti_matched.iter().zip(&terms.anti_affinity) {
            anti.add_on(node, &t.topology_key, *n);
        }
    }
    (affinity, anti)
}

impl InterPodAffinity {
    fn state(state: &CycleState) -> Result<&PreFilterState, Status> {
        state
            .read::<PreFilterState>(PRE_FILTER_KEY)
            .ok_or_else(|| Status::error(format!("reading {PRE_FILTER_KEY:?} from cycleState")))
    }

    fn update(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
    ) -> Status {
        // No state: PreFilter skipped this pod, so Filter will not run.
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update(pod, other, node, delta);
        }
        Status::success()
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let parsed = parse_terms(pod, required_affinity_terms(&pod.pod), &self.listers).and_then(
            |affinity| {
                let anti = parse_terms(pod, required_anti_affinity_terms(&pod.pod), &self.listers)?;
                Ok(Required {
                    affinity,
                    anti_affinity: anti,
                })
            },
        );
        let terms = match parsed {
            Ok(t) => t,
            Err(e) => return Status::unresolvable(format!("parsing pod: {e}")),
        };
        let ns_labels = namespace_labels(&self.listers, pod.namespace());
        let existing_anti = existing_anti_affinity_counts(pod, &ns_labels, snapshot);
        let (affinity, anti_affinity) = incoming_counts(&terms, snapshot);
        if existing_anti.is_empty() && terms.affinity.is_empty() && terms.anti_affinity.is_empty() {
            return Status::skip();
        }
        let self_match = matches_all(&terms.affinity, pod);
        state.write(
            PRE_FILTER_KEY,
            PreFilterState {
                existing_anti,
                affinity,
                anti_affinity,
                terms: Arc::new(terms),
                self_match,
                namespace_labels: Arc::new(ns_labels),
            },
        );
        Status::success()
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        to_add: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update(state, pod, to_add, node, 1)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        to_remove: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update(state, pod, to_remove, node, -1)
    }
}

/// Every affinity term's topology key is on the node and some pair has a
/// matching pod; or no pod anywhere matches and the pod matches its own
/// terms (the first of a group).
fn satisfies_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    let labels = node.labels();
    let mut pods_exist = true;
    for t in &s.terms.affinity {
        match labels.get(&t.topology_key) {
            Some(v) => pods_exist &= s.affinity.get(&t.topology_key, v) > 0,
            None => return false,
        }
    }
    pods_exist || (s.affinity.is_empty() && s.self_match)
}

/// No pod matching an anti-affinity term shares the term's pair.
fn satisfies_anti_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    if s.anti_affinity.is_empty() {
        return true;
    }
    let labels = node.labels();
    !s.terms.anti_affinity.iter().any(|t| {
        labels
            .get(&t.topology_key)
            .is_some_and(|v| s.anti_affinity.get(&t.topology_key, v) > 0)
    })
}

/// No existing pod's anti-affinity covers any of the node's labels.
fn satisfies_existing_anti_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    !s.existing_anti.covers(node.labels())
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let s = match Self::state(state) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if !satisfies_affinity(s, node) {
            return Status::unresolvable(REASON_AFFINITY);
        }
        if !satisfies_anti_affinity(s, node) {
            return Status::unschedulable(REASON_ANTI_AFFINITY);
        }
        if !satisfies_existing_anti_affinity(s, node) {
            return Status::unschedulable(REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

#[cfg(test)]
#[path = "filtering_tests.rs"]
mod tests;

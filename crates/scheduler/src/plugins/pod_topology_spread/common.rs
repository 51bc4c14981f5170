//! PodTopologySpread's constraints: parsing with `matchLabelKeys`, the
//! default constraints and their selector, which nodes count (node
//! inclusion policies) and which pods count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController, TopologySpreadConstraint};
use kube::runtime::reflector::ObjectRef;

use super::PodTopologySpread;
use crate::framework::PodInfo;
use crate::listers::Listers;
use crate::plugins::helpers::{
    find_untolerated_taint, is_do_not_schedule_taint, node_taints,
    pod_matches_node_selector_and_affinity, pod_tolerations, LabelRequirement, Selector,
    SelectorError,
};

/// A constraint with its selector parsed (upstream's
/// `topologySpreadConstraint`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Constraint {
    pub(super) max_skew: i64,
    pub(super) topology_key: String,
    pub(super) selector: Selector,
    pub(super) min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub(super) honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore).
    pub(super) honor_node_taints: bool,
}

/// The constraints for `action`, selectors parsed, `matchLabelKeys` merged
/// from the pod's labels (upstream `filterTopologySpreadConstraints`).
pub(super) fn filter_constraints(
    constraints: &[TopologySpreadConstraint],
    pod_labels: &BTreeMap<String, String>,
    action: &str,
) -> Result<Vec<Constraint>, SelectorError> {
    let mut out = Vec::new();
    for c in constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
    {
        let mut selector = Selector::parse(c.label_selector.as_ref())?;
        let own: Vec<LabelRequirement> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod_labels.get(k).map(|v| LabelRequirement::equals(k, v)))
            .collect();
        // A null selector stays matching nothing (upstream
        // `mergeLabelSetWithSelector`).
        if !own.is_empty() && selector != Selector::Nothing {
            let mut merged = Selector::Requirements(own);
            merged.add_all(&selector);
            selector = merged;
        }
        out.push(Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c
                .node_affinity_policy
                .as_deref()
                .is_none_or(|p| p == "Honor"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    Ok(out)
}

/// Whether the node has every constraint's topology key.
pub(super) fn has_all_keys(labels: &BTreeMap<String, String>, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Matching pods on a node: same namespace, not terminating. A selector
/// without requirements counts nothing (upstream `countPodsMatchSelector`).
pub(super) fn count_matching(pods: &[Arc<PodInfo>], selector: &Selector, namespace: &str) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.iter()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.namespace() == namespace
                && selector.matches(p.labels())
        })
        .count() as i64
}

/// Whether a node counts for a constraint under its node inclusion
/// policies; each check runs at most once per node.
pub(super) struct Inclusion<'a> {
    pod: &'a Pod,
    node: &'a Node,
    affinity: Option<bool>,
    taints: Option<bool>,
}

impl<'a> Inclusion<'a> {
    pub(super) fn new(pod: &'a Pod, node: &'a Node) -> Self {
        Inclusion {
            pod,
            node,
            affinity: None,
            taints: None,
        }
    }

    pub(super) fn includes(&mut self, c: &Constraint) -> bool {
        let (pod, node) = (self.pod, self.node);
        if c.honor_node_affinity
            && !*self
                .affinity
                .get_or_insert_with(|| pod_matches_node_selector_and_affinity(pod, node))
        {
            return false;
        }
        if c.honor_node_taints {
            let tolerated = self.taints.get_or_insert_with(|| {
                find_untolerated_taint(
                    node_taints(node),
                    pod_tolerations(pod),
                    is_do_not_schedule_taint,
                )
                .is_none()
            });
            if !*tolerated {
                return false;
            }
        }
        true
    }
}

/// Adds `delta` to `value`'s count (creating it), returning the new count.
pub(super) fn bump(counts: &mut HashMap<String, i64>, value: &str, delta: i64) -> i64 {
    let n = match counts.get_mut(value) {
        Some(n) => n,
        None => counts.entry(value.to_string()).or_default(),
    };
    *n += delta;
    *n
}

/// Selects the pods of the Services, ReplicationController, ReplicaSet or
/// StatefulSet behind `pod` (upstream `helper.DefaultSelector`): the merged
/// selectors of the Services in its namespace that select it, plus the
/// selector of its controller (an owner reference with `controller: true`)
/// when that is a ReplicationController (`v1`), ReplicaSet or StatefulSet
/// (`apps/v1`) found in the listers. Empty (matching everything) when
/// nothing selects it.
pub fn default_selector(pod: &PodInfo, listers: &Listers) -> Selector {
    let (ns, labels) = (pod.namespace(), pod.labels());
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for svc in listers.services.state() {
        if svc.metadata.namespace.as_deref().unwrap_or_default() != ns {
            continue;
        }
        // A Service without a selector selects nothing.
        let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        if sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut selector = Selector::from_set(&set);
    let mut owners = pod.pod.metadata.owner_references.iter().flatten();
    let Some(owner) = owners.find(|o| o.controller == Some(true)) else {
        return selector;
    };
    let name = owner.name.as_str();
    match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("v1", "ReplicationController") => {
            let key = ObjectRef::<ReplicationController>::new(name).within(ns);
            if let Some(rc) = listers.replication_controllers.get(&key) {
                let rc_sel = rc.spec.as_ref().and_then(|s| s.selector.as_ref());
                set.extend(
                    rc_sel
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                selector = Selector::from_set(&set);
            }
        }
        ("apps/v1", "ReplicaSet") => {
            let key = ObjectRef::<ReplicaSet>::new(name).within(ns);
            let rs = listers.replica_sets.get(&key);
            let sel = rs
                .as_ref()
                .and_then(|rs| rs.spec.as_ref())
                .map(|s| &s.selector);
            if let Some(Ok(other)) = sel.map(|s| Selector::parse(Some(s))) {
                selector.add_all(&other);
            }
        }
        ("apps/v1", "StatefulSet") => {
            let key = ObjectRef::<StatefulSet>::new(name).within(ns);
            let ss = listers.stateful_sets.get(&key);
            let sel = ss
                .as_ref()
                .and_then(|ss| ss.spec.as_ref())
                .map(|s| &s.selector);
            if let Some(Ok(other)) = sel.map(|s| Selector::parse(Some(s))) {
                selector.add_all(&other);
            }
        }
        _ => {}
    }
    selector
}

impl PodTopologySpread {
    /// The pod's constraints for `action`, or the default ones if it has
    /// none (upstream `getConstraints` / `buildDefaultConstraints`).
    pub(super) fn constraints(
        &self,
        pod: &PodInfo,
        action: &str,
    ) -> Result<Vec<Constraint>, SelectorError> {
        let own = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        if !own.is_empty() {
            return filter_constraints(own, pod.labels(), action);
        }
        let mut constraints = filter_constraints(&self.default_constraints, pod.labels(), action)?;
        if constraints.is_empty() {
            return Ok(constraints);
        }
        let selector = default_selector(pod, &self.listers);
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        for c in &mut constraints {
            c.selector = selector.clone();
        }
        Ok(constraints)
    }
}

#[cfg(test)]
#[path = "common_tests.rs"]
mod tests;

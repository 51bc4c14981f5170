//! InterPodAffinity's terms: the pod-affinity terms of a pod, matching a
//! pod against an existing pod's term in place, the incoming pod's terms
//! parsed once per cycle, and pod counts per topology pair.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use crate::framework::{NodeInfo, PodInfo};
use crate::listers::Listers;
use crate::plugins::helpers::{
    label_selector_matches, LabelOp, LabelRequirement, Selector, SelectorError,
};

/// The pod's required pod-affinity terms.
pub(super) fn required_affinity_terms(pod: &Pod) -> &[PodAffinityTerm] {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    aff.and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The pod's required pod-anti-affinity terms.
pub(super) fn required_anti_affinity_terms(pod: &Pod) -> &[PodAffinityTerm] {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    aff.and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

pub(super) fn preferred_affinity_terms(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    aff.and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

pub(super) fn preferred_anti_affinity_terms(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    aff.and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Whether the pod has pod affinity or anti-affinity at all (upstream's
/// `PodsWithAffinity` membership).
pub(super) fn has_pod_affinity(pod: &Pod) -> bool {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    aff.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

/// A pod as the target of another pod's term.
pub(super) struct Target<'a> {
    pub(super) namespace: &'a str,
    pub(super) labels: &'a BTreeMap<String, String>,
    /// The labels of the target's namespace (for `namespaceSelector`).
    pub(super) namespace_labels: &'a BTreeMap<String, String>,
}

/// Whether `target` matches `term`, a term of the existing pod `owner`
/// (upstream `AffinityTerm.Matches` on the owner's parsed term, given the
/// target namespace's labels). Allocates nothing.
pub(super) fn owner_term_matches(term: &PodAffinityTerm, owner: &PodInfo, target: &Target) -> bool {
    let names = term.namespaces.as_deref().unwrap_or_default();
    let in_namespace = if names.is_empty() && term.namespace_selector.is_none() {
        owner.namespace() == target.namespace
    } else {
        names.iter().any(|n| n == target.namespace)
            || term
                .namespace_selector
                .as_ref()
                .is_some_and(|s| label_selector_matches(s, target.namespace_labels))
    };
    let Some(selector) = &term.label_selector else {
        return false;
    };
    if !in_namespace || !label_selector_matches(selector, target.labels) {
        return false;
    }
    // matchLabelKeys: `key In (owner's value)`; mismatchLabelKeys: NotIn.
    let owner_labels = owner.labels();
    let keys_hold = |keys: &Option<Vec<String>>, equal: bool| {
        keys.iter().flatten().all(|k| match owner_labels.get(k) {
            None => true,
            Some(v) => (target.labels.get(k) == Some(v)) == equal,
        })
    };
    keys_hold(&term.match_label_keys, true) && keys_hold(&term.mismatch_label_keys, false)
}

/// A term of the incoming pod, parsed once per cycle, its namespace
/// selector resolved to namespace names (upstream's
/// `mergeAffinityTermNamespacesIfNotEmpty`).
#[derive(Debug, Clone)]
pub(super) struct Term {
    pub(super) topology_key: String,
    pub(super) selector: Selector,
    pub(super) namespaces: HashSet<String>,
    /// `namespaceSelector: {}`: every namespace.
    pub(super) all_namespaces: bool,
}

impl Term {
    pub(super) fn parse(
        owner: &PodInfo,
        t: &PodAffinityTerm,
        listers: &Listers,
    ) -> Result<Term, SelectorError> {
        let mut selector = Selector::parse(t.label_selector.as_ref())?;
        let labels = owner.labels();
        for (keys, op) in [
            (&t.match_label_keys, LabelOp::In),
            (&t.mismatch_label_keys, LabelOp::NotIn),
        ] {
            for key in keys.iter().flatten() {
                if let Some(v) = labels.get(key) {
                    selector.add(LabelRequirement {
                        key: key.clone(),
                        op,
                        values: vec![v.clone()],
                    });
                }
            }
        }
        let names = t.namespaces.as_deref().unwrap_or_default();
        let mut namespaces: HashSet<String> = if names.is_empty() && t.namespace_selector.is_none()
        {
            HashSet::from([owner.namespace().to_string()])
        } else {
            names.iter().cloned().collect()
        };
        let ns_selector = Selector::parse(t.namespace_selector.as_ref())?;
        let all_namespaces = ns_selector.is_empty();
        if !all_namespaces && ns_selector != Selector::Nothing {
            let none = BTreeMap::new();
            for ns in listers.namespaces.state() {
                if ns_selector.matches(ns.metadata.labels.as_ref().unwrap_or(&none)) {
                    namespaces.extend(ns.metadata.name.clone());
                }
            }
        }
        Ok(Term {
            topology_key: t.topology_key.clone(),
            selector,
            namespaces,
            all_namespaces,
        })
    }

    pub(super) fn matches(&self, pod: &PodInfo) -> bool {
        (self.all_namespaces || self.namespaces.contains(pod.namespace()))
            && self.selector.matches(pod.labels())
    }
}

pub(super) fn parse_terms<'a>(
    owner: &PodInfo,
    terms: impl IntoIterator<Item = &'a PodAffinityTerm>,
    listers: &Listers,
) -> Result<Vec<Term>, SelectorError> {
    terms
        .into_iter()
        .map(|t| Term::parse(owner, t, listers))
        .collect()
}

/// Upstream's `podMatchesAllAffinityTerms`: false for no terms.
pub(super) fn matches_all(terms: &[Term], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod))
}

// ------------------------------------------------------------ counts

/// Pod counts per topology pair; pairs counting zero are dropped, so
/// emptiness means "no pair counts anything" (the first-pod rule reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    pub(super) fn add(&mut self, key: &str, value: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let values = match self.0.get_mut(key) {
            Some(v) => v,
            None => self.0.entry(key.to_string()).or_default(),
        };
        let n = match values.get_mut(value) {
            Some(n) => n,
            None => values.entry(value.to_string()).or_default(),
        };
        *n += delta;
        if *n == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    /// Adds `delta` to the node's pair for `key`, if the node has the label.
    pub(super) fn add_on(&mut self, node: &NodeInfo, key: &str, delta: i64) {
        if let Some(v) = node.labels().get(key) {
            self.add(key, v, delta);
        }
    }

    pub(super) fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|v| v.get(value))
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any pair counting more than zero is among `labels`.
    pub(super) fn covers(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().any(|(key, values)| {
            labels
                .get(key)
                .is_some_and(|v| values.get(v).is_some_and(|n| *n > 0))
        })
    }
}

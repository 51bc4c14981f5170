//! PodTopologySpread's PreFilter (with AddPod/RemovePod) and Filter:
//! matching pods per domain of each `DoNotSchedule` constraint, the global
//! minimum, and the skew check.

use std::collections::HashMap;
use std::sync::Arc;

use super::common::{bump, count_matching, has_all_keys, Constraint, Inclusion};
use super::{
    PodTopologySpread, DO_NOT_SCHEDULE, LABEL_HOSTNAME, PRE_FILTER_KEY,
    REASON_CONSTRAINTS_NOT_MATCH, REASON_NODE_LABEL_NOT_MATCH,
};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, Snapshot, Status,
};
use crate::plugins::helpers::SelectorError;

/// The two domains with the fewest matching pods: `paths[0]` always holds
/// the minimum count (upstream `criticalPaths`, including its placeholder
/// value `""` at `i32::MAX`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CriticalPaths([(String, i64); 2]);

impl CriticalPaths {
    fn new() -> Self {
        let none = (String::new(), i64::from(i32::MAX));
        CriticalPaths([none.clone(), none])
    }

    fn update(&mut self, value: &str, num: i64) {
        let p = &mut self.0;
        let at = if value == p[0].0 {
            Some(0)
        } else if value == p[1].0 {
            Some(1)
        } else {
            None
        };
        match at {
            Some(i) => {
                p[i].1 = num;
                if p[0].1 > p[1].1 {
                    p.swap(0, 1);
                }
            }
            None if num < p[0].1 => {
                p[1] = std::mem::replace(&mut p[0], (value.to_string(), num));
            }
            None if num < p[1].1 => p[1] = (value.to_string(), num),
            None => {}
        }
    }

    fn min(&self) -> i64 {
        self.0[0].1
    }
}

/// What Filter reads (upstream's `preFilterState`).
#[derive(Debug, Clone)]
struct PreFilterState {
    constraints: Arc<Vec<Constraint>>,
    /// Per constraint: the pod matches the selector itself.
    self_match: Arc<Vec<bool>>,
    paths: Vec<CriticalPaths>,
    /// Per constraint: matching pods per domain (zero counts included: the
    /// map's size is the number of eligible domains).
    counts: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    /// The global minimum, 0 with fewer eligible domains than `minDomains`.
    fn min_match(&self, i: usize) -> i64 {
        if (self.counts[i].len() as i64) < self.constraints[i].min_domains {
            0
        } else {
            self.paths[i].min()
        }
    }

    /// Counts `other` (on `node`) in or out (upstream `updateWithPod`).
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if other.namespace() != pod.namespace() {
            return;
        }
        let labels = node.labels();
        if !has_all_keys(labels, &self.constraints) {
            return;
        }
        let mut inclusion = Inclusion::new(&pod.pod, &node.node);
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.selector.matches(other.labels()) || !inclusion.includes(c) {
                continue;
            }
            let value = &labels[&c.topology_key];
            let n = bump(&mut self.counts[i], value, delta);
            self.paths[i].update(value, n);
        }
    }
}

impl PodTopologySpread {
    /// Upstream's `calPreFilterState`; `None` when there are no
    /// `DoNotSchedule` constraints.
    fn pre_filter_state(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<Option<PreFilterState>, SelectorError> {
        let constraints = self.constraints(pod, DO_NOT_SCHEDULE)?;
        if constraints.is_empty() {
            return Ok(None);
        }
        let mut counts: Vec<HashMap<String, i64>> = constraints
            .iter()
            .map(|c| {
                let hint = if c.topology_key == LABEL_HOSTNAME {
                    snapshot.nodes.len()
                } else {
                    0
                };
                HashMap::with_capacity(hint)
            })
            .collect();
        for node in &snapshot.nodes {
            let labels = node.labels();
            if !has_all_keys(labels, &constraints) {
                continue;
            }
            let mut inclusion = Inclusion::new(&pod.pod, &node.node);
            for (i, c) in constraints.iter().enumerate() {
                if inclusion.includes(c) {
                    let n = count_matching(&node.pods, &c.selector, pod.namespace());
                    bump(&mut counts[i], &labels[&c.topology_key], n);
                }
            }
        }
        let paths = counts
            .iter()
            .map(|m| {
                let mut p = CriticalPaths::new();
                for (value, n) in m {
                    p.update(value, *n);
                }
                p
            })
            .collect();
        let self_match = constraints
            .iter()
            .map(|c| c.selector.matches(pod.labels()))
            .collect();
        Ok(Some(PreFilterState {
            constraints: Arc::new(constraints),
            self_match: Arc::new(self_match),
            paths,
            counts,
        }))
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

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        match self.pre_filter_state(pod, snapshot) {
            Err(e) => Status::error(format!(
                "obtaining pod's hard topology spread constraints: {e}"
            )),
            Ok(None) => Status::skip(),
            Ok(Some(s)) => {
                state.write(PRE_FILTER_KEY, s);
                Status::success()
            }
        }
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

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error(format!("reading {PRE_FILTER_KEY:?} from cycleState"));
        };
        let labels = node.labels();
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                return Status::unresolvable(REASON_NODE_LABEL_NOT_MATCH);
            };
            let matched = s.counts[i].get(value).copied().unwrap_or(0);
            let skew = matched + i64::from(s.self_match[i]) - s.min_match(i);
            if skew > c.max_skew {
                return Status::unschedulable(REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
#[path = "filtering_tests.rs"]
mod tests;

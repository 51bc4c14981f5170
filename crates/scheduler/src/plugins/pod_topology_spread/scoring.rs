//! PodTopologySpread's PreScore, Score and NormalizeScore: matching pods
//! per domain of each `ScheduleAnyway` constraint, weighted by the log of
//! the number of domains; fewer pods score higher after normalization.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::common::{bump, count_matching, has_all_keys, Constraint, Inclusion};
use super::{PodTopologySpread, LABEL_HOSTNAME, PRE_SCORE_KEY, SCHEDULE_ANYWAY};
use crate::framework::{
    CycleState, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin, Snapshot, Status,
    MAX_NODE_SCORE,
};

/// What Score reads (upstream's `preScoreState`).
#[derive(Debug, Clone)]
struct PreScoreState {
    constraints: Arc<Vec<Constraint>>,
    namespace: String,
    /// Filtered nodes lacking a topology key (scored 0).
    ignored: Arc<HashSet<String>>,
    /// Per constraint (except hostname ones, counted in Score): matching
    /// pods per domain of the filtered nodes.
    counts: Arc<Vec<HashMap<String, i64>>>,
    /// Per constraint: `ln(domains + 2)`.
    weights: Arc<Vec<f64>>,
}

/// Upstream's `scoreForCount`: `maxSkew - 1` waters differences down.
fn score_for_count(count: i64, max_skew: i64, weight: f64) -> f64 {
    count as f64 * weight + (max_skew - 1) as f64
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        if nodes.is_empty() || snapshot.nodes.is_empty() {
            return Status::skip();
        }
        let constraints = match self.constraints(pod, SCHEDULE_ANYWAY) {
            Ok(c) if c.is_empty() => return Status::skip(),
            Ok(c) => c,
            Err(e) => {
                return Status::error(format!(
                    "obtaining pod's soft topology spread constraints: {e}"
                ))
            }
        };
        // System defaults do not require every key, so nodes without a
        // zone still spread by hostname.
        let has_own = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let require_all = has_own || !self.system_defaulted;
        let mut ignored = HashSet::new();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for node in nodes {
            let labels = node.labels();
            if require_all && !has_all_keys(labels, &constraints) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key != LABEL_HOSTNAME {
                    let value = labels.get(&c.topology_key).map_or("", String::as_str);
                    bump(&mut counts[i], value, 0);
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    m.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in &snapshot.nodes {
            let labels = node.labels();
            if require_all && !has_all_keys(labels, &constraints) {
                continue;
            }
            let mut inclusion = Inclusion::new(&pod.pod, &node.node);
            for (i, c) in constraints.iter().enumerate() {
                // Only domains of the filtered nodes are counted (none for
                // hostname constraints, counted in Score).
                let value = labels.get(&c.topology_key).map_or("", String::as_str);
                if let Some(n) = counts[i].get_mut(value) {
                    if inclusion.includes(c) {
                        *n += count_matching(&node.pods, &c.selector, pod.namespace());
                    }
                }
            }
        }
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                constraints: Arc::new(constraints),
                namespace: pod.namespace().to_string(),
                ignored: Arc::new(ignored),
                counts: Arc::new(counts),
                weights: Arc::new(weights),
            },
        );
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    /// The weighted matching-pod counts of the node's domains (lower is
    /// better; normalization inverts).
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (
                0,
                Status::error(format!("reading {PRE_SCORE_KEY:?} from cycleState")),
            );
        };
        if s.ignored.contains(&node.name) {
            return (0, Status::success());
        }
        let labels = node.labels();
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                count_matching(&node.pods, &c.selector, &s.namespace)
            } else {
                s.counts[i].get(value).copied().unwrap_or(0)
            };
            score += score_for_count(count, c.max_skew, s.weights[i]);
        }
        (score.round() as i64, Status::success())
    }

    /// `100 * (max + min - score) / max` over the scored nodes; ignored
    /// nodes get 0, and all get 100 when the maximum is 0.
    fn normalize(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return Status::error(format!("reading {PRE_SCORE_KEY:?} from cycleState"));
        };
        let (mut min, mut max) = (i64::MAX, 0i64);
        for sc in scores.iter().filter(|sc| !s.ignored.contains(&sc.name)) {
            min = min.min(sc.score);
            max = max.max(sc.score);
        }
        for sc in scores.iter_mut() {
            sc.score = if s.ignored.contains(&sc.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - sc.score) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
#[path = "scoring_tests.rs"]
mod tests;

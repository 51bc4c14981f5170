//! InterPodAffinity's PreScore, Score and NormalizeScore: weights of the
//! preferred terms (the incoming pod's and, symmetrically, the existing
//! pods', with their required affinity at `hardPodAffinityWeight`) per
//! topology pair, scaled from the lowest to the highest score.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::WeightedPodAffinityTerm;

use super::filtering::namespace_labels;
use super::terms::{
    has_pod_affinity, owner_term_matches, preferred_affinity_terms, preferred_anti_affinity_terms,
    required_affinity_terms, Target, Term,
};
use super::{InterPodAffinity, PRE_SCORE_KEY};
use crate::framework::{
    CycleState, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin, Snapshot, Status,
    MAX_NODE_SCORE,
};
use crate::plugins::helpers::SelectorError;

/// Score per topology key and value; entries stay even at zero (an entry
/// means some term applied).
pub(super) type ScoreMap = HashMap<String, HashMap<String, i64>>;

fn bump(map: &mut ScoreMap, node: &NodeInfo, key: &str, delta: i64) {
    let Some(value) = node.labels().get(key) else {
        return;
    };
    let values = match map.get_mut(key) {
        Some(v) => v,
        None => map.entry(key.to_string()).or_default(),
    };
    match values.get_mut(value) {
        Some(n) => *n += delta,
        None => {
            values.insert(value.clone(), delta);
        }
    }
}

/// What Score reads.
#[derive(Clone)]
pub(super) struct PreScoreState {
    pub(super) scores: Arc<ScoreMap>,
}

/// The incoming pod's preferred terms, parsed, with their weights.
struct Preferred {
    affinity: Vec<(i64, Term)>,
    anti_affinity: Vec<(i64, Term)>,
}

impl InterPodAffinity {
    fn preferred(&self, pod: &PodInfo) -> Result<Preferred, SelectorError> {
        let parse = |terms: &[WeightedPodAffinityTerm]| {
            terms
                .iter()
                .map(|w| {
                    Term::parse(pod, &w.pod_affinity_term, &self.listers)
                        .map(|t| (i64::from(w.weight), t))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Preferred {
            affinity: parse(preferred_affinity_terms(&pod.pod))?,
            anti_affinity: parse(preferred_anti_affinity_terms(&pod.pod))?,
        })
    }

    /// Upstream's `processExistingPod`.
    fn process_existing(
        &self,
        preferred: &Preferred,
        target: &Target,
        existing: &PodInfo,
        node: &NodeInfo,
        scores: &mut ScoreMap,
    ) {
        for (w, t) in &preferred.affinity {
            if t.matches(existing) {
                bump(scores, node, &t.topology_key, *w);
            }
        }
        for (w, t) in &preferred.anti_affinity {
            if t.matches(existing) {
                bump(scores, node, &t.topology_key, -*w);
            }
        }
        let hard = i64::from(self.args.hard_pod_affinity_weight);
        if hard > 0 {
            for t in required_affinity_terms(&existing.pod) {
                if owner_term_matches(t, existing, target) {
                    bump(scores, node, &t.topology_key, hard);
                }
            }
        }
        for w in preferred_affinity_terms(&existing.pod) {
            if owner_term_matches(&w.pod_affinity_term, existing, target) {
                let key = &w.pod_affinity_term.topology_key;
                bump(scores, node, key, i64::from(w.weight));
            }
        }
        for w in preferred_anti_affinity_terms(&existing.pod) {
            if owner_term_matches(&w.pod_affinity_term, existing, target) {
                let key = &w.pod_affinity_term.topology_key;
                bump(scores, node, key, -i64::from(w.weight));
            }
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let has_constraints = !preferred_affinity_terms(&pod.pod).is_empty()
            || !preferred_anti_affinity_terms(&pod.pod).is_empty();
        if self.args.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        let preferred = match self.preferred(pod) {
            Ok(p) => p,
            Err(e) => return Status::error(format!("parsing preferred terms: {e}")),
        };
        let ns_labels = namespace_labels(&self.listers, pod.namespace());
        let target = Target {
            namespace: pod.namespace(),
            labels: pod.labels(),
            namespace_labels: &ns_labels,
        };
        // Without preferred terms of its own, only pods with affinity can
        // contribute.
        let nodes: Box<dyn Iterator<Item = &Arc<NodeInfo>>> = if has_constraints {
            Box::new(snapshot.nodes.iter())
        } else {
            Box::new(
                snapshot
                    .have_pods_with_affinity
                    .iter()
                    .map(|&i| &snapshot.nodes[i]),
            )
        };
        let mut scores = ScoreMap::new();
        for node in nodes {
            if node.labels().is_empty() {
                continue;
            }
            for existing in &node.pods {
                if has_constraints || has_pod_affinity(&existing.pod) {
                    self.process_existing(&preferred, &target, existing, node, &mut scores);
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                scores: Arc::new(scores),
            },
        );
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    /// The sum of the scores of the node's topology pairs (negative for
    /// anti-affinity).
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (
                0,
                Status::error(format!("reading {PRE_SCORE_KEY:?} from cycleState")),
            );
        };
        let labels = node.labels();
        let score = s
            .scores
            .iter()
            .filter_map(|(key, values)| values.get(labels.get(key)?))
            .sum();
        (score, Status::success())
    }

    /// Scales from the lowest score (0) to the highest (100); all equal: 0.
    fn normalize(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return Status::error(format!("reading {PRE_SCORE_KEY:?} from cycleState"));
        };
        if s.scores.is_empty() {
            return Status::success();
        }
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for s in scores {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
#[path = "scoring_tests.rs"]
mod tests;

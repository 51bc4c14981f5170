//! One scheduling cycle over the cache's snapshot (upstream's
//! `schedulePod`): PreFilter, Filter over enough nodes (starting where the
//! last cycle stopped), PostFilter when none fits, PreScore, Score,
//! NormalizeScore, weights, and the highest-scoring node (ties broken at
//! random). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::framework::{
    Code, CycleState, NodeInfo, NodeScore, PodInfo, PostFilterResult, Snapshot, Status,
};
use crate::profile::Profile;

/// Why no node was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// A PreFilter rejected the pod for every node.
    pub pre_filter: Option<Status>,
    /// Per node, the Filter status that rejected it.
    pub node_statuses: HashMap<String, Status>,
    /// What PostFilter said (e.g. preemption), if it ran.
    pub post_filter_msg: Option<String>,
    pub nominated: Option<PostFilterResult>,
}

impl FitError {
    /// Upstream's message: `0/5 nodes are available: 2 Insufficient cpu,
    /// 3 node(s) had untolerated taint {a: b}. preemption: ...`.
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        match &self.pre_filter {
            Some(s) => msg.push_str(&format!(" {}.", s.reasons.join(", "))),
            None => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for s in self.node_statuses.values() {
                    for r in &s.reasons {
                        *counts.entry(r.as_str()).or_default() += 1;
                    }
                }
                let mut parts: Vec<String> =
                    counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
                parts.sort();
                if !parts.is_empty() {
                    msg.push_str(&format!(" {}.", parts.join(", ")));
                }
            }
        }
        if let Some(p) = &self.post_filter_msg {
            msg.push_str(&format!(" {p}."));
        }
        msg
    }

    /// The plugins that rejected the pod (for queueing hints).
    pub fn plugins(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .pre_filter
            .iter()
            .chain(self.node_statuses.values())
            .map(|s| s.plugin)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The outcome of one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Bind to this node.
    Scheduled {
        node: String,
        evaluated: usize,
        feasible: usize,
    },
    /// No node fits.
    Unschedulable(FitError),
    /// A plugin failed.
    Error(String),
}

/// Per node and plugin, what the last attempt saw (for `scheduler explain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// Node → the rejecting plugin and reason.
    pub rejected: BTreeMap<String, (String, String)>,
    /// Node → plugin → weighted score.
    pub scores: BTreeMap<String, BTreeMap<String, i64>>,
    pub chosen: Option<String>,
}

/// A cheap xorshift generator for tie-breaking.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng(t | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The scheduling algorithm's state across cycles.
pub struct Algorithm {
    /// Where the next cycle starts filtering (round robin over nodes).
    next_start: usize,
    rng: Rng,
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm {
            next_start: 0,
            rng: Rng::seeded(),
        }
    }
}

impl Algorithm {
    /// Runs PreFilter through NormalizeScore for `pod`; with `explain`,
    /// records every node's verdict.
    pub fn schedule(
        &mut self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        mut explain: Option<&mut Explanation>,
    ) -> Outcome {
        let all = snapshot.nodes.len();
        if all == 0 {
            return Outcome::Unschedulable(FitError {
                num_all_nodes: 0,
                pre_filter: None,
                node_statuses: HashMap::new(),
                post_filter_msg: None,
                nominated: None,
            });
        }
        // PreFilter.
        for p in &profile.pre_filter {
            let s = p.pre_filter(state, pod, snapshot).with_plugin(p.name());
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filter.insert(p.name());
                }
                Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                    let fit = FitError {
                        num_all_nodes: all,
                        pre_filter: Some(s),
                        node_statuses: HashMap::new(),
                        post_filter_msg: None,
                        nominated: None,
                    };
                    return self.post_filter(profile, state, pod, snapshot, fit);
                }
                _ => return Outcome::Error(format!("{}: {}", p.name(), s.reasons.join(", "))),
            }
        }
        // Filter, over enough nodes.
        let candidates: Vec<usize> = match &state.node_names {
            Some(names) => names
                .iter()
                .filter_map(|n| snapshot.index.get(n).copied())
                .collect(),
            None => Vec::new(),
        };
        let restricted = state.node_names.is_some();
        let total = if restricted { candidates.len() } else { all };
        let want = profile.num_feasible_nodes_to_find(total);
        let mut feasible: Vec<Arc<NodeInfo>> = Vec::new();
        let mut statuses: HashMap<String, Status> = HashMap::new();
        let start = if restricted { 0 } else { self.next_start % all };
        let mut evaluated = 0;
        let order: Box<dyn Iterator<Item = usize>> = if restricted {
            Box::new(candidates.into_iter())
        } else {
            Box::new((0..all).map(move |k| (start + k) % all))
        };
        for idx in order {
            if feasible.len() >= want {
                break;
            }
            let node = &snapshot.nodes[idx];
            evaluated += 1;
            let mut rejected = None;
            for f in &profile.filter {
                if state.skip_filter.contains(f.name()) {
                    continue;
                }
                let s = f.filter(state, pod, node);
                if !s.is_success() {
                    rejected = Some(s.with_plugin(f.name()));
                    break;
                }
            }
            match rejected {
                None => feasible.push(node.clone()),
                Some(s) if s.code == Code::Error => {
                    return Outcome::Error(format!("{}: {}", s.plugin, s.reasons.join(", ")))
                }
                Some(s) => {
                    if let Some(e) = explain.as_deref_mut() {
                        e.rejected.insert(
                            node.name.clone(),
                            (s.plugin.to_string(), s.reasons.join(", ")),
                        );
                    }
                    statuses.insert(node.name.clone(), s);
                }
            }
        }
        if !restricted {
            self.next_start = (start + evaluated) % all;
        }
        if feasible.is_empty() {
            // Nodes excluded by a PreFilter's node set count as rejected.
            let fit = FitError {
                num_all_nodes: all,
                pre_filter: None,
                node_statuses: statuses,
                post_filter_msg: None,
                nominated: None,
            };
            return self.post_filter(profile, state, pod, snapshot, fit);
        }
        let feasible_count = feasible.len();
        if feasible_count == 1 && explain.is_none() {
            return Outcome::Scheduled {
                node: feasible[0].name.clone(),
                evaluated,
                feasible: 1,
            };
        }
        // PreScore.
        for p in &profile.pre_score {
            let s = p.pre_score(state, pod, &feasible, snapshot);
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_score.insert(p.name());
                }
                _ => return Outcome::Error(format!("{}: {}", p.name(), s.reasons.join(", "))),
            }
        }
        // Score, NormalizeScore, weights.
        let mut totals = vec![0i64; feasible_count];
        for (plugin, weight) in &profile.score {
            if state.skip_score.contains(plugin.name()) {
                continue;
            }
            let mut scores: Vec<NodeScore> = Vec::with_capacity(feasible_count);
            for n in &feasible {
                let (score, s) = plugin.score(state, pod, n);
                if !s.is_success() {
                    return Outcome::Error(format!("{}: {}", plugin.name(), s.reasons.join(", ")));
                }
                scores.push(NodeScore {
                    name: n.name.clone(),
                    score,
                });
            }
            let s = plugin.normalize(state, pod, &mut scores);
            if !s.is_success() {
                return Outcome::Error(format!("{}: {}", plugin.name(), s.reasons.join(", ")));
            }
            for (i, ns) in scores.iter().enumerate() {
                totals[i] += ns.score * weight;
                if let Some(e) = explain.as_deref_mut() {
                    e.scores
                        .entry(ns.name.clone())
                        .or_default()
                        .insert(plugin.name().to_string(), ns.score * weight);
                }
            }
        }
        // The best node; ties by reservoir sampling.
        let mut best = 0;
        let mut ties = 1u64;
        for i in 1..feasible_count {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = i;
                }
            }
        }
        let node = feasible[best].name.clone();
        if let Some(e) = explain {
            e.chosen = Some(node.clone());
        }
        Outcome::Scheduled {
            node,
            evaluated,
            feasible: feasible_count,
        }
    }

    fn post_filter(
        &mut self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        mut fit: FitError,
    ) -> Outcome {
        let mut rejections = fit.node_statuses.clone();
        if let Some(s) = &fit.pre_filter {
            for n in &snapshot.nodes {
                rejections.insert(n.name.clone(), s.clone());
            }
        }
        for p in &profile.post_filter {
            let (result, s) = p.post_filter(state, pod, snapshot, &rejections);
            if !s.reasons.is_empty() {
                fit.post_filter_msg = Some(s.reasons.join(", "));
            }
            if s.is_success() {
                fit.nominated = result;
                break;
            }
        }
        Outcome::Unschedulable(fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Handle;
    use crate::testing::{info, node, pod};

    fn snapshot(nodes: Vec<k8s_openapi::api::core::v1::Node>) -> Snapshot {
        Snapshot::new(
            nodes
                .into_iter()
                .map(|n| Arc::new(NodeInfo::new(Arc::new(n))))
                .collect(),
        )
    }

    #[test]
    fn picks_a_feasible_node_and_explains_rejections() {
        let profile = Profile::default_profile(&Handle::default()).unwrap();
        let mut cordoned = node("c").build();
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let snap = snapshot(vec![cordoned, node("ok").build()]);
        let mut alg = Algorithm::default();
        let mut ex = Explanation::default();
        let out = alg.schedule(
            &profile,
            &mut CycleState::default(),
            &info(pod("p").build()),
            &snap,
            Some(&mut ex),
        );
        assert!(
            matches!(out, Outcome::Scheduled { ref node, .. } if node == "ok"),
            "{out:?}"
        );
        assert_eq!(ex.rejected["c"].0, "NodeUnschedulable");
        assert_eq!(ex.chosen.as_deref(), Some("ok"));
    }

    #[test]
    fn fit_error_message_is_upstreams() {
        let mut statuses = HashMap::new();
        for (n, r) in [
            ("a", "Insufficient cpu"),
            ("b", "Insufficient cpu"),
            ("c", "node(s) had untolerated taint {dedicated: gpu}"),
        ] {
            statuses.insert(n.to_string(), Status::unschedulable(r));
        }
        let fit = FitError {
            num_all_nodes: 3,
            pre_filter: None,
            node_statuses: statuses,
            post_filter_msg: Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling"
                    .into(),
            ),
            nominated: None,
        };
        assert_eq!(
            fit.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not \
             helpful for scheduling."
        );
        let none = snapshot(vec![]);
        let profile = Profile::default_profile(&Handle::default()).unwrap();
        let out = Algorithm::default().schedule(
            &profile,
            &mut CycleState::default(),
            &info(pod("p").build()),
            &none,
            None,
        );
        match out {
            Outcome::Unschedulable(f) => assert_eq!(f.message(), "0/0 nodes are available:"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_robin_start() {
        let profile = Profile::default_profile(&Handle::default()).unwrap();
        let nodes: Vec<_> = (0..200).map(|i| node(&format!("n{i}")).build()).collect();
        let snap = snapshot(nodes);
        let mut alg = Algorithm::default();
        // 200 nodes: 100 feasible wanted per cycle; the next cycle starts
        // after the last node evaluated.
        let out = alg.schedule(
            &profile,
            &mut CycleState::default(),
            &info(pod("p").build()),
            &snap,
            None,
        );
        assert!(
            matches!(
                out,
                Outcome::Scheduled {
                    evaluated: 100,
                    feasible: 100,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(alg.next_start, 100);
    }
}

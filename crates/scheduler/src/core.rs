//! One scheduling cycle over the cache's snapshot (upstream's
//! `schedulePod`): PreFilter, Filter over enough nodes (starting where the
//! last cycle stopped), PostFilter when none fits, PreScore, Score,
//! NormalizeScore, weights, and the highest-scoring node (ties broken at
//! random). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::framework::{
    Code, CycleState, FilterPlugin, NodeInfo, NodeScore, PodInfo, PostFilterContext,
    PostFilterResult, Snapshot, Status,
};
use crate::metrics::{status_label, SchedulerMetrics};
use crate::nominator::{nominated_node_name, Nominator};
use crate::profile::Profile;

/// The Filter plugins not skipped this cycle, in order: computed once per
/// cycle so the node loop does no set lookups.
pub fn active_filters<'a>(
    profile: &'a Profile,
    state: &CycleState,
) -> Vec<&'a Arc<dyn FilterPlugin>> {
    profile
        .filter
        .iter()
        .filter(|f| !state.skip_filter.contains(f.name()))
        .collect()
}

/// Runs `filters` on one node: the first rejection (with its plugin) or
/// success. With `metrics` (sampled cycles), each plugin's duration is
/// recorded.
pub fn run_filters(
    filters: &[&Arc<dyn FilterPlugin>],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    metrics: Option<&SchedulerMetrics>,
) -> Status {
    for f in filters {
        let t = metrics.map(|_| std::time::Instant::now());
        let s = f.filter(state, pod, node);
        if let (Some(m), Some(t)) = (metrics, t) {
            m.plugin(
                f.name(),
                "Filter",
                status_label(s.code),
                t.elapsed().as_secs_f64(),
            );
        }
        if !s.is_success() {
            return s.with_plugin(f.name());
        }
    }
    Status::success()
}

/// Runs the PreFilter extensions (upstream's AddPod/RemovePod) of the
/// plugins not skipped this cycle, as if `other` were added to (or removed
/// from) `node`.
pub fn run_pre_filter_extensions(
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    other: &PodInfo,
    node: &NodeInfo,
    add: bool,
) -> Status {
    for pf in &profile.pre_filter {
        if state.skip_filter.contains(pf.name()) {
            continue;
        }
        let s = if add {
            pf.add_pod(state, pod, other, node)
        } else {
            pf.remove_pod(state, pod, other, node)
        };
        if !s.is_success() {
            return s.with_plugin(pf.name());
        }
    }
    Status::success()
}

/// Upstream's `RunFilterPluginsWithNominatedPods`: when pods of equal or
/// higher priority are nominated to the node, the pod must fit both with
/// them (as if they ran there) and without them (their affinity terms must
/// not be what makes it fit).
pub fn run_filters_with_nominated(
    filters: &[&Arc<dyn FilterPlugin>],
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    nominator: &Nominator,
    metrics: Option<&SchedulerMetrics>,
) -> Status {
    let nominated: Vec<&Arc<PodInfo>> = if nominator.is_empty() {
        Vec::new()
    } else {
        nominator
            .pods_on(&node.name)
            .iter()
            .filter(|p| p.uid != pod.uid && p.priority() >= pod.priority())
            .collect()
    };
    if nominated.is_empty() {
        return run_filters(filters, state, pod, node, metrics);
    }
    let mut with_state = state.clone();
    let mut with_node = node.clone();
    for p in nominated {
        with_node.add_pod(p.clone());
        let s = run_pre_filter_extensions(profile, &mut with_state, pod, p, &with_node, true);
        if !s.is_success() {
            return s;
        }
    }
    let s = run_filters(filters, &with_state, pod, &with_node, metrics);
    if !s.is_success() {
        return s;
    }
    run_filters(filters, state, pod, node, metrics)
}

/// Upstream's sorted `N reason` list (` 2 Insufficient cpu, 1 ...`, with a
/// leading space and a final period; empty without reasons). Sorted as
/// strings, counts included, as upstream sorts them.
pub fn reasons_histogram(counts: &BTreeMap<&str, usize>) -> String {
    let mut parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}.", parts.join(", "))
    }
}

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
                msg.push_str(&reasons_histogram(&counts));
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

/// Times extension points (always, when metrics are on) and plugins (in
/// sampled cycles).
struct PointTimer {
    metrics: Option<Arc<SchedulerMetrics>>,
    profile: String,
    sampled: bool,
    point: &'static str,
    started: Option<std::time::Instant>,
}

impl PointTimer {
    fn new(metrics: Option<Arc<SchedulerMetrics>>, profile: &str, sampled: bool) -> PointTimer {
        PointTimer {
            profile: if metrics.is_some() {
                profile.to_string()
            } else {
                String::new()
            },
            metrics,
            sampled,
            point: "",
            started: None,
        }
    }

    fn start(&mut self, point: &'static str) {
        self.point = point;
        self.started = self.metrics.as_ref().map(|_| std::time::Instant::now());
    }

    fn done(&mut self, code: Code) {
        if let (Some(m), Some(t)) = (&self.metrics, self.started.take()) {
            m.point(
                self.point,
                status_label(code),
                &self.profile,
                t.elapsed().as_secs_f64(),
            );
        }
    }

    fn sampled_metrics(&self) -> Option<&SchedulerMetrics> {
        self.metrics.as_deref().filter(|_| self.sampled)
    }

    fn plugin_start(&self) -> Option<std::time::Instant> {
        self.sampled_metrics().map(|_| std::time::Instant::now())
    }

    fn plugin_done(&self, t: Option<std::time::Instant>, plugin: &'static str, code: Code) {
        if let (Some(m), Some(t)) = (self.sampled_metrics(), t) {
            m.plugin(
                plugin,
                self.point,
                status_label(code),
                t.elapsed().as_secs_f64(),
            );
        }
    }
}

/// The scheduling algorithm's state across cycles.
pub struct Algorithm {
    /// Where the next cycle starts filtering (round robin over nodes).
    next_start: usize,
    rng: Rng,
    /// Pods nominated to nodes by preemption.
    pub nominator: Nominator,
    /// Where to record extension point and (sampled) plugin durations.
    pub metrics: Option<Arc<SchedulerMetrics>>,
    cycles: u64,
}

/// Plugin durations are recorded in one cycle out of this many (upstream
/// samples 10 %).
const PLUGIN_METRICS_SAMPLE: u64 = 10;

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm {
            next_start: 0,
            rng: Rng::seeded(),
            nominator: Nominator::default(),
            metrics: None,
            cycles: 0,
        }
    }
}

impl Algorithm {
    /// An algorithm recording into `metrics`.
    pub fn with_metrics(metrics: Arc<SchedulerMetrics>) -> Algorithm {
        Algorithm {
            metrics: Some(metrics),
            ..Algorithm::default()
        }
    }

    /// Runs PreFilter through NormalizeScore for `pod`; with `explain`,
    /// records every node's verdict.
    pub fn schedule(
        &mut self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        explain: Option<&mut Explanation>,
    ) -> Outcome {
        self.cycles += 1;
        let mut timer = PointTimer::new(
            self.metrics.clone(),
            &profile.scheduler_name,
            self.cycles.is_multiple_of(PLUGIN_METRICS_SAMPLE),
        );
        self.run_cycle(profile, state, pod, snapshot, explain, &mut timer)
    }

    fn run_cycle(
        &mut self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        mut explain: Option<&mut Explanation>,
        timer: &mut PointTimer,
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
        timer.start("PreFilter");
        for p in &profile.pre_filter {
            let t = timer.plugin_start();
            let s = p.pre_filter(state, pod, snapshot).with_plugin(p.name());
            timer.plugin_done(t, p.name(), s.code);
            if s.code != Code::Success && s.code != Code::Skip {
                timer.done(s.code);
            }
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
                    return self.post_filter(profile, state, pod, snapshot, fit, timer);
                }
                _ => return Outcome::Error(format!("{}: {}", p.name(), s.reasons.join(", "))),
            }
        }
        timer.done(Code::Success);
        let filters = active_filters(profile, state);
        // A nominated node (from an earlier preemption) is tried first.
        let nominated = self
            .nominator
            .node_of(&pod.uid)
            .or_else(|| nominated_node_name(pod))
            .and_then(|n| snapshot.get(n))
            .filter(|n| {
                state
                    .node_names
                    .as_ref()
                    .is_none_or(|s| s.contains(&n.name))
            });
        if let Some(node) = nominated {
            let s = run_filters_with_nominated(
                &filters,
                profile,
                state,
                pod,
                node,
                &self.nominator,
                None,
            );
            if s.code == Code::Error {
                return Outcome::Error(format!("{}: {}", s.plugin, s.reasons.join(", ")));
            }
            if s.is_success() {
                if let Some(e) = explain {
                    e.chosen = Some(node.name.clone());
                }
                return Outcome::Scheduled {
                    node: node.name.clone(),
                    evaluated: 1,
                    feasible: 1,
                };
            }
        }
        // Filter, over enough nodes.
        timer.start("Filter");
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
            let s = run_filters_with_nominated(
                &filters,
                profile,
                state,
                pod,
                node,
                &self.nominator,
                timer.sampled_metrics(),
            );
            let rejected = (!s.is_success()).then_some(s);
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
        timer.done(if feasible.is_empty() {
            Code::Unschedulable
        } else {
            Code::Success
        });
        if feasible.is_empty() {
            // Nodes excluded by a PreFilter's node set count as rejected.
            let fit = FitError {
                num_all_nodes: all,
                pre_filter: None,
                node_statuses: statuses,
                post_filter_msg: None,
                nominated: None,
            };
            return self.post_filter(profile, state, pod, snapshot, fit, timer);
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
        timer.start("PreScore");
        for p in &profile.pre_score {
            let t = timer.plugin_start();
            let s = p.pre_score(state, pod, &feasible, snapshot);
            timer.plugin_done(t, p.name(), s.code);
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_score.insert(p.name());
                }
                _ => return Outcome::Error(format!("{}: {}", p.name(), s.reasons.join(", "))),
            }
        }
        timer.done(Code::Success);
        // Score, NormalizeScore, weights.
        timer.start("Score");
        let mut totals = vec![0i64; feasible_count];
        // One list of names for all score plugins (the scores are reset).
        let mut scores: Vec<NodeScore> = feasible
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: 0,
            })
            .collect();
        for (plugin, weight) in &profile.score {
            if state.skip_score.contains(plugin.name()) {
                continue;
            }
            let t = timer.plugin_start();
            for (n, slot) in feasible.iter().zip(scores.iter_mut()) {
                let (score, s) = plugin.score(state, pod, n);
                if !s.is_success() {
                    return Outcome::Error(format!("{}: {}", plugin.name(), s.reasons.join(", ")));
                }
                slot.score = score;
            }
            let s = plugin.normalize(state, pod, &mut scores);
            if !s.is_success() {
                return Outcome::Error(format!("{}: {}", plugin.name(), s.reasons.join(", ")));
            }
            timer.plugin_done(t, plugin.name(), Code::Success);
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
        timer.done(Code::Success);
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
        timer: &mut PointTimer,
    ) -> Outcome {
        timer.start("PostFilter");
        // Filter's statuses are passed as they are; a PreFilter rejection
        // stands for every node.
        let from_pre_filter: HashMap<String, Status>;
        let rejections = match &fit.pre_filter {
            Some(s) => {
                from_pre_filter = snapshot
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), s.clone()))
                    .collect();
                &from_pre_filter
            }
            None => &fit.node_statuses,
        };
        let ctx = PostFilterContext {
            profile,
            snapshot,
            rejections,
            nominator: &self.nominator,
        };
        let (mut msg, mut nominated) = (None, None);
        for p in &profile.post_filter {
            let (result, s) = p.post_filter(&ctx, state, pod);
            if !s.reasons.is_empty() {
                msg = Some(s.reasons.join(", "));
            }
            nominated = result;
            if s.is_success() {
                break;
            }
        }
        fit.post_filter_msg = msg;
        fit.nominated = nominated;
        timer.done(
            if fit
                .nominated
                .as_ref()
                .is_some_and(|r| !r.nominated_node.is_empty())
            {
                Code::Success
            } else {
                Code::Unschedulable
            },
        );
        Outcome::Unschedulable(fit)
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

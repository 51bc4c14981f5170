//! DefaultPreemption (PostFilter): when no node fits, find the node where
//! evicting the fewest, least important lower-priority pods makes room, as
//! upstream's preemption evaluator does:
//!
//! 1. the pod must be eligible (`preemptionPolicy` is not `Never`, and it is
//!    not still waiting for victims it already chose to terminate);
//! 2. only nodes that rejected it as `Unschedulable` are candidates (not
//!    `UnschedulableAndUnresolvable`); from a random offset, enough of them
//!    (`minCandidateNodesPercentage`, `minCandidateNodesAbsolute`) are dry-run;
//! 3. on each, every lower-priority pod is removed; if the pod then fits,
//!    victims are reprieved one by one, most important first (pods whose
//!    eviction would violate a PodDisruptionBudget first), keeping each one
//!    whose return still lets the pod fit;
//! 4. the best node has the fewest PDB violations, then the lowest highest
//!    victim priority, the lowest sum of priorities, the fewest victims, and
//!    the latest start among its most important victims.
//!
//! The plugin is pure: the scheduler performs the result (evicts the
//! victims, sets `status.nominatedNodeName`, clears lower-priority
//! nominations).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde_json::Value;

use super::helpers::label_selector_matches;
use super::{parse_args, Extensions, Handle, PluginError};
use crate::core::{
    active_filters, reasons_histogram, run_filters_with_nominated, run_pre_filter_extensions,
    FitError, Rng,
};
use crate::framework::{
    Code, CycleState, NodeInfo, Plugin, PodInfo, PostFilterContext, PostFilterPlugin,
    PostFilterResult, Status,
};
use crate::listers::Listers;
use crate::nominator::{nominated_node_name, Nominator};
use crate::profile::Profile;

pub const NAME: &str = "DefaultPreemption";
/// Why a node offers nothing to preempt.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// The status of nodes where preemption cannot help.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NOT_ELIGIBLE_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
pub const NOT_ELIGIBLE_TERMINATING: &str =
    "not eligible due to a terminating pod on the nominated node.";
/// The reason of the DisruptionTarget condition set on victims.
pub const PREEMPTION_BY_SCHEDULER: &str = "PreemptionByScheduler";

/// Upstream's `DefaultPreemptionArgs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultPreemptionArgs {
    #[serde(default = "default_percentage")]
    pub min_candidate_nodes_percentage: i32,
    #[serde(default = "default_absolute")]
    pub min_candidate_nodes_absolute: i32,
}

fn default_percentage() -> i32 {
    10
}

fn default_absolute() -> i32 {
    100
}

impl Default for DefaultPreemptionArgs {
    fn default() -> Self {
        DefaultPreemptionArgs {
            min_candidate_nodes_percentage: default_percentage(),
            min_candidate_nodes_absolute: default_absolute(),
        }
    }
}

pub struct DefaultPreemption {
    args: DefaultPreemptionArgs,
    listers: Listers,
    rng: Mutex<Rng>,
}

/// One node where preemption makes the pod fit.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    /// Most important first.
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
}

fn preempt_never(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never")
}

/// Terminating because the scheduler preempted it.
fn terminating_by_preemption(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.reason.as_deref() == Some(PREEMPTION_BY_SCHEDULER)
                })
            })
}

/// `status.startTime` in nanoseconds; a pod not started yet counts as
/// starting now, i.e. after every started one (upstream `GetPodStartTime`).
fn start_time(p: &PodInfo) -> i128 {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(i128::MAX, |t| t.0.as_nanosecond())
}

/// Upstream's `MoreImportantPod`: higher priority, then earlier start.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority()
        .cmp(&a.priority())
        .then_with(|| start_time(a).cmp(&start_time(b)))
}

/// Splits pods (in order) into those whose eviction would violate a PDB
/// and the others, counting down each PDB's `disruptionsAllowed` as
/// upstream's `filterPodsWithPDBViolation` does.
fn split_by_pdb(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violated = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.metadata.namespace.as_deref() != Some(p.namespace()) {
                continue;
            }
            let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                continue;
            };
            let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
            if empty || !label_selector_matches(sel, p.labels()) {
                continue;
            }
            let name = p.pod.metadata.name.as_deref().unwrap_or_default();
            let already = pdb
                .status
                .as_ref()
                .and_then(|s| s.disrupted_pods.as_ref())
                .is_some_and(|d| d.contains_key(name));
            if already {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violated = true;
            }
        }
        if violated {
            violating.push(p);
        } else {
            fine.push(p);
        }
    }
    (violating, fine)
}

/// Upstream's `SelectVictimsOnNode`: the victims (most important first)
/// and how many of them violate a PDB, or why the node cannot help.
pub fn select_victims_on_node(
    profile: &Profile,
    nominator: &Nominator,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let prio = pod.priority();
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority() < prio)
        .cloned()
        .collect();
    if potential.is_empty() {
        // Checked before copying the node and the state: most nodes of a
        // cluster without priorities end here.
        return Err(Status::unresolvable(NO_VICTIMS).with_plugin(NAME));
    }
    let mut node = node.clone();
    let mut state = state.clone();
    let filters = active_filters(profile, &state);
    for v in &potential {
        node.remove_pod(&v.uid);
        let s = run_pre_filter_extensions(profile, &mut state, pod, v, &node, false);
        if !s.is_success() {
            return Err(s);
        }
    }
    let s = run_filters_with_nominated(&filters, profile, &state, pod, &node, nominator, None);
    if !s.is_success() {
        return Err(s);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, fine) = split_by_pdb(potential, pdbs);
    let mixed = !violating.is_empty() && !fine.is_empty();
    let mut victims = Vec::new();
    let mut violations = 0;
    for (p, counts) in violating
        .into_iter()
        .map(|p| (p, true))
        .chain(fine.into_iter().map(|p| (p, false)))
    {
        node.add_pod(p.clone());
        let s = run_pre_filter_extensions(profile, &mut state, pod, &p, &node, true);
        if !s.is_success() {
            return Err(s);
        }
        if !run_filters_with_nominated(&filters, profile, &state, pod, &node, nominator, None)
            .is_success()
        {
            node.remove_pod(&p.uid);
            let s = run_pre_filter_extensions(profile, &mut state, pod, &p, &node, false);
            if !s.is_success() {
                return Err(s);
            }
            violations += counts as usize;
            victims.push(p);
        }
    }
    if mixed {
        victims.sort_by(|a, b| more_important(a, b));
    }
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption` over the candidates.
pub fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    type Key = fn(&Candidate) -> i128;
    let keys: [Key; 5] = [
        |c| -(c.pdb_violations as i128),
        |c| -(c.victims.first().map_or(0, |p| p.priority()) as i128),
        |c| {
            -c.victims
                .iter()
                .map(|p| p.priority() as i128 + i32::MAX as i128 + 1)
                .sum::<i128>()
        },
        |c| -(c.victims.len() as i128),
        |c| {
            // The earliest start among the highest-priority victims; later
            // is better.
            let top = c.victims.first().map_or(0, |p| p.priority());
            c.victims
                .iter()
                .filter(|p| p.priority() == top)
                .map(|p| start_time(p))
                .min()
                .unwrap_or(i128::MIN)
        },
    ];
    let mut left: Vec<&Candidate> = candidates.iter().collect();
    for key in keys {
        let best = left.iter().map(|c| key(c)).max()?;
        left.retain(|c| key(c) == best);
        if left.len() == 1 {
            break;
        }
    }
    left.first().copied()
}

impl DefaultPreemption {
    /// How many candidates to dry-run, and from which offset.
    fn offset_and_count(&self, nodes: usize) -> (usize, usize) {
        let pct = self.args.min_candidate_nodes_percentage.max(0) as usize;
        let abs = self.args.min_candidate_nodes_absolute.max(0) as usize;
        let n = (nodes * pct / 100).max(abs).min(nodes);
        let offset = self
            .rng
            .lock()
            .map(|mut r| r.below(nodes as u64) as usize)
            .unwrap_or(0);
        (offset, n)
    }

    /// Whether the pod may preempt, or why not.
    fn eligible(&self, ctx: &PostFilterContext<'_>, pod: &PodInfo) -> Result<(), &'static str> {
        if preempt_never(&pod.pod) {
            return Err(NOT_ELIGIBLE_NEVER);
        }
        let nominated = ctx
            .nominator
            .node_of(&pod.uid)
            .or_else(|| nominated_node_name(pod));
        let Some(nnn) = nominated else { return Ok(()) };
        if ctx
            .rejections
            .get(nnn)
            .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable)
        {
            return Ok(());
        }
        if let Some(node) = ctx.snapshot.get(nnn) {
            let prio = pod.priority();
            if node
                .pods
                .iter()
                .any(|p| p.priority() < prio && terminating_by_preemption(&p.pod))
            {
                return Err(NOT_ELIGIBLE_TERMINATING);
            }
        }
        Ok(())
    }

    /// Dry-runs preemption on the candidate nodes.
    fn find_candidates(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &PodInfo,
    ) -> (Vec<Candidate>, HashMap<String, Status>) {
        let potential: Vec<&Arc<NodeInfo>> = ctx
            .snapshot
            .nodes
            .iter()
            .filter(|n| {
                ctx.rejections
                    .get(&n.name)
                    .is_some_and(|s| s.code == Code::Unschedulable)
            })
            .collect();
        let mut statuses = HashMap::new();
        if potential.is_empty() {
            return (Vec::new(), statuses);
        }
        let pdbs = self.listers.pdbs.state();
        let (offset, want) = self.offset_and_count(potential.len());
        let (mut fine, mut violating) = (Vec::new(), Vec::new());
        for k in 0..potential.len() {
            let node = potential[(offset + k) % potential.len()];
            match select_victims_on_node(ctx.profile, ctx.nominator, state, pod, node, &pdbs) {
                Ok((victims, pdb_violations)) => {
                    let c = Candidate {
                        node: node.name.clone(),
                        victims,
                        pdb_violations,
                    };
                    if pdb_violations == 0 {
                        fine.push(c);
                    } else {
                        violating.push(c);
                    }
                }
                Err(s) => {
                    statuses.insert(node.name.clone(), s);
                }
            }
            if !fine.is_empty() && fine.len() + violating.len() >= want {
                break;
            }
        }
        fine.extend(violating);
        (fine, statuses)
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &mut CycleState,
        pod: &PodInfo,
    ) -> (Option<PostFilterResult>, Status) {
        if let Err(msg) = self.eligible(ctx, pod) {
            return (None, Status::unschedulable(format!("preemption: {msg}")));
        }
        let clear = || PostFilterResult {
            nominated_node: String::new(),
            victims: Vec::new(),
            clear_nominations: Vec::new(),
        };
        // No pod anywhere has a lower priority (a cluster without
        // priorities): every node that could help has no victims. The
        // verdict is counted without a dry run or per-node statuses.
        let prio = pod.priority();
        let any_lower = ctx
            .snapshot
            .nodes
            .iter()
            .any(|n| n.pods.iter().any(|p| p.priority() < prio));
        if !any_lower {
            let all = ctx.snapshot.nodes.len();
            let helpful = ctx
                .snapshot
                .nodes
                .iter()
                .filter(|n| {
                    ctx.rejections
                        .get(&n.name)
                        .is_some_and(|s| s.code == Code::Unschedulable)
                })
                .count();
            let counts = BTreeMap::from([(NO_VICTIMS, helpful), (NOT_HELPFUL, all - helpful)]);
            let msg = format!(
                "preemption: 0/{all} nodes are available:{}",
                reasons_histogram(&counts)
            );
            return (Some(clear()), Status::unschedulable(msg));
        }
        let (candidates, mut statuses) = self.find_candidates(ctx, state, pod);
        let Some(best) = pick_one(&candidates) else {
            for n in &ctx.snapshot.nodes {
                statuses
                    .entry(n.name.clone())
                    .or_insert_with(|| Status::unresolvable(NOT_HELPFUL));
            }
            let fit = FitError {
                num_all_nodes: ctx.snapshot.nodes.len(),
                pre_filter: None,
                node_statuses: statuses,
                post_filter_msg: None,
                nominated: None,
            };
            return (
                Some(clear()),
                Status::unschedulable(format!("preemption: {}", fit.message())),
            );
        };
        let prio = pod.priority();
        let clear_nominations = ctx
            .nominator
            .pods_on(&best.node)
            .iter()
            .filter(|p| p.priority() < prio && p.uid != pod.uid)
            .cloned()
            .collect();
        let result = PostFilterResult {
            nominated_node: best.node.clone(),
            victims: best.victims.clone(),
            clear_nominations,
        };
        (Some(result), Status::success())
    }
}

/// Builds the plugin; rejects args out of upstream's ranges.
pub fn new(args: &Value, h: &Handle) -> Result<Extensions, PluginError> {
    let args: DefaultPreemptionArgs = parse_args(NAME, args)?;
    let bad = |m: &str| PluginError::Args {
        plugin: NAME,
        message: m.to_string(),
    };
    if !(0..=100).contains(&args.min_candidate_nodes_percentage) {
        return Err(bad(
            "minCandidateNodesPercentage: not in valid range [0, 100]",
        ));
    }
    if args.min_candidate_nodes_absolute < 0 {
        return Err(bad(
            "minCandidateNodesAbsolute: not in valid range [0, inf)",
        ));
    }
    if args.min_candidate_nodes_percentage == 0 && args.min_candidate_nodes_absolute == 0 {
        return Err(bad(
            "minCandidateNodesPercentage and minCandidateNodesAbsolute: cannot both be zero",
        ));
    }
    let pl = Arc::new(DefaultPreemption {
        args,
        listers: h.listers.clone(),
        rng: Mutex::new(Rng::seeded()),
    });
    Ok(Extensions {
        post_filter: Some(pl),
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "default_preemption_tests.rs"]
mod tests;

//! NodeResourcesFit (PreFilter, Filter, PreScore, Score), as upstream
//! kube-scheduler v1.33's `noderesources.Fit`.
//!
//! Filter rejects a node whose free allocatable (allocatable minus the
//! requests of the pods already on it) is smaller than the pod's effective
//! requests, with one reason per short resource (`Too many pods`,
//! `Insufficient cpu`, `Insufficient <name>`…), always with code
//! Unschedulable (v1.33; only v1.34 turned a pod larger than the whole node
//! into UnschedulableAndUnresolvable). Extended resources listed in
//! `ignoredResources`, or whose domain is in `ignoredResourceGroups`, are
//! not checked.
//!
//! Score follows `scoringStrategy`: `LeastAllocated` (default),
//! `MostAllocated` or `RequestedToCapacityRatio` over the weighted
//! `resources` (default cpu and memory, weight 1), counting the scoring
//! "non-zero" requests for CPU and memory (100m / 200Mi for a container that
//! requests none). The resource bookkeeping shared with
//! NodeResourcesBalancedAllocation lives here too.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_args, Extensions, Handle, PluginError};
use crate::framework::{
    Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreScorePlugin,
    Resources, ScorePlugin, Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "NodeResourcesFit";
const PRE_FILTER_KEY: &str = "PreFilterNodeResourcesFit";
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesFit";
/// Upstream's `MaxCustomPriorityScore`: shape scores are 0..=10.
const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;
/// Highest utilization of a shape point, in percent.
const MAX_UTILIZATION: i64 = 100;

/// A resource that scoring looks at, with its weight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default)]
    pub weight: i64,
}

/// cpu and memory with weight 1, upstream's default scoring resources.
pub fn default_resources() -> Vec<ResourceSpec> {
    ["cpu", "memory"]
        .into_iter()
        .map(|n| ResourceSpec {
            name: n.into(),
            weight: 1,
        })
        .collect()
}

/// One point of a RequestedToCapacityRatio shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UtilizationShapePoint {
    /// Percent, 0..=100.
    pub utilization: i32,
    /// 0..=10.
    pub score: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedToCapacityRatioParam {
    #[serde(default)]
    pub shape: Vec<UtilizationShapePoint>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

/// `NodeResourcesFitArgs` (kubescheduler.config.k8s.io/v1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FitArgs {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    #[serde(default)]
    pub scoring_strategy: Option<ScoringStrategy>,
}

/// How Score turns (requested, allocatable) pairs into 0..=100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
    /// Shape points as (utilization %, score 0..=100).
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// A resource the node lacks for the pod (upstream's `InsufficientResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientResource {
    pub resource_name: String,
    pub reason: String,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
}

pub struct NodeResourcesFit {
    ignored_resources: HashSet<String>,
    ignored_resource_groups: HashSet<String>,
    strategy: Strategy,
    resources: Vec<ResourceSpec>,
}

/// Upstream's `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream's `IsExtendedResourceName` (e.g. `nvidia.com/gpu`).
pub fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    rkube_api::names::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream's `IsScalarResourceName`: extended, hugepages, prefixed native
/// or attachable volumes.
pub fn is_scalar_resource_name(name: &str) -> bool {
    is_extended_resource_name(name)
        || name.starts_with("hugepages-")
        || name.contains("kubernetes.io/")
        || name.starts_with("attachable-volumes-")
}

/// Upstream's `fitsRequest`: what the node lacks to host a pod with these
/// effective requests. Empty when the pod fits.
pub fn fits_request(
    req: &Resources,
    node: &NodeInfo,
    ignored_resources: &HashSet<String>,
    ignored_groups: &HashSet<String>,
) -> Vec<InsufficientResource> {
    let mut out = Vec::new();
    let used_pods = node.pods.len() as i64;
    if used_pods + 1 > node.allocatable.pods {
        out.push(InsufficientResource {
            resource_name: "pods".into(),
            reason: "Too many pods".into(),
            requested: 1,
            used: used_pods,
            capacity: node.allocatable.pods,
        });
    }
    let alloc = &node.allocatable;
    let used = &node.requested;
    let mut check = |name: &str, want: i64, taken: i64, capacity: i64| {
        if want > 0 && want > capacity.saturating_sub(taken) {
            out.push(InsufficientResource {
                resource_name: name.into(),
                reason: format!("Insufficient {name}"),
                requested: want,
                used: taken,
                capacity,
            });
        }
    };
    check("cpu", req.milli_cpu, used.milli_cpu, alloc.milli_cpu);
    check("memory", req.memory, used.memory, alloc.memory);
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        used.ephemeral_storage,
        alloc.ephemeral_storage,
    );
    for (name, &want) in &req.scalar {
        if want == 0 || !is_scalar_resource_name(name) {
            continue;
        }
        if is_extended_resource_name(name) {
            let group = name.split('/').next().unwrap_or_default();
            if ignored_resources.contains(name) || ignored_groups.contains(group) {
                continue;
            }
        }
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let taken = used.scalar.get(name).copied().unwrap_or(0);
        check(name, want, taken, have);
    }
    out
}

/// Whether the pod fits the node, ignoring nothing (upstream's `Fits`).
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Vec<InsufficientResource> {
    fits_request(&pod.requests, node, &HashSet::new(), &HashSet::new())
}

/// The pod's request of each listed resource, as upstream's
/// `calculatePodResourceRequestList`: with `use_requested` false, CPU and
/// memory count the non-zero defaults for containers that request none.
pub fn pod_request_list(
    pod: &PodInfo,
    resources: &[ResourceSpec],
    use_requested: bool,
) -> Vec<i64> {
    let cpu_mem = if use_requested {
        &pod.requests
    } else {
        &pod.non_zero_requests
    };
    resources
        .iter()
        .map(|r| match r.name.as_str() {
            "cpu" => cpu_mem.milli_cpu,
            "memory" => cpu_mem.memory,
            "ephemeral-storage" => pod.requests.ephemeral_storage,
            other => pod.requests.scalar.get(other).copied().unwrap_or(0),
        })
        .collect()
}

/// (requested including the pod, allocatable) per listed resource, as
/// upstream's `resourceAllocationScorer.score`: a resource the node does
/// not have, or an extended one the pod does not request, is (0, 0), which
/// the scorers skip.
pub fn requested_and_allocatable(
    node: &NodeInfo,
    resources: &[ResourceSpec],
    pod_requests: &[i64],
    use_requested: bool,
) -> (Vec<i64>, Vec<i64>) {
    let cpu_mem = if use_requested {
        &node.requested
    } else {
        &node.non_zero_requested
    };
    let alloc = &node.allocatable;
    let mut requested = vec![0; resources.len()];
    let mut allocatable = vec![0; resources.len()];
    for (i, (r, &pod_req)) in resources.iter().zip(pod_requests).enumerate() {
        let name = r.name.as_str();
        let scalar = is_scalar_resource_name(name);
        let (a, q) = match name {
            _ if pod_req == 0 && scalar => (0, 0),
            "cpu" => (alloc.milli_cpu, cpu_mem.milli_cpu),
            "memory" => (alloc.memory, cpu_mem.memory),
            "ephemeral-storage" => (alloc.ephemeral_storage, node.requested.ephemeral_storage),
            _ => match alloc.scalar.get(name) {
                Some(&a) if scalar => (a, node.requested.scalar.get(name).copied().unwrap_or(0)),
                _ => (0, 0),
            },
        };
        if a == 0 {
            continue;
        }
        allocatable[i] = a;
        requested[i] = q.saturating_add(pod_req);
    }
    (requested, allocatable)
}

/// Free share of one resource, 0..=100 (upstream's `leastRequestedScore`).
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    ((capacity as i128 - requested as i128) * MAX_NODE_SCORE as i128 / capacity as i128) as i64
}

/// Used share of one resource, 0..=100, capped (`mostRequestedScore`).
pub fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    let requested = requested.min(capacity);
    (requested as i128 * MAX_NODE_SCORE as i128 / capacity as i128) as i64
}

/// Upstream's `BuildBrokenLinearFunction`: piecewise linear through the
/// points, flat before the first and after the last (integer arithmetic).
pub fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, &(u, s)) in shape.iter().enumerate() {
        if p <= u {
            if i == 0 {
                return s;
            }
            let (pu, ps) = shape[i - 1];
            return ps + (s - ps) * (p - pu) / (u - pu);
        }
    }
    shape.last().map(|&(_, s)| s).unwrap_or(0)
}

impl Strategy {
    /// The node's score from the per-resource (requested, allocatable).
    pub fn score(&self, requested: &[i64], allocatable: &[i64], resources: &[ResourceSpec]) -> i64 {
        let mut node_score = 0i64;
        let mut weight_sum = 0i64;
        for i in 0..requested.len() {
            if allocatable[i] == 0 {
                continue;
            }
            let (req, cap) = (requested[i], allocatable[i]);
            let weight = resources[i].weight;
            let s = match self {
                Strategy::LeastAllocated => least_requested_score(req, cap),
                Strategy::MostAllocated => most_requested_score(req, cap),
                Strategy::RequestedToCapacityRatio(shape) => {
                    let util = if req > cap {
                        MAX_UTILIZATION
                    } else {
                        (req as i128 * MAX_UTILIZATION as i128 / cap as i128) as i64
                    };
                    let s = broken_linear(shape, util);
                    // Upstream leaves resources scoring 0 out of the average.
                    if s <= 0 {
                        continue;
                    }
                    s
                }
            };
            node_score += s * weight;
            weight_sum += weight;
        }
        if weight_sum == 0 {
            return 0;
        }
        match self {
            Strategy::RequestedToCapacityRatio(_) => {
                (node_score as f64 / weight_sum as f64).round() as i64
            }
            _ => node_score / weight_sum,
        }
    }
}

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::Args {
        plugin: NAME,
        message: message.into(),
    }
}

/// Validates `resources` weights (upstream's `validateResources`), after
/// defaulting a zero weight to 1.
fn default_and_validate_resources(
    resources: &mut Vec<ResourceSpec>,
    path: &str,
) -> Result<(), String> {
    if resources.is_empty() {
        *resources = default_resources();
    }
    for (i, r) in resources.iter_mut().enumerate() {
        if r.weight == 0 {
            r.weight = 1;
        }
        if r.weight <= 0 || r.weight > 100 {
            return Err(format!(
                "{path}[{i}].weight: Invalid value: {}: resource weight of {} not in valid range (0, 100]",
                r.weight, r.name
            ));
        }
    }
    Ok(())
}

fn validate_shape(shape: &[UtilizationShapePoint]) -> Result<(), String> {
    let path = "scoringStrategy.shape";
    if shape.is_empty() {
        return Err(format!(
            "{path}: Required value: at least one point must be specified"
        ));
    }
    for i in 1..shape.len() {
        if shape[i - 1].utilization >= shape[i].utilization {
            return Err(format!(
                "{path}[{i}].utilization: Invalid value: {}: utilization values must be sorted in increasing order",
                shape[i].utilization
            ));
        }
    }
    for (i, p) in shape.iter().enumerate() {
        if !(0..=100).contains(&p.utilization) {
            return Err(format!(
                "{path}[{i}].utilization: Invalid value: {}: not in valid range [0, 100]",
                p.utilization
            ));
        }
        if !(0..=MAX_CUSTOM_PRIORITY_SCORE as i32).contains(&p.score) {
            return Err(format!(
                "{path}[{i}].score: Invalid value: {}: not in valid range [0, {MAX_CUSTOM_PRIORITY_SCORE}]",
                p.score
            ));
        }
    }
    Ok(())
}

impl NodeResourcesFit {
    /// Builds the plugin from parsed args, applying upstream's defaults and
    /// validation.
    pub fn from_args(args: FitArgs) -> Result<NodeResourcesFit, PluginError> {
        for (i, r) in args.ignored_resources.iter().enumerate() {
            let errs = rkube_api::names::is_qualified_name(r);
            if !errs.is_empty() {
                return Err(invalid(format!(
                    "ignoredResources[{i}]: Invalid value: {r:?}: {}",
                    errs.join("; ")
                )));
            }
        }
        for (i, g) in args.ignored_resource_groups.iter().enumerate() {
            if g.contains('/') {
                return Err(invalid(format!(
                    "ignoredResourceGroups[{i}]: Invalid value: {g:?}: resource group name can't contain '/'"
                )));
            }
            let errs = rkube_api::names::is_qualified_name(g);
            if !errs.is_empty() {
                return Err(invalid(format!(
                    "ignoredResourceGroups[{i}]: Invalid value: {g:?}: {}",
                    errs.join("; ")
                )));
            }
        }
        let mut ss = args.scoring_strategy.unwrap_or_else(|| ScoringStrategy {
            type_: "LeastAllocated".into(),
            ..Default::default()
        });
        default_and_validate_resources(&mut ss.resources, "scoringStrategy.resources")
            .map_err(invalid)?;
        if let Some(r) = &ss.requested_to_capacity_ratio {
            validate_shape(&r.shape).map_err(invalid)?;
        }
        let strategy = match ss.type_.as_str() {
            "LeastAllocated" => Strategy::LeastAllocated,
            "MostAllocated" => Strategy::MostAllocated,
            "RequestedToCapacityRatio" => {
                let Some(r) = &ss.requested_to_capacity_ratio else {
                    return Err(invalid(
                        "scoringStrategy.requestedToCapacityRatio: Required value: a shape is required for RequestedToCapacityRatio",
                    ));
                };
                Strategy::RequestedToCapacityRatio(
                    r.shape
                        .iter()
                        .map(|p| {
                            let scale = MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE;
                            (p.utilization as i64, p.score as i64 * scale)
                        })
                        .collect(),
                )
            }
            other => {
                return Err(invalid(format!(
                    "scoringStrategy.type: Unsupported value: {other:?}: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
                )))
            }
        };
        Ok(NodeResourcesFit {
            ignored_resources: args.ignored_resources.into_iter().collect(),
            ignored_resource_groups: args.ignored_resource_groups.into_iter().collect(),
            strategy,
            resources: ss.resources,
        })
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    pub fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }
}

/// The pod's effective requests, computed at PreFilter.
#[derive(Clone)]
struct PreFilterState(Resources);
/// The pod's scoring requests per listed resource, computed at PreScore.
#[derive(Clone)]
struct PreScoreState(Vec<i64>);

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for NodeResourcesFit {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        state.write(PRE_FILTER_KEY, PreFilterState(pod.requests.clone()));
        Status::success()
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(PreFilterState(req)) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error(format!(
                "error reading {PRE_FILTER_KEY:?} from cycleState: not found"
            ));
        };
        let lacking = fits_request(
            req,
            node,
            &self.ignored_resources,
            &self.ignored_resource_groups,
        );
        if lacking.is_empty() {
            return Status::success();
        }
        // Every reason is kept; v1.33 always says Unschedulable.
        Status {
            code: Code::Unschedulable,
            reasons: lacking.into_iter().map(|r| r.reason).collect(),
            plugin: "",
        }
    }
}

impl PreScorePlugin for NodeResourcesFit {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let reqs = pod_request_list(pod, &self.resources, false);
        state.write(PRE_SCORE_KEY, PreScoreState(reqs));
        Status::success()
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let computed;
        let reqs = match state.read::<PreScoreState>(PRE_SCORE_KEY) {
            Some(PreScoreState(r)) => r,
            None => {
                computed = pod_request_list(pod, &self.resources, false);
                &computed
            }
        };
        let (requested, allocatable) =
            requested_and_allocatable(node, &self.resources, reqs, false);
        let score = self
            .strategy
            .score(&requested, &allocatable, &self.resources);
        (score, Status::success())
    }
}

pub fn new(args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    let args: FitArgs = parse_args(NAME, args)?;
    let p = Arc::new(NodeResourcesFit::from_args(args)?);
    Ok(Extensions {
        pre_filter: Some(p.clone()),
        filter: Some(p.clone()),
        pre_score: Some(p.clone()),
        score: Some(p),
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "node_resources_fit_tests.rs"]
mod tests;

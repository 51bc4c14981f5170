//! NodeResourcesBalancedAllocation (PreScore, Score), as upstream
//! kube-scheduler v1.33's `noderesources.BalancedAllocation`: favours nodes
//! whose listed resources (args `resources`, default cpu and memory) would
//! be used in equal shares once the pod is placed.
//!
//! Score = (1 − standard deviation of the requested/allocatable fractions,
//! each capped at 1) × 100. Like upstream it counts the pods' actual
//! requests (`useRequested`), not the non-zero defaults, and since v1.33 its
//! PreScore skips best-effort pods (requesting none of the resources), so
//! they do not all pile onto one node.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::node_resources_fit::{
    default_resources, pod_request_list, requested_and_allocatable, ResourceSpec,
};
use super::{parse_args, Extensions, Handle, PluginError};
use crate::framework::{
    CycleState, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin, Snapshot, Status,
    MAX_NODE_SCORE,
};

pub const NAME: &str = "NodeResourcesBalancedAllocation";
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

/// `NodeResourcesBalancedAllocationArgs` (kubescheduler.config.k8s.io/v1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BalancedAllocationArgs {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub resources: Vec<ResourceSpec>,
}

pub struct BalancedAllocation {
    resources: Vec<ResourceSpec>,
}

/// The pod's requests per listed resource, computed at PreScore.
#[derive(Clone)]
struct PreScoreState(Vec<i64>);

fn invalid(message: String) -> PluginError {
    PluginError::Args {
        plugin: NAME,
        message,
    }
}

impl BalancedAllocation {
    /// Builds the plugin, applying upstream's defaults (cpu and memory; a
    /// zero weight is 1) and validation (no duplicates, every weight 1).
    pub fn from_args(args: BalancedAllocationArgs) -> Result<BalancedAllocation, PluginError> {
        let mut resources = args.resources;
        if resources.is_empty() {
            resources = default_resources();
        }
        for (i, r) in resources.iter_mut().enumerate() {
            if r.weight == 0 {
                r.weight = 1;
            }
            if r.weight != 1 {
                return Err(invalid(format!(
                    "resources[{i}].weight: Invalid value: {}: must be 1",
                    r.weight
                )));
            }
        }
        for (i, r) in resources.iter().enumerate() {
            if resources[..i].iter().any(|o| o.name == r.name) {
                return Err(invalid(format!(
                    "resources[{i}].name: Duplicate value: {:?}",
                    r.name
                )));
            }
        }
        Ok(BalancedAllocation { resources })
    }

    pub fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }
}

/// Upstream's `balancedResourceScorer`: resources the node lacks
/// (allocatable 0) are left out; with two fractions the deviation is half
/// their distance.
pub fn balanced_resource_score(requested: &[i64], allocatable: &[i64]) -> i64 {
    let fractions: Vec<f64> = requested
        .iter()
        .zip(allocatable)
        .filter(|(_, &a)| a != 0)
        .map(|(&r, &a)| (r as f64 / a as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n if n > 2 => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            let sum: f64 = fractions.iter().map(|f| (f - mean) * (f - mean)).sum();
            (sum / n as f64).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

fn is_best_effort(requests: &[i64]) -> bool {
    requests.iter().all(|&r| r == 0)
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let reqs = pod_request_list(pod, &self.resources, true);
        if is_best_effort(&reqs) {
            return Status::skip();
        }
        state.write(PRE_SCORE_KEY, PreScoreState(reqs));
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let computed;
        let reqs = match state.read::<PreScoreState>(PRE_SCORE_KEY) {
            Some(PreScoreState(r)) => r,
            None => {
                computed = pod_request_list(pod, &self.resources, true);
                if is_best_effort(&computed) {
                    return (0, Status::success());
                }
                &computed
            }
        };
        let (requested, allocatable) = requested_and_allocatable(node, &self.resources, reqs, true);
        (
            balanced_resource_score(&requested, &allocatable),
            Status::success(),
        )
    }
}

pub fn new(args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    let args: BalancedAllocationArgs = parse_args(NAME, args)?;
    let p = Arc::new(BalancedAllocation::from_args(args)?);
    Ok(Extensions {
        pre_score: Some(p.clone()),
        score: Some(p),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{info, node, pod};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn plugin(args: Value) -> BalancedAllocation {
        BalancedAllocation::from_args(parse_args(NAME, &args).unwrap()).unwrap()
    }

    fn node_info(alloc: &[(&str, &str)], pods: Vec<Pod>) -> NodeInfo {
        let mut ni = NodeInfo::new(Arc::new(node("n").allocatable(alloc).build()));
        for p in pods {
            ni.add_pod(Arc::new(info(p)));
        }
        ni
    }

    fn score(pl: &BalancedAllocation, p: Pod, ni: &NodeInfo) -> i64 {
        let p = info(p);
        let mut st = CycleState::default();
        assert!(pl
            .pre_score(&mut st, &p, &[], &Snapshot::default())
            .is_success());
        let (s, status) = pl.score(&st, &p, ni);
        assert!(status.is_success());
        assert_eq!(pl.score(&CycleState::default(), &p, ni).0, s);
        s
    }

    fn cpu_mem(cpu: &str, mem: &str) -> Pod {
        pod("p").requests(&[("cpu", cpu), ("memory", mem)]).build()
    }

    #[test]
    fn args_defaults_and_validation() {
        assert_eq!(
            plugin(json!({})).resources(),
            default_resources().as_slice()
        );
        let pl = plugin(
            json!({"resources": [{"name": "cpu"}, {"name": "example.com/gpu", "weight": 1}]}),
        );
        assert_eq!(pl.resources()[0].weight, 1);
        for bad in [
            json!({"resources": [{"name": "cpu", "weight": 2}]}),
            json!({"resources": [{"name": "cpu"}, {"name": "cpu"}]}),
            json!({"resources": "cpu"}),
            json!({"resource": []}),
        ] {
            let r = parse_args(NAME, &bad).and_then(BalancedAllocation::from_args);
            assert!(
                matches!(r, Err(PluginError::Args { plugin: NAME, .. })),
                "{bad}"
            );
        }
        let ext = new(&json!({}), &Handle::default()).unwrap();
        assert!(ext.pre_score.is_some() && ext.score.is_some() && ext.filter.is_none());
    }

    #[test]
    fn scorer_formula() {
        // 0.75 and 0.5: std 0.125.
        assert_eq!(balanced_resource_score(&[3000, 5000], &[4000, 10000]), 87);
        assert_eq!(balanced_resource_score(&[3000, 5000], &[6000, 10000]), 100);
        // Fractions are capped at 1: 1 and 0.5.
        assert_eq!(balanced_resource_score(&[9000, 5000], &[4000, 10000]), 75);
        // 0.2, 0.5, 0.8: std sqrt(0.06) ≈ 0.2449.
        assert_eq!(balanced_resource_score(&[2, 5, 8], &[10, 10, 10]), 75);
        // Skipped resources leave a single fraction: no deviation.
        assert_eq!(balanced_resource_score(&[3, 0], &[4, 0]), 100);
        assert_eq!(balanced_resource_score(&[], &[]), 100);
    }

    #[test]
    fn scores_with_pods_on_the_node() {
        let pl = plugin(json!({}));
        let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
        assert_eq!(score(&pl, cpu_mem("3", "5000"), &ni), 87);
        let ni = node_info(&[("cpu", "6"), ("memory", "10000")], vec![]);
        assert_eq!(score(&pl, cpu_mem("3", "5000"), &ni), 100);
        // Existing 1 cpu / 4000: with the pod 0.5 and 0.75 → std 0.125.
        let ni = node_info(
            &[("cpu", "8"), ("memory", "16000")],
            vec![cpu_mem("1", "4000")],
        );
        assert_eq!(score(&pl, cpu_mem("3", "8000"), &ni), 87);
    }

    #[test]
    fn counts_actual_requests_not_non_zero_defaults() {
        let pl = plugin(json!({}));
        // The pod on the node requests nothing: it adds nothing.
        let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![pod("a").build()]);
        assert_eq!(score(&pl, cpu_mem("2", "5000"), &ni), 100);
        // Only cpu requested: 0.5 against 0.
        assert_eq!(
            score(&pl, pod("p").requests(&[("cpu", "2")]).build(), &ni),
            75
        );
    }

    #[test]
    fn best_effort_pods_are_skipped() {
        let pl = plugin(json!({}));
        let p = info(pod("p").build());
        let mut st = CycleState::default();
        assert_eq!(
            pl.pre_score(&mut st, &p, &[], &Snapshot::default()).code,
            Code::Skip
        );
        let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
        assert_eq!(
            pl.score(&CycleState::default(), &p, &ni),
            (0, Status::success())
        );
    }

    #[test]
    fn extended_resources_only_when_requested_and_present() {
        let pl = plugin(json!({"resources": [
            {"name": "cpu"}, {"name": "memory"}, {"name": "example.com/gpu"}]}));
        let ni = node_info(
            &[("cpu", "4"), ("memory", "10000"), ("example.com/gpu", "4")],
            vec![],
        );
        // gpu not requested: cpu 0.5, memory 0.5.
        assert_eq!(score(&pl, cpu_mem("2", "5000"), &ni), 100);
        // gpu 1 of 4: 0.5, 0.5, 0.25 → std ≈ 0.1179.
        let p = pod("p")
            .requests(&[("cpu", "2"), ("memory", "5000"), ("example.com/gpu", "1")])
            .build();
        assert_eq!(score(&pl, p, &ni), 88);
        // Requested but absent on the node: left out.
        let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
        let p = pod("p")
            .requests(&[("cpu", "2"), ("memory", "5000"), ("example.com/gpu", "1")])
            .build();
        assert_eq!(score(&pl, p, &ni), 100);
        // Only the gpu requested: not best-effort, cpu and memory count 0.
        let p = pod("p").requests(&[("example.com/gpu", "2")]).build();
        let ni = node_info(
            &[("cpu", "4"), ("memory", "10000"), ("example.com/gpu", "4")],
            vec![],
        );
        // 0, 0, 0.5: mean 1/6, std sqrt(((1/6)²·2 + (1/3)²)/3) ≈ 0.2357.
        assert_eq!(score(&pl, p, &ni), 76);
    }
}

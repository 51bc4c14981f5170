//! TaintToleration (Filter, PreScore, Score): a pod may only land on a node
//! whose `NoSchedule` and `NoExecute` taints it tolerates, and prefers nodes
//! with fewer `PreferNoSchedule` taints it does not tolerate (scores are
//! reversed on normalization, so fewer intolerable taints score higher).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Toleration;
use serde_json::Value;

use super::helpers::{
    default_normalize_score, find_untolerated_taint, is_do_not_schedule_taint, node_taints,
    pod_tolerations, tolerations_tolerate_taint,
};
use super::{Extensions, Handle, PluginError};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "TaintToleration";
const PRE_SCORE_KEY: &str = "PreScoreTaintToleration";
const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

/// The Filter reason for an untolerated taint, as upstream formats it
/// (`node(s) had untolerated taint {key: value}`).
pub fn reason(key: &str, value: &str) -> String {
    format!("node(s) had untolerated taint {{{key}: {value}}}")
}

pub struct TaintToleration;

/// The pod's tolerations that can tolerate `PreferNoSchedule` taints.
#[derive(Clone)]
struct PreScoreState(Vec<Toleration>);

/// Tolerations with an empty effect (all effects) or `PreferNoSchedule`.
fn prefer_no_schedule_tolerations(tolerations: &[Toleration]) -> Vec<Toleration> {
    tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some(PREFER_NO_SCHEDULE)
            )
        })
        .cloned()
        .collect()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match find_untolerated_taint(
            node_taints(&node.node),
            pod_tolerations(&pod.pod),
            is_do_not_schedule_taint,
        ) {
            None => Status::success(),
            Some(t) => Status::unresolvable(reason(&t.key, t.value.as_deref().unwrap_or_default())),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let tolerations = prefer_no_schedule_tolerations(pod_tolerations(&pod.pod));
        state.write(PRE_SCORE_KEY, PreScoreState(tolerations));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    /// The number of `PreferNoSchedule` taints the pod does not tolerate.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let computed;
        let tolerations = match state.read::<PreScoreState>(PRE_SCORE_KEY) {
            Some(s) => &s.0,
            None => {
                // PreScore did not run (e.g. disabled): compute here.
                computed = prefer_no_schedule_tolerations(pod_tolerations(&pod.pod));
                &computed
            }
        };
        let count = node_taints(&node.node)
            .iter()
            .filter(|t| t.effect == PREFER_NO_SCHEDULE)
            .filter(|t| !tolerations_tolerate_taint(tolerations, t))
            .count();
        (count as i64, Status::success())
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    let pl = Arc::new(TaintToleration);
    Ok(Extensions {
        filter: Some(pl.clone()),
        pre_score: Some(pl.clone()),
        score: Some(pl),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{info, node, pod, NodeBuilder};
    use k8s_openapi::api::core::v1::Pod;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        }
    }

    fn tolerating(tols: Vec<Toleration>) -> Pod {
        let mut p = pod("p").build();
        p.spec.as_mut().unwrap().tolerations = Some(tols);
        p
    }

    fn ni(b: NodeBuilder) -> NodeInfo {
        NodeInfo::new(Arc::new(b.build()))
    }

    fn filter(p: &Pod, n: &NodeInfo) -> Status {
        TaintToleration.filter(&CycleState::default(), &info(p.clone()), n)
    }

    #[test]
    fn filter_rejects_untolerated_no_schedule_and_no_execute() {
        let plain = pod("p").build();
        assert!(filter(&plain, &ni(node("n"))).is_success());
        let s = filter(
            &plain,
            &ni(node("n").taint("dedicated", "gpu", "NoSchedule")),
        );
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        let s = filter(
            &plain,
            &ni(node("n").taint("node-role.kubernetes.io/control-plane", "", "NoExecute")),
        );
        assert_eq!(
            s.reasons,
            vec!["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        // PreferNoSchedule never filters.
        assert!(filter(&plain, &ni(node("n").taint("soft", "", "PreferNoSchedule"))).is_success());
    }

    #[test]
    fn filter_accepts_tolerated_taints() {
        let n = ni(node("n")
            .taint("a", "1", "NoSchedule")
            .taint("b", "2", "NoExecute"));
        let both = tolerating(vec![
            tol("a", "Equal", "1", "NoSchedule"),
            tol("b", "Exists", "", ""),
        ]);
        assert!(filter(&both, &n).is_success());
        let only_a = tolerating(vec![tol("a", "", "1", "")]);
        assert_eq!(filter(&only_a, &n).reasons, vec![reason("b", "2")]);
        let wrong_effect = tolerating(vec![
            tol("a", "Exists", "", "NoExecute"),
            tol("b", "Exists", "", ""),
        ]);
        assert_eq!(filter(&wrong_effect, &n).reasons, vec![reason("a", "1")]);
        let wrong_value = tolerating(vec![tol("a", "Equal", "2", ""), tol("b", "Exists", "", "")]);
        assert!(!filter(&wrong_value, &n).is_success());
        let everything = tolerating(vec![tol("", "Exists", "", "")]);
        assert!(filter(&everything, &n).is_success());
    }

    fn run_scores(p: Pod, nodes: Vec<NodeInfo>, pre_score: bool) -> Vec<i64> {
        let pi = info(p);
        let mut st = CycleState::default();
        if pre_score {
            let arcs: Vec<_> = nodes.iter().cloned().map(Arc::new).collect();
            let snap = Snapshot::new(arcs.clone());
            assert!(TaintToleration
                .pre_score(&mut st, &pi, &arcs, &snap)
                .is_success());
        }
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| {
                let (score, s) = TaintToleration.score(&st, &pi, n);
                assert!(s.is_success());
                NodeScore {
                    name: n.name.clone(),
                    score,
                }
            })
            .collect();
        assert!(TaintToleration
            .normalize(&st, &pi, &mut scores)
            .is_success());
        scores.into_iter().map(|s| s.score).collect()
    }

    #[test]
    fn score_counts_intolerable_prefer_no_schedule_taints() {
        let nodes = || {
            vec![
                ni(node("clean")),
                ni(node("one").taint("x", "1", "PreferNoSchedule")),
                ni(node("two")
                    .taint("x", "1", "PreferNoSchedule")
                    .taint("y", "", "PreferNoSchedule")
                    .taint("hard", "", "NoSchedule")),
            ]
        };
        let pi = info(pod("p").build());
        let (raw, _) = TaintToleration.score(&CycleState::default(), &pi, &nodes()[2]);
        assert_eq!(raw, 2, "NoSchedule taints are not counted");
        assert_eq!(
            run_scores(pod("p").build(), nodes(), true),
            vec![100, 50, 0]
        );
        // Tolerating x (empty effect covers PreferNoSchedule) leaves only y.
        let p = tolerating(vec![tol("x", "Exists", "", "")]);
        assert_eq!(run_scores(p, nodes(), true), vec![100, 100, 0]);
        // A NoSchedule-only toleration does not help scoring.
        let p = tolerating(vec![tol("x", "Exists", "", "NoSchedule")]);
        assert_eq!(run_scores(p.clone(), nodes(), true), vec![100, 50, 0]);
        assert_eq!(
            run_scores(p, nodes(), false),
            vec![100, 50, 0],
            "without PreScore"
        );
        // All tolerated: every node gets the maximum.
        let p = tolerating(vec![tol("", "Exists", "", "PreferNoSchedule")]);
        assert_eq!(run_scores(p, nodes(), true), vec![100, 100, 100]);
    }

    #[test]
    fn registered_extension_points() {
        let e = new(&Value::Null, &Handle::default()).unwrap();
        assert!(e.filter.is_some() && e.pre_score.is_some() && e.score.is_some());
        assert!(e.pre_filter.is_none());
    }
}

//! NodeAffinity (PreFilter, Filter, PreScore, Score): a pod only fits nodes
//! matching its `spec.nodeSelector` and required node affinity, and prefers
//! nodes matching heavier preferred terms. The plugin args' `addedAffinity`
//! (NodeAffinityArgs) applies to every pod on top of its own.
//!
//! PreFilter narrows the cycle to the named nodes when every required term
//! selects `metadata.name In [...]` (intersecting
//! [`CycleState::node_names`]), and returns Skip when there is nothing to
//! check.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeAffinity as Affinity, NodeSelector, PodSpec, PreferredSchedulingTerm,
};
use serde::Deserialize;
use serde_json::Value;

use super::helpers::{
    check_node_selector_term, check_preferred_terms, default_normalize_score,
    node_selector_matches, pod_matches_node_selector_and_affinity, preferred_terms_score,
    required_node_affinity, NODE_NAME_FIELD,
};
use super::{parse_args, Extensions, Handle, PluginError};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "NodeAffinity";
/// The reason for a node not matching the pod's selector or affinity.
pub const REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// The reason for a node not matching the args' `addedAffinity`.
pub const REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
/// PreFilter's reason when the required terms name no common node.
pub const REASON_CONFLICT: &str = "pod affinity terms conflict";

/// The plugin's args (upstream `NodeAffinityArgs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinityArgs {
    /// Affinity added to every pod's (both must hold / both score).
    #[serde(default)]
    pub added_affinity: Option<Affinity>,
}

pub struct NodeAffinity {
    /// `addedAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    added_required: Option<NodeSelector>,
    /// `addedAffinity.preferredDuringSchedulingIgnoredDuringExecution`
    /// (`None` when empty).
    added_preferred: Option<Vec<PreferredSchedulingTerm>>,
}

fn node_affinity(spec: Option<&PodSpec>) -> Option<&Affinity> {
    spec?.affinity.as_ref()?.node_affinity.as_ref()
}

/// The pod's preferred terms, checked (`Ok(None)` when it has none).
fn pod_preferred(pod: &PodInfo) -> Result<Option<&[PreferredSchedulingTerm]>, Status> {
    let Some(terms) = node_affinity(pod.pod.spec.as_ref()).and_then(|a| {
        a.preferred_during_scheduling_ignored_during_execution
            .as_deref()
    }) else {
        return Ok(None);
    };
    check_preferred_terms(terms)
        .map_err(|e| Status::error(format!("preferred node affinity: {e}")))?;
    Ok(Some(terms))
}

/// The nodes the required terms restrict the pod to, if every term names
/// nodes with `metadata.name In` (terms are ORed; a term's name
/// requirements are ANDed). `None`: no restriction.
fn required_node_names(required: &NodeSelector) -> Option<HashSet<String>> {
    let mut all: Option<HashSet<String>> = None;
    for term in &required.node_selector_terms {
        let mut names: Option<HashSet<String>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key != NODE_NAME_FIELD || r.operator != "In" {
                continue;
            }
            let these: HashSet<String> = r.values.iter().flatten().cloned().collect();
            names = Some(match names {
                None => these,
                Some(prev) => prev.intersection(&these).cloned().collect(),
            });
        }
        // A term without node-name requirements admits every node.
        let names = names?;
        all.get_or_insert_with(HashSet::new).extend(names);
    }
    all
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        let spec = pod.pod.spec.as_ref();
        let required = required_node_affinity(&pod.pod);
        let has_selector =
            spec.is_some_and(|s| s.node_selector.as_ref().is_some_and(|m| !m.is_empty()));
        if required.is_none() && self.added_required.is_none() && !has_selector {
            return Status::skip();
        }
        // No terms: nothing to narrow (Filter rejects every node).
        match required.and_then(required_node_names) {
            None => Status::success(),
            Some(names) if names.is_empty() => Status::unresolvable(REASON_CONFLICT),
            Some(names) => {
                match &mut state.node_names {
                    Some(prev) => prev.retain(|n| names.contains(n)),
                    None => state.node_names = Some(names),
                }
                Status::success()
            }
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if let Some(added) = &self.added_required {
            if !node_selector_matches(added, &node.node) {
                return Status::unresolvable(REASON_ENFORCED);
            }
        }
        if pod_matches_node_selector_and_affinity(&pod.pod, &node.node) {
            Status::success()
        } else {
            Status::unresolvable(REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        match pod_preferred(pod) {
            Err(s) => s,
            Ok(None) if self.added_preferred.is_none() => Status::skip(),
            Ok(_) => Status::success(),
        }
    }
}

impl ScorePlugin for NodeAffinity {
    /// Sum of the weights of the matching preferred terms (the pod's and
    /// the added ones).
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let mut score = self
            .added_preferred
            .as_deref()
            .map_or(0, |t| preferred_terms_score(t, &node.node));
        match pod_preferred(pod) {
            Err(s) => return (0, s),
            Ok(Some(terms)) => score += preferred_terms_score(terms, &node.node),
            Ok(None) => {}
        }
        (score, Status::success())
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

/// Builds the plugin, rejecting `addedAffinity` terms that do not parse.
pub fn new(args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    let args: NodeAffinityArgs = parse_args(NAME, args)?;
    let invalid = |field: &str, e: super::helpers::SelectorError| PluginError::Args {
        plugin: NAME,
        message: format!("addedAffinity.{field}: {e}"),
    };
    let added = args.added_affinity.unwrap_or_default();
    let added_required = added.required_during_scheduling_ignored_during_execution;
    for term in added_required.iter().flat_map(|s| &s.node_selector_terms) {
        check_node_selector_term(term)
            .map_err(|e| invalid("requiredDuringSchedulingIgnoredDuringExecution", e))?;
    }
    let added_preferred = added
        .preferred_during_scheduling_ignored_during_execution
        .filter(|t| !t.is_empty());
    if let Some(terms) = &added_preferred {
        check_preferred_terms(terms)
            .map_err(|e| invalid("preferredDuringSchedulingIgnoredDuringExecution", e))?;
    }
    let pl = Arc::new(NodeAffinity {
        added_required,
        added_preferred,
    });
    Ok(Extensions {
        pre_filter: Some(pl.clone()),
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
    use crate::testing::{info, node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity as PodAffinity, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    };
    use serde_json::json;
    use std::collections::BTreeMap;

    fn plugin(args: Value) -> NodeAffinity {
        let args: NodeAffinityArgs = parse_args(NAME, &args).unwrap();
        let a = args.added_affinity.unwrap_or_default();
        NodeAffinity {
            added_required: a.required_during_scheduling_ignored_during_execution,
            added_preferred: a.preferred_during_scheduling_ignored_during_execution,
        }
    }

    fn req(key: &str, op: &str, vals: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(vals.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: (!exprs.is_empty()).then_some(exprs),
            match_fields: (!fields.is_empty()).then_some(fields),
        }
    }

    fn with_affinity(
        required: Option<Vec<NodeSelectorTerm>>,
        preferred: Vec<(i32, NodeSelectorTerm)>,
    ) -> Pod {
        let mut p = pod("p").build();
        p.spec.as_mut().unwrap().affinity = Some(PodAffinity {
            node_affinity: Some(Affinity {
                required_during_scheduling_ignored_during_execution: required.map(
                    |node_selector_terms| NodeSelector {
                        node_selector_terms,
                    },
                ),
                preferred_during_scheduling_ignored_during_execution: (!preferred.is_empty()).then(
                    || {
                        preferred
                            .into_iter()
                            .map(|(weight, preference)| PreferredSchedulingTerm {
                                weight,
                                preference,
                            })
                            .collect()
                    },
                ),
            }),
            ..Default::default()
        });
        p
    }

    fn ni(n: crate::testing::NodeBuilder) -> NodeInfo {
        NodeInfo::new(Arc::new(n.build()))
    }

    fn pre_filter(pl: &NodeAffinity, p: &Pod, st: &mut CycleState) -> Status {
        pl.pre_filter(st, &info(p.clone()), &Snapshot::default())
    }

    #[test]
    fn pre_filter_skips_pods_without_constraints() {
        let pl = plugin(Value::Null);
        let mut st = CycleState::default();
        assert_eq!(pre_filter(&pl, &pod("p").build(), &mut st).code, Code::Skip);
        // Only preferred terms: still nothing to filter.
        let p = with_affinity(None, vec![(1, term(vec![req("a", "In", &["b"])], vec![]))]);
        assert_eq!(pre_filter(&pl, &p, &mut st).code, Code::Skip);
        let mut sel = pod("p").build();
        sel.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([("a".into(), "b".into())]));
        assert!(pre_filter(&pl, &sel, &mut st).is_success());
        // The added affinity must be checked for every pod.
        let enforced = plugin(
            json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}),
        );
        assert!(pre_filter(&enforced, &pod("p").build(), &mut st).is_success());
        assert!(st.node_names.is_none());
    }

    #[test]
    fn pre_filter_narrows_to_named_nodes() {
        let pl = plugin(Value::Null);
        let name_in = |names: &[&str]| req(NODE_NAME_FIELD, "In", names);
        let p = with_affinity(
            Some(vec![
                term(vec![], vec![name_in(&["n1", "n2"]), name_in(&["n2", "n3"])]),
                term(vec![req("x", "Exists", &[])], vec![name_in(&["n4"])]),
            ]),
            vec![],
        );
        let mut st = CycleState::default();
        assert!(pre_filter(&pl, &p, &mut st).is_success());
        let want: HashSet<String> = ["n2", "n4"].map(String::from).into();
        assert_eq!(st.node_names.as_ref(), Some(&want));
        // Intersects with what other PreFilters decided.
        let mut st = CycleState::default();
        st.node_names = Some(["n4", "n9"].map(String::from).into());
        assert!(pre_filter(&pl, &p, &mut st).is_success());
        assert_eq!(st.node_names, Some(["n4".to_string()].into()));
        // A term without a name requirement admits all nodes.
        let open = with_affinity(
            Some(vec![
                term(vec![], vec![name_in(&["n1"])]),
                term(vec![req("x", "Exists", &[])], vec![]),
            ]),
            vec![],
        );
        let mut st = CycleState::default();
        assert!(pre_filter(&pl, &open, &mut st).is_success());
        assert!(st.node_names.is_none());
        // NotIn does not narrow.
        let not_in = with_affinity(
            Some(vec![term(
                vec![],
                vec![req(NODE_NAME_FIELD, "NotIn", &["n1"])],
            )]),
            vec![],
        );
        assert!(pre_filter(&pl, &not_in, &mut st).is_success());
        assert!(st.node_names.is_none());
        // Conflicting names in one term.
        let conflict = with_affinity(
            Some(vec![term(vec![], vec![name_in(&["n1"]), name_in(&["n2"])])]),
            vec![],
        );
        let s = pre_filter(&pl, &conflict, &mut st);
        assert_eq!(s, Status::unresolvable(REASON_CONFLICT));
    }

    #[test]
    fn filter_checks_selector_affinity_and_added_affinity() {
        let pl = plugin(Value::Null);
        let st = CycleState::default();
        let a = ni(node("a").label("zone", "z1").label("gpu", "2"));
        let b = ni(node("b").label("zone", "z2"));
        let p = info(with_affinity(
            Some(vec![
                term(vec![req("zone", "In", &["z1"])], vec![]),
                term(vec![], vec![req(NODE_NAME_FIELD, "In", &["b"])]),
            ]),
            vec![],
        ));
        assert!(pl.filter(&st, &p, &a).is_success());
        assert!(pl.filter(&st, &p, &b).is_success(), "terms are ORed");
        let gt = info(with_affinity(
            Some(vec![term(vec![req("gpu", "Gt", &["1"])], vec![])]),
            vec![],
        ));
        assert!(pl.filter(&st, &gt, &a).is_success());
        let s = pl.filter(&st, &gt, &b);
        assert_eq!(s, Status::unresolvable(REASON_POD));
        let mut sel = pod("p").build();
        sel.spec.as_mut().unwrap().node_selector =
            Some(BTreeMap::from([("zone".into(), "z2".into())]));
        assert_eq!(
            pl.filter(&st, &info(sel.clone()), &a).code,
            Code::UnschedulableAndUnresolvable
        );
        assert!(pl.filter(&st, &info(sel), &b).is_success());
        let enforced = plugin(
            json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z2"]}]}]}}}),
        );
        let plain = info(pod("p").build());
        assert!(enforced.filter(&st, &plain, &a).is_success());
        assert_eq!(
            enforced.filter(&st, &plain, &b),
            Status::unresolvable(REASON_ENFORCED)
        );
    }

    fn scores(pl: &NodeAffinity, p: Pod, nodes: &[NodeInfo]) -> (Status, Vec<i64>) {
        let pi = info(p);
        let mut st = CycleState::default();
        let arcs: Vec<_> = nodes.iter().cloned().map(Arc::new).collect();
        let pre = pl.pre_score(&mut st, &pi, &arcs, &Snapshot::new(arcs.clone()));
        let mut out: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: pl.score(&st, &pi, n).0,
            })
            .collect();
        assert!(pl.normalize(&st, &pi, &mut out).is_success());
        (pre, out.into_iter().map(|s| s.score).collect())
    }

    #[test]
    fn preferred_terms_score_and_normalize() {
        let pl = plugin(Value::Null);
        let nodes = [
            ni(node("a").label("zone", "z1").label("disk", "ssd")),
            ni(node("b").label("zone", "z1")),
            ni(node("c")),
        ];
        let (pre, s) = scores(&pl, pod("p").build(), &nodes);
        assert_eq!(pre.code, Code::Skip);
        assert_eq!(s, vec![0, 0, 0]);
        let p = with_affinity(
            None,
            vec![
                (20, term(vec![req("zone", "In", &["z1"])], vec![])),
                (60, term(vec![req("disk", "In", &["ssd"])], vec![])),
                (10, term(vec![], vec![req(NODE_NAME_FIELD, "In", &["c"])])),
            ],
        );
        let pi = info(p.clone());
        assert_eq!(pl.score(&CycleState::default(), &pi, &nodes[0]).0, 80);
        let (pre, s) = scores(&pl, p, &nodes);
        assert!(pre.is_success());
        assert_eq!(s, vec![100, 25, 12]);
        // Added preferred terms count for every pod.
        let added = plugin(
            json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
            [{"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}}]}}),
        );
        let (pre, s) = scores(&added, pod("p").build(), &nodes);
        assert!(pre.is_success());
        assert_eq!(s, vec![0, 100, 100]);
        // Invalid preferred terms are an error.
        let bad = with_affinity(
            None,
            vec![(1, term(vec![req("x", "Lt", &["nope"])], vec![]))],
        );
        assert_eq!(scores(&pl, bad, &nodes).0.code, Code::Error);
    }

    #[test]
    fn args_parse_and_validate() {
        assert!(new(&json!({}), &Handle::default()).is_ok());
        let ok = json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}});
        let e = new(&ok, &Handle::default()).unwrap();
        assert!(
            e.pre_filter.is_some()
                && e.filter.is_some()
                && e.pre_score.is_some()
                && e.score.is_some()
        );
        let bad = json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]}}});
        assert!(matches!(
            new(&bad, &Handle::default()),
            Err(PluginError::Args { plugin: NAME, .. })
        ));
        let bad = json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
            [{"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}}]}});
        assert!(new(&bad, &Handle::default()).is_err());
        assert!(new(&json!({"addedAffinity": 3}), &Handle::default()).is_err());
    }
}

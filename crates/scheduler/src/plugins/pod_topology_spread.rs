//! PodTopologySpread (PreFilter with AddPod/RemovePod, Filter, PreScore,
//! Score, NormalizeScore), as upstream's `podtopologyspread` plugin.
//!
//! A constraint spreads the pods its selector matches (same namespace as
//! the incoming pod, not terminating) over the values ("domains") of a node
//! label. `DoNotSchedule` constraints filter: a node fits when its domain's
//! count, plus one if the pod matches the selector itself, exceeds the
//! global minimum by at most `maxSkew`; with fewer eligible domains than
//! `minDomains` the global minimum is 0. Nodes lacking any constraint's key
//! are rejected as unresolvable and never counted. Eligible nodes are those
//! matching the pod's node selector and required node affinity
//! (`nodeAffinityPolicy: Honor`, the default) and, with `nodeTaintsPolicy:
//! Honor`, whose `NoSchedule`/`NoExecute` taints the pod tolerates.
//! `ScheduleAnyway` constraints score: fewer matching pods in a node's
//! domains (weighted by the log of the domain count) score higher.
//! `matchLabelKeys` adds `key=value` of the pod's own labels to the
//! selector.
//!
//! Pods without constraints of their own get the default constraints (the
//! args' `defaultConstraints` with `defaultingType: List`, or upstream's
//! system defaults: hostname maxSkew 3 and zone maxSkew 5, both
//! `ScheduleAnyway`), with the selector built from the Services,
//! ReplicationControllers, ReplicaSets and StatefulSets that select or own
//! the pod ([`default_selector`]); none: no constraints.

//!
//! Layout, as upstream's package: `common` (constraints, counting, node
//! inclusion, default selector), `filtering` (PreFilter, AddPod/RemovePod,
//! Filter), `scoring` (PreScore, Score, NormalizeScore).

mod common;
mod filtering;
mod scoring;

use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use serde::Deserialize;
use serde_json::Value;

pub use common::default_selector;

use super::{parse_args, Extensions, Handle, PluginError};
use crate::framework::Plugin;
use crate::listers::Listers;

pub const NAME: &str = "PodTopologySpread";
/// Filter: placing the pod would exceed a constraint's `maxSkew`
/// (Unschedulable).
pub const REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// Filter: the node lacks a constraint's topology key
/// (UnschedulableAndUnresolvable).
pub const REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// The well-known hostname label (its domains are counted per node).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known zone label.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
pub const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
/// `defaultingType`: upstream's built-in default constraints.
pub const SYSTEM_DEFAULTING: &str = "System";
/// `defaultingType`: the args' `defaultConstraints`.
pub const LIST_DEFAULTING: &str = "List";
const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

/// The plugin's args (upstream `PodTopologySpreadArgs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTopologySpreadArgs {
    /// Constraints for pods without their own (only with `List`); they may
    /// not have a label selector.
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// `System` (the default) or `List`.
    pub defaulting_type: String,
}

/// Upstream's `systemDefaultConstraints`.
pub fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    let c = |key: &str, max_skew| TopologySpreadConstraint {
        topology_key: key.into(),
        when_unsatisfiable: SCHEDULE_ANYWAY.into(),
        max_skew,
        ..Default::default()
    };
    vec![c(LABEL_HOSTNAME, 3), c(LABEL_ZONE, 5)]
}

pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
    system_defaulted: bool,
    listers: Listers,
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// Upstream's `ValidatePodTopologySpreadArgs`: every problem, joined.
fn validate(args: &PodTopologySpreadArgs) -> Result<(), String> {
    let mut errs = Vec::new();
    let t = args.defaulting_type.as_str();
    if t != SYSTEM_DEFAULTING && t != LIST_DEFAULTING {
        errs.push(format!(
            "defaultingType: Unsupported value: {t:?}: supported values: \"System\", \"List\""
        ));
    } else if t == SYSTEM_DEFAULTING && !args.default_constraints.is_empty() {
        errs.push(
            "defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty"
                .to_string(),
        );
    }
    for (i, c) in args.default_constraints.iter().enumerate() {
        let p = format!("defaultConstraints[{i}]");
        if c.max_skew <= 0 {
            errs.push(format!(
                "{p}.maxSkew: Invalid value: {}: not in valid range (0, inf)",
                c.max_skew
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(format!("{p}.topologyKey: Required value: can not be empty"));
        } else {
            for e in rkube_api::selector::qualified_name_errors(&c.topology_key) {
                errs.push(format!(
                    "{p}.topologyKey: Invalid value: {:?}: {e}",
                    c.topology_key
                ));
            }
        }
        let w = c.when_unsatisfiable.as_str();
        if w != DO_NOT_SCHEDULE && w != SCHEDULE_ANYWAY {
            errs.push(format!(
                "{p}.whenUnsatisfiable: Unsupported value: {w:?}: supported values: \
                 \"DoNotSchedule\", \"ScheduleAnyway\""
            ));
        }
        if c.label_selector.is_some() {
            errs.push(format!(
                "{p}.labelSelector: Forbidden: constraint must not define a selector, as they \
                 deduced for each pod"
            ));
        }
        let repeated = args.default_constraints[..i]
            .iter()
            .any(|o| o.topology_key == c.topology_key && o.when_unsatisfiable == w);
        if repeated {
            errs.push(format!(
                "{p}: Duplicate value: {{{:?}, {w:?}}}",
                c.topology_key
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

impl PodTopologySpread {
    /// The plugin with checked args; an empty `defaultingType` means
    /// `System`.
    pub fn with_args(mut args: PodTopologySpreadArgs, h: &Handle) -> Result<Self, PluginError> {
        if args.defaulting_type.is_empty() {
            args.defaulting_type = SYSTEM_DEFAULTING.to_string();
        }
        validate(&args).map_err(|message| PluginError::Args {
            plugin: NAME,
            message,
        })?;
        let system_defaulted = args.defaulting_type == SYSTEM_DEFAULTING;
        Ok(PodTopologySpread {
            default_constraints: if system_defaulted {
                system_default_constraints()
            } else {
                args.default_constraints
            },
            system_defaulted,
            listers: h.listers.clone(),
        })
    }
}

/// Builds the plugin from its args.
pub fn new(args: &Value, h: &Handle) -> Result<Extensions, PluginError> {
    let args: PodTopologySpreadArgs = parse_args(NAME, args)?;
    let pl = Arc::new(PodTopologySpread::with_args(args, h)?);
    Ok(Extensions {
        pre_filter: Some(pl.clone()),
        filter: Some(pl.clone()),
        pre_score: Some(pl.clone()),
        score: Some(pl),
        ..Default::default()
    })
}

#[cfg(test)]
mod test_util;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_util::{plugin, plugin_with, HOST, ZONE};
    use super::*;

    fn args_error(args: Value) -> String {
        let parsed = parse_args::<PodTopologySpreadArgs>(NAME, &args).unwrap();
        match PodTopologySpread::with_args(parsed, &Handle::default()) {
            Err(PluginError::Args { plugin, message }) => {
                assert_eq!(plugin, NAME);
                message
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{args} accepted"),
        }
    }

    #[test]
    fn args_defaulting_and_validation() {
        let sys = plugin();
        assert!(sys.system_defaulted);
        let keys: Vec<(String, i32, String)> = sys
            .default_constraints
            .iter()
            .map(|c| {
                (
                    c.topology_key.clone(),
                    c.max_skew,
                    c.when_unsatisfiable.clone(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (HOST.into(), 3, SCHEDULE_ANYWAY.into()),
                (ZONE.into(), 5, SCHEDULE_ANYWAY.into())
            ]
        );
        let c = |key: &str, skew: i32, when: &str| json!({"topologyKey": key, "maxSkew": skew, "whenUnsatisfiable": when});
        let list = plugin_with(
            json!({"defaultingType": "List", "defaultConstraints": [c(ZONE, 1, "DoNotSchedule")]}),
            &Handle::default(),
        );
        assert!(!list.system_defaulted);
        assert_eq!(list.default_constraints.len(), 1);
        let empty_list = plugin_with(json!({"defaultingType": "List"}), &Handle::default());
        assert!(empty_list.default_constraints.is_empty());
        assert!(
            args_error(json!({"defaultConstraints": [c(ZONE, 1, "DoNotSchedule")]}))
                .contains("when .defaultConstraints are not empty")
        );
        assert!(args_error(json!({"defaultingType": "Other"})).contains("Unsupported value"));
        let list_of = |cs: Vec<Value>| json!({"defaultingType": "List", "defaultConstraints": cs});
        let m = args_error(list_of(vec![c(ZONE, 0, "DoNotSchedule")]));
        assert!(
            m.contains("defaultConstraints[0].maxSkew") && m.contains("(0, inf)"),
            "{m}"
        );
        let m = args_error(list_of(vec![c(ZONE, 1, "Maybe")]));
        assert!(m.contains("whenUnsatisfiable: Unsupported value"), "{m}");
        let m = args_error(list_of(vec![c("", 1, "DoNotSchedule")]));
        assert!(m.contains("topologyKey: Required value"), "{m}");
        let m = args_error(list_of(vec![c("bad key!", 1, "DoNotSchedule")]));
        assert!(m.contains("topologyKey: Invalid value"), "{m}");
        let m = args_error(list_of(vec![
            c(ZONE, 1, "DoNotSchedule"),
            c(HOST, 1, "DoNotSchedule"),
            c(ZONE, 2, "DoNotSchedule"),
        ]));
        assert!(m.contains("defaultConstraints[2]: Duplicate value"), "{m}");
        let mut with_selector = c(ZONE, 1, "DoNotSchedule");
        with_selector["labelSelector"] = json!({"matchLabels": {"app": "web"}});
        let m = args_error(list_of(vec![with_selector]));
        assert!(m.contains("labelSelector: Forbidden"), "{m}");
        let e = new(&Value::Null, &Handle::default()).unwrap();
        assert!(e.pre_filter.is_some() && e.filter.is_some());
        assert!(e.pre_score.is_some() && e.score.is_some());
    }

    #[test]
    fn registered_in_upstreams_default_order_with_weight_2() {
        use crate::plugins::{factory, DEFAULT_PLUGINS};
        assert!(factory(NAME).is_some());
        let pos = |n: &str| DEFAULT_PLUGINS.iter().position(|(p, _)| *p == n).unwrap();
        let me = pos(NAME);
        assert_eq!(DEFAULT_PLUGINS[me].1, 2);
        // ... NodeResourcesFit, PodTopologySpread, InterPodAffinity, ...,
        // NodeResourcesBalancedAllocation ...
        assert!(pos("NodeResourcesFit") < pos("PodTopologySpread"));
        assert_eq!(pos("PodTopologySpread") + 1, pos("InterPodAffinity"));
        assert!(pos("InterPodAffinity") < pos("NodeResourcesBalancedAllocation"));
        assert!(me > 0);
    }
}

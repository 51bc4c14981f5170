//! InterPodAffinity (PreFilter with AddPod/RemovePod, Filter, PreScore,
//! Score, NormalizeScore), as upstream's `interpodaffinity` plugin.
//!
//! Filtering: PreFilter counts, per topology pair (`topologyKey`, the
//! node's value for it), the existing pods whose required anti-affinity
//! terms match the incoming pod (symmetry), and the existing pods matching
//! the incoming pod's required affinity (all terms) and anti-affinity (each
//! term) terms. Filter then rejects a node when an affinity pair has no
//! matching pod (UnschedulableAndUnresolvable; except for the first pod of a
//! group that matches its own terms when no pod anywhere matches), when an
//! anti-affinity pair has one, or when an existing pod's anti-affinity
//! covers the node (both Unschedulable).
//!
//! Scoring: each topology pair accumulates the weights of the incoming
//! pod's preferred terms matched by existing pods (anti-affinity negative),
//! and symmetrically of the existing pods' preferred terms (and required
//! affinity terms, weighted `hardPodAffinityWeight`) matched by the incoming
//! pod; NormalizeScore scales from the lowest to the highest score.
//!
//! Terms: a null `labelSelector` matches nothing; no `namespaces` and a null
//! `namespaceSelector` mean the term owner's namespace; `namespaceSelector:
//! {}` means every namespace; `matchLabelKeys`/`mismatchLabelKeys` add
//! `key In/NotIn (owner's value)` to a non-null selector, as upstream's API
//! server does on pod creation. The incoming pod's namespace selectors are
//! resolved against the namespace lister once per cycle; existing pods'
//! terms are matched in place, without allocating. Terminating pods count,
//! as upstream.
//!
//! Layout, as upstream's package: `terms` (term parsing and matching,
//! counts), `filtering` (PreFilter, AddPod/RemovePod, Filter), `scoring`
//! (PreScore, Score, NormalizeScore).

mod filtering;
mod scoring;
mod terms;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_args, Extensions, Handle, PluginError};
use crate::framework::Plugin;
use crate::listers::Listers;

pub const NAME: &str = "InterPodAffinity";
/// Filter: the node's topology pairs have no pod matching the required
/// affinity (UnschedulableAndUnresolvable).
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Filter: a pod matching the required anti-affinity shares a topology pair
/// with the node (Unschedulable).
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Filter: an existing pod's required anti-affinity matches the incoming pod
/// in one of the node's topology pairs (Unschedulable).
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
const PRE_FILTER_KEY: &str = "PreFilterInterPodAffinity";
const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// The plugin's args (upstream `InterPodAffinityArgs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InterPodAffinityArgs {
    /// Score weight of an existing pod's required affinity term matched by
    /// the incoming pod (0..=100; 0 ignores them).
    pub hard_pod_affinity_weight: i32,
    /// Skip scoring when the incoming pod has no preferred terms of its own.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

pub struct InterPodAffinity {
    args: InterPodAffinityArgs,
    listers: Listers,
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// Builds the plugin; `hardPodAffinityWeight` must be within 0..=100.
pub fn new(args: &Value, h: &Handle) -> Result<Extensions, PluginError> {
    let args: InterPodAffinityArgs = parse_args(NAME, args)?;
    let pl = Arc::new(InterPodAffinity::with_args(args, h)?);
    Ok(Extensions {
        pre_filter: Some(pl.clone()),
        filter: Some(pl.clone()),
        pre_score: Some(pl.clone()),
        score: Some(pl),
        ..Default::default()
    })
}

impl InterPodAffinity {
    /// The plugin with checked args (upstream `ValidateInterPodAffinityArgs`).
    pub fn with_args(args: InterPodAffinityArgs, h: &Handle) -> Result<Self, PluginError> {
        let w = args.hard_pod_affinity_weight;
        if !(0..=100).contains(&w) {
            return Err(PluginError::Args {
                plugin: NAME,
                message: format!(
                    "hardPodAffinityWeight: Invalid value: {w}: not in valid range [0, 100]"
                ),
            });
        }
        Ok(InterPodAffinity {
            args,
            listers: h.listers.clone(),
        })
    }
}

#[cfg(test)]
mod test_util;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn args_defaults_and_validation() {
        let d: InterPodAffinityArgs = parse_args(NAME, &Value::Null).unwrap();
        assert_eq!(d.hard_pod_affinity_weight, 1);
        assert!(!d.ignore_preferred_terms_of_existing_pods);
        let a: InterPodAffinityArgs = parse_args(
            NAME,
            &json!({"hardPodAffinityWeight": 0, "ignorePreferredTermsOfExistingPods": true}),
        )
        .unwrap();
        assert_eq!(a.hard_pod_affinity_weight, 0);
        assert!(a.ignore_preferred_terms_of_existing_pods);
        assert!(new(&json!({"hardPodAffinityWeight": 100}), &Handle::default()).is_ok());
        for w in [-1, 101] {
            let err = new(&json!({ "hardPodAffinityWeight": w }), &Handle::default()).err();
            match err {
                Some(PluginError::Args { plugin, message }) => {
                    assert_eq!(plugin, NAME);
                    assert!(message.contains("not in valid range [0, 100]"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
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

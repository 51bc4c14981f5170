//! A scheduling profile: the plugins enabled at each extension point, in
//! order, with score weights, built from the registry by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::framework::{
    BindPlugin, FilterPlugin, PermitPlugin, PostBindPlugin, PostFilterPlugin, PreBindPlugin,
    PreEnqueuePlugin, PreFilterPlugin, PreScorePlugin, QueueSortPlugin, ReservePlugin, ScorePlugin,
};
use crate::plugins::{self, Extensions, Handle, PluginError};

/// Upstream's default scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// One profile.
#[derive(Clone)]
pub struct Profile {
    pub scheduler_name: String,
    pub pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
    pub queue_sort: Arc<dyn QueueSortPlugin>,
    pub pre_filter: Vec<Arc<dyn PreFilterPlugin>>,
    pub filter: Vec<Arc<dyn FilterPlugin>>,
    pub post_filter: Vec<Arc<dyn PostFilterPlugin>>,
    pub pre_score: Vec<Arc<dyn PreScorePlugin>>,
    pub score: Vec<(Arc<dyn ScorePlugin>, i64)>,
    pub reserve: Vec<Arc<dyn ReservePlugin>>,
    pub permit: Vec<Arc<dyn PermitPlugin>>,
    pub pre_bind: Vec<Arc<dyn PreBindPlugin>>,
    pub bind: Vec<Arc<dyn BindPlugin>>,
    pub post_bind: Vec<Arc<dyn PostBindPlugin>>,
    /// `percentageOfNodesToScore` (None: upstream's adaptive default).
    pub percentage_of_nodes_to_score: Option<u32>,
}

/// Errors of building a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("profile {0}: no QueueSort plugin enabled")]
    NoQueueSort(String),
    #[error("profile {0}: no Bind plugin enabled")]
    NoBind(String),
}

impl Profile {
    /// Upstream's default profile.
    pub fn default_profile(handle: &Handle) -> Result<Profile, ProfileError> {
        Profile::build(
            DEFAULT_SCHEDULER_NAME,
            plugins::DEFAULT_PLUGINS,
            &HashMap::new(),
            handle,
        )
    }

    /// A profile enabling `plugins` (name, score weight) at every point
    /// they implement (upstream's `multiPoint`), with per-plugin args.
    pub fn build(
        scheduler_name: &str,
        enabled: &[(&str, i64)],
        args: &HashMap<String, Value>,
        handle: &Handle,
    ) -> Result<Profile, ProfileError> {
        use crate::config::{PluginConfig, PluginRef, PluginSet, Plugins, ProfileConfig};
        let pc = ProfileConfig {
            scheduler_name: Some(scheduler_name.to_string()),
            percentage_of_nodes_to_score: None,
            plugins: Some(Plugins {
                multi_point: PluginSet {
                    enabled: enabled
                        .iter()
                        .map(|(n, w)| PluginRef {
                            name: n.to_string(),
                            weight: Some(*w),
                        })
                        .collect(),
                    disabled: vec![PluginRef {
                        name: "*".into(),
                        weight: None,
                    }],
                },
                ..Default::default()
            }),
            plugin_config: args
                .iter()
                .map(|(k, v)| PluginConfig {
                    name: k.clone(),
                    args: v.clone(),
                })
                .collect(),
        };
        crate::config::build_profile(&pc, handle).map_err(|e| match e {
            crate::config::ConfigError::Profile(p) => p,
            crate::config::ConfigError::Plugin(p) => ProfileError::Plugin(p),
            other => ProfileError::Plugin(PluginError::Unknown(other.to_string())),
        })
    }

    /// A profile from resolved per-point plugin lists (see
    /// [`crate::config`]) and the built plugins.
    pub fn from_points(
        scheduler_name: &str,
        points: &BTreeMap<&'static str, Vec<(String, i64)>>,
        built: &HashMap<String, Extensions>,
    ) -> Result<Profile, ProfileError> {
        let at = |point: &str| -> Vec<(&Extensions, i64)> {
            points
                .get(point)
                .into_iter()
                .flatten()
                .filter_map(|(n, w)| built.get(n).map(|e| (e, *w)))
                .collect()
        };
        macro_rules! pick {
            ($point:literal, $field:ident) => {
                at($point)
                    .into_iter()
                    .filter_map(|(e, _)| e.$field.clone())
                    .collect()
            };
        }
        let queue_sort = at("queueSort")
            .into_iter()
            .find_map(|(e, _)| e.queue_sort.clone())
            .ok_or_else(|| ProfileError::NoQueueSort(scheduler_name.to_string()))?;
        let bind: Vec<Arc<dyn BindPlugin>> = pick!("bind", bind);
        if bind.is_empty() {
            return Err(ProfileError::NoBind(scheduler_name.to_string()));
        }
        Ok(Profile {
            scheduler_name: scheduler_name.to_string(),
            pre_enqueue: pick!("preEnqueue", pre_enqueue),
            queue_sort,
            pre_filter: pick!("preFilter", pre_filter),
            filter: pick!("filter", filter),
            post_filter: pick!("postFilter", post_filter),
            pre_score: pick!("preScore", pre_score),
            score: at("score")
                .into_iter()
                .filter_map(|(e, w)| e.score.clone().map(|s| (s, w.max(1))))
                .collect(),
            reserve: pick!("reserve", reserve),
            permit: pick!("permit", permit),
            pre_bind: pick!("preBind", pre_bind),
            bind,
            post_bind: pick!("postBind", post_bind),
            percentage_of_nodes_to_score: None,
        })
    }

    /// How many feasible nodes to find before scoring, as upstream's
    /// `numFeasibleNodesToFind`: all below 100 nodes; else the configured
    /// percentage, or adaptively `max(5, 50 − nodes/125)` percent, at least
    /// 100 nodes.
    pub fn num_feasible_nodes_to_find(&self, nodes: usize) -> usize {
        const MIN_FEASIBLE: usize = 100;
        if nodes < MIN_FEASIBLE || self.percentage_of_nodes_to_score == Some(100) {
            return nodes;
        }
        let pct = match self.percentage_of_nodes_to_score {
            Some(p) if p > 0 => p as usize,
            _ => (50usize.saturating_sub(nodes / 125)).max(5),
        };
        (nodes * pct / 100).max(MIN_FEASIBLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_percentage_of_nodes_to_score() {
        let mut p = Profile::default_profile(&Handle::default()).unwrap();
        assert_eq!(p.num_feasible_nodes_to_find(50), 50);
        assert_eq!(p.num_feasible_nodes_to_find(100), 100);
        // 5,000 nodes: 50 − 40 = 10 % → 500.
        assert_eq!(p.num_feasible_nodes_to_find(5000), 500);
        // 10,000 nodes: floor of 5 % → 500.
        assert_eq!(p.num_feasible_nodes_to_find(10_000), 500);
        // 150 nodes: 49 % of 150 = 73 → at least 100.
        assert_eq!(p.num_feasible_nodes_to_find(150), 100);
        p.percentage_of_nodes_to_score = Some(20);
        assert_eq!(p.num_feasible_nodes_to_find(5000), 1000);
        p.percentage_of_nodes_to_score = Some(100);
        assert_eq!(p.num_feasible_nodes_to_find(5000), 5000);
    }

    #[test]
    fn unknown_plugins_and_missing_points_are_errors() {
        let h = Handle::default();
        assert!(matches!(
            Profile::build("x", &[("Nope", 1)], &HashMap::new(), &h),
            Err(ProfileError::Plugin(PluginError::Unknown(_)))
        ));
        assert_eq!(
            Profile::build("x", &[("DefaultBinder", 0)], &HashMap::new(), &h).err(),
            Some(ProfileError::NoQueueSort("x".into()))
        );
    }
}

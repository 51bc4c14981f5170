//! A scheduling profile: the plugins enabled at each extension point, in
//! order, with score weights, built from the registry by name.

use std::collections::HashMap;
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
        let empty = Value::Object(Default::default());
        let mut built: Vec<(Extensions, i64)> = Vec::new();
        for (name, weight) in enabled {
            let f = plugins::factory(name).ok_or_else(|| PluginError::Unknown(name.to_string()))?;
            let ext = f(args.get(*name).unwrap_or(&empty), handle)?;
            built.push((ext, *weight));
        }
        let queue_sort = built
            .iter()
            .find_map(|(e, _)| e.queue_sort.clone())
            .ok_or_else(|| ProfileError::NoQueueSort(scheduler_name.to_string()))?;
        let collect = |f: &dyn Fn(&Extensions) -> bool| built.iter().filter(|(e, _)| f(e)).count();
        if collect(&|e| e.bind.is_some()) == 0 {
            return Err(ProfileError::NoBind(scheduler_name.to_string()));
        }
        Ok(Profile {
            scheduler_name: scheduler_name.to_string(),
            pre_enqueue: built
                .iter()
                .filter_map(|(e, _)| e.pre_enqueue.clone())
                .collect(),
            queue_sort,
            pre_filter: built
                .iter()
                .filter_map(|(e, _)| e.pre_filter.clone())
                .collect(),
            filter: built.iter().filter_map(|(e, _)| e.filter.clone()).collect(),
            post_filter: built
                .iter()
                .filter_map(|(e, _)| e.post_filter.clone())
                .collect(),
            pre_score: built
                .iter()
                .filter_map(|(e, _)| e.pre_score.clone())
                .collect(),
            score: built
                .iter()
                .filter_map(|(e, w)| e.score.clone().map(|s| (s, (*w).max(1))))
                .collect(),
            reserve: built
                .iter()
                .filter_map(|(e, _)| e.reserve.clone())
                .collect(),
            permit: built.iter().filter_map(|(e, _)| e.permit.clone()).collect(),
            pre_bind: built
                .iter()
                .filter_map(|(e, _)| e.pre_bind.clone())
                .collect(),
            bind: built.iter().filter_map(|(e, _)| e.bind.clone()).collect(),
            post_bind: built
                .iter()
                .filter_map(|(e, _)| e.post_bind.clone())
                .collect(),
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

//! The plugins, one per file, and the central registry that builds them by
//! name (like kube-scheduler's `plugins/registry.go`). A plugin's factory
//! returns the [`Extensions`] it implements; a profile then picks, per
//! extension point, the enabled plugins in order.

pub mod default_binder;
pub mod default_preemption;
pub mod helpers;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_balanced_allocation;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;

use std::sync::Arc;

use serde_json::Value;

use crate::framework::{
    BindPlugin, FilterPlugin, PermitPlugin, PostBindPlugin, PostFilterPlugin, PreBindPlugin,
    PreEnqueuePlugin, PreFilterPlugin, PreScorePlugin, QueueSortPlugin, ReservePlugin, ScorePlugin,
};

/// Errors of building plugins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("unknown plugin {0:?}")]
    Unknown(String),
    #[error("plugin {plugin}: invalid args: {message}")]
    Args {
        plugin: &'static str,
        message: String,
    },
    #[error("plugin {plugin} does not implement {point}")]
    NotAt { plugin: String, point: &'static str },
}

/// What plugins may use beyond the pod and nodes.
#[derive(Clone, Default)]
pub struct Handle {
    /// The API client (binder, preemption); `None` in pure unit tests.
    pub client: Option<kube::Client>,
    /// Namespaces, workload objects and PDBs.
    pub listers: crate::listers::Listers,
    /// Pods waiting at Permit, to allow or reject.
    pub waiting: crate::waiting::WaitingPods,
}

/// The extension points one plugin implements.
#[derive(Default, Clone)]
pub struct Extensions {
    pub pre_enqueue: Option<Arc<dyn PreEnqueuePlugin>>,
    pub queue_sort: Option<Arc<dyn QueueSortPlugin>>,
    pub pre_filter: Option<Arc<dyn PreFilterPlugin>>,
    pub filter: Option<Arc<dyn FilterPlugin>>,
    pub post_filter: Option<Arc<dyn PostFilterPlugin>>,
    pub pre_score: Option<Arc<dyn PreScorePlugin>>,
    pub score: Option<Arc<dyn ScorePlugin>>,
    pub reserve: Option<Arc<dyn ReservePlugin>>,
    pub permit: Option<Arc<dyn PermitPlugin>>,
    pub pre_bind: Option<Arc<dyn PreBindPlugin>>,
    pub bind: Option<Arc<dyn BindPlugin>>,
    pub post_bind: Option<Arc<dyn PostBindPlugin>>,
}

/// Builds a plugin from its args (`{}` when none are given).
pub type Factory = fn(args: &Value, handle: &Handle) -> Result<Extensions, PluginError>;

/// Every plugin rkube has, by upstream name.
pub fn registry() -> &'static [(&'static str, Factory)] {
    &[
        (priority_sort::NAME, priority_sort::new),
        (scheduling_gates::NAME, scheduling_gates::new),
        (node_unschedulable::NAME, node_unschedulable::new),
        (node_name::NAME, node_name::new),
        (taint_toleration::NAME, taint_toleration::new),
        (node_affinity::NAME, node_affinity::new),
        (node_ports::NAME, node_ports::new),
        (node_resources_fit::NAME, node_resources_fit::new),
        (pod_topology_spread::NAME, pod_topology_spread::new),
        (inter_pod_affinity::NAME, inter_pod_affinity::new),
        (
            node_resources_balanced_allocation::NAME,
            node_resources_balanced_allocation::new,
        ),
        (default_preemption::NAME, default_preemption::new),
        (default_binder::NAME, default_binder::new),
    ]
}

/// Upstream's default profile (`MultiPoint` in v1.33) as far as rkube
/// implements it: plugin name and score weight.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    (scheduling_gates::NAME, 0),
    (priority_sort::NAME, 0),
    (node_unschedulable::NAME, 0),
    (node_name::NAME, 0),
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_ports::NAME, 0),
    (node_resources_fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (default_preemption::NAME, 0),
    (node_resources_balanced_allocation::NAME, 1),
    (default_binder::NAME, 0),
];

/// Looks up a plugin's factory.
pub fn factory(name: &str) -> Option<Factory> {
    registry().iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Parses a plugin's args into `T` (missing fields take `T`'s defaults).
pub fn parse_args<T: serde::de::DeserializeOwned + Default>(
    plugin: &'static str,
    args: &Value,
) -> Result<T, PluginError> {
    if args.is_null() || args.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(T::default());
    }
    serde_json::from_value(args.clone()).map_err(|e| PluginError::Args {
        plugin,
        message: e.to_string(),
    })
}

//! The scheduling framework: upstream's extension points as traits, the
//! per-cycle [`CycleState`], and plugin [`Status`] results.
//!
//! Order of a scheduling cycle: PreEnqueue (before queueing) → QueueSort →
//! PreFilter → Filter → PostFilter (only when no node fits) → PreScore →
//! Score → NormalizeScore → Reserve (Unreserve in reverse on failure) →
//! Permit; then the binding cycle: PreBind → Bind → PostBind.

pub mod types;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use types::{NodeInfo, PodInfo, Resources, Snapshot};

/// Highest score a Score plugin may give after normalization.
pub const MAX_NODE_SCORE: i64 = 100;
/// Lowest score.
pub const MIN_NODE_SCORE: i64 = 0;

/// Outcome kinds, as upstream's `framework.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Success,
    /// An internal error: the pod is retried with back-off.
    Error,
    /// The pod does not fit now; preemption may help.
    Unschedulable,
    /// The pod does not fit, and preemption cannot help on this node.
    UnschedulableAndUnresolvable,
    /// Permit: wait for approval.
    Wait,
    /// PreFilter/PreScore: the plugin has nothing to do for this pod; its
    /// Filter/Score is skipped.
    Skip,
    /// PreEnqueue: the pod stays out of the active queue (gated).
    Pending,
}

/// A plugin's verdict, with human-readable reasons (aggregated into
/// upstream's `0/5 nodes are available: ...` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    /// The plugin that returned it (set by the framework).
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<String>) -> Status {
        Status::new(Code::Error, reason)
    }

    pub fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Unschedulable or UnschedulableAndUnresolvable.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }
}

/// A value a plugin keeps in the [`CycleState`]. Cloneable, because
/// preemption copies the state to simulate removing pods from a node.
pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Data plugins share within one scheduling cycle (PreFilter results read
/// by Filter, PreScore results read by Score), keyed by plugin name.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn StateData>>,
    /// Nodes a PreFilter restricted the cycle to (`None`: all).
    pub node_names: Option<HashSet<String>>,
    /// Plugins whose PreFilter/PreScore returned Skip.
    pub skip_filter: HashSet<&'static str>,
    pub skip_score: HashSet<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
            node_names: self.node_names.clone(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
        }
    }
}

impl CycleState {
    pub fn write<T: Any + Clone + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        (**self.data.get(key)?).as_any().downcast_ref()
    }

    pub fn read_mut<T: Any + Send + Sync>(&mut self, key: &'static str) -> Option<&mut T> {
        (**self.data.get_mut(key)?).as_any_mut().downcast_mut()
    }
}

/// A node's score from one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    pub name: String,
    pub score: i64,
}

/// A pod in the scheduling queue.
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    pub info: Arc<PodInfo>,
    /// When it was first added (for QueueSort ties).
    pub initial_attempt: std::time::Instant,
    pub timestamp: std::time::Instant,
    pub attempts: u32,
    /// Plugins that rejected it last time (for queueing hints).
    pub unschedulable_plugins: HashSet<&'static str>,
}

/// Every plugin has a name.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// Whether a pod may enter the active queue (e.g. scheduling gates).
pub trait PreEnqueuePlugin: Plugin {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
}

/// Orders the active queue.
pub trait QueueSortPlugin: Plugin {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
}

/// Runs once per cycle before Filter.
pub trait PreFilterPlugin: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status;

    /// PreFilterExtensions (upstream's AddPod): updates this plugin's
    /// PreFilter state as if `to_add` were on `node` (preemption and
    /// nominated pods use it). The default has nothing to update.
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _to_add: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }

    /// PreFilterExtensions (upstream's RemovePod): as if `to_remove` were
    /// no longer on `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _to_remove: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }
}

/// Whether the pod fits one node. Called concurrently for many nodes.
pub trait FilterPlugin: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs when no node fits (e.g. preemption); may nominate a node.
pub trait PostFilterPlugin: Plugin {
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &mut CycleState,
        pod: &PodInfo,
    ) -> (Option<PostFilterResult>, Status);
}

/// What a PostFilter plugin may look at: the profile (to re-run its
/// filters), the snapshot, why each node rejected the pod, and the pods
/// nominated to nodes.
pub struct PostFilterContext<'a> {
    pub profile: &'a crate::profile::Profile,
    pub snapshot: &'a Snapshot,
    /// Node name → the status that rejected the pod there.
    pub rejections: &'a HashMap<String, Status>,
    pub nominator: &'a crate::nominator::Nominator,
}

/// What a PostFilter decided: nominate the pod to a node after evicting
/// victims (an empty node clears the pod's nomination).
#[derive(Debug, Clone)]
pub struct PostFilterResult {
    pub nominated_node: String,
    /// The pods to evict, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// Lower-priority pods nominated to the same node, whose nomination is
    /// cleared.
    pub clear_nominations: Vec<Arc<PodInfo>>,
}

impl PartialEq for PostFilterResult {
    fn eq(&self, o: &Self) -> bool {
        let uids = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.uid.clone()).collect::<Vec<_>>();
        self.nominated_node == o.nominated_node
            && uids(&self.victims) == uids(&o.victims)
            && uids(&self.clear_nominations) == uids(&o.clear_nominations)
    }
}

impl Eq for PostFilterResult {}

/// Runs once per cycle before Score, over the nodes that passed Filter.
pub trait PreScorePlugin: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Scores one node; then normalizes all scores to 0..=100.
pub trait ScorePlugin: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status);
    /// NormalizeScore; the default leaves scores as they are.
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [NodeScore]) -> Status {
        Status::success()
    }
}

/// Reserve/Unreserve: claims made before binding, undone on failure.
pub trait ReservePlugin: Plugin {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Permit: approve, deny, or make the pod wait (with a timeout).
pub trait PermitPlugin: Plugin {
    fn permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> (Status, Duration);
}

/// Binding-cycle plugins: they do I/O, so they are async.
#[async_trait]
pub trait PreBindPlugin: Plugin {
    async fn pre_bind(&self, pod: &PodInfo, node: &str) -> Status;
}

/// Binds the pod (the DefaultBinder posts to pods/binding). A binder that
/// does not handle the pod returns Skip.
#[async_trait]
pub trait BindPlugin: Plugin {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status;
}

/// Informational, after a successful bind.
pub trait PostBindPlugin: Plugin {
    fn post_bind(&self, pod: &PodInfo, node: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_state_reads_what_was_written_and_clones_deeply() {
        let mut s = CycleState::default();
        s.write("a", vec![1, 2]);
        assert_eq!(s.read::<Vec<i32>>("a"), Some(&vec![1, 2]));
        assert!(s.read::<String>("a").is_none());
        let mut c = s.clone();
        c.read_mut::<Vec<i32>>("a").unwrap().push(3);
        assert_eq!(s.read::<Vec<i32>>("a").unwrap().len(), 2);
        assert_eq!(c.read::<Vec<i32>>("a").unwrap().len(), 3);
    }
}

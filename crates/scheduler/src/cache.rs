//! The scheduler's cache: every node with the pods on it (bound, and
//! assumed: chosen by this scheduler but not yet confirmed by a watch event
//! after binding). The scheduling loop is single-threaded and runs each
//! cycle synchronously, so the cache's [`Snapshot`] is read by plugins
//! directly, without copying.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::framework::{NodeInfo, PodInfo, Snapshot};

struct PodState {
    node: String,
    assumed: bool,
}

/// Nodes and the pods on them.
#[derive(Default)]
pub struct Cache {
    snapshot: Snapshot,
    pods: HashMap<String, PodState>,
    /// Pods on nodes the cache has not seen yet, by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    dirty: bool,
    /// Only the lists of nodes with affinity pods need recomputing.
    dirty_affinity: bool,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The nodes as plugins see them.
    pub fn snapshot(&mut self) -> &Snapshot {
        if self.dirty {
            let nodes = std::mem::take(&mut self.snapshot.nodes);
            self.snapshot = Snapshot::new(nodes);
            self.dirty = false;
            self.dirty_affinity = false;
        } else if self.dirty_affinity {
            self.snapshot.refresh_affinity_lists();
            self.dirty_affinity = false;
        }
        &self.snapshot
    }

    pub fn node_count(&self) -> usize {
        self.snapshot.nodes.len()
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.snapshot.index.get(name)?;
        Some(Arc::make_mut(&mut self.snapshot.nodes[i]))
    }

    /// Adds or updates a node. True when the change can make a pending pod
    /// fit (a new node, or changed labels, taints, `unschedulable` or
    /// allocatable — upstream's node events for its queueing hints); a
    /// heartbeat (conditions, timestamps) is not.
    pub fn upsert_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(n) = self.node_mut(&name) {
            let relevant = scheduling_fields_differ(&n.node, &node);
            n.set_node(Arc::new(node));
            return relevant;
        }
        let node = Arc::new(node);
        let mut info = NodeInfo::new(node);
        for p in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(p);
        }
        let i = self.snapshot.nodes.len();
        self.snapshot.index.insert(name, i);
        self.snapshot.nodes.push(Arc::new(info));
        self.dirty = true;
        true
    }

    /// Removes a node; its pods wait as orphans in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.snapshot.index.remove(name) else {
            return;
        };
        let removed = self.snapshot.nodes.swap_remove(i);
        if i < self.snapshot.nodes.len() {
            let moved = self.snapshot.nodes[i].name.clone();
            self.snapshot.index.insert(moved, i);
        }
        self.orphans.insert(name.to_string(), removed.pods.clone());
        self.dirty = true;
    }

    fn add_to_node(&mut self, node: &str, info: Arc<PodInfo>) {
        let affinity = has_affinity(&info.pod);
        match self.node_mut(node) {
            Some(n) => n.add_pod(info),
            None => self.orphans.entry(node.to_string()).or_default().push(info),
        }
        self.dirty_affinity |= affinity;
    }

    fn remove_from_node(&mut self, node: &str, uid: &str) {
        let mut affinity = false;
        if let Some(n) = self.node_mut(node) {
            if let Some(p) = n.pods.iter().find(|p| p.uid == uid) {
                affinity = has_affinity(&p.pod);
            }
            n.remove_pod(uid);
        } else if let Some(list) = self.orphans.get_mut(node) {
            list.retain(|p| p.uid != uid);
        }
        self.dirty_affinity |= affinity;
    }

    /// A pod bound to `node` as far as the API server says (a watch event
    /// of an assigned, non-terminal pod): confirms an assumed pod.
    pub fn upsert_pod(&mut self, info: Arc<PodInfo>, node: &str) {
        if let Some(old) = self.pods.get(&info.uid) {
            let old_node = old.node.clone();
            self.remove_from_node(&old_node, &info.uid);
        }
        self.add_to_node(node, info.clone());
        self.pods.insert(
            info.uid.clone(),
            PodState {
                node: node.to_string(),
                assumed: false,
            },
        );
    }

    /// The pod is gone (deleted or terminal).
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(old) = self.pods.remove(uid) {
            self.remove_from_node(&old.node, uid);
        }
    }

    /// Counts the pod on `node` before binding is confirmed.
    pub fn assume(&mut self, info: &PodInfo, node: &str) -> Arc<PodInfo> {
        let mut pod = (*info.pod).clone();
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        let assumed = Arc::new(PodInfo {
            pod: Arc::new(pod),
            ..info.clone()
        });
        self.add_to_node(node, assumed.clone());
        self.pods.insert(
            info.uid.clone(),
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
        assumed
    }

    /// Binding failed: the assumed pod no longer counts.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid);
        }
    }

    /// The node a cached pod is on (bound or assumed).
    pub fn node_of(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid).map(|p| p.node.as_str())
    }

    /// Whether the pod is in the cache (bound or assumed).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }
}

/// Whether two versions of a node differ in what scheduling looks at.
fn scheduling_fields_differ(old: &Node, new: &Node) -> bool {
    fn spec(
        n: &Node,
    ) -> (
        Option<bool>,
        Option<&Vec<k8s_openapi::api::core::v1::Taint>>,
    ) {
        n.spec
            .as_ref()
            .map(|s| (s.unschedulable, s.taints.as_ref()))
            .unwrap_or_default()
    }
    fn alloc(n: &Node) -> Option<&std::collections::BTreeMap<String, Quantity>> {
        n.status.as_ref().and_then(|s| s.allocatable.as_ref())
    }
    old.metadata.labels != new.metadata.labels || spec(old) != spec(new) || alloc(old) != alloc(new)
}

fn has_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{info, node, pod};

    #[test]
    fn assume_confirm_forget_and_orphans() {
        let mut c = Cache::new();
        c.upsert_node(node("a").build());
        let p = info(pod("p").requests(&[("cpu", "1")]).build());
        c.assume(&p, "a");
        assert!(c.is_assumed(&p.uid));
        assert_eq!(c.snapshot().get("a").unwrap().requested.milli_cpu, 1000);
        c.forget(&p.uid);
        assert_eq!(c.snapshot().get("a").unwrap().requested.milli_cpu, 0);
        // Confirmed by a watch event: no longer assumed, counted once.
        c.assume(&p, "a");
        c.upsert_pod(Arc::new(p.clone()), "a");
        assert!(!c.is_assumed(&p.uid));
        c.forget(&p.uid);
        let a = c.snapshot().get("a").unwrap();
        assert_eq!((a.pods.len(), a.requested.milli_cpu), (1, 1000));
        // A pod on an unknown node waits for the node.
        let q = info(pod("q").requests(&[("cpu", "2")]).build());
        c.upsert_pod(Arc::new(q.clone()), "b");
        c.upsert_node(node("b").build());
        assert_eq!(c.snapshot().get("b").unwrap().requested.milli_cpu, 2000);
        c.remove_node("a");
        assert!(c.snapshot().get("a").is_none());
        assert_eq!(c.snapshot().get("b").unwrap().pods.len(), 1);
        c.remove_pod(&q.uid);
        assert_eq!(c.snapshot().get("b").unwrap().pods.len(), 0);
        assert_eq!(c.node_count(), 1);
    }

    #[test]
    fn heartbeats_are_not_scheduling_events() {
        let mut c = Cache::new();
        let n = node("a").allocatable(&[("cpu", "2")]).build();
        assert!(c.upsert_node(n.clone()), "a new node is an event");
        let mut beat = n.clone();
        beat.status.as_mut().unwrap().conditions = Some(vec![Default::default()]);
        beat.metadata.resource_version = Some("7".into());
        assert!(!c.upsert_node(beat.clone()));
        let mut labelled = beat.clone();
        labelled
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("disk".into(), "ssd".into());
        assert!(c.upsert_node(labelled.clone()));
        let mut cordoned = labelled;
        cordoned
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        assert!(c.upsert_node(cordoned));
    }
}

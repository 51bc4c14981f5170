//! Pods nominated to a node by preemption (upstream's nominator): they
//! wait for their victims to leave, and while they wait the space on the
//! node is held for them — Filter treats a nominated pod of equal or higher
//! priority as if it already ran there.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::PodInfo;

#[derive(Clone)]
struct Nomination {
    node: String,
    /// Known from the pod's `status.nominatedNodeName` (not only locally).
    from_api: bool,
}

/// Nominated pods by node.
#[derive(Default, Clone)]
pub struct Nominator {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    by_uid: HashMap<String, Nomination>,
}

/// `status.nominatedNodeName`, if set.
pub fn nominated_node_name(info: &PodInfo) -> Option<&str> {
    info.pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Nominator {
    /// Nominates the pod to `node` (replacing an earlier nomination).
    pub fn add(&mut self, info: Arc<PodInfo>, node: &str) {
        self.remove(&info.uid);
        self.by_uid.insert(
            info.uid.clone(),
            Nomination {
                node: node.to_string(),
                from_api: nominated_node_name(&info) == Some(node),
            },
        );
        self.by_node.entry(node.to_string()).or_default().push(info);
    }

    /// Follows an update of a pending pod: its `status.nominatedNodeName`
    /// wins; without one, a nomination made locally (whose status write
    /// has not come back yet) is kept, one learnt from the API is dropped.
    pub fn update(&mut self, info: Arc<PodInfo>) {
        if let Some(node) = nominated_node_name(&info).map(str::to_string) {
            self.add(info, &node);
            return;
        }
        match self.by_uid.get(&info.uid).cloned() {
            Some(n) if !n.from_api => {
                self.remove(&info.uid);
                self.by_uid.insert(info.uid.clone(), n.clone());
                self.by_node.entry(n.node).or_default().push(info);
            }
            Some(_) => self.remove(&info.uid),
            None => {}
        }
    }

    /// Drops the pod's nomination (bound, deleted, or cleared).
    pub fn remove(&mut self, uid: &str) {
        let Some(n) = self.by_uid.remove(uid) else {
            return;
        };
        if let Some(v) = self.by_node.get_mut(&n.node) {
            v.retain(|p| p.uid != uid);
            if v.is_empty() {
                self.by_node.remove(&n.node);
            }
        }
    }

    /// The node the pod is nominated to.
    pub fn node_of(&self, uid: &str) -> Option<&str> {
        self.by_uid.get(uid).map(|n| n.node.as_str())
    }

    /// The pods nominated to `node`.
    pub fn pods_on(&self, node: &str) -> &[Arc<PodInfo>] {
        self.by_node
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{info, pod};

    fn with_nnn(name: &str, node: Option<&str>) -> Arc<PodInfo> {
        let mut p = pod(name).build();
        p.status
            .get_or_insert_with(Default::default)
            .nominated_node_name = node.map(str::to_string);
        Arc::new(info(p))
    }

    #[test]
    fn local_nomination_survives_a_stale_update_but_api_clear_drops_it() {
        let mut n = Nominator::default();
        n.add(with_nnn("a", None), "n1");
        assert_eq!(n.node_of(&with_nnn("a", None).uid), Some("n1"));
        // An update that does not carry the nomination yet keeps it.
        n.update(with_nnn("a", None));
        assert_eq!(n.pods_on("n1").len(), 1);
        // The API confirms it; then the API clears it.
        n.update(with_nnn("a", Some("n1")));
        n.update(with_nnn("a", None));
        assert!(n.pods_on("n1").is_empty());
        assert!(n.is_empty());
        // Moving to another node.
        n.update(with_nnn("a", Some("n1")));
        n.update(with_nnn("a", Some("n2")));
        assert!(n.pods_on("n1").is_empty());
        assert_eq!(n.pods_on("n2").len(), 1);
        n.remove(&with_nnn("a", None).uid);
        assert!(n.is_empty());
    }
}

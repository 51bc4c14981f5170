//! The node IPAM controller's bookkeeping, without I/O: which subnets the
//! known nodes hold, which patches are in flight, what to patch next.
//!
//! Invariant: a subnet is used in the [`CidrSet`] exactly when something
//! holds it: a node whose `spec.podCIDR` (as last seen by the watch) covers
//! it, or a reservation made for a patch. Holds are counted, so a subnet two
//! nodes claim stays used until both are gone, and the order in which a
//! patch result and the watch event showing it arrive does not matter.
//!
//! Patches carry the node's resourceVersion as a precondition, so a patch
//! can only land on the node incarnation it was made for. A reservation
//! lives from allocation until the watch shows the node with a podCIDR (the
//! node's own hold takes over), the node is deleted (a patch still in flight
//! can no longer land), or the patch is known not to have landed (the subnet
//! is freed and the node retried with backoff). When it is unknown whether a
//! patch landed, the reservation stays and the same subnet is sent again
//! later.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

use super::cidrset::CidrSet;

/// First retry delay after a failed patch; doubles per failure.
pub(crate) const RETRY_BASE: Duration = Duration::from_secs(2);
/// Longest retry delay after failed patches.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often nodes waiting for a free subnet try again (a release also wakes
/// one at once).
pub(crate) const EXHAUSTED_RETRY: Duration = Duration::from_secs(10);

/// What the controller needs of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeView {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub pod_cidr: Option<String>,
}

impl NodeView {
    pub fn from_node(n: &Node) -> Option<NodeView> {
        Some(NodeView {
            name: n.metadata.name.clone()?,
            uid: n.metadata.uid.clone().unwrap_or_default(),
            resource_version: n.metadata.resource_version.clone().unwrap_or_default(),
            pod_cidr: pod_cidr_of(n),
        })
    }
}

/// `spec.podCIDR`, or the first of `spec.podCIDRs`; None when unset or empty.
pub(crate) fn pod_cidr_of(n: &Node) -> Option<String> {
    let spec = n.spec.as_ref()?;
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .find(|c| !c.is_empty())
        .cloned()
}

/// A patch to send: give `node` (incarnation `uid`, last seen at
/// `resource_version`) the subnet `cidr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchRequest {
    pub attempt: u64,
    pub node: String,
    pub uid: String,
    pub resource_version: String,
    pub cidr: String,
}

/// How a patch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatchOutcome {
    /// The node now carries the subnet.
    Patched,
    /// The node is gone (404).
    NotFound,
    /// The node carries another podCIDR: someone else set it.
    Taken,
    /// The patch did not land (a re-read shows no podCIDR, or another
    /// incarnation of the node): the subnet is freed and the node retried
    /// later.
    Failed,
    /// It is unknown whether the patch landed (the re-read failed too): the
    /// subnet stays reserved and the same patch is sent again later.
    Unknown,
}

struct Known {
    uid: String,
    resource_version: String,
    has_cidr: bool,
    /// The subnets the node's podCIDR covers (empty when it has none or it
    /// lies outside the cluster CIDR).
    held: Range<u32>,
}

struct Reservation {
    attempt: u64,
    index: u32,
    in_flight: bool,
    /// Send the patch again (with the same subnet) when the node is retried.
    resend: bool,
    /// Some patch's outcome was unknown: it may still land, so the subnet is
    /// not freed on a later failure, only resent.
    uncertain: bool,
}

pub(crate) struct State {
    set: CidrSet,
    refs: HashMap<u32, u32>,
    nodes: HashMap<String, Known>,
    reservations: HashMap<String, Reservation>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    retries: BinaryHeap<Reverse<(Instant, String)>>,
    failures: HashMap<String, u32>,
    starved: VecDeque<String>,
    starved_set: HashSet<String>,
    /// Names seen since the last `Init`, while a (re)list is running.
    relist: Option<HashSet<String>>,
    synced: bool,
    next_attempt: u64,
    exhausted_warned: bool,
    /// Nodes whose podCIDR was already reported as foreign or shared.
    warned: HashSet<String>,
}

impl State {
    pub fn new(set: CidrSet) -> State {
        State {
            set,
            refs: HashMap::new(),
            nodes: HashMap::new(),
            reservations: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            retries: BinaryHeap::new(),
            failures: HashMap::new(),
            starved: VecDeque::new(),
            starved_set: HashSet::new(),
            relist: None,
            synced: false,
            next_attempt: 0,
            exhausted_warned: false,
            warned: HashSet::new(),
        }
    }

    /// Whether the first complete list has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn set(&self) -> &CidrSet {
        &self.set
    }

    /// A (re)list starts.
    pub fn on_init(&mut self) {
        self.relist = Some(HashSet::new());
    }

    /// The (re)list is complete: nodes it did not show are gone; from now
    /// on nodes without a podCIDR get one.
    pub fn on_init_done(&mut self) {
        if let Some(seen) = self.relist.take() {
            let gone: Vec<String> = self
                .nodes
                .keys()
                .filter(|n| !seen.contains(*n))
                .cloned()
                .collect();
            for n in gone {
                self.forget(&n);
            }
        }
        self.synced = true;
        let mut todo: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, k)| !k.has_cidr && self.reservations.get(*n).is_none_or(|r| r.resend))
            .map(|(n, _)| n.clone())
            .collect();
        todo.sort();
        for n in todo {
            self.enqueue(n);
        }
    }

    /// A node was added or changed (or listed).
    pub fn on_apply(&mut self, v: NodeView) {
        if let Some(seen) = &mut self.relist {
            seen.insert(v.name.clone());
        }
        if self.nodes.get(&v.name).is_some_and(|k| k.uid != v.uid) {
            // Deleted and recreated under the same name.
            self.forget(&v.name);
        }
        let held = match &v.pod_cidr {
            Some(c) => self.covered(&v.name, c),
            None => 0..0,
        };
        let old = self.nodes.get(&v.name).map_or(0..0, |k| k.held.clone());
        if held != old {
            let own = self.reservations.get(&v.name).map(|r| r.index);
            if held.len() == 1
                && self.refs.contains_key(&held.start)
                && own != Some(held.start)
                && self.warned.insert(v.name.clone())
            {
                tracing::warn!(
                    node = %v.name,
                    pod_cidr = v.pod_cidr.as_deref().unwrap_or(""),
                    "node podCIDR is also in use by another node"
                );
            }
            self.hold(held.clone());
            self.unhold(old);
        }
        let has_cidr = v.pod_cidr.is_some();
        self.nodes.insert(
            v.name.clone(),
            Known {
                uid: v.uid,
                resource_version: v.resource_version,
                has_cidr,
                held,
            },
        );
        if has_cidr {
            self.failures.remove(&v.name);
            self.drop_reservation(&v.name);
        } else if self.synced && self.relist.is_none() && !self.reservations.contains_key(&v.name) {
            self.enqueue(v.name);
        }
    }

    /// A node was deleted.
    pub fn on_delete(&mut self, name: &str) {
        self.forget(name);
    }

    /// The next patch to send, if any node waits for a subnet and one is
    /// free. Nodes that find none wait (a warning is logged once per
    /// exhaustion episode).
    pub fn next_patch(&mut self, now: Instant) -> Option<PatchRequest> {
        while let Some(name) = self.queue.pop_front() {
            self.queued.remove(&name);
            let Some(k) = self.nodes.get(&name) else {
                continue;
            };
            if k.has_cidr {
                continue;
            }
            let (index, uncertain) = match self.reservations.get(&name) {
                // In flight, or landed and waiting for the watch to show it.
                Some(r) if r.in_flight || !r.resend => continue,
                // It may have landed: the same subnet again.
                Some(r) => (r.index, r.uncertain),
                None => match self.set.allocate_index() {
                    Ok(index) => {
                        self.refs.insert(index, 1);
                        self.exhausted_warned = false;
                        (index, false)
                    }
                    Err(_) => {
                        self.starve(name, now);
                        continue;
                    }
                },
            };
            self.next_attempt += 1;
            self.reservations.insert(
                name.clone(),
                Reservation {
                    attempt: self.next_attempt,
                    index,
                    in_flight: true,
                    resend: false,
                    uncertain,
                },
            );
            return Some(PatchRequest {
                attempt: self.next_attempt,
                uid: k.uid.clone(),
                resource_version: k.resource_version.clone(),
                node: name,
                cidr: self.set.subnet(index),
            });
        }
        None
    }

    /// A patch returned.
    pub fn on_patch_done(&mut self, node: &str, attempt: u64, outcome: PatchOutcome, now: Instant) {
        let Some(r) = self.reservations.get_mut(node) else {
            return;
        };
        if r.attempt != attempt {
            return;
        }
        r.in_flight = false;
        match outcome {
            // The watch will show it; the subnet stays reserved until then.
            PatchOutcome::Patched => {
                self.failures.remove(node);
            }
            PatchOutcome::Unknown => {
                r.uncertain = true;
                r.resend = true;
                self.retry(node, now);
            }
            PatchOutcome::Failed if r.uncertain => {
                r.resend = true;
                self.retry(node, now);
            }
            PatchOutcome::Taken => self.drop_reservation(node),
            PatchOutcome::NotFound | PatchOutcome::Failed => {
                self.drop_reservation(node);
                if self.nodes.contains_key(node) {
                    self.retry(node, now);
                }
            }
        }
    }

    /// No free subnet for `name`: it waits for a release, or retries later.
    fn starve(&mut self, name: String, now: Instant) {
        if !self.exhausted_warned {
            self.exhausted_warned = true;
            tracing::warn!(
                cluster_cidr = %self.set.cluster_cidr(),
                node_cidr_mask_size = self.set.node_mask(),
                subnets = self.set.capacity(),
                "no free node CIDR left; nodes wait for one to be released"
            );
        }
        if self.starved_set.insert(name.clone()) {
            self.starved.push_back(name.clone());
        }
        self.retries.push(Reverse((now + EXHAUSTED_RETRY, name)));
    }

    /// When the next retry is due.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.retries.peek().map(|Reverse((at, _))| *at)
    }

    /// Queues the nodes whose retry is due.
    pub fn pop_due(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.retries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, name))) = self.retries.pop() else {
                break;
            };
            if self.nodes.contains_key(&name) {
                self.enqueue(name);
            }
        }
    }

    /// The subnets a node's podCIDR covers; warns once about podCIDRs that
    /// are not exactly one of the cluster's node subnets.
    fn covered(&mut self, node: &str, cidr: &str) -> Range<u32> {
        if let Ok(i) = self.set.index_of(cidr) {
            return i..i + 1;
        }
        let r = self.set.overlapping(cidr);
        if self.warned.insert(node.to_string()) {
            match &r {
                Ok(_) => tracing::warn!(
                    node, pod_cidr = cidr, cluster_cidr = %self.set.cluster_cidr(),
                    "node podCIDR is not one of the cluster's node subnets; the subnets it overlaps are kept out of allocation"
                ),
                Err(_) => tracing::warn!(
                    node, pod_cidr = cidr, cluster_cidr = %self.set.cluster_cidr(),
                    "node podCIDR is outside the cluster CIDR (or invalid); leaving it alone"
                ),
            }
        }
        r.unwrap_or(0..0)
    }

    /// Forgets a node that is gone.
    /// Forgets a node that is gone. Its reservation goes too: a patch still
    /// in flight names the deleted incarnation's resourceVersion and cannot
    /// land anywhere else (its late result is ignored).
    fn forget(&mut self, name: &str) {
        if let Some(k) = self.nodes.remove(name) {
            self.unhold(k.held);
        }
        self.failures.remove(name);
        self.warned.remove(name);
        self.drop_reservation(name);
    }

    fn drop_reservation(&mut self, name: &str) {
        if let Some(r) = self.reservations.remove(name) {
            self.unhold(r.index..r.index + 1);
        }
    }

    fn retry(&mut self, name: &str, now: Instant) {
        let n = self.failures.entry(name.to_string()).or_insert(0);
        *n += 1;
        let delay = RETRY_BASE
            .saturating_mul(1 << (*n - 1).min(6))
            .min(RETRY_MAX);
        self.retries.push(Reverse((now + delay, name.to_string())));
    }

    fn enqueue(&mut self, name: String) {
        if self.queued.insert(name.clone()) {
            self.queue.push_back(name);
        }
    }

    fn hold(&mut self, r: Range<u32>) {
        for i in r {
            let c = self.refs.entry(i).or_insert(0);
            if *c == 0 {
                self.set.occupy_index(i);
            }
            *c += 1;
        }
    }

    fn unhold(&mut self, r: Range<u32>) {
        for i in r {
            let Some(c) = self.refs.get_mut(&i) else {
                continue;
            };
            *c -= 1;
            if *c == 0 {
                self.refs.remove(&i);
                self.set.release_index(i);
                self.wake_one();
            }
        }
    }

    /// A subnet was freed: the first node waiting for one may try again.
    fn wake_one(&mut self) {
        while let Some(n) = self.starved.pop_front() {
            self.starved_set.remove(&n);
            let waiting = self
                .nodes
                .get(&n)
                .is_some_and(|k| !k.has_cidr && !self.reservations.contains_key(&n));
            if waiting {
                self.enqueue(n);
                return;
            }
        }
    }

    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.set.used() as usize, self.refs.len());
        for i in self.refs.keys() {
            assert!(self.set.is_used_index(*i));
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "state_model_tests.rs"]
mod model_tests;

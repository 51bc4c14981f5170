//! The scheduling queue, as upstream's `PriorityQueue`: an active heap
//! ordered by the QueueSort plugin, a backoff queue (1 s doubling to 10 s
//! per attempt), an unschedulable pool retried on cluster events and at
//! least every 5 minutes, and the gated pods PreEnqueue holds back.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::framework::{Code, PodInfo, PreEnqueuePlugin, QueueSortPlugin, QueuedPodInfo};

/// First back-off after a failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(300);

/// Where a pending pod sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Active,
    Backoff,
    Unschedulable,
    Gated,
    /// Popped and being scheduled.
    InFlight,
}

/// Pending pods per queue, for `scheduler_pending_pods`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

struct Entry {
    qpi: QueuedPodInfo,
    place: Place,
    /// Back-off expiry (Backoff) or when it became unschedulable.
    since: Instant,
    /// Scheduling cycle it was popped in.
    cycle: u64,
}

/// The queue.
pub struct SchedulingQueue {
    sort: Arc<dyn QueueSortPlugin>,
    pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
    pods: HashMap<String, Entry>,
    /// Binary heap of uids in Active, ordered by `sort`.
    heap: Vec<String>,
    backoff: BTreeMap<(Instant, u64), String>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
    /// Pods parked as unschedulable (possibly stale: checked when used).
    parked: std::collections::HashSet<String>,
}

/// Whether a pod changed beyond its status, resourceVersion, generation
/// and managedFields.
fn pod_updated(old: &Pod, new: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut m = p.metadata.clone();
        m.resource_version = None;
        m.generation = None;
        m.managed_fields = None;
        m
    };
    old.spec != new.spec || strip(old) != strip(new)
}

fn backoff_for(attempts: u32) -> Duration {
    let mut d = INITIAL_BACKOFF;
    for _ in 1..attempts.max(1) {
        d = (d * 2).min(MAX_BACKOFF);
    }
    d
}

impl SchedulingQueue {
    pub fn new(
        sort: Arc<dyn QueueSortPlugin>,
        pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
    ) -> Self {
        SchedulingQueue {
            sort,
            pre_enqueue,
            pods: HashMap::new(),
            heap: Vec::new(),
            backoff: BTreeMap::new(),
            seq: 0,
            cycle: 0,
            move_request_cycle: 0,
            parked: Default::default(),
        }
    }

    /// The reason a PreEnqueue plugin holds the pod back, if any.
    pub fn gate(&self, info: &PodInfo) -> Option<String> {
        self.pre_enqueue.iter().find_map(|p| {
            let s = p.pre_enqueue(info);
            (s.code != Code::Success).then(|| s.reasons.join(", "))
        })
    }

    /// Adds or updates a pending pod. An unschedulable pod is retried at
    /// once only when something other than its status changed (upstream's
    /// `isPodUpdated`), so the scheduler's own status writes do not loop.
    pub fn upsert(&mut self, info: Arc<PodInfo>) {
        let gated = self.gate(&info).is_some();
        let now = Instant::now();
        match self.pods.get_mut(&info.uid) {
            Some(e) => {
                let updated = pod_updated(&e.qpi.info.pod, &info.pod);
                e.qpi.info = info.clone();
                match (e.place, gated) {
                    (Place::InFlight, _) => {}
                    (Place::Gated, false) => {
                        e.place = Place::Active;
                        self.push_heap(info.uid.clone());
                    }
                    (Place::Unschedulable, false) if updated => {
                        // An update may make it schedulable: retry now.
                        e.place = Place::Active;
                        self.push_heap(info.uid.clone());
                    }
                    (Place::Active, true)
                    | (Place::Backoff, true)
                    | (Place::Unschedulable, true) => {
                        self.remove_from_structures(&info.uid);
                        if let Some(e) = self.pods.get_mut(&info.uid) {
                            e.place = Place::Gated;
                        }
                    }
                    _ => {}
                }
            }
            None => {
                let std_now = std::time::Instant::now();
                let entry = Entry {
                    qpi: QueuedPodInfo {
                        info: info.clone(),
                        initial_attempt: std_now,
                        timestamp: std_now,
                        attempts: 0,
                        unschedulable_plugins: Default::default(),
                    },
                    place: if gated { Place::Gated } else { Place::Active },
                    since: now,
                    cycle: 0,
                };
                self.pods.insert(info.uid.clone(), entry);
                if !gated {
                    self.push_heap(info.uid.clone());
                }
            }
        }
    }

    /// Forgets a pod (deleted, or bound by someone else).
    pub fn delete(&mut self, uid: &str) {
        self.remove_from_structures(uid);
        self.pods.remove(uid);
    }

    /// Whether the queue knows this pod.
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Where the pod is.
    pub fn place(&self, uid: &str) -> Option<Place> {
        self.pods.get(uid).map(|e| e.place)
    }

    fn remove_from_structures(&mut self, uid: &str) {
        let Some(e) = self.pods.get(uid) else { return };
        match e.place {
            Place::Active => {
                if let Some(i) = self.heap.iter().position(|u| u == uid) {
                    self.heap.swap_remove(i);
                    self.rebuild_heap();
                }
            }
            Place::Backoff => {
                self.backoff.retain(|_, u| u != uid);
            }
            _ => {}
        }
    }

    /// Re-adds a pod whose binding failed, backing off.
    pub fn add_backoff(&mut self, info: Arc<PodInfo>, attempts: u32) {
        self.upsert(info.clone());
        self.remove_from_structures(&info.uid);
        let at = Instant::now() + backoff_for(attempts);
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.pods.get_mut(&info.uid) {
            if e.place == Place::Gated {
                return;
            }
            e.qpi.attempts = attempts;
            e.place = Place::Backoff;
            e.since = at;
            self.backoff.insert((at, seq), info.uid.clone());
        }
    }

    /// Pops the next pod to schedule, if one is active.
    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        self.flush_backoff(Instant::now());
        if self.heap.is_empty() {
            return None;
        }
        let last = self.heap.len() - 1;
        self.heap.swap(0, last);
        let uid = self.heap.pop()?;
        self.sift_down(0);
        self.cycle += 1;
        let cycle = self.cycle;
        let e = self.pods.get_mut(&uid)?;
        e.place = Place::InFlight;
        e.cycle = cycle;
        e.qpi.attempts += 1;
        Some(e.qpi.clone())
    }

    /// Whether a pod is ready to pop.
    pub fn has_active(&self) -> bool {
        !self.heap.is_empty()
    }

    /// The attempt failed: back to backoff or unschedulable. A cluster
    /// event during the attempt sends it to backoff (it may fit now).
    pub fn requeue_failed(&mut self, uid: &str, unschedulable: bool, plugins: Vec<&'static str>) {
        let now = Instant::now();
        let move_cycle = self.move_request_cycle;
        let Some(e) = self.pods.get_mut(uid) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.qpi.unschedulable_plugins = plugins.into_iter().collect();
        e.qpi.timestamp = std::time::Instant::now();
        if unschedulable && e.cycle > move_cycle {
            e.place = Place::Unschedulable;
            e.since = now;
            self.parked.insert(uid.to_string());
        } else {
            let at = now + backoff_for(e.qpi.attempts);
            e.place = Place::Backoff;
            e.since = at;
            self.seq += 1;
            self.backoff.insert((at, self.seq), uid.to_string());
        }
    }

    /// The pod was scheduled (assumed): it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        if self
            .pods
            .get(uid)
            .is_some_and(|e| e.place == Place::InFlight)
        {
            self.pods.remove(uid);
        }
    }

    /// A cluster event that may make unschedulable pods fit: move them to
    /// backoff (if still backing off) or active.
    pub fn move_all_to_active_or_backoff(&mut self) {
        self.move_all_to_active_or_backoff_except(&|_: &str| false);
    }

    /// [`Self::move_all_to_active_or_backoff`], leaving the pods for which
    /// `skip` says so where they are.
    pub fn move_all_to_active_or_backoff_except(&mut self, skip: &dyn Fn(&str) -> bool) {
        self.move_request_cycle = self.cycle;
        let now = Instant::now();
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(u, e)| e.place == Place::Unschedulable && !skip(u))
            .map(|(u, _)| u.clone())
            .collect();
        for uid in uids {
            self.parked.remove(&uid);
            self.unschedulable_to_queues(&uid, now);
        }
    }

    /// A cluster event only some plugins care about (e.g. a pod bound to a
    /// node matters to InterPodAffinity and PodTopologySpread): moves the
    /// unschedulable pods that one of `plugins` rejected (upstream's
    /// queueing hints, coarsely).
    pub fn move_for_plugins(&mut self, plugins: &[&str]) {
        if self.parked.is_empty() {
            return;
        }
        let now = Instant::now();
        let uids: Vec<String> = self.parked.iter().cloned().collect();
        for uid in uids {
            let Some(e) = self
                .pods
                .get(&uid)
                .filter(|e| e.place == Place::Unschedulable)
            else {
                self.parked.remove(&uid);
                continue;
            };
            let p = &e.qpi.unschedulable_plugins;
            if p.is_empty() || plugins.iter().any(|x| p.contains(x)) {
                self.parked.remove(&uid);
                self.move_request_cycle = self.cycle;
                self.unschedulable_to_queues(&uid, now);
            }
        }
    }

    fn unschedulable_to_queues(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.pods.get_mut(uid) else {
            return;
        };
        let until = e.since + backoff_for(e.qpi.attempts);
        if until > now {
            e.place = Place::Backoff;
            e.since = until;
            self.seq += 1;
            self.backoff.insert((until, self.seq), uid.to_string());
        } else {
            e.place = Place::Active;
            self.push_heap(uid.to_string());
        }
    }

    /// Moves expired backoffs to active and old unschedulable pods back.
    pub fn flush(&mut self, now: Instant) {
        self.flush_backoff(now);
        self.flush_unschedulable(now);
    }

    /// Moves expired backoffs to active (cheap).
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some((&(t, s), _)) = self.backoff.first_key_value() {
            if t > now {
                break;
            }
            let uid = self.backoff.remove(&(t, s)).unwrap_or_default();
            if let Some(e) = self.pods.get_mut(&uid) {
                if e.place == Place::Backoff {
                    e.place = Place::Active;
                    self.push_heap(uid);
                }
            }
        }
    }

    /// Retries pods unschedulable for 5 minutes (scans all pods).
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable && now >= e.since + UNSCHEDULABLE_FLUSH
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in stale {
            self.unschedulable_to_queues(&uid, now);
        }
    }

    /// When the next backoff expires (to wake the loop).
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.keys().next().map(|(t, _)| *t)
    }

    /// Pending pods per queue.
    pub fn pending(&self) -> Pending {
        let mut p = Pending::default();
        for e in self.pods.values() {
            match e.place {
                Place::Active => p.active += 1,
                Place::Backoff => p.backoff += 1,
                Place::Unschedulable => p.unschedulable += 1,
                Place::Gated => p.gated += 1,
                Place::InFlight => {}
            }
        }
        p
    }

    // --- the active heap, ordered by the QueueSort plugin ---

    fn less(&self, a: &str, b: &str) -> bool {
        match (self.pods.get(a), self.pods.get(b)) {
            (Some(x), Some(y)) => self.sort.less(&x.qpi, &y.qpi),
            _ => false,
        }
    }

    fn push_heap(&mut self, uid: String) {
        self.heap.push(uid);
        let mut i = self.heap.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.less(&self.heap[i], &self.heap[parent]) {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < n && self.less(&self.heap[l], &self.heap[best]) {
                best = l;
            }
            if r < n && self.less(&self.heap[r], &self.heap[best]) {
                best = r;
            }
            if best == i {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }

    fn rebuild_heap(&mut self) {
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }
}

/// Compares two queued pods with a QueueSort plugin (for tests and sorts).
pub fn compare(sort: &dyn QueueSortPlugin, a: &QueuedPodInfo, b: &QueuedPodInfo) -> Ordering {
    if sort.less(a, b) {
        Ordering::Less
    } else if sort.less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{priority_sort::PrioritySort, scheduling_gates::SchedulingGates};
    use crate::testing::{info, pod};
    use k8s_openapi::api::core::v1::PodSchedulingGate;

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Arc::new(PrioritySort), vec![Arc::new(SchedulingGates)])
    }

    fn with_priority(name: &str, prio: i32) -> Arc<PodInfo> {
        let mut p = pod(name).build();
        p.spec.as_mut().unwrap().priority = Some(prio);
        Arc::new(info(p))
    }

    #[tokio::test(start_paused = true)]
    async fn priority_order_and_fifo() {
        let mut q = queue();
        q.upsert(with_priority("low", 0));
        tokio::time::advance(Duration::from_millis(1)).await;
        std::thread::sleep(Duration::from_millis(2));
        q.upsert(with_priority("low2", 0));
        q.upsert(with_priority("high", 100));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.info.key.clone())
            .collect();
        assert_eq!(order, ["default/high", "default/low", "default/low2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn gates_backoff_and_unschedulable() {
        let mut q = queue();
        let mut gated = pod("g").build();
        gated.spec.as_mut().unwrap().scheduling_gates =
            Some(vec![PodSchedulingGate { name: "x".into() }]);
        q.upsert(Arc::new(info(gated.clone())));
        assert_eq!(q.pending().gated, 1);
        assert!(q.pop().is_none());
        gated.spec.as_mut().unwrap().scheduling_gates = None;
        q.upsert(Arc::new(info(gated)));
        let p = q.pop().expect("ungated pod is active");
        // Unschedulable: parked until an event.
        q.requeue_failed(&p.info.uid, true, vec!["NodeResourcesFit"]);
        assert_eq!(q.pending().unschedulable, 1);
        assert!(q.pop().is_none());
        q.move_all_to_active_or_backoff();
        // Still within its 1 s back-off: waits in backoff.
        assert_eq!(q.pending().backoff, 1);
        assert!(q.pop().is_none());
        tokio::time::advance(INITIAL_BACKOFF).await;
        let p = q.pop().expect("back-off over");
        assert_eq!(p.attempts, 2);
        // An error backs off 2 s now (doubling).
        q.requeue_failed(&p.info.uid, false, vec![]);
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(q.pop().is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        let p = q.pop().unwrap();
        q.done(&p.info.uid);
        assert!(!q.contains(&p.info.uid));
        assert_eq!(backoff_for(10), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn event_during_attempt_sends_to_backoff_and_flush_retries() {
        let mut q = queue();
        q.upsert(with_priority("p", 0));
        let p = q.pop().unwrap();
        q.move_all_to_active_or_backoff();
        q.requeue_failed(&p.info.uid, true, vec![]);
        assert_eq!(q.pending().backoff, 1, "an event came during the attempt");
        tokio::time::advance(INITIAL_BACKOFF).await;
        let p = q.pop().unwrap();
        q.requeue_failed(&p.info.uid, true, vec![]);
        assert_eq!(q.pending().unschedulable, 1);
        tokio::time::advance(UNSCHEDULABLE_FLUSH).await;
        q.flush(Instant::now());
        assert!(q.pop().is_some(), "retried after 5 minutes");
        q.delete(&p.info.uid);
        assert_eq!(q.pending(), Pending::default());
    }

    #[tokio::test(start_paused = true)]
    async fn targeted_moves_only_wake_pods_the_plugins_rejected() {
        let mut q = queue();
        q.upsert(with_priority("aff", 0));
        q.upsert(with_priority("cpu", 0));
        for _ in 0..2 {
            let p = q.pop().unwrap();
            let plugin = if p.info.key.ends_with("aff") {
                "InterPodAffinity"
            } else {
                "NodeResourcesFit"
            };
            q.requeue_failed(&p.info.uid, true, vec![plugin]);
        }
        assert_eq!(q.pending().unschedulable, 2);
        tokio::time::advance(INITIAL_BACKOFF).await;
        q.move_for_plugins(&["InterPodAffinity", "PodTopologySpread"]);
        assert_eq!(q.pending().unschedulable, 1);
        assert!(q.pop().unwrap().info.key.ends_with("aff"));
        assert!(q.pop().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn status_only_updates_do_not_wake_unschedulable_pods() {
        let mut q = queue();
        q.upsert(with_priority("p", 0));
        let p = q.pop().unwrap();
        q.requeue_failed(&p.info.uid, true, vec!["NodeResourcesFit"]);
        let mut pod = (*p.info.pod).clone();
        pod.status
            .get_or_insert_with(Default::default)
            .nominated_node_name = Some("n".into());
        pod.metadata.resource_version = Some("99".into());
        q.upsert(Arc::new(info(pod.clone())));
        assert_eq!(q.pending().unschedulable, 1);
        // A label change does.
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("x".into(), "y".into());
        q.upsert(Arc::new(info(pod)));
        assert_eq!(q.pending().unschedulable, 0);
        assert!(q.pop().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn moves_can_leave_chosen_pods_parked() {
        let mut q = queue();
        q.upsert(with_priority("waits", 0));
        q.upsert(with_priority("wakes", 0));
        for _ in 0..2 {
            let p = q.pop().unwrap();
            q.requeue_failed(&p.info.uid, true, vec!["NodeResourcesFit"]);
        }
        tokio::time::advance(INITIAL_BACKOFF).await;
        q.move_all_to_active_or_backoff_except(&|uid: &str| uid.ends_with("waits"));
        assert_eq!(q.pending().unschedulable, 1);
        assert!(q.pop().unwrap().info.key.ends_with("wakes"));
        assert!(q.pop().is_none());
    }
}

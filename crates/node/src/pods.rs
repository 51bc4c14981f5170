//! The pods of every node an agent process runs. Fed by one pod watch (all
//! pods bound to these nodes), it runs each pod through the [`Runtime`],
//! admits pods up to the node's max-pods (else `OutOfpods`), hands out pod
//! IPs from the node's pod CIDR (pods wait until the node has one), restarts
//! containers per the restart policy, finishes graceful deletion, and queues
//! status writes on the shared [`Poster`] only when what the API shows would
//! change. Timers, not polling, bring it back to a pod: a simulated pod
//! costs nothing between its changes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use crate::ipam::Ipam;
use crate::lifecycle::{self, PodView, RestartPolicy, Restarts};
use crate::poster::{Job, Poster};
use crate::runtime::{Runtime, RuntimePhase};
use crate::status::{self, PodPlacement};

/// The pods of one node.
struct NodePods {
    ipam: Option<Ipam>,
    max_pods: u32,
    host_ip: String,
    /// Pods admitted and not finished.
    active: usize,
    /// Pods that wait for the node's pod CIDR, or for a paused node to
    /// resume (the newest version of each).
    waiting: HashMap<String, Pod>,
    /// The node is down (simulated failure): its pods are left as they are.
    paused: bool,
    /// Measured pressure (a real node): pods are admitted by it.
    facts: Option<crate::facts::NodeFacts>,
}

/// A pod this process runs.
struct Tracked {
    node: String,
    name: String,
    namespace: String,
    ip: Option<Ipv4Addr>,
    policy: RestartPolicy,
    restarts: Vec<(String, Restarts)>,
    posted: Option<PodView>,
    ready_since: Timestamp,
    /// Finished (Succeeded/Failed): stopped, address released.
    done: bool,
    wake: Option<Instant>,
}

/// The pod side of the agent.
pub struct PodManager {
    runtime: Arc<dyn Runtime>,
    poster: Poster,
    nodes: HashMap<String, NodePods>,
    pods: HashMap<String, Tracked>,
    timers: BTreeSet<(Instant, String)>,
    relist: Option<HashSet<String>>,
}

fn uid_of(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

impl PodManager {
    pub fn new(runtime: Arc<dyn Runtime>, poster: Poster) -> Self {
        PodManager {
            runtime,
            poster,
            nodes: HashMap::new(),
            pods: HashMap::new(),
            timers: BTreeSet::new(),
            relist: None,
        }
    }

    /// Starts running pods for a node; `cidr` may come later
    /// ([`Self::set_cidr`]).
    pub async fn add_node(
        &mut self,
        name: &str,
        max_pods: u32,
        host_ip: String,
        cidr: Option<&str>,
        facts: Option<crate::facts::NodeFacts>,
    ) {
        self.nodes.insert(
            name.to_string(),
            NodePods {
                ipam: None,
                max_pods,
                host_ip,
                active: 0,
                waiting: HashMap::new(),
                paused: false,
                facts,
            },
        );
        if let Some(c) = cidr {
            self.set_cidr(name, c).await;
        }
    }

    /// Whether the node is run here.
    pub fn has_node(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// Sets the node's pod CIDR (once) and starts the pods waiting for it.
    pub async fn set_cidr(&mut self, node: &str, cidr: &str) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.ipam.is_some() {
            return;
        }
        self.runtime.set_pod_cidr(cidr);
        match Ipam::new(cidr) {
            Ok(ipam) => n.ipam = Some(ipam),
            Err(e) => {
                tracing::warn!(node, cidr, error = %e, "unusable pod CIDR");
                return;
            }
        }
        self.replay(node).await;
    }

    /// Runs the pods that waited for the node.
    async fn replay(&mut self, node: &str) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let waiting: Vec<Pod> = n.waiting.drain().map(|(_, p)| p).collect();
        for pod in waiting {
            self.on_pod(&pod).await;
        }
    }

    /// Pauses (simulated node failure) or resumes the node's pods. On
    /// resume every pod of the node is looked at again.
    pub async fn set_paused(&mut self, node: &str, paused: bool) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        n.paused = paused;
        if paused {
            return;
        }
        self.replay(node).await;
        let uids = self.uids_on(node);
        for uid in uids {
            self.sync(&uid).await;
        }
    }

    /// Stops running the node's pods (the node is gone); no API writes.
    pub async fn remove_node(&mut self, node: &str) {
        if self.nodes.remove(node).is_none() {
            return;
        }
        let uids = self.uids_on(node);
        for uid in uids {
            self.forget(&uid).await;
        }
    }

    /// The uids of the pods tracked on `node`.
    fn uids_on(&self, node: &str) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, t)| t.node == node)
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Number of pods tracked (running or finished, not yet deleted).
    pub fn tracked(&self) -> usize {
        self.pods.len()
    }

    /// Takes in one event of the pod watch.
    pub async fn on_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Init => self.relist = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => {
                if let (Some(seen), Some(uid)) = (self.relist.as_mut(), uid_of(&pod)) {
                    seen.insert(uid.to_string());
                }
                self.on_pod(&pod).await;
            }
            Event::Delete(pod) => {
                if let Some(uid) = uid_of(&pod) {
                    self.forget(uid).await;
                    for n in self.nodes.values_mut() {
                        n.waiting.remove(uid);
                    }
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget(&uid).await;
                    }
                    for n in self.nodes.values_mut() {
                        n.waiting.retain(|u, _| seen.contains(u));
                    }
                }
            }
        }
    }

    /// Stops a pod, releases its address and stops tracking it.
    async fn forget(&mut self, uid: &str) {
        let Some(t) = self.pods.remove(uid) else {
            return;
        };
        if let Some(w) = t.wake {
            self.timers.remove(&(w, uid.to_string()));
        }
        if self.runtime.reports_status() {
            if let Some(n) = self.nodes.get_mut(&t.node) {
                n.active = n.active.saturating_sub(1);
            }
            let runtime = self.runtime.clone();
            let uid = uid.to_string();
            tokio::spawn(async move {
                if let Err(e) = runtime.stop_pod_within(&uid, None).await {
                    tracing::warn!(uid, error = %e, "stop failed");
                }
            });
        } else if !t.done {
            self.finish(&t.node, t.ip, uid).await;
        }
        tracing::debug!(pod = %t.name, ns = %t.namespace, "pod forgotten");
    }

    /// Graceful deletion by a runtime that reports status: stop within the
    /// pod's grace period in the background, then delete the pod object.
    fn delete_gracefully(&mut self, pod: &Pod, uid: &str, ns: &str, name: &str) {
        let node = self.pods.remove(uid).map(|t| {
            if let Some(w) = t.wake {
                self.timers.remove(&(w, uid.to_string()));
            }
            t.node
        });
        if let Some(n) = node.and_then(|node| self.nodes.get_mut(&node)) {
            n.active = n.active.saturating_sub(1);
        }
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .map(|s| std::time::Duration::from_secs(s.max(0) as u64));
        let runtime = self.runtime.clone();
        let poster = self.poster.clone();
        let (uid, ns, name) = (uid.to_string(), ns.to_string(), name.to_string());
        tokio::spawn(async move {
            if let Err(e) = runtime.stop_pod_within(&uid, grace).await {
                tracing::warn!(uid, error = %e, "stop failed");
            }
            poster.submit(
                uid.clone(),
                Job::DeletePod {
                    namespace: ns,
                    name,
                    uid,
                },
            );
        });
    }

    /// Stops the pod's containers and gives back its slot and address.
    async fn finish(&mut self, node: &str, ip: Option<Ipv4Addr>, uid: &str) {
        if let Err(e) = self.runtime.stop_pod(uid).await {
            tracing::warn!(uid, error = %e, "stop failed");
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.active = n.active.saturating_sub(1);
            if let (Some(ipam), Some(ip)) = (n.ipam.as_mut(), ip) {
                ipam.release(ip);
            }
        }
    }

    fn post(&self, namespace: &str, name: &str, uid: &str, status: PodStatus) {
        self.poster.submit(
            uid.to_string(),
            Job::PodStatus {
                namespace: namespace.to_string(),
                name: name.to_string(),
                status: serde_json::to_value(status).unwrap_or_default(),
            },
        );
    }

    async fn on_pod(&mut self, pod: &Pod) {
        let (Some(uid), Some(name), Some(ns)) = (
            pod.metadata.uid.as_deref(),
            pod.metadata.name.as_deref(),
            pod.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        if let Some(n) = self.nodes.get_mut(node) {
            if n.paused {
                n.waiting.insert(uid.to_string(), pod.clone());
                return;
            }
        }
        if pod.metadata.deletion_timestamp.is_some() {
            if self.runtime.reports_status() {
                if self.nodes.contains_key(node) {
                    self.delete_gracefully(pod, uid, ns, name);
                }
                return;
            }
            // Graceful deletion: stop, then delete with grace period 0.
            self.forget(uid).await;
            if self.nodes.contains_key(node) {
                self.poster.submit(
                    uid.to_string(),
                    Job::DeletePod {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        uid: uid.to_string(),
                    },
                );
            }
            return;
        }
        if self.pods.contains_key(uid) {
            if let Err(e) = self.runtime.update_pod(pod).await {
                tracing::warn!(pod = name, error = %e, "runtime update failed");
            }
            self.sync(uid).await;
            return;
        }
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let st = pod.status.as_ref();
        if matches!(
            st.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return;
        }
        let reports = self.runtime.reports_status();
        if n.ipam.is_none() {
            n.waiting.insert(uid.to_string(), pod.clone());
            return;
        }
        if n.active >= n.max_pods as usize {
            tracing::warn!(
                pod = name,
                node,
                max_pods = n.max_pods,
                "rejecting pod: node full"
            );
            let max = n.max_pods;
            self.post(ns, name, uid, status::out_of_pods_status(max));
            return;
        }
        // A pod already Running was admitted before an agent restart; its
        // containers keep running, so it is not judged again.
        let pressure = n.facts.as_ref().map(|f| f.get()).unwrap_or_default();
        let running = st.and_then(|s| s.phase.as_deref()) == Some("Running");
        let rejection = (!running)
            .then(|| crate::admit::pressure_rejection(pod, &pressure))
            .flatten();
        if let Some(message) = rejection {
            tracing::warn!(pod = name, node, %message, "rejecting pod: node pressure");
            self.post(ns, name, uid, status::rejected_status("Evicted", message));
            return;
        }
        if reports {
            if let Err(e) = self.runtime.start_pod(pod).await {
                tracing::warn!(pod = name, error = %e, "start failed");
                return;
            }
            n.active += 1;
            self.pods.insert(
                uid.to_string(),
                Tracked {
                    node: node.to_string(),
                    name: name.to_string(),
                    namespace: ns.to_string(),
                    ip: None,
                    policy: RestartPolicy::of(pod),
                    restarts: Vec::new(),
                    posted: None,
                    ready_since: Timestamp::now(),
                    done: true,
                    wake: None,
                },
            );
            return;
        }
        let Some(ipam) = n.ipam.as_mut() else {
            return;
        };
        // A pod this process ran before a restart keeps its address.
        let ip = match st
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .filter(|ip| ipam.reserve(*ip).is_ok())
        {
            Some(ip) => ip,
            None => match ipam.allocate() {
                Ok(ip) => ip,
                Err(e) => {
                    tracing::warn!(pod = name, node, error = %e, "no pod address");
                    return;
                }
            },
        };
        if let Err(e) = self.runtime.start_pod(pod).await {
            if let Some(ipam) = n.ipam.as_mut() {
                ipam.release(ip);
            }
            tracing::warn!(pod = name, error = %e, "start failed");
            self.post(ns, name, uid, status::start_error_status(e.to_string()));
            return;
        }
        n.active += 1;
        tracing::debug!(pod = name, node, %ip, "pod started");
        self.pods.insert(
            uid.to_string(),
            Tracked {
                node: node.to_string(),
                name: name.to_string(),
                namespace: ns.to_string(),
                ip: Some(ip),
                policy: RestartPolicy::of(pod),
                restarts: Vec::new(),
                posted: None,
                ready_since: Timestamp::now(),
                done: false,
                wake: None,
            },
        );
        self.sync(uid).await;
    }

    /// Looks at the pod's runtime state: restarts containers due, posts the
    /// status if it changed, and sets the pod's next timer.
    async fn sync(&mut self, uid: &str) {
        let now = Instant::now();
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        if t.done || self.nodes.get(&t.node).is_none_or(|n| n.paused) {
            return;
        }
        let mut decision = None;
        for _ in 0..2 {
            let rt = match self.runtime.status(uid).await {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(pod = %t.name, error = %e, "runtime status failed");
                    return;
                }
            };
            let d = lifecycle::decide(t.policy, &rt, &mut t.restarts, now);
            let restart = d.restart.clone();
            decision = Some(d);
            if restart.is_empty() {
                break;
            }
            for c in restart {
                if let Err(e) = self.runtime.restart_container(uid, &c).await {
                    tracing::warn!(pod = %t.name, container = c, error = %e, "restart failed");
                }
            }
        }
        let Some(d) = decision else { return };
        let view = d.view;
        if t.posted.as_ref() != Some(&view) {
            if t.posted.as_ref().map(|p| p.ready) != Some(view.ready) {
                t.ready_since = Timestamp::now();
            }
            let host_ip = self
                .nodes
                .get(&t.node)
                .map(|n| n.host_ip.clone())
                .unwrap_or_default();
            let ip = t.ip.map(|ip| ip.to_string()).unwrap_or_default();
            let st = status::pod_status(
                &view,
                &PodPlacement {
                    uid,
                    pod_ip: &ip,
                    host_ip: &host_ip,
                    ready_since: t.ready_since,
                },
            );
            let (ns, name) = (t.namespace.clone(), t.name.clone());
            t.posted = Some(view.clone());
            self.post(&ns, &name, uid, st);
        }
        let finished = view.phase != RuntimePhase::Running;
        let wake = if finished {
            None
        } else {
            let rt_next = self.runtime.next_change(uid).map(|d| now + d);
            [d.wake, rt_next].into_iter().flatten().min()
        };
        self.set_timer(uid, wake);
        if finished {
            let (node, ip) = match self.pods.get_mut(uid) {
                Some(t) => {
                    t.done = true;
                    (t.node.clone(), t.ip.take())
                }
                None => return,
            };
            self.finish(&node, ip, uid).await;
        }
    }

    fn set_timer(&mut self, uid: &str, at: Option<Instant>) {
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        if let Some(old) = t.wake.take() {
            self.timers.remove(&(old, uid.to_string()));
        }
        if let Some(at) = at {
            t.wake = Some(at);
            self.timers.insert((at, uid.to_string()));
        }
    }

    /// When a pod next needs a look.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Looks at every pod whose timer is due.
    pub async fn fire(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some((t, uid)) = self.timers.first().cloned() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.pods.get_mut(&uid) {
                p.wake = None;
            }
            due.push(uid);
        }
        for uid in due {
            self.sync(&uid).await;
        }
    }
}

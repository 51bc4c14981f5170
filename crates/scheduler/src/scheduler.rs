//! The scheduler's loop: one Node watch and one pod watch feed the cache
//! (bound pods) and the queue (pending pods of our profiles); each popped
//! pod runs a scheduling cycle synchronously; binding runs asynchronously
//! (bounded), so the next cycle overlaps the previous bind. Results go back
//! to the loop through a channel. Unschedulable pods get upstream's
//! PodScheduled=False condition and a FailedScheduling event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as K8sEvent, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::cache::Cache;
use crate::core::{Algorithm, Outcome};
use crate::framework::{Code, CycleState, PodInfo};
use crate::metrics::SchedulerMetrics;
use crate::nominator::nominated_node_name;
use crate::plugins::inter_pod_affinity::NAME as INTER_POD_AFFINITY;
use crate::plugins::pod_topology_spread::NAME as POD_TOPOLOGY_SPREAD;
use crate::profile::Profile;
use crate::queue::SchedulingQueue;
use crate::resources::pod_requests;
use crate::waiting::{PermitGate, WaitingPods};

mod preempt;

/// Binds in flight at once.
pub const MAX_BINDS_IN_FLIGHT: usize = 256;
/// Status and event writes in flight at once.
const MAX_WRITES_IN_FLIGHT: usize = 32;

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no profiles")]
    NoProfiles,
    #[error("configuration: {0}")]
    Config(String),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

struct BindResult {
    info: Arc<PodInfo>,
    node: String,
    attempts: u32,
    result: Result<(), String>,
}

/// The running scheduler.
pub struct Scheduler {
    client: Client,
    profiles: HashMap<String, Profile>,
    cache: Cache,
    queue: SchedulingQueue,
    alg: Algorithm,
    binds_in_flight: usize,
    bind_tx: mpsc::UnboundedSender<BindResult>,
    writes: Arc<Semaphore>,
    /// The last unschedulable message posted per pod uid.
    last_message: HashMap<String, String>,
    metrics: Arc<SchedulerMetrics>,
    /// Victim evictions in flight at once (apart from status and events).
    preempt_writes: Arc<Semaphore>,
    /// Pods held at Permit.
    gate: PermitGate<HeldPod>,
}

/// A pod held at Permit, with what binding or Unreserve needs.
struct HeldPod {
    info: Arc<PodInfo>,
    node: String,
    state: CycleState,
    profile: String,
    attempts: u32,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::profile::DEFAULT_SCHEDULER_NAME)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Scheduler {
    /// Runs the scheduler with these profiles until a watch ends.
    pub async fn run(client: Client, profiles: Vec<Profile>) -> Result<(), SchedulerError> {
        Scheduler::run_with_metrics(client, profiles, Arc::new(SchedulerMetrics::new())).await
    }

    /// Runs the scheduler, recording into `metrics`.
    pub async fn run_with_metrics(
        client: Client,
        profiles: Vec<Profile>,
        metrics: Arc<SchedulerMetrics>,
    ) -> Result<(), SchedulerError> {
        Scheduler::run_full(client, profiles, metrics, WaitingPods::default()).await
    }

    /// Runs the scheduler; `waiting` is the handle its profiles' plugins
    /// were built with, through which they allow pods held at Permit.
    pub async fn run_full(
        client: Client,
        profiles: Vec<Profile>,
        metrics: Arc<SchedulerMetrics>,
        waiting: WaitingPods,
    ) -> Result<(), SchedulerError> {
        let mut decisions = waiting.connect();
        let first = profiles.first().ok_or(SchedulerError::NoProfiles)?;
        let queue = SchedulingQueue::new(
            first.queue_sort.clone(),
            profiles
                .iter()
                .flat_map(|p| p.pre_enqueue.clone())
                .collect(),
        );
        let (bind_tx, mut bind_rx) = mpsc::unbounded_channel();
        let mut s = Scheduler {
            client: client.clone(),
            profiles: profiles
                .into_iter()
                .map(|p| (p.scheduler_name.clone(), p))
                .collect(),
            cache: Cache::new(),
            queue,
            alg: Algorithm::with_metrics(metrics.clone()),
            binds_in_flight: 0,
            bind_tx,
            writes: Arc::new(Semaphore::new(MAX_WRITES_IN_FLIGHT)),
            preempt_writes: Arc::new(Semaphore::new(MAX_WRITES_IN_FLIGHT)),
            last_message: HashMap::new(),
            metrics,
            gate: PermitGate::new(waiting),
        };
        let mut nodes = watcher::watcher(Api::<Node>::all(client.clone()), Default::default())
            .default_backoff()
            .boxed();
        let mut pods = watcher::watcher(Api::<Pod>::all(client.clone()), Default::default())
            .default_backoff()
            .boxed();
        let (mut nodes_synced, mut pods_synced) = (false, false);
        let mut unsched_tick = tokio::time::interval(Duration::from_secs(30));
        let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
        tracing::info!("scheduler started");
        loop {
            let can_schedule = nodes_synced
                && pods_synced
                && s.queue.has_active()
                && s.binds_in_flight < MAX_BINDS_IN_FLIGHT;
            let backoff_at = s.queue.next_backoff();
            tokio::select! {
                biased;
                ev = nodes.next() => match ev {
                    None => return Err(SchedulerError::WatchEnded("node")),
                    Some(Err(e)) => tracing::warn!(error = %e, "node watch error"),
                    Some(Ok(ev)) => {
                        nodes_synced |= matches!(ev, Event::InitDone);
                        s.on_node_event(ev);
                    }
                },
                ev = pods.next() => match ev {
                    None => return Err(SchedulerError::WatchEnded("pod")),
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch error"),
                    Some(Ok(ev)) => {
                        pods_synced |= matches!(ev, Event::InitDone);
                        s.on_pod_event(ev);
                    }
                },
                Some(r) = bind_rx.recv() => s.on_bind_result(r),
                Some(d) = decisions.recv() => match s.gate.decide(d) {
                    Ok(Some(held)) => s.start_bind(held),
                    Ok(None) => {}
                    Err((held, why)) => s.permit_failed(held, why),
                },
                _ = sleep_until(s.gate.next_deadline()) => {
                    for (held, why) in s.gate.expired(Instant::now()) {
                        s.permit_failed(held, why);
                    }
                }
                _ = sleep_until(backoff_at) => s.queue.flush_backoff(Instant::now()),
                _ = unsched_tick.tick() => s.queue.flush_unschedulable(Instant::now()),
                _ = metrics_tick.tick() => {
                    let p = s.queue.pending();
                    s.metrics.set_pending(p.active, p.backoff, p.unschedulable, p.gated);
                }
                _ = std::future::ready(()), if can_schedule => {
                    s.schedule_one();
                    // Give the runtime back its turn now and then: without
                    // it the watches and bind results starve (tokio's
                    // cooperative budget is only refilled on a yield).
                    tokio::task::consume_budget().await;
                }
            }
        }
    }

    fn on_node_event(&mut self, ev: Event<Node>) {
        match ev {
            Event::Apply(n) | Event::InitApply(n) => {
                if self.cache.upsert_node(n) {
                    self.queue.move_all_to_active_or_backoff();
                }
            }
            Event::Delete(n) => {
                if let Some(name) = &n.metadata.name {
                    self.cache.remove_node(name);
                }
            }
            Event::Init | Event::InitDone => {}
        }
    }

    fn on_pod_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Apply(p) | Event::InitApply(p) => self.on_pod(p),
            Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid.as_deref() {
                    self.forget_pod(uid);
                }
            }
            Event::Init | Event::InitDone => {}
        }
    }

    fn forget_pod(&mut self, uid: &str) {
        self.gate.remove(uid);
        let freed = self.cache.node_of(uid).map(str::to_string);
        self.cache.remove_pod(uid);
        self.queue.delete(uid);
        self.last_message.remove(uid);
        self.alg.nominator.remove(uid);
        if let Some(node) = freed {
            // Freed resources may let pending pods fit. Pods nominated to
            // another node wait for their own victims (or the periodic
            // flush) instead of being retried on every deletion: after a
            // wave of preemptions each victim's deletion would otherwise
            // wake every waiting preemptor.
            let nominator = &self.alg.nominator;
            self.queue
                .move_all_to_active_or_backoff_except(&|uid: &str| {
                    nominator.node_of(uid).is_some_and(|n| n != node)
                });
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        if is_terminal(&pod) {
            self.forget_pod(&uid);
            return;
        }
        match node {
            Some(node) => {
                self.queue.delete(&uid);
                self.last_message.remove(&uid);
                self.alg.nominator.remove(&uid);
                // Bound by someone else while held at Permit.
                self.gate.remove(&uid);
                // Newly on a node (or its binding confirmed): pods waiting
                // for pod (anti-)affinity or spread may fit now.
                let new = !self.cache.has_pod(&uid) || self.cache.is_assumed(&uid);
                let info = Arc::new(PodInfo::with(Arc::new(pod), pod_requests));
                self.cache.upsert_pod(info, &node);
                if new {
                    self.queue
                        .move_for_plugins(&[INTER_POD_AFFINITY, POD_TOPOLOGY_SPREAD]);
                }
            }
            None => {
                if pod.metadata.deletion_timestamp.is_some()
                    || !self.profiles.contains_key(scheduler_name(&pod))
                    || self.cache.is_assumed(&uid)
                {
                    return;
                }
                let info = Arc::new(PodInfo::with(Arc::new(pod), pod_requests));
                if nominated_node_name(&info).is_some()
                    || self.alg.nominator.node_of(&uid).is_some()
                {
                    self.alg.nominator.update(info.clone());
                }
                self.queue.upsert(info);
            }
        }
    }

    #[tracing::instrument(skip_all, fields(pod))]
    fn schedule_one(&mut self) {
        let Some(qpi) = self.queue.pop() else { return };
        let info = qpi.info.clone();
        tracing::Span::current().record("pod", info.key.as_str());
        let Some(profile) = self.profiles.get(scheduler_name(&info.pod)) else {
            self.queue.delete(&info.uid);
            return;
        };
        let mut state = CycleState::default();
        let snapshot = self.cache.snapshot();
        let started = std::time::Instant::now();
        let outcome = self
            .alg
            .schedule(profile, &mut state, &info, snapshot, None);
        match outcome {
            Outcome::Scheduled { node, .. } => {
                let secs = started.elapsed().as_secs_f64();
                self.metrics
                    .attempt("scheduled", &profile.scheduler_name, secs);
                // Reserve, undone in reverse on failure.
                let mut reserved = Vec::new();
                for r in &profile.reserve {
                    let s = r.reserve(&mut state, &info, &node);
                    if !s.is_success() {
                        for done in reserved.iter().rev() {
                            let p: &Arc<dyn crate::framework::ReservePlugin> = done;
                            p.unreserve(&mut state, &info, &node);
                        }
                        self.queue
                            .requeue_failed(&info.uid, s.is_rejected(), vec![r.name()]);
                        return;
                    }
                    reserved.push(r.clone());
                }
                let mut waits = Vec::new();
                for p in &profile.permit {
                    let (s, timeout) = p.permit(&mut state, &info, &node);
                    if s.code == Code::Wait {
                        waits.push((p.name(), timeout));
                    } else if !s.is_success() {
                        for done in reserved.iter().rev() {
                            done.unreserve(&mut state, &info, &node);
                        }
                        self.queue.requeue_failed(&info.uid, true, vec![p.name()]);
                        return;
                    }
                }
                self.cache.assume(&info, &node);
                self.alg.nominator.remove(&info.uid);
                let held = HeldPod {
                    info: info.clone(),
                    node,
                    state,
                    profile: profile.scheduler_name.clone(),
                    attempts: qpi.attempts,
                };
                if waits.is_empty() {
                    self.start_bind(held);
                } else {
                    // Assumed (its resources count) but not bound until
                    // every waiting Permit plugin allows it.
                    self.gate.hold(&info.uid, held, waits, Instant::now());
                }
            }
            Outcome::Unschedulable(fit) => {
                let secs = started.elapsed().as_secs_f64();
                self.metrics
                    .attempt("unschedulable", &profile.scheduler_name, secs);
                let msg = fit.message();
                tracing::debug!(message = msg, "pod unschedulable");
                // A pod losing its nomination may have slept through
                // deletions elsewhere (nominated pods only wake for their
                // node): it backs off instead of parking.
                let loses_nomination = fit
                    .nominated
                    .as_ref()
                    .is_some_and(|r| r.nominated_node.is_empty())
                    && self.alg.nominator.node_of(&info.uid).is_some();
                self.queue
                    .requeue_failed(&info.uid, !loses_nomination, fit.plugins());
                if let Some(r) = fit.nominated {
                    self.preempt(&info, r);
                }
                self.report_unschedulable(&info, "Unschedulable", msg);
            }
            Outcome::Error(e) => {
                let secs = started.elapsed().as_secs_f64();
                self.metrics.attempt("error", &profile.scheduler_name, secs);
                tracing::warn!(error = e, "scheduling error");
                self.queue.requeue_failed(&info.uid, false, vec![]);
                self.report_unschedulable(&info, "SchedulerError", e);
            }
        }
    }

    /// The binding cycle, in a spawned task (the next cycle overlaps it).
    fn start_bind(&mut self, held: HeldPod) {
        let Some(profile) = self.profiles.get(&held.profile).cloned() else {
            return;
        };
        let HeldPod {
            info,
            node,
            attempts,
            ..
        } = held;
        self.queue.done(&info.uid);
        self.last_message.remove(&info.uid);
        self.binds_in_flight += 1;
        let tx = self.bind_tx.clone();
        tokio::spawn(async move {
            let result = bind(&profile, &info, &node).await;
            let _ = tx.send(BindResult {
                info,
                node,
                attempts,
                result,
            });
        });
    }

    /// A pod held at Permit was rejected or timed out: Unreserve in
    /// reverse, forget the assumption, back to the queue as unschedulable.
    fn permit_failed(&mut self, mut held: HeldPod, why: crate::waiting::Rejection) {
        if let Some(profile) = self.profiles.get(&held.profile) {
            for r in profile.reserve.iter().rev() {
                r.unreserve(&mut held.state, &held.info, &held.node);
            }
        }
        self.cache.forget(&held.info.uid);
        self.queue
            .requeue_failed(&held.info.uid, true, vec![why.plugin]);
        self.report_unschedulable(&held.info, "Unschedulable", why.message);
    }

    fn on_bind_result(&mut self, r: BindResult) {
        self.binds_in_flight -= 1;
        match r.result {
            Ok(()) => {
                let msg = format!("Successfully assigned {} to {}", r.info.key, r.node);
                self.event(&r.info, "Normal", "Scheduled", msg);
            }
            Err(e) => {
                tracing::warn!(pod = r.info.key, error = e, "binding failed");
                self.cache.forget(&r.info.uid);
                self.queue.add_backoff(r.info.clone(), r.attempts.max(1));
                let msg = format!("Binding rejected: {e}");
                self.event(&r.info, "Warning", "FailedScheduling", msg);
            }
        }
    }

    /// PodScheduled=False with the reason, and a FailedScheduling event,
    /// when the message changed since the last attempt.
    fn report_unschedulable(&mut self, info: &PodInfo, reason: &'static str, msg: String) {
        if self.last_message.get(&info.uid) == Some(&msg) {
            return;
        }
        self.last_message.insert(info.uid.clone(), msg.clone());
        let client = self.client.clone();
        let ns = info.namespace().to_string();
        let name = info.pod.metadata.name.clone().unwrap_or_default();
        let writes = self.writes.clone();
        let body = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": msg,
            "lastProbeTime": null,
            "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        tokio::spawn(async move {
            let Ok(_permit) = writes.acquire_owned().await else {
                return;
            };
            let api: Api<Pod> = Api::namespaced(client, &ns);
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&body))
                .await
            {
                tracing::debug!(error = %e, "pod condition update failed");
            }
        });
        self.event(info, "Warning", "FailedScheduling", msg);
    }

    fn event(&self, info: &PodInfo, type_: &str, reason: &str, message: String) {
        let client = self.client.clone();
        let writes = self.writes.clone();
        let ns = info.namespace().to_string();
        let name = info.pod.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let ev = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: Some(info.uid.clone()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(crate::profile::DEFAULT_SCHEDULER_NAME.into()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            action: Some(
                match reason {
                    "Scheduled" => "Binding",
                    "Preempted" => "Preempting",
                    _ => "Scheduling",
                }
                .into(),
            ),
            reporting_component: Some(crate::profile::DEFAULT_SCHEDULER_NAME.into()),
            reporting_instance: Some(crate::profile::DEFAULT_SCHEDULER_NAME.into()),
            ..Default::default()
        };
        tokio::spawn(async move {
            let Ok(_permit) = writes.acquire_owned().await else {
                return;
            };
            let api: Api<K8sEvent> = Api::namespaced(client, &ns);
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "event write failed");
            }
        });
    }
}

/// The binding cycle: PreBind, Bind (the first binder that does not skip),
/// PostBind.
async fn bind(profile: &Profile, info: &PodInfo, node: &str) -> Result<(), String> {
    for p in &profile.pre_bind {
        let s = p.pre_bind(info, node).await;
        if !s.is_success() {
            return Err(format!("{}: {}", p.name(), s.reasons.join(", ")));
        }
    }
    let mut bound = false;
    for b in &profile.bind {
        let s = b.bind(info, node).await;
        match s.code {
            Code::Skip => continue,
            Code::Success => {
                bound = true;
                break;
            }
            _ => return Err(format!("{}: {}", b.name(), s.reasons.join(", "))),
        }
    }
    if !bound {
        return Err("no bind plugin bound the pod".into());
    }
    for p in &profile.post_bind {
        p.post_bind(info, node);
    }
    Ok(())
}

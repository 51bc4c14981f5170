//! Node lifecycle: notices nodes that stopped reporting and taints nodes
//! by their conditions, like upstream's node lifecycle controller
//! (`pkg/controller/nodelifecycle`, `--controllers` name `nodelifecycle`).
//!
//! Every [`PASS_PERIOD`] the controller looks at all Nodes and their Leases
//! in `kube-node-lease` (shared informers) and:
//!
//! * **Health** ([`health::is_silent`]): a node whose Lease `renewTime` and
//!   Ready `lastHeartbeatTime` are both older than
//!   `--node-monitor-grace-period` (or which never posted a Ready condition
//!   within `--node-startup-grace-period` of its creation) gets Ready,
//!   MemoryPressure, DiskPressure and PIDPressure set to Unknown with reason
//!   `NodeStatusUnknown` and message "Kubelet stopped posting node status."
//!   (status subresource). Upstream measures silence by its own clock since
//!   it last saw a heartbeat change; rkube compares the heartbeat timestamps
//!   themselves with the current time (same clock in one process; a skewed
//!   clock elsewhere shifts the grace period).
//! * **Events**: `RegisteredNode` for each node first seen, `RemovingNode`
//!   when one is deleted, `NodeNotReady` when Ready leaves True — and then
//!   every pod on the node gets its Ready condition set False with a
//!   `NodeNotReady` warning on the pod (upstream `MarkPodsNotReady`).
//! * **NoSchedule taints** (TaintNodesByCondition): `not-ready`,
//!   `unreachable`, `memory-pressure`, `disk-pressure`, `pid-pressure`,
//!   `network-unavailable` and `unschedulable`, kept equal to the
//!   conditions and `spec.unschedulable`, at once.
//! * **NoExecute taints**: `node.kubernetes.io/not-ready` for Ready=False,
//!   `node.kubernetes.io/unreachable` for Unknown, with `timeAdded`.
//!   Swapping one for the other and removing them on recovery happen at
//!   once; adding one to a healthy node is rate-limited per zone
//!   ([`zones`]): `--node-eviction-rate` nodes/s, in a partially disrupted
//!   zone (more than 2 and at least `--unhealthy-zone-threshold` of its
//!   nodes not Ready) `--secondary-node-eviction-rate` if it has more than
//!   `--large-cluster-size-threshold` nodes and none otherwise. When every
//!   zone is fully disrupted nothing is tainted and existing NoExecute
//!   taints are removed (conditions are still marked), as upstream.
//!   The taint-eviction controller then evicts the pods.
//!
//! All writes are merge patches conditional on the resourceVersion read,
//! so a stale store never overwrites a newer object; what did not land is
//! tried again on the next pass.

pub mod health;
pub mod zones;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::informers::Change;
use crate::manager::{Context, Running};
use health::{NoExecuteStep, Readiness};
use zones::{Rates, TokenBucket, ZoneState};

/// How often the controller looks at all nodes: upstream's tainting period
/// (100 ms; the per-zone bucket's burst of 1 allows one NoExecute taint per
/// zone per pass, so a longer pass would cap `--node-eviction-rate`).
/// Upstream checks health every `--node-monitor-period`, 5 s; one pass over
/// store snapshots is cheap, and writes happen only on change.
pub const PASS_PERIOD: Duration = Duration::from_millis(100);

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node lifecycle controller's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// `--node-monitor-grace-period`.
    pub grace_period: Duration,
    /// `--node-startup-grace-period`.
    pub startup_grace_period: Duration,
    /// `--unhealthy-zone-threshold`.
    pub unhealthy_zone_threshold: f64,
    /// Tainting rates.
    pub rates: Rates,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeLifecycleError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Zone {
    state: ZoneState,
    bucket: TokenBucket,
}

struct Controller {
    client: Client,
    cfg: LifecycleConfig,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    recorder: Recorder,
    /// Readiness last seen per node.
    seen: HashMap<String, Readiness>,
    /// Nodes whose pods still have to be marked not ready.
    mark_pods: HashSet<String>,
    zones: HashMap<String, Zone>,
    /// Nodes waiting for their zone's limiter, since when (FIFO order).
    pending: HashMap<String, Instant>,
    all_disrupted: bool,
}

/// Sets the controller up (see the module doc).
pub fn start(ctx: &Context) -> Running {
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx.informers.get::<Lease>();
    let pods = ctx.informers.get::<Pod>();
    let recorder = ctx.recorder("node-controller");
    let rec = recorder.clone();
    nodes.on_change(move |c| {
        if let Change::Deleted(n) = c {
            let name = n.name_any();
            rec.event(
                n.as_ref(),
                events::NORMAL,
                "RemovingNode",
                format!("Node {name} event: Removing Node {name} from Controller"),
            );
        }
    });
    let c = &ctx.config;
    let controller = Controller {
        client: ctx.client.clone(),
        cfg: LifecycleConfig {
            grace_period: c.node_monitor_grace_period,
            startup_grace_period: c.node_startup_grace_period,
            unhealthy_zone_threshold: c.unhealthy_zone_threshold,
            rates: Rates {
                normal: c.node_eviction_rate,
                secondary: c.secondary_node_eviction_rate,
                large_cluster_threshold: c.large_cluster_size_threshold,
            },
        },
        nodes: nodes.store(),
        leases: leases.store(),
        pods: pods.store(),
        recorder,
        seen: HashMap::new(),
        mark_pods: HashSet::new(),
        zones: HashMap::new(),
        pending: HashMap::new(),
        all_disrupted: false,
    };
    Box::pin(controller.run())
}

fn rv_patch(node_rv: Option<&String>, body: serde_json::Value) -> serde_json::Value {
    let mut p = body;
    if let Some(rv) = node_rv {
        p["metadata"] = json!({ "resourceVersion": rv });
    }
    p
}

impl Controller {
    async fn run(mut self) -> Result<(), String> {
        for r in [
            self.nodes.wait_until_ready().await.is_err(),
            self.leases.wait_until_ready().await.is_err(),
            self.pods.wait_until_ready().await.is_err(),
        ] {
            if r {
                return Err("informer stopped before syncing".into());
            }
        }
        let mut tick = tokio::time::interval(PASS_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pass().await;
        }
    }

    async fn pass(&mut self) {
        let now_ts = Timestamp::now();
        let now = Instant::now();
        let leases: HashMap<String, Arc<Lease>> = self
            .leases
            .state()
            .into_iter()
            .filter(|l| l.namespace().as_deref() == Some(LEASE_NAMESPACE))
            .map(|l| (l.name_any(), l))
            .collect();
        let mut nodes = self.nodes.state();
        nodes.sort_by_key(|n| n.name_any());

        // Health: mark silent nodes Unknown.
        for node in nodes.iter_mut() {
            let name = node.name_any();
            let lease = leases.get(&name).map(Arc::as_ref);
            if !health::is_silent(
                node,
                lease,
                now_ts,
                self.cfg.grace_period,
                self.cfg.startup_grace_period,
            ) {
                continue;
            }
            let Some(conds) = health::mark_unknown(node, now_ts) else {
                continue;
            };
            tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
            let patch = rv_patch(
                node.metadata.resource_version.as_ref(),
                json!({ "status": { "conditions": conds } }),
            );
            let api: Api<Node> = Api::all(self.client.clone());
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(n) => *node = Arc::new(n),
                Err(e) => tracing::debug!(node = %name, error = %e, "marking node Unknown failed"),
            }
        }

        // Readiness transitions: events and pods marked not ready.
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.seen.retain(|n, _| names.contains(n));
        self.mark_pods.retain(|n| names.contains(n));
        self.pending.retain(|n, _| names.contains(n));
        for node in &nodes {
            let name = node.name_any();
            let r = health::readiness(node);
            match self.seen.insert(name.clone(), r) {
                None => self.recorder.event(
                    node.as_ref(),
                    events::NORMAL,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                ),
                Some(Readiness::True) if !r.is_ready() && r != Readiness::Missing => {
                    self.recorder.event(
                        node.as_ref(),
                        events::NORMAL,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                    self.mark_pods.insert(name.clone());
                }
                _ => {}
            }
            if r.is_ready() {
                self.mark_pods.remove(&name);
            }
        }
        let to_mark: Vec<String> = self.mark_pods.iter().cloned().collect();
        for name in to_mark {
            if self.mark_pods_not_ready(&name).await {
                self.mark_pods.remove(&name);
            }
        }

        // Zones and their limiters.
        let mut by_zone: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for node in &nodes {
            by_zone
                .entry(zones::zone_key(node))
                .or_default()
                .push(health::readiness(node).is_ready());
        }
        let states: BTreeMap<String, ZoneState> = by_zone
            .iter()
            .map(|(z, r)| {
                let st = zones::zone_state(r.iter().copied(), self.cfg.unhealthy_zone_threshold);
                (z.clone(), st)
            })
            .collect();
        let all = zones::all_fully_disrupted(&states);
        if all != self.all_disrupted {
            if all {
                tracing::warn!("all nodes are not ready: entering master disruption mode; no node is tainted for eviction");
            } else {
                tracing::info!("some nodes are ready again: leaving master disruption mode");
            }
            self.all_disrupted = all;
        }
        self.zones.retain(|z, _| states.contains_key(z));
        for (z, st) in &states {
            let qps = zones::zone_qps(*st, by_zone[z].len(), all, &self.cfg.rates);
            match self.zones.get_mut(z) {
                Some(zone) => {
                    if zone.state != *st {
                        tracing::info!(zone = %z, from = zone.state.as_str(), to = st.as_str(), "zone state changed");
                        zone.state = *st;
                    }
                    if zone.bucket.qps() != qps {
                        zone.bucket = TokenBucket::new(qps, 1, now);
                    }
                }
                None => {
                    self.zones.insert(
                        z.clone(),
                        Zone {
                            state: *st,
                            bucket: TokenBucket::new(qps, 1, now),
                        },
                    );
                }
            }
        }

        // Taints.
        let mut plans: Vec<(Arc<Node>, Option<&'static str>)> = Vec::new();
        let mut adds: Vec<(Instant, usize, &'static str)> = Vec::new();
        for node in nodes {
            let name = node.name_any();
            let taints = rkube_api::scheduling::node_taints(&node);
            let current = health::current_no_execute(taints);
            let wanted = if all {
                None
            } else {
                health::wanted_no_execute(health::readiness(&node))
            };
            let step = health::no_execute_step(wanted, current);
            if !matches!(step, NoExecuteStep::Add(_)) {
                self.pending.remove(&name);
            }
            let ne = match step {
                NoExecuteStep::Keep => current,
                NoExecuteStep::Remove => None,
                NoExecuteStep::Swap(k) => Some(k),
                NoExecuteStep::Add(k) => {
                    let since = *self.pending.entry(name.clone()).or_insert(now);
                    adds.push((since, plans.len(), k));
                    None
                }
            };
            plans.push((node, ne));
        }
        adds.sort_by_key(|(since, i, _)| (*since, *i));
        for (_, i, k) in adds {
            let node = &plans[i].0;
            let zone = zones::zone_key(node);
            if self
                .zones
                .get_mut(&zone)
                .is_some_and(|z| z.bucket.try_accept(now))
            {
                self.pending.remove(&node.name_any());
                plans[i].1 = Some(k);
            }
        }
        for (node, ne) in plans {
            let taints = rkube_api::scheduling::node_taints(&node);
            let ns = health::wanted_no_schedule(&node);
            let Some(new) = health::reconcile_taints(taints, &ns, ne, now_ts) else {
                continue;
            };
            let name = node.name_any();
            tracing::info!(node = %name, no_execute = ?ne, no_schedule = ?ns, "updating node taints");
            let patch = rv_patch(
                node.metadata.resource_version.as_ref(),
                json!({ "spec": { "taints": new } }),
            );
            let api: Api<Node> = Api::all(self.client.clone());
            if let Err(e) = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(node = %name, error = %e, "updating taints failed; next pass retries");
            }
        }
    }

    /// Sets Ready False on the node's pods; whether all landed.
    async fn mark_pods_not_ready(&self, node: &str) -> bool {
        let now = Time(Timestamp::now());
        let mut ok = true;
        for pod in self.pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let Some(conds) = pod_not_ready_conditions(&pod, &now) else {
                continue;
            };
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let patch = rv_patch(
                pod.metadata.resource_version.as_ref(),
                json!({ "status": { "conditions": conds } }),
            );
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %format!("{ns}/{name}"), "marked pod not ready");
                    self.recorder.event(
                        pod.as_ref(),
                        events::WARNING,
                        "NodeNotReady",
                        "Node is not ready",
                    );
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "marking pod not ready failed");
                    ok = false;
                }
            }
        }
        ok
    }
}

/// The pod's conditions with Ready set False, `None` if it is not Ready
/// True (upstream `MarkPodsNotReady` only flips Ready).
pub fn pod_not_ready_conditions(
    pod: &Pod,
    now: &Time,
) -> Option<Vec<k8s_openapi::api::core::v1::PodCondition>> {
    let mut conds = pod.status.as_ref()?.conditions.clone()?;
    let ready = conds
        .iter_mut()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.status = "False".into();
    ready.last_transition_time = Some(now.clone());
    Some(conds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    #[test]
    fn pods_marked_not_ready_only_when_ready() {
        let now = Time(Timestamp::from_second(50).unwrap());
        let mut pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![
                    PodCondition {
                        type_: "PodScheduled".into(),
                        status: "True".into(),
                        ..Default::default()
                    },
                    PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let conds = pod_not_ready_conditions(&pod, &now).unwrap();
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[1].status, "False");
        assert_eq!(conds[1].last_transition_time, Some(now.clone()));
        pod.status.as_mut().unwrap().conditions = Some(conds);
        assert!(pod_not_ready_conditions(&pod, &now).is_none());
    }
}

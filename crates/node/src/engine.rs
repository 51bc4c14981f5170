//! The engine behind both the node agent (one node) and the simulator
//! (thousands of nodes in one process): it registers its nodes, then runs
//! one loop over one Node watch, one pod watch, the heartbeat schedule and
//! the pod timers, writing through one shared [`Poster`]. With
//! `adopt_annotated` it also adopts, KWOK-style, every Node created through
//! the API with the annotation `rkube.io/simulated: "true"`, keeping the
//! capacity, labels and taints it was created with.
//!
//! A node annotated `rkube.io/simulate-heartbeat: "stopped"` behaves as a
//! failed node: no Lease renewals, no status, its pods left as they are,
//! until the annotation goes.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::time::Instant;

use crate::config::{EngineConfig, NodeConfig};
use crate::heartbeat::Heartbeats;
use crate::maxpods::DEFAULT_MAX_PODS;
use crate::pods::PodManager;
use crate::poster::{Job, Poster};
use crate::runtime::Runtime;
use crate::status;

/// Nodes with this annotation set to `"true"` are adopted by simulators
/// that adopt (the one in `rkube server`).
pub const ANN_SIMULATED: &str = "rkube.io/simulated";
/// `"stopped"`: the node stops heartbeating (simulated node failure).
pub const ANN_HEARTBEAT: &str = "rkube.io/simulate-heartbeat";

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// What an engine runs.
pub struct EngineSpec {
    /// Nodes this process registers (creates, or adopts if they exist).
    pub registrations: Vec<NodeConfig>,
    /// Adopt Nodes annotated `rkube.io/simulated: "true"`.
    pub adopt_annotated: bool,
    /// Field selector of the Node watch (`None`: all nodes).
    pub node_selector: Option<String>,
    /// Field selector of the pod watch.
    pub pod_selector: String,
    /// First InternalIP handed to adopted nodes that have none.
    pub adopted_ip_base: Ipv4Addr,
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Creates the Node (with its full status), or adopts an existing one:
/// labels and taints are merged in, the pod CIDR set if it has none, the
/// status posted.
#[tracing::instrument(skip_all, fields(node = %cfg.node_name))]
pub async fn register(client: &Client, cfg: &NodeConfig) -> Result<Node, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(status::node_labels(cfg)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: cfg.pod_cidr.clone(),
            pod_cidrs: cfg.pod_cidr.clone().map(|c| vec![c]),
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: Some(status::node_status(cfg, now)),
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => return Ok(n),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let existing = api.get(&cfg.node_name).await?;
    let mut patch = json!({"metadata": {"labels": status::node_labels(cfg)}});
    let spec = existing.spec.clone().unwrap_or_default();
    if let (None, Some(c)) = (&spec.pod_cidr, &cfg.pod_cidr) {
        patch["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
    }
    if !cfg.taints.is_empty() {
        let mut taints = spec.taints.unwrap_or_default();
        for t in &cfg.taints {
            if !taints
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect)
            {
                taints.push(t.clone());
            }
        }
        patch["spec"]["taints"] = serde_json::to_value(taints).unwrap_or_default();
    }
    tracing::info!("adopting existing node");
    let pp = PatchParams::default();
    api.patch(&cfg.node_name, &pp, &Patch::Merge(&patch))
        .await?;
    let body = json!({ "status": status::node_status(cfg, now) });
    api.patch_status(&cfg.node_name, &pp, &Patch::Merge(&body))
        .await
}

struct Managed {
    paused: bool,
}

/// The running engine.
pub struct Engine {
    cfg: EngineConfig,
    poster: Poster,
    registered: HashMap<String, NodeConfig>,
    adopt: bool,
    managed: HashMap<String, Managed>,
    heartbeats: Heartbeats,
    pods: PodManager,
    next_ip: u32,
    relist: Option<HashSet<String>>,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves with the name of a node whose measured conditions changed.
async fn facts_changed(facts: &[(String, crate::facts::NodeFacts)]) -> String {
    if facts.is_empty() {
        return std::future::pending().await;
    }
    let waits = facts.iter().map(|(name, f)| {
        Box::pin(async move {
            f.changed().await;
            name.clone()
        })
    });
    futures::future::select_all(waits).await.0
}

impl Engine {
    /// Registers the nodes, then runs until a watch ends for good.
    pub async fn run(
        client: Client,
        spec: EngineSpec,
        cfg: EngineConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<(), EngineError> {
        if let Some(bad) = spec.registrations.iter().find(|c| c.max_pods == 0) {
            return Err(EngineError::Config(format!(
                "node {}: max pods must be at least 1",
                bad.node_name
            )));
        }
        let poster = Poster::start(client.clone(), cfg.concurrency);
        let started = std::time::Instant::now();
        let count = spec.registrations.len();
        futures::stream::iter(spec.registrations.clone())
            .map(|c| {
                let client = client.clone();
                async move {
                    register(&client, &c)
                        .await
                        .map_err(|source| EngineError::Register {
                            node: c.node_name.clone(),
                            source,
                        })
                }
            })
            .buffer_unordered(cfg.register_concurrency.max(1))
            .try_for_each(|_| async { Ok(()) })
            .await?;
        if count > 0 {
            tracing::info!(nodes = count, elapsed = ?started.elapsed(), "nodes registered");
        }
        let mut engine = Engine {
            heartbeats: Heartbeats::new(
                cfg.lease_renew_interval,
                cfg.status_report_interval,
                cfg.lease_duration_seconds,
            ),
            pods: PodManager::new(runtime, poster.clone()),
            cfg,
            poster,
            registered: spec
                .registrations
                .into_iter()
                .map(|c| (c.node_name.clone(), c))
                .collect(),
            adopt: spec.adopt_annotated,
            managed: HashMap::new(),
            next_ip: u32::from(spec.adopted_ip_base),
            relist: None,
        };
        let mut wc = watcher::Config::default();
        if let Some(sel) = &spec.node_selector {
            wc = wc.fields(sel);
        }
        let mut nodes = watcher::watcher(Api::<Node>::all(client.clone()), wc)
            .default_backoff()
            .boxed();
        let facts: Vec<(String, crate::facts::NodeFacts)> = engine
            .registered
            .values()
            .filter_map(|c| Some((c.node_name.clone(), c.facts.clone()?)))
            .collect();
        let mut pod_events: Option<BoxStream<'static, _>> = None;
        let pod_wc = watcher::Config::default().fields(&spec.pod_selector);
        loop {
            if pod_events.is_none() && !engine.managed.is_empty() {
                pod_events = Some(
                    watcher::watcher(Api::<Pod>::all(client.clone()), pod_wc.clone())
                        .default_backoff()
                        .boxed(),
                );
            }
            let hb_at = engine.heartbeats.next_deadline();
            let pod_at = engine.pods.next_deadline();
            let poster = engine.poster.clone();
            let max_queued = engine.cfg.max_queued;
            let next_pod = async {
                match pod_events.as_mut() {
                    Some(s) => {
                        poster.wait_below(max_queued).await;
                        s.next().await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = nodes.next() => match ev {
                    None => return Err(EngineError::WatchEnded("node")),
                    Some(Err(e)) => tracing::warn!(error = %e, "node watch error"),
                    Some(Ok(ev)) => engine.on_node_event(ev).await,
                },
                ev = next_pod => match ev {
                    None => return Err(EngineError::WatchEnded("pod")),
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch error"),
                    Some(Ok(ev)) => engine.pods.on_event(ev).await,
                },
                _ = sleep_until(hb_at) => engine.heartbeats.fire(Instant::now(), &engine.poster),
                _ = sleep_until(pod_at) => engine.pods.fire(Instant::now()).await,
                name = facts_changed(&facts) => {
                    tracing::debug!(node = %name, "measured conditions changed");
                    engine.heartbeats.post_status_now(&name, Instant::now());
                }
            }
        }
    }

    async fn on_node_event(&mut self, ev: Event<Node>) {
        match ev {
            Event::Init => self.relist = Some(HashSet::new()),
            Event::InitApply(n) | Event::Apply(n) => {
                if let (Some(seen), Some(name)) = (self.relist.as_mut(), &n.metadata.name) {
                    seen.insert(name.clone());
                }
                self.on_node(&n).await;
            }
            Event::Delete(n) => {
                if let Some(name) = &n.metadata.name {
                    self.unmanage(name).await;
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let gone: Vec<String> = self
                        .managed
                        .keys()
                        .filter(|n| !seen.contains(*n))
                        .cloned()
                        .collect();
                    for name in gone {
                        self.unmanage(&name).await;
                    }
                }
            }
        }
    }

    async fn unmanage(&mut self, name: &str) {
        if self.managed.remove(name).is_some() {
            tracing::info!(node = name, "node no longer run here");
            self.heartbeats.remove(name);
            self.pods.remove_node(name).await;
        }
    }

    fn fake_ip(&mut self) -> String {
        let ip = Ipv4Addr::from(self.next_ip);
        self.next_ip = self.next_ip.wrapping_add(1);
        ip.to_string()
    }

    #[tracing::instrument(skip_all, fields(node = ?node.metadata.name))]
    async fn on_node(&mut self, node: &Node) {
        let Some(name) = node.metadata.name.as_deref() else {
            return;
        };
        let registered = self.registered.get(name).cloned();
        let adopted = self.adopt && annotation(node, ANN_SIMULATED) == Some("true");
        if registered.is_none() && !adopted {
            self.unmanage(name).await;
            return;
        }
        if node.metadata.deletion_timestamp.is_some() {
            return;
        }
        let now = Instant::now();
        let paused = annotation(node, ANN_HEARTBEAT) == Some("stopped");
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref());
        if let Some(m) = self.managed.get_mut(name) {
            if m.paused != paused {
                m.paused = paused;
                tracing::info!(node = name, paused, "heartbeats paused/resumed");
                self.heartbeats.set_paused(name, paused, now);
                self.pods.set_paused(name, paused).await;
            }
            if let Some(c) = cidr {
                self.pods.set_cidr(name, c).await;
            }
            return;
        }
        let (max_pods, host_ip) = match &registered {
            Some(cfg) => (cfg.max_pods, cfg.host_ip.clone()),
            None => (
                status::capacity_pods(node).unwrap_or(DEFAULT_MAX_PODS),
                match status::internal_ip(node) {
                    Some(ip) => ip,
                    None => self.fake_ip(),
                },
            ),
        };
        if registered.is_none() && !paused {
            let st = status::adopted_status(node, &host_ip, Timestamp::now());
            self.poster.submit(
                format!("nodestatus/{name}"),
                Job::NodeStatus {
                    node: name.to_string(),
                    status: serde_json::to_value(st).unwrap_or_default(),
                },
            );
        }
        tracing::info!(
            node = name,
            adopted = registered.is_none(),
            max_pods,
            "running node"
        );
        self.heartbeats
            .add(name, node.metadata.uid.clone(), paused, now);
        let facts = registered.as_ref().and_then(|c| c.facts.clone());
        self.heartbeats.set_facts(name, facts.clone());
        self.pods
            .add_node(name, max_pods, host_ip, cidr, facts)
            .await;
        if paused {
            self.pods.set_paused(name, true).await;
        }
        self.managed.insert(name.to_string(), Managed { paused });
    }
}

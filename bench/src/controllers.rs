//! Scenario `controllers`: issue 5's controller benchmarks against the real
//! `rkube server` with N in-process simulated nodes (`--simulated-nodes`),
//! its scheduler and its controller manager.
//!
//! * `deployment`: create one Deployment of R replicas; time from the
//!   create until `status.availableReplicas == R` (and updated == R).
//! * `rolling-update`: a Deployment of R replicas, all available; change
//!   its image; time from the patch until the new template's ReplicaSet
//!   has all R available and no old pod is left.
//! * `node-failure`: a Deployment of R replicas whose pods tolerate the
//!   unreachable/not-ready taints for T s; F of the nodes stop their
//!   heartbeats at once. Times from the failure and from the first
//!   unreachable taint until R pods are Running and Ready on live nodes.
//! * `endpoints`: S Services each selecting E pods (S × E pods); every
//!   pod's latency from the moment the bench's pod watch sees it Ready to
//!   the moment the EndpointSlice watch sees its IP ready in a slice of its
//!   Service; p50/p99 over all pods.
//!
//! Polls are 100 ms apart, so durations carry up to 0.1 s of slack.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::procs::RkubeServer;
use crate::stats::{ms, nanos, thousands, Summary};
use crate::{Env, Row, Verdict};

/// Give up on any phase after this long.
const PHASE_TIMEOUT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Deployment,
    RollingUpdate,
    NodeFailure,
    Endpoints,
}

/// Arguments of `controllers`.
#[derive(Clone, Debug)]
pub struct CtrlArgs {
    pub scenario: Scenario,
    pub nodes: u64,
    pub replicas: u64,
    /// node-failure: nodes that fail.
    pub failed_nodes: u64,
    /// node-failure: the pods' tolerationSeconds.
    pub toleration_seconds: u64,
    /// node-failure: the server's --node-monitor-grace-period, seconds.
    pub grace_seconds: u64,
    /// node-failure: the server's --node-eviction-rate (nodes/s).
    pub eviction_rate: f64,
    /// endpoints: Services, and pods per Service.
    pub services: u64,
    pub endpoints: u64,
}

fn deployment(name: &str, replicas: u64, image: &str, tolerate: Option<u64>) -> Deployment {
    let tolerations = tolerate.map(|t| {
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": t},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": t},
        ])
    });
    let mut spec = json!({"containers": [{"name": "c", "image": image}]});
    if let Some(t) = tolerations {
        spec["tolerations"] = t;
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        }
    }))
    .expect("deployment manifest")
}

/// Polls the Deployment until `done(status)`; the time it took.
async fn wait_deployment(
    api: &Api<Deployment>,
    name: &str,
    server: &mut RkubeServer,
    done: impl Fn(&Deployment) -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        server.check_alive()?;
        if let Some(d) = api.get_opt(name).await? {
            if done(&d) {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("deployment {name} not done within {PHASE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn complete(d: &Deployment, replicas: u64) -> bool {
    let Some(s) = &d.status else { return false };
    let r = i32::try_from(replicas).unwrap_or(i32::MAX);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(r)
        && s.available_replicas == Some(r)
        && s.replicas == Some(r)
}

async fn start(env: &Env, a: &CtrlArgs, extra: &[String]) -> anyhow::Result<RkubeServer> {
    let mut args = vec!["--simulated-nodes".to_string(), a.nodes.to_string()];
    args.extend_from_slice(extra);
    let server = RkubeServer::start(&env.server(args)).await?;
    let client = server.client().await?;
    let nodes: Api<Node> = Api::all(client);
    let t = Instant::now();
    loop {
        let n = nodes
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len() as u64;
        if n >= a.nodes {
            break;
        }
        if t.elapsed() > PHASE_TIMEOUT {
            bail!("only {n} of {} nodes registered", a.nodes);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(server)
}

pub async fn run(env: &Env, a: &CtrlArgs) -> anyhow::Result<Row> {
    match a.scenario {
        Scenario::Deployment => run_deployment(env, a).await,
        Scenario::RollingUpdate => run_rolling_update(env, a).await,
        Scenario::NodeFailure => run_node_failure(env, a).await,
        Scenario::Endpoints => run_endpoints(env, a).await,
    }
}

async fn run_deployment(env: &Env, a: &CtrlArgs) -> anyhow::Result<Row> {
    let mut server = start(env, a, &[]).await?;
    let api: Api<Deployment> = Api::namespaced(server.client().await?, "default");
    api.create(
        &PostParams::default(),
        &deployment("big", a.replicas, "pause:1", None),
    )
    .await
    .context("creating the deployment")?;
    let took = wait_deployment(&api, "big", &mut server, |d| complete(d, a.replicas)).await?;
    let rss = server.memory()?;
    Ok(Row {
        scenario: "controllers deployment".into(),
        setup: format!(
            "{} nodes, 1 Deployment × {} replicas",
            thousands(a.nodes),
            thousands(a.replicas)
        ),
        result: format!(
            "create → all available {:.1} s ({:.0} pods/s); server RSS {}",
            took.as_secs_f64(),
            a.replicas as f64 / took.as_secs_f64(),
            crate::procs::mib(rss.rss_kib)
        ),
        target: "≤ 30 s (10,000 on 1,000 nodes)".into(),
        verdict: Verdict::from_bool(took <= Duration::from_secs(30)),
    })
}

async fn run_rolling_update(env: &Env, a: &CtrlArgs) -> anyhow::Result<Row> {
    let mut server = start(env, a, &[]).await?;
    let client = server.client().await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("roll", a.replicas, "pause:1", None),
    )
    .await?;
    wait_deployment(&api, "roll", &mut server, |d| complete(d, a.replicas)).await?;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "pause:2"}]}}}});
    api.patch("roll", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let start = Instant::now();
    wait_deployment(&api, "roll", &mut server, |d| complete(d, a.replicas)).await?;
    // No pod of the old template may be left running.
    loop {
        let list = pods.list(&ListParams::default().labels("app=roll")).await?;
        let old = list
            .items
            .iter()
            .filter(|p| {
                p.spec.as_ref().is_some_and(|s| {
                    s.containers.first().and_then(|c| c.image.as_deref()) == Some("pause:1")
                })
            })
            .count();
        if old == 0 {
            break;
        }
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("{old} old pods left");
        }
        tokio::time::sleep(POLL).await;
    }
    let took = start.elapsed();
    Ok(Row {
        scenario: "controllers rolling-update".into(),
        setup: format!(
            "{} nodes, {} replicas, maxSurge/maxUnavailable 25%",
            thousands(a.nodes),
            thousands(a.replicas)
        ),
        result: format!(
            "image change → all new available, old gone {:.1} s",
            took.as_secs_f64()
        ),
        target: "≤ 30 s (1,000 replicas)".into(),
        verdict: Verdict::from_bool(took <= Duration::from_secs(30)),
    })
}

fn running_ready_on(p: &Pod, dead: &HashSet<String>) -> bool {
    let node_ok = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| !dead.contains(n));
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    node_ok && ready && p.metadata.deletion_timestamp.is_none()
}

async fn run_node_failure(env: &Env, a: &CtrlArgs) -> anyhow::Result<Row> {
    let extra = vec![
        "--node-monitor-grace-period".to_string(),
        format!("{}s", a.grace_seconds),
        "--node-eviction-rate".to_string(),
        a.eviction_rate.to_string(),
    ];
    let mut server = start(env, a, &extra).await?;
    let client = server.client().await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment(
            "survivor",
            a.replicas,
            "pause:1",
            Some(a.toleration_seconds),
        ),
    )
    .await?;
    wait_deployment(&api, "survivor", &mut server, |d| complete(d, a.replicas)).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let mut names: Vec<String> = nodes
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    let dead: HashSet<String> = names
        .into_iter()
        .take(usize::try_from(a.failed_nodes)?)
        .collect();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let on_dead = pods
        .list(&ListParams::default().labels("app=survivor"))
        .await?
        .items
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| dead.contains(n))
        })
        .count();
    let failed_at = Instant::now();
    let stop = json!({"metadata": {"annotations": {"rkube.io/simulate-heartbeat": "stopped"}}});
    for n in &dead {
        nodes
            .patch(n, &PatchParams::default(), &Patch::Merge(&stop))
            .await?;
    }
    let mut tainted_at: Option<Instant> = None;
    loop {
        server.check_alive()?;
        if tainted_at.is_none() {
            let any = nodes
                .get(dead.iter().next().context("no failed node")?)
                .await?;
            let tainted = any
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|ts| {
                    ts.iter().any(|t| {
                        t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"
                    })
                });
            if tainted {
                tainted_at = Some(Instant::now());
            }
        }
        let list = pods
            .list(&ListParams::default().labels("app=survivor"))
            .await?;
        let good = list
            .items
            .iter()
            .filter(|p| running_ready_on(p, &dead))
            .count() as u64;
        if good >= a.replicas && tainted_at.is_some() {
            break;
        }
        if failed_at.elapsed() > PHASE_TIMEOUT {
            bail!("only {good} of {} pods on live nodes", a.replicas);
        }
        tokio::time::sleep(POLL).await;
    }
    let total = failed_at.elapsed();
    let since_taint = tainted_at.map(|t| t.elapsed()).unwrap_or_default();
    let target = Duration::from_secs(a.toleration_seconds + 10);
    Ok(Row {
        scenario: "controllers node-failure".into(),
        setup: format!(
            "{} nodes, {} of them fail; Deployment × {} ({on_dead} pods on failed nodes), tolerationSeconds {}, grace period {} s, node eviction rate {}/s",
            thousands(a.nodes),
            a.failed_nodes,
            thousands(a.replicas),
            a.toleration_seconds,
            a.grace_seconds,
            a.eviction_rate
        ),
        result: format!(
            "all replicas Ready elsewhere {:.1} s after the unreachable taint ({:.1} s after the failure)",
            since_taint.as_secs_f64(),
            total.as_secs_f64()
        ),
        target: format!("≤ tolerationSeconds + 10 s = {} s (from the taint)", target.as_secs()),
        verdict: Verdict::from_bool(since_taint <= target),
    })
}

/// Pod name → (IP, the moment the pod watch saw it Ready).
type ReadyPods = Arc<Mutex<HashMap<String, (String, Instant)>>>;

async fn run_endpoints(env: &Env, a: &CtrlArgs) -> anyhow::Result<Row> {
    let mut server = start(env, a, &[]).await?;
    let client = server.client().await?;
    let ready: ReadyPods = Default::default();
    let seen_ready: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    {
        let ready = ready.clone();
        let mut w = watcher::watcher(pods.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            while let Some(Ok(ev)) = w.next().await {
                if let Event::Apply(p) | Event::InitApply(p) = ev {
                    let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                    let is_ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if let (Some(ip), true, Some(name)) = (ip, is_ready, p.metadata.name) {
                        ready
                            .lock()
                            .unwrap()
                            .entry(name)
                            .or_insert((ip, Instant::now()));
                    }
                }
            }
        });
    }
    {
        let seen = seen_ready.clone();
        let mut w = watcher::watcher(slices, watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            while let Some(Ok(ev)) = w.next().await {
                if let Event::Apply(s) | Event::InitApply(s) = ev {
                    let mut seen = seen.lock().unwrap();
                    for e in &s.endpoints {
                        let is_ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                        let name = e.target_ref.as_ref().and_then(|r| r.name.clone());
                        if let (true, Some(name)) = (is_ready, name) {
                            seen.entry(name).or_insert_with(Instant::now);
                        }
                    }
                }
            }
        });
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    for s in 0..a.services {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{s}")},
            "spec": {"selector": {"svc": format!("s{s}")}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))?;
        svcs.create(&PostParams::default(), &svc).await?;
    }
    let total = a.services * a.endpoints;
    let body = |i: u64| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("ep-{i}"), "labels": {"svc": format!("s{}", i % a.services)}},
            "spec": {"containers": [{"name": "c", "image": "pause:1", "ports": [{"containerPort": 8080}]}]}
        }))
        .expect("pod manifest")
    };
    futures::stream::iter(0..total)
        .map(|i| {
            let pods = pods.clone();
            let p = body(i);
            async move { pods.create(&PostParams::default(), &p).await }
        })
        .buffer_unordered(64)
        .for_each(|r| {
            if let Err(e) = r {
                eprintln!("rkube-bench: create failed: {e}");
            }
            futures::future::ready(())
        })
        .await;
    loop {
        server.check_alive()?;
        let n = seen_ready.lock().unwrap().len() as u64;
        if n >= total {
            break;
        }
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("only {n} of {total} endpoints became ready in slices");
        }
        tokio::time::sleep(POLL).await;
    }
    let all = start.elapsed();
    let ready = ready.lock().unwrap();
    let seen = seen_ready.lock().unwrap();
    let mut lat: Vec<u64> = seen
        .iter()
        .filter_map(|(name, at)| {
            let (_, r) = ready.get(name)?;
            Some(nanos(at.saturating_duration_since(*r)))
        })
        .collect();
    let summary = Summary::of(&mut lat);
    Ok(Row {
        scenario: "controllers endpoints".into(),
        setup: format!(
            "{} nodes, {} Services × {} pods",
            thousands(a.nodes),
            thousands(a.services),
            a.endpoints
        ),
        result: format!(
            "pod Ready → ready in its EndpointSlice: {}; everything created and synced in {:.1} s (p99 {})",
            summary.describe(),
            all.as_secs_f64(),
            ms(summary.p99)
        ),
        target: "p99 recorded".into(),
        verdict: Verdict::NoTarget,
    })
}

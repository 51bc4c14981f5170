//! Scenario `scheduler`: upstream scheduler_perf-style throughput through
//! the real API server and rkube's scheduler (in process, or with
//! `--separate-scheduler` as its own `rkube scheduler` process).
//!
//! 1. Node and pod watches open (list-then-watch reflectors, as sim-nodes).
//! 2. N Nodes are created through the API (`node-i`, labelled with hostname
//!    and zone, 4 CPU / 32Gi / 110 pods); by default with the annotation
//!    the server's simulator adopts (Ready, Leases, pods run), with
//!    `--plain-nodes` created Ready with nothing running their pods.
//! 3. Init pods (`i-k`) are created and waited for: bound (and Running on
//!    simulated nodes), or for pods that can never fit, reported
//!    PodScheduled=False. Then the server's non-Lease traffic must settle.
//! 4. Measured: from the first create of the measured pods (`m-k`, 64
//!    creates in flight) until the watch has seen every one with
//!    `spec.nodeName`. Throughput = pods / that time. For Unschedulable a
//!    churn task meanwhile re-creates a node and an unschedulable pod every
//!    second.
//! 5. Checks: every measured pod bound once, and the workload's constraint
//!    (zone/host skew, anti-affinity, node capacity, never-fitting pods
//!    unbound, priorities resolved).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::{create_loop, one_line, BodyFn, CreateLoad};
use crate::procs::{stat_path, CpuMeter, RkubeServer};
use crate::sched_proc::{Metrics, SchedulerProcess};
use crate::sched_track::{skew_violations, Nodes, Pods};
use crate::sched_workloads::{self as wl, PodKind, Workload};
use crate::sim_nodes::{start_reflector, Requests, Shared, SharedRef, WatchStats};
use crate::stats::thousands;
use crate::{Env, Row, Verdict};

/// Give up when no pod was bound for this long.
const STALL: Duration = Duration::from_secs(120);
/// Wait at most this long for the nodes, or one set of pods.
const PHASE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Settling: at most this many non-Lease requests per second.
const SETTLED_RPS: f64 = 20.0;
const SETTLE_MAX: Duration = Duration::from_secs(120);

/// Arguments of `scheduler`.
#[derive(Clone, Debug)]
pub struct SchedArgs {
    pub workload: Workload,
    pub nodes: u64,
    pub pods: u64,
    pub init_pods: u64,
    pub concurrency: usize,
    pub zones: u64,
    pub groups: u64,
    /// Churn period of Unschedulable, ms (0: no churn).
    pub churn_ms: u64,
    pub plain_nodes: bool,
    pub separate_scheduler: bool,
    /// RKUBE_LOG of the separate scheduler.
    pub scheduler_log: String,
}

/// Either kind of process the scheduler runs in.
struct Procs {
    server: RkubeServer,
    sched: Option<SchedulerProcess>,
}

impl Procs {
    fn check(&mut self) -> anyhow::Result<()> {
        self.server.check_alive()?;
        if let Some(s) = &mut self.sched {
            s.check_alive()?;
        }
        Ok(())
    }

    fn meter(&self) -> CpuMeter {
        let mut p = vec![("server", stat_path(self.server.pid()))];
        if let Some(s) = &self.sched {
            p.push(("scheduler", stat_path(s.pid())));
        }
        p.push(("bench", "/proc/self/stat".to_string()));
        CpuMeter::start(&p)
    }

    /// The scheduler's metrics: its own endpoint, or the server's
    /// `/metrics` when it runs in the server.
    async fn sched_metrics(&self, client: &kube::Client) -> Metrics {
        match &self.sched {
            Some(s) => s.metrics().await,
            None => match crate::list_pods::get(client, "/metrics").await {
                Ok(text) => Metrics::parse(&text),
                Err(e) => {
                    eprintln!("rkube-bench: reading the server's metrics: {e:#}");
                    Metrics::default()
                }
            },
        }
    }
}

/// Polls every 100 ms until `done`, printing `progress` every 5 s; fails
/// when `stalled` says nothing moved for `STALL` or after `PHASE_TIMEOUT`.
async fn wait_for<T>(
    what: &str,
    procs: &mut Procs,
    shared: &SharedRef<T>,
    done: impl Fn(&T) -> bool,
    progress: impl Fn(&T) -> (String, Instant),
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut printed = Instant::now();
    loop {
        procs.check()?;
        {
            let s = shared.lock().expect("lock");
            if done(&s.t) {
                return Ok(());
            }
            let (line, last_progress) = progress(&s.t);
            if printed.elapsed() >= Duration::from_secs(5) {
                printed = Instant::now();
                eprintln!(
                    "rkube-bench: {:.0} s waiting for {what}: {line}",
                    t0.elapsed().as_secs_f64()
                );
            }
            if last_progress.elapsed() > STALL || t0.elapsed() > PHASE_TIMEOUT {
                bail!("gave up waiting for {what}: {line}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Non-Lease requests the server has served.
fn non_lease_requests(r: &Requests) -> f64 {
    r.counts
        .iter()
        .filter(|(k, _)| k.1 != "leases")
        .map(|(_, v)| v)
        .sum()
}

/// Waits until the server serves fewer than `SETTLED_RPS` non-Lease
/// requests/s over 2 s (scheduler events, status writes of the init pods).
async fn settle(client: &kube::Client, procs: &mut Procs) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut prev = non_lease_requests(&Requests::scrape(client).await);
    while t0.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_secs(2)).await;
        procs.check()?;
        let now = non_lease_requests(&Requests::scrape(client).await);
        // The scrape itself is one request.
        if (now - prev - 1.0) / 2.0 < SETTLED_RPS {
            break;
        }
        prev = now;
    }
    Ok(t0.elapsed())
}

/// POSTs `body` to `path`, for small one-off objects.
async fn post(client: &kube::Client, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?)?;
    client
        .request_text(req)
        .await
        .with_context(|| format!("POST {path}"))?;
    Ok(())
}

async fn delete(client: &kube::Client, path: &str) -> anyhow::Result<()> {
    let req = http::Request::delete(path).body(Vec::new())?;
    client
        .request_text(req)
        .await
        .with_context(|| format!("DELETE {path}"))?;
    Ok(())
}

/// Creates PriorityClasses `low` and `high` and checks, with a probe pod,
/// that the server resolves `priorityClassName`; false if it does not (the
/// pods then set `spec.priority` directly).
async fn priority_classes(client: &kube::Client) -> anyhow::Result<bool> {
    let path = "/apis/scheduling.k8s.io/v1/priorityclasses";
    post(client, path, &wl::priority_class("low", wl::LOW_PRIORITY)).await?;
    post(client, path, &wl::priority_class("high", wl::HIGH_PRIORITY)).await?;
    let mut probe = wl::pod("probe", PodKind::High, 0, 1, false);
    probe["spec"]["schedulerName"] = serde_json::json!("none");
    let req = http::Request::post("/api/v1/namespaces/default/pods")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&probe)?)?;
    let created: serde_json::Value = serde_json::from_str(&client.request_text(req).await?)?;
    delete(client, "/api/v1/namespaces/default/pods/probe").await?;
    Ok(
        created.pointer("/spec/priority").and_then(|p| p.as_i64())
            == Some(wl::HIGH_PRIORITY.into()),
    )
}

/// Pod bodies `{prefix}{n}` of `kind`.
fn pod_bodies(prefix: &'static str, kind: PodKind, groups: u64, direct: bool) -> BodyFn {
    Arc::new(move |n| {
        let p = wl::pod(&format!("{prefix}{n}"), kind, n, groups, direct);
        serde_json::to_vec(&p).expect("json")
    })
}

/// Re-creates a node `churn-k` and an unschedulable pod `c-k` every
/// `period`, deleting the previous pair (upstream's churn op, recreate
/// mode). Returns (operations, errors) counters.
fn start_churn(
    client: kube::Client,
    period: Duration,
    zones: u64,
    simulated: bool,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (ops, errs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, e) = (ops.clone(), errs.clone());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        for k in 0u64.. {
            tick.tick().await;
            let name = format!("churn-{k}");
            let mut steps = vec![
                post(
                    &client,
                    "/api/v1/nodes",
                    &wl::node(&name, k, zones, simulated),
                )
                .await,
                post(
                    &client,
                    "/api/v1/namespaces/default/pods",
                    &wl::pod(&format!("c-{k}"), PodKind::LargeCpu, k, 1, false),
                )
                .await,
            ];
            if k > 0 {
                steps.push(delete(&client, &format!("/api/v1/nodes/churn-{}", k - 1)).await);
                let pod = format!("/api/v1/namespaces/default/pods/c-{}", k - 1);
                steps.push(delete(&client, &pod).await);
            }
            for s in steps {
                o.fetch_add(1, Ordering::Relaxed);
                if let Err(err) = s {
                    if e.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("rkube-bench: churn: {err:#}");
                    }
                }
            }
        }
    });
    (task, ops, errs)
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &SchedArgs) -> anyhow::Result<Row> {
    let w = a.workload;
    let simulated = !a.plain_nodes;
    let extra = if a.separate_scheduler {
        vec!["--disable-scheduler".to_string()]
    } else {
        Vec::new()
    };
    let server = RkubeServer::start(&env.server(extra)).await?;
    let client = server.client_of(env.http.unwrap_or(1)).await?;
    let sched = if a.separate_scheduler {
        Some(SchedulerProcess::start(
            &env.rkube_bin,
            &server.kubeconfig,
            &a.scheduler_log,
        )?)
    } else {
        None
    };
    let mut procs = Procs { server, sched };
    let mut notes: Vec<String> = Vec::new();
    let kinds = [w.init_kind(), w.measured_kind()];
    let mut direct_priority = false;
    if kinds.contains(&PodKind::Low) || kinds.contains(&PodKind::High) {
        direct_priority = !priority_classes(&client).await?;
        if direct_priority {
            notes.push(
                "the server did not resolve priorityClassName; pods set spec.priority".into(),
            );
        }
    }

    // 1. Watches.
    let nodes = Arc::new(Mutex::new(Shared {
        t: Nodes::new(a.nodes as usize, "node-"),
        stats: WatchStats::default(),
    }));
    let pods = Arc::new(Mutex::new(Shared {
        t: Pods::new(
            a.init_pods as usize,
            a.pods as usize,
            "node-",
            a.nodes as usize,
        ),
        stats: WatchStats::default(),
    }));
    let node_watch = start_reflector(&client, "/api/v1/nodes", &nodes).await?;
    let pod_watch = start_reflector(&client, "/api/v1/namespaces/default/pods", &pods).await?;

    // 2. Nodes.
    eprintln!("rkube-bench: creating {} nodes", a.nodes);
    let t_nodes = Instant::now();
    let zones = a.zones;
    let made = create_loop(
        &client,
        CreateLoad {
            path: "/api/v1/nodes".into(),
            concurrency: a.concurrency,
            max_count: a.nodes,
            max_time: PHASE_TIMEOUT,
            body: Arc::new(move |n| {
                let v = wl::node(&format!("node-{n}"), n, zones, simulated);
                serde_json::to_vec(&v).expect("json")
            }),
        },
    )
    .await;
    if made.ok != a.nodes {
        bail!(
            "created {} of {} nodes: {}",
            made.ok,
            a.nodes,
            made.describe_errors()
        );
    }
    let n = a.nodes as usize;
    wait_for(
        "nodes Ready",
        &mut procs,
        &nodes,
        |t| t.ready_count == n,
        |t| (format!("{} of {n} Ready", t.ready_count), t.last_progress),
    )
    .await?;
    let nodes_ready = t_nodes.elapsed();
    // The scheduler's node watch runs behind ours by a little.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. Init pods.
    let init = a.init_pods as usize;
    let never_fit = w.init_kind() == PodKind::LargeCpu;
    let t_init = Instant::now();
    if init > 0 {
        eprintln!("rkube-bench: creating {init} init pods");
        let made = create_loop(
            &client,
            CreateLoad {
                path: "/api/v1/namespaces/default/pods".into(),
                concurrency: a.concurrency,
                max_count: a.init_pods,
                max_time: PHASE_TIMEOUT,
                body: pod_bodies("i-", w.init_kind(), a.groups, direct_priority),
            },
        )
        .await;
        if made.ok != a.init_pods {
            bail!(
                "created {} of {init} init pods: {}",
                made.ok,
                made.describe_errors()
            );
        }
        let want_running = simulated && !never_fit;
        let done = move |t: &Pods| {
            if never_fit {
                t.init.reported == init
            } else {
                t.init.bound == init && (!want_running || t.init.running == init)
            }
        };
        let progress = |t: &Pods| {
            let g = &t.init;
            let line = format!(
                "init pods: {} bound, {} Running, {} reported unschedulable",
                g.bound, g.running, g.reported
            );
            (line, t.last_progress)
        };
        wait_for("the init pods", &mut procs, &pods, done, progress).await?;
    }
    let init_time = t_init.elapsed();
    eprintln!("rkube-bench: waiting for the server to settle");
    let settled = settle(&client, &mut procs).await?;

    // 4. Measured pods.
    let churn = (w == Workload::Unschedulable && a.churn_ms > 0).then(|| {
        start_churn(
            client.clone(),
            Duration::from_millis(a.churn_ms),
            zones,
            simulated,
        )
    });
    eprintln!(
        "rkube-bench: {}: creating {} pods ({} in flight) and waiting until all are bound",
        w.name(),
        a.pods,
        a.concurrency
    );
    let requests0 = Requests::scrape(&client).await;
    let sm0 = procs.sched_metrics(&client).await;
    let victims0 = pods.lock().expect("lock").t.init.deleted;
    let meter = procs.meter();
    let t0 = Instant::now();
    pods.lock().expect("lock").t.t0 = Some(t0);
    let creator = {
        let client = client.clone();
        let body = pod_bodies("m-", w.measured_kind(), a.groups, direct_priority);
        let load = CreateLoad {
            path: "/api/v1/namespaces/default/pods".into(),
            concurrency: a.concurrency,
            max_count: a.pods,
            max_time: PHASE_TIMEOUT,
            body,
        };
        tokio::spawn(async move { create_loop(&client, load).await })
    };
    let want = a.pods as usize;
    let waited = wait_for(
        "the measured pods",
        &mut procs,
        &pods,
        |t| t.measured.bound == want,
        |t| {
            let g = &t.measured;
            let line = format!(
                "{} seen, {} bound, {} init pods deleted",
                g.seen, g.bound, t.init.deleted
            );
            (line, t.last_progress)
        },
    )
    .await;
    let wall = t0.elapsed();
    let cpu = meter.report();
    let created = creator.await.context("the create task")?;
    let requests = Requests::scrape(&client)
        .await
        .since(&requests0, wall.as_secs_f64(), 8);
    let sched_line = procs
        .sched_metrics(&client)
        .await
        .since(&sm0, wall.as_secs_f64());
    let churn_line = churn.map(|(task, ops, errs)| {
        task.abort();
        format!(
            "churn every {} ms: {} node/pod creates and deletes, {} errors",
            a.churn_ms,
            ops.load(Ordering::Relaxed),
            errs.load(Ordering::Relaxed)
        )
    });
    if let Err(e) = &waited {
        eprintln!("rkube-bench: {e:#}");
    }
    node_watch.abort();
    pod_watch.abort();
    procs.check()?;

    // 5. Results and checks.
    let s = pods.lock().expect("lock");
    let m = &s.t.measured;
    let end = m
        .last_bound_at
        .map_or(wall, |t| t.saturating_duration_since(t0));
    let rate = m.bound as f64 / end.as_secs_f64().max(1e-9);
    let victims = s.t.init.deleted - victims0;
    let mut checks = Vec::new();
    let mut ok = waited.is_ok() && created.ok == a.pods && m.bound == want;
    let mut check = |name: &str, bad: u64| {
        ok &= bad == 0;
        checks.push(format!("{name} {bad}"));
    };
    check(
        "pods re-bound to another node",
        m.rebound + s.t.init.rebound,
    );
    check("watch errors", s.stats.errors);
    match w {
        Workload::TopologySpreading => {
            let (zone, host) = skew_violations(m, n, zones, 1, 5);
            check("zone skew > 1", zone);
            check("host skew > 5", host);
        }
        Workload::SchedulingPodAntiAffinity => {
            check(
                "anti-affinity violations",
                s.t.per_node_violations(a.groups, 1),
            );
        }
        Workload::PreemptionBasic => {
            check("nodes over 4 pods of 900m", s.t.per_node_violations(1, 4));
            check(
                "pods without priority",
                s.t.init.no_priority + m.no_priority,
            );
        }
        Workload::Unschedulable => check("never-fitting pods bound", s.t.init.bound as u64),
        Workload::SchedulingBasic => {}
    }
    let spec = w.spec();
    let mut result = format!(
        "**{} pods/s**: {} of {} pods bound {} after the first create ({}); creates {} in \
         {} ({}/s, p99 {}, {}); ",
        thousands(rate.round() as u64),
        thousands(m.bound as u64),
        thousands(a.pods),
        secs(end),
        m.describe_rate(t0),
        thousands(created.ok),
        secs(created.elapsed),
        thousands(created.rate().round() as u64),
        crate::stats::ms(created.latency.p99),
        created.describe_errors(),
    );
    if w == Workload::PreemptionBasic {
        result.push_str(&format!(
            "{} low-priority pods preempted ({:.0}/s); ",
            thousands(victims),
            victims as f64 / end.as_secs_f64().max(1e-9)
        ));
    }
    result.push_str(&format!(
        "{}; {}; server {}",
        m.describe_lag(),
        cpu,
        requests
    ));
    for l in std::iter::once(&sched_line).chain(churn_line.iter()) {
        result.push_str(&format!("; {l}"));
    }
    result.push_str(&format!(
        "; setup: {} nodes Ready {}, init pods {}, settled {}; checks: {}; {}",
        thousands(a.nodes),
        secs(nodes_ready),
        secs(init_time),
        secs(settled),
        checks.join(", "),
        s.stats.describe("pod")
    ));
    if let Err(e) = &waited {
        result.push_str(&format!("; {}", one_line(&format!("{e:#}"), 300)));
    }
    for note in &notes {
        result.push_str(&format!("; {note}"));
    }
    let verdict = if !ok {
        Verdict::Failed
    } else {
        Verdict::from_bool(rate >= spec.target)
    };
    Ok(Row {
        scenario: format!("scheduler {}", w.name()),
        setup: format!(
            "{} nodes ({}), {} init pods, {} measured pods ({} creates in flight); {}; \
             scheduler {}; {}",
            thousands(a.nodes),
            if simulated {
                "simulated by the server"
            } else {
                "plain, nothing runs their pods"
            },
            thousands(a.init_pods),
            thousands(a.pods),
            a.concurrency,
            w.describe(a.groups, zones),
            if a.separate_scheduler {
                "as its own process"
            } else {
                "in the server"
            },
            crate::http_name(env.http.unwrap_or(1)),
        ),
        result,
        target: format!(
            "≥ {} pods/s{}",
            thousands(spec.target as u64),
            spec.upstream_floor
                .map_or(String::new(), |f| format!(" (upstream floor {f})"))
        ),
        verdict,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

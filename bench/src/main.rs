//! `rkube-bench`: benchmark harness for rkube. Each subcommand starts the
//! real `rkube server` (release build, temporary data dir, free loopback
//! port; and its own etcd where needed), drives it over HTTPS with the admin
//! client certificate through one shared `kube::Client`, kills everything at
//! the end and prints one markdown table row (stdout; progress on stderr).
//!
//! Every load loop is bounded in count and time and targets 127.0.0.1 only.

mod agent_proc;
mod controllers;
mod etcd_ratio;
mod idle;
mod list_pods;
mod load;
mod pod_startup;
mod procs;
mod sched_algo;
mod sched_proc;
mod sched_track;
mod sched_workloads;
mod scheduler;
mod sim_nodes;
mod stats;
mod watchers;
mod writes;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use procs::ServerOpts;
use sched_workloads::Workload;

#[derive(Parser)]
#[command(name = "rkube-bench", about = "Benchmarks the rkube API server")]
struct Cli {
    /// The rkube binary (default: `rkube` next to this binary, i.e. target/release/rkube).
    #[arg(long, env = "RKUBE_BIN", global = true)]
    rkube_bin: Option<PathBuf>,
    /// The etcd binary (default: `etcd` on PATH).
    #[arg(long, env = "RKUBE_ETCD_BIN", global = true)]
    etcd_bin: Option<PathBuf>,
    /// RKUBE_LOG for the server (request logs are at info level).
    #[arg(long, default_value = "warn", global = true)]
    server_log: String,
    /// Before starting, wait up to this long for the rest of the machine to
    /// be quiet (under 0.25 busy cores), so that builds do not skew results.
    #[arg(long, default_value_t = 0, global = true)]
    quiet_wait_seconds: u64,
    /// HTTP version of the clients: 1 (default: the kube crate's own stack,
    /// a pool of HTTP/1.1 keep-alive connections, so one connection per
    /// concurrent request or watch) or 2 (one multiplexed connection per
    /// client; `watchers` spreads its streams over `--watch-clients`).
    #[arg(long, global = true, value_parser = clap::value_parser!(u8).range(1..=2))]
    http: Option<u8>,
    /// Print only the result row, not the table header.
    #[arg(long, global = true)]
    no_header: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Storage backend of the server under test.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum StoreKind {
    Embedded,
    Etcd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the markdown table header.
    Header,
    /// Concurrent clients creating 1 KiB ConfigMaps.
    Writes {
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        clients: u64,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        #[arg(long, value_enum, default_value = "embedded")]
        store: StoreKind,
        /// Use this etcd (loopback only) instead of starting one (with --store etcd).
        #[arg(long, value_delimiter = ',')]
        etcd_endpoints: Vec<String>,
    },
    /// rkube-on-etcd writes/s versus raw etcd puts/s on the same etcd.
    EtcdRatio {
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        clients: u64,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Many concurrent watches while a paced writer creates ConfigMaps.
    Watchers {
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        watchers: u64,
        /// Creates per second.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        rate: u64,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// kube::Clients the watches are spread over.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
        watch_clients: u64,
    },
    /// Create many Pods, then time paginated and unpaginated lists.
    ListPods {
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        pods: u64,
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        page: u64,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
        #[arg(long, value_enum, default_value = "embedded")]
        store: StoreKind,
    },
    /// N simulated nodes in one `rkube agent --simulate N` process: time
    /// until all are Ready, steady-state CPU/memory of the agent and the
    /// server, then P pods bound round-robin to the nodes until all run.
    SimNodes {
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        nodes: u64,
        /// Pods created (0: nodes only), named sp-i, bound to node i % nodes.
        #[arg(long, default_value_t = 150_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        pods: u64,
        /// Length of each steady-state CPU window (without, then with pods).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        window_seconds: u64,
        /// Concurrent pod creates.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
        /// `--node-name-prefix` of the agent.
        #[arg(long, default_value = "sim-node-")]
        node_name_prefix: String,
        /// RKUBE_LOG for the agent.
        #[arg(long, default_value = "warn")]
        agent_log: String,
    },
    /// Pod startup latency on one real node (runc, CNI, image present):
    /// binding → Running for P pods, bare `runc run -d` of the same bundle,
    /// and the agent's RSS/CPU with the pods running.
    PodStartup {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=250))]
        pods: u64,
        /// Milliseconds between two pod creates (0: all at once).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        interval_ms: u64,
        /// CPU window with every pod running.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        window_seconds: u64,
        /// The OCI runtime of the agent and of the bare runs.
        #[arg(long, default_value = "/usr/sbin/runc")]
        runtime_binary: PathBuf,
        /// RKUBE_LOG for the agent.
        #[arg(long, default_value = "warn")]
        agent_log: String,
    },
    /// scheduler_perf-style throughput through the API server: N nodes,
    /// init pods, then P measured pods created with `--concurrency` in
    /// flight, timed until the pod watch has seen every one bound.
    Scheduler {
        #[arg(long, value_enum)]
        workload: Workload,
        /// Nodes (default: the workload's; 5,000, or 500 for PreemptionBasic).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        nodes: Option<u64>,
        /// Measured pods (default: the workload's).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        pods: Option<u64>,
        /// Pods created and scheduled (or, for Unschedulable, left pending)
        /// before the measurement (default: the workload's).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        init_pods: Option<u64>,
        /// Concurrent creates.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
        /// Zones the nodes are spread over (topology.kubernetes.io/zone).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        zones: u64,
        /// Anti-affinity label groups (SchedulingPodAntiAffinity).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        groups: u64,
        /// Unschedulable: re-create a node and a never-fitting pod this
        /// often, in ms (0: no churn).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
        churn_ms: u64,
        /// Create the nodes Ready without the simulator annotation: nothing
        /// runs their pods and no Leases are renewed (as upstream's
        /// scheduler_perf).
        #[arg(long)]
        plain_nodes: bool,
        /// Run the scheduler as its own `rkube scheduler` process (server
        /// with --disable-scheduler), to measure its CPU and read its metrics.
        #[arg(long)]
        separate_scheduler: bool,
        /// RKUBE_LOG for the separate scheduler.
        #[arg(long, default_value = "warn")]
        scheduler_log: String,
    },
    /// The scheduling algorithm alone, in process (no API server): a cache
    /// of N NodeInfos, Algorithm::schedule + cache.assume per pod.
    SchedulerAlgorithm {
        #[arg(long, value_enum)]
        workload: Workload,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        nodes: Option<u64>,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        pods: Option<u64>,
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        init_pods: Option<u64>,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        zones: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        groups: u64,
    },
    /// Issue 5's controller benchmarks on N in-process simulated nodes.
    Controllers {
        #[arg(long, value_enum)]
        scenario: controllers::Scenario,
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        nodes: u64,
        /// Deployment replicas (deployment, rolling-update, node-failure).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        replicas: u64,
        /// node-failure: how many nodes stop their heartbeats at once.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        failed_nodes: u64,
        /// node-failure: the pods' tolerationSeconds for unreachable/not-ready.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3600))]
        toleration_seconds: u64,
        /// node-failure: the server's --node-monitor-grace-period, seconds.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=3600))]
        grace_seconds: u64,
        /// node-failure: the server's --node-eviction-rate, nodes/s
        /// (upstream's default 0.1 would taint 100 nodes over 1,000 s).
        #[arg(long, default_value_t = 100.0)]
        node_eviction_rate: f64,
        /// endpoints: Services.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        services: u64,
        /// endpoints: pods per Service.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        endpoints: u64,
    },
    /// Resident memory of an idle server.
    IdleRss {
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
        wait_seconds: u64,
    },
}

/// Where the binaries under test are.
pub struct Env {
    /// `--http`, when given.
    pub http: Option<u8>,
    rkube_bin: PathBuf,
    etcd_bin: Option<PathBuf>,
    server_log: String,
}

impl Env {
    /// Options to start rkube with `extra` server arguments.
    pub fn server(&self, extra: Vec<String>) -> ServerOpts {
        ServerOpts {
            bin: self.rkube_bin.clone(),
            log: self.server_log.clone(),
            extra,
        }
    }

    /// The etcd binary.
    pub fn etcd_bin(&self) -> anyhow::Result<PathBuf> {
        procs::find_etcd_binary(self.etcd_bin.as_deref())
    }
}

/// Whether a scenario met its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target; numbers recorded only.
    NoTarget,
    /// Errors, crashes or missing events.
    Failed,
}

impl Verdict {
    /// Met when `ok`, else missed.
    pub fn from_bool(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NoTarget => "—",
            Verdict::Failed => "**FAILED**",
        }
    }
}

/// One markdown table row.
pub struct Row {
    pub scenario: String,
    pub setup: String,
    pub result: String,
    pub target: String,
    pub verdict: Verdict,
}

const HEADER: &str = "| scenario | setup | result | target | verdict |\n|---|---|---|---|---|";

impl Row {
    fn render(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        format!(
            "| {} | {} | {} | {} | {} |",
            cell(&self.scenario),
            cell(&self.setup),
            cell(&self.result),
            cell(&self.target),
            self.verdict.as_str()
        )
    }
}

fn default_rkube_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating rkube-bench")?;
    let bin = exe.with_file_name("rkube");
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p rkube` or pass --rkube-bin",
            bin.display()
        );
    }
    Ok(bin)
}

async fn run(cmd: Cmd, env: &Env) -> anyhow::Result<Row> {
    match cmd {
        Cmd::Header => unreachable!("handled before"),
        Cmd::Writes {
            clients,
            seconds,
            store,
            etcd_endpoints,
        } => {
            for ep in &etcd_endpoints {
                if !(ep.contains("://127.0.0.1:")
                    || ep.contains("://localhost:")
                    || ep.contains("://[::1]:"))
                {
                    bail!("--etcd-endpoints must be loopback URLs, got {ep}");
                }
            }
            let a = writes::WritesArgs {
                clients: usize::try_from(clients)?,
                seconds,
                store,
                etcd_endpoints,
            };
            writes::run(env, &a).await
        }
        Cmd::EtcdRatio { clients, seconds } => {
            let a = etcd_ratio::RatioArgs {
                clients: usize::try_from(clients)?,
                seconds,
            };
            etcd_ratio::run(env, &a).await
        }
        Cmd::Watchers {
            watchers,
            rate,
            seconds,
            watch_clients,
        } => {
            if rate * seconds > 1_000_000 {
                bail!("--rate × --seconds must be at most 1,000,000");
            }
            let a = watchers::WatchArgs {
                watchers: usize::try_from(watchers)?,
                rate,
                seconds,
                watch_clients: usize::try_from(watch_clients)?,
            };
            watchers::run(env, &a).await
        }
        Cmd::ListPods {
            pods,
            page,
            concurrency,
            store,
        } => {
            let a = list_pods::PodsArgs {
                pods,
                page,
                concurrency: usize::try_from(concurrency)?,
                store,
            };
            list_pods::run(env, &a).await
        }
        Cmd::SimNodes {
            nodes,
            pods,
            window_seconds,
            concurrency,
            node_name_prefix,
            agent_log,
        } => {
            let a = sim_nodes::SimArgs {
                nodes,
                pods,
                window_seconds,
                concurrency: usize::try_from(concurrency)?,
                prefix: node_name_prefix,
                agent_log,
            };
            sim_nodes::run(env, &a).await
        }
        Cmd::PodStartup {
            pods,
            interval_ms,
            window_seconds,
            runtime_binary,
            agent_log,
        } => {
            let a = pod_startup::StartupArgs {
                pods,
                interval: std::time::Duration::from_millis(interval_ms),
                window: std::time::Duration::from_secs(window_seconds),
                runtime_binary,
                agent_log,
            };
            pod_startup::run(env, &a).await
        }
        Cmd::Scheduler {
            workload,
            nodes,
            pods,
            init_pods,
            concurrency,
            zones,
            groups,
            churn_ms,
            plain_nodes,
            separate_scheduler,
            scheduler_log,
        } => {
            let spec = workload.spec();
            let a = scheduler::SchedArgs {
                workload,
                nodes: nodes.unwrap_or(spec.nodes),
                pods: pods.unwrap_or(spec.pods),
                init_pods: init_pods.unwrap_or(spec.init_pods),
                concurrency: usize::try_from(concurrency)?,
                zones,
                groups,
                churn_ms,
                plain_nodes,
                separate_scheduler,
                scheduler_log,
            };
            scheduler::run(env, &a).await
        }
        Cmd::SchedulerAlgorithm {
            workload,
            nodes,
            pods,
            init_pods,
            zones,
            groups,
        } => {
            let spec = workload.spec();
            let a = sched_algo::AlgoArgs {
                workload,
                nodes: nodes.unwrap_or(spec.nodes),
                pods: pods.unwrap_or(spec.pods),
                init_pods: init_pods.unwrap_or(spec.init_pods),
                zones,
                groups,
            };
            // CPU-bound and synchronous: off the runtime's worker threads.
            tokio::task::spawn_blocking(move || sched_algo::run(&a)).await?
        }
        Cmd::Controllers {
            scenario,
            nodes,
            replicas,
            failed_nodes,
            toleration_seconds,
            grace_seconds,
            node_eviction_rate,
            services,
            endpoints,
        } => {
            let a = controllers::CtrlArgs {
                scenario,
                nodes,
                replicas,
                failed_nodes,
                toleration_seconds,
                grace_seconds,
                eviction_rate: node_eviction_rate,
                services,
                endpoints,
            };
            controllers::run(env, &a).await
        }
        Cmd::IdleRss { wait_seconds } => idle::run(env, wait_seconds).await,
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Header) {
        println!("{HEADER}");
        return Ok(());
    }
    let env = Env {
        http: cli.http,
        rkube_bin: match cli.rkube_bin {
            Some(b) => b,
            None => default_rkube_bin()?,
        },
        etcd_bin: cli.etcd_bin,
        server_log: cli.server_log,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let name = scenario_name(&cli.cmd);
    let quiet_wait = std::time::Duration::from_secs(cli.quiet_wait_seconds);
    let outcome = rt.block_on(async {
        if !quiet_wait.is_zero() {
            procs::wait_quiet(quiet_wait, 0.25).await;
        }
        tokio::select! {
            r = run(cli.cmd, &env) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Watch streams and pooled connections may still hold tasks; do not wait.
    rt.shutdown_background();
    if !cli.no_header {
        println!("{HEADER}");
    }
    match outcome {
        Ok(row) => {
            println!("{}", row.render());
            Ok(())
        }
        Err(e) => {
            let row = Row {
                scenario: name.into(),
                setup: String::new(),
                result: format!("error: {}", load::one_line(&format!("{e:#}"), 400)),
                target: String::new(),
                verdict: Verdict::Failed,
            };
            println!("{}", row.render());
            Err(e)
        }
    }
}

/// "HTTP/1.1" or "HTTP/2".
pub fn http_name(version: u8) -> &'static str {
    if version == 2 {
        "HTTP/2"
    } else {
        "HTTP/1.1"
    }
}

fn scenario_name(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Header => "header",
        Cmd::Writes { .. } => "writes",
        Cmd::EtcdRatio { .. } => "etcd-ratio",
        Cmd::Watchers { .. } => "watchers",
        Cmd::ListPods { .. } => "list-pods",
        Cmd::SimNodes { .. } => "sim-nodes",
        Cmd::PodStartup { .. } => "pod-startup",
        Cmd::Scheduler { .. } => "scheduler",
        Cmd::SchedulerAlgorithm { .. } => "scheduler-algorithm",
        Cmd::Controllers { .. } => "controllers",
        Cmd::IdleRss { .. } => "idle-rss",
    }
}

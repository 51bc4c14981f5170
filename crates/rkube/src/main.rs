//! The `rkube` binary: `rkube server` runs the control plane (API server on
//! embedded or etcd storage, node IPAM, the node simulator); `rkube agent`
//! runs the node agent for one node, or many simulated nodes; later
//! subcommands add the scheduler and controllers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rkube_store::Store;

mod agent_cmd;
mod controller_manager_cmd;
mod image_cmd;
mod metrics_http;
mod monitor_cmd;
mod scheduler_cmd;

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    args_override_self = true,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StoreKind {
    Embedded,
    Etcd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the control plane.
    Server {
        /// Where certificates, the kubeconfig and the embedded database live.
        #[arg(long, default_value = "/var/lib/rkube")]
        data_dir: PathBuf,
        /// HTTPS listen address.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Storage backend.
        #[arg(long, value_enum, default_value = "embedded")]
        store: StoreKind,
        /// etcd client URLs, comma-separated (with --store etcd).
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
        etcd_endpoints: Vec<String>,
        /// Interval of watch bookmarks, in seconds.
        #[arg(long, default_value_t = 60)]
        bookmark_interval_seconds: u64,
        /// Interval of storage compaction, in seconds.
        #[arg(long, default_value_t = 300)]
        compaction_interval_seconds: u64,
        #[command(flatten)]
        sim: ServerSimArgs,
    },
    /// Run a node agent: one node, or with --simulate N simulated nodes.
    Agent(AgentArgs),
    /// Run the scheduler alone (rkube server runs one in process), or
    /// explain a pod's placement.
    Scheduler(scheduler_cmd::SchedulerArgs),
    /// Run the controllers alone (rkube server runs them in process).
    ControllerManager(controller_manager_cmd::ControllerManagerArgs),
    /// Manage the node's image store.
    Image(image_cmd::ImageArgs),
}

/// What runs a single node's containers.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum ContainerRuntimeKind {
    /// Real containers: runc (or --runtime-binary), CNI, images.
    Runc,
    /// Simulated containers (no processes).
    Simulated,
}

/// Flags of the components `rkube server` runs in process.
#[derive(clap::Args, Clone)]
struct ServerSimArgs {
    /// Run this many simulated nodes in the server (named sim-node-0, ...).
    /// Nodes created with the annotation rkube.io/simulated="true" are
    /// simulated too, whatever this says.
    #[arg(long, default_value_t = 0)]
    simulated_nodes: usize,
    /// Names of the simulated nodes: PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "sim-node-")]
    simulated_node_prefix: String,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
    #[command(flatten)]
    controllers: controller_manager_cmd::ControllerFlags,
    /// Do not run the controllers in process (run `rkube controller-manager`
    /// instead).
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler in process (run `rkube scheduler` instead).
    #[arg(long)]
    disable_scheduler: bool,
    /// KubeSchedulerConfiguration file for the in-process scheduler.
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// Do not run the node agent (real containers) in process.
    #[arg(long)]
    no_agent: bool,
    /// Name of the in-process agent's node (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Pod CIDR of the in-process agent's node (default: allocated by the
    /// node IPAM controller).
    #[arg(long)]
    pod_cidr: Option<String>,
    #[command(flatten)]
    agent: agent_cmd::RealAgentArgs,
}

/// Runs the in-process components once the API server is ready.
async fn run_components(
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    sim: ServerSimArgs,
    scheduler_metrics: Arc<rkube_scheduler::metrics::SchedulerMetrics>,
    controller_metrics: Arc<rkube_controllers::ControllerMetrics>,
) -> anyhow::Result<()> {
    let client = rkube_node::client_from_kubeconfig(&kubeconfig, None).await?;
    let sim_cfg = rkube_node::SimConfig {
        count: sim.simulated_nodes,
        prefix: sim.simulated_node_prefix.clone(),
        template: rkube_node::NodeConfig::new(""),
        adopt_annotated: true,
    };
    let mut set = tokio::task::JoinSet::new();
    if !sim.disable_controller_manager {
        let config = sim.controllers.config()?;
        let cm_client = client.clone();
        set.spawn(async move {
            controller_manager_cmd::run(cm_client, config, controller_metrics, true)
                .await
                .context("controller manager")
        });
    }
    if !sim.disable_scheduler {
        let sched_config = scheduler_cmd::load_config(sim.scheduler_config.as_deref())?;
        let sched_client = client.clone();
        let sched_metrics = scheduler_metrics.clone();
        set.spawn(async move {
            scheduler_cmd::run(sched_client, sched_config, sched_metrics)
                .await
                .context("scheduler")
        });
    }
    let cfg = sim.heartbeat.engine_config();
    if !sim.no_agent {
        let name = sim.node_name.clone().unwrap_or_else(host_name);
        let mut node = rkube_node::NodeConfig::new(name);
        node.pod_cidr = sim.pod_cidr.clone();
        (node.cpu, node.memory) = agent_cmd::host_capacity();
        let ca = std::fs::read_to_string(data_dir.join("pki").join("ca.crt"))
            .context("reading the cluster CA")?;
        let root = sim
            .agent
            .agent_root_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("agent"));
        let (agent_client, agent_cfg, args) = (client.clone(), cfg.clone(), sim.agent.clone());
        set.spawn(async move {
            agent_cmd::run(agent_client, node, agent_cfg, args, root, ca, None)
                .await
                .context("node agent")
        });
    }
    set.spawn(async move {
        rkube_node::sim::run(client, sim_cfg, cfg)
            .await
            .context("node simulator")
    });
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// A duration flag: `500ms`, `10s`, `5m`, `1h`.
fn duration_arg(s: &str) -> Result<Duration, String> {
    rkube_node::runtime::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?}, want e.g. 500ms, 10s, 5m"))
}

/// Heartbeat flags shared by `rkube agent` and `rkube server`.
#[derive(clap::Args, Clone)]
struct HeartbeatArgs {
    /// How often a node renews its Lease.
    #[arg(long, value_parser = duration_arg, default_value = "10s")]
    node_lease_renew_interval: Duration,
    /// How often a node re-posts its status when nothing changed.
    #[arg(long, value_parser = duration_arg, default_value = "5m")]
    node_status_report_interval: Duration,
}

impl HeartbeatArgs {
    fn engine_config(&self) -> rkube_node::EngineConfig {
        rkube_node::EngineConfig {
            lease_renew_interval: self.node_lease_renew_interval,
            status_report_interval: self.node_status_report_interval,
            ..Default::default()
        }
    }
}

/// Flags of `rkube agent`.
#[derive(clap::Args)]
struct AgentArgs {
    /// Kubeconfig with the API server and credentials to register with.
    #[arg(long, alias = "server-kubeconfig")]
    kubeconfig: PathBuf,
    /// API server URL, overriding the kubeconfig's.
    #[arg(long)]
    server: Option<String>,
    /// Name of the Node (one node; not with --simulate).
    #[arg(
        long,
        required_unless_present = "simulate",
        conflicts_with = "simulate"
    )]
    node_name: Option<String>,
    /// Run this many simulated nodes in this process.
    #[arg(long)]
    simulate: Option<usize>,
    /// Names of simulated nodes: PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "sim-node-")]
    node_name_prefix: String,
    /// IPv4 pod CIDR of the node (default: the one the control plane's node
    /// IPAM controller sets); not with --simulate.
    #[arg(long, conflicts_with = "simulate")]
    pod_cidr: Option<String>,
    /// Maximum number of pods per node.
    #[arg(long, default_value_t = rkube_node::maxpods::DEFAULT_MAX_PODS,
          conflicts_with = "max_pods_from_interfaces")]
    max_pods: u32,
    /// Derive max pods EKS-style: interfaces * (ips-per-interface - 1).
    #[arg(long, requires = "ips_per_interface")]
    max_pods_from_interfaces: Option<u32>,
    /// IPv4 addresses per network interface (with --max-pods-from-interfaces).
    #[arg(long, requires = "max_pods_from_interfaces")]
    ips_per_interface: Option<u32>,
    /// With --max-pods-from-interfaces: add 2 for host-network pods.
    #[arg(long, requires = "max_pods_from_interfaces")]
    max_pods_count_host_network: bool,
    /// Extra node labels, key=value, comma-separated.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Taints to register with, key=value:Effect, comma-separated.
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// CPU capacity per node (default: the host's CPUs for a real node, 4
    /// for simulated ones).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory capacity per node (default: the host's MemTotal for a real
    /// node, 16Gi for simulated ones).
    #[arg(long)]
    memory: Option<String>,
    /// The node's InternalIP and the pods' hostIP (one node).
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// Directory of static pod manifests, run as mirror pods (one node).
    #[arg(long, conflicts_with = "simulate")]
    pod_manifest_path: Option<PathBuf>,
    /// How often the static pod directory is read again.
    #[arg(long, value_parser = duration_arg, default_value = "20s")]
    file_check_frequency: Duration,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
    /// What runs the node's containers (one node; --simulate always
    /// simulates).
    #[arg(long, value_enum, default_value = "runc")]
    container_runtime: ContainerRuntimeKind,
    #[command(flatten)]
    real: agent_cmd::RealAgentArgs,
}

fn node_template(args: &AgentArgs, name: String) -> anyhow::Result<rkube_node::NodeConfig> {
    let mut config = rkube_node::NodeConfig::new(name);
    config.pod_cidr = args.pod_cidr.clone();
    config.max_pods = match (args.max_pods_from_interfaces, args.ips_per_interface) {
        (Some(interfaces), Some(ips_per_interface)) => rkube_node::MaxPods::Interfaces {
            interfaces,
            ips_per_interface,
            count_host_network: args.max_pods_count_host_network,
        },
        _ => rkube_node::MaxPods::Fixed(args.max_pods),
    }
    .resolve()?;
    let real = args.simulate.is_none() && args.container_runtime == ContainerRuntimeKind::Runc;
    let (host_cpu, host_memory) = if real {
        agent_cmd::host_capacity()
    } else {
        ("4".to_string(), "16Gi".to_string())
    };
    config.cpu = args.cpu.clone().unwrap_or(host_cpu);
    config.memory = args.memory.clone().unwrap_or(host_memory);
    for (flag, q) in [("--cpu", &config.cpu), ("--memory", &config.memory)] {
        rkube_api::quantity::Quantity::parse(q)
            .map_err(|e| anyhow::anyhow!("{flag}: invalid quantity {q:?}: {e}"))?;
    }
    config.host_ip = args.node_ip.clone();
    for l in args.node_labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = rkube_node::parse_label(l)?;
        config.labels.insert(k, v);
    }
    for t in args.register_with_taints.iter().filter(|t| !t.is_empty()) {
        config.taints.push(rkube_node::parse_taint(t)?);
    }
    Ok(config)
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let template = node_template(&args, args.node_name.clone().unwrap_or_default())?;
    let client = rkube_node::client_from_kubeconfig(&args.kubeconfig, args.server.as_deref())
        .await
        .with_context(|| format!("loading {}", args.kubeconfig.display()))?;
    let cfg = args.heartbeat.engine_config();
    let run = async {
        match args.simulate {
            Some(count) => {
                let sim = rkube_node::SimConfig {
                    count,
                    prefix: args.node_name_prefix.clone(),
                    template,
                    adopt_annotated: false,
                };
                rkube_node::sim::run(client, sim, cfg)
                    .await
                    .map_err(anyhow::Error::from)
            }
            None => {
                let static_pods =
                    args.pod_manifest_path
                        .clone()
                        .map(|dir| rkube_node::agent::StaticPods {
                            dir,
                            period: args.file_check_frequency,
                        });
                if args.container_runtime == ContainerRuntimeKind::Runc {
                    let ca = agent_cmd::kubeconfig_ca(&args.kubeconfig)?;
                    let root = args
                        .real
                        .agent_root_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("/var/lib/rkube/agent"));
                    return agent_cmd::run(
                        client,
                        template,
                        cfg,
                        args.real.clone(),
                        root,
                        ca,
                        static_pods,
                    )
                    .await;
                }
                let runtime = std::sync::Arc::new(rkube_node::SimulatedRuntime::new());
                rkube_node::NodeAgent::run_with_runtime(client, template, cfg, runtime, static_pods)
                    .await
                    .map_err(anyhow::Error::from)
            }
        }
    };
    tokio::select! {
        r = run => r?,
        _ = shutdown_signal() => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// This host's name (the default node name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn main() -> anyhow::Result<()> {
    if let Some(code) = monitor_cmd::dispatch() {
        std::process::exit(code);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.cmd, Cmd::Agent(_)) {
        // The agent's blocking work (CNI plugins, image unpacking, stats) is
        // short; a burst of pod starts would otherwise grow hundreds of
        // threads (and malloc arenas) on a node with a few cores.
        rt.max_blocking_threads(16);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Server { data_dir, listen, store, etcd_endpoints, bookmark_interval_seconds, compaction_interval_seconds, sim } => {
                if !sim.disable_scheduler {
                    scheduler_cmd::load_config(sim.scheduler_config.as_deref())?;
                }
                if !sim.disable_controller_manager {
                    sim.controllers.config()?;
                }
                std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
                let store: Arc<dyn Store> = match store {
                    StoreKind::Embedded => Arc::new(
                        rkube_store::embedded::EmbeddedStore::open(&data_dir.join("state.redb"))
                            .context("opening the embedded store")?,
                    ),
                    StoreKind::Etcd => Arc::new(
                        rkube_store::etcd::EtcdStore::connect(&etcd_endpoints).await.context("connecting to etcd")?,
                    ),
                };
                let mut config = rkube_apiserver::Config::new(data_dir.clone(), listen, store);
                let scheduler_metrics = Arc::new(rkube_scheduler::metrics::SchedulerMetrics::new());
                if !sim.disable_scheduler {
                    let m = scheduler_metrics.clone();
                    config.extra_metrics.push(Arc::new(move || m.render()));
                }
                let controller_metrics = Arc::new(rkube_controllers::ControllerMetrics::new());
                if !sim.disable_controller_manager {
                    let m = controller_metrics.clone();
                    config.extra_metrics.push(Arc::new(move || m.render()));
                }
                config.bookmark_interval = Duration::from_secs(bookmark_interval_seconds.max(1));
                config.compaction_interval = Duration::from_secs(compaction_interval_seconds.max(1));
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<PathBuf>();

                let components_dir = data_dir.clone();
                let components = tokio::spawn(async move {
                    let Ok(kubeconfig) = ready_rx.await else { return Ok(()) };
                    run_components(kubeconfig, components_dir, sim, scheduler_metrics, controller_metrics).await
                });
                let server = rkube_apiserver::run(
                    config,
                    move |s| {
                        eprintln!("rkube API server listening on https://{}", s.addr);
                        println!("Cluster is up. Point kubectl at it with:\n  export KUBECONFIG={}\n  kubectl get ns", s.kubeconfig.display());
                        let _ = ready_tx.send(s.kubeconfig.clone());
                    },
                    shutdown_signal(),
                );
                tokio::pin!(server);
                tokio::select! {
                    r = &mut server => r?,
                    r = components => {
                        // A component failed: report it and stop.
                        r.context("components task")??;
                        anyhow::bail!("in-process components stopped");
                    }
                }
                Ok(())
            }
            Cmd::Agent(args) => run_agent(args).await,
            Cmd::Scheduler(args) => scheduler_cmd::main(args).await,
            Cmd::ControllerManager(args) => controller_manager_cmd::main(args).await,
            Cmd::Image(args) => image_cmd::run(args).await,
        }
    })
}

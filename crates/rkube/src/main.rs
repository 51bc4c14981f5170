//! The `rkube` binary: `rkube server` runs the control plane (API server on
//! embedded or etcd storage); `rkube agent` runs the node agent for one
//! simulated node; later subcommands add the scheduler and controllers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rkube_store::Store;

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
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
    },
    /// Run the node agent for one (simulated) node.
    Agent(AgentArgs),
}

/// Flags of `rkube agent`.
#[derive(clap::Args)]
struct AgentArgs {
    /// Kubeconfig of the API server to register with.
    #[arg(long)]
    server_kubeconfig: PathBuf,
    /// Name of the Node.
    #[arg(long)]
    node_name: String,
    /// IPv4 pod CIDR of the node, e.g. 10.244.1.0/24.
    #[arg(long)]
    pod_cidr: String,
    /// Maximum number of pods.
    #[arg(long, default_value_t = rkube_node::maxpods::DEFAULT_MAX_PODS)]
    max_pods: u32,
    /// Extra node labels, key=value, comma-separated.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Taints to register with, key=value:Effect, comma-separated.
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// CPU capacity.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory capacity.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// The node's InternalIP and the pods' hostIP.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let AgentArgs {
        server_kubeconfig,
        node_name,
        pod_cidr,
        max_pods,
        node_labels,
        register_with_taints,
        cpu,
        memory,
        node_ip,
    } = args;
    let mut config = rkube_node::NodeConfig::new(node_name, pod_cidr);
    config.max_pods = max_pods;
    config.cpu = cpu;
    config.memory = memory;
    config.host_ip = node_ip;
    for l in node_labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = rkube_node::agent::parse_label(l)?;
        config.labels.insert(k, v);
    }
    for t in register_with_taints.iter().filter(|t| !t.is_empty()) {
        config.taints.push(rkube_node::agent::parse_taint(t)?);
    }
    let client = rkube_node::NodeAgent::client_from_kubeconfig(&server_kubeconfig)
        .await
        .with_context(|| format!("loading {}", server_kubeconfig.display()))?;
    tokio::select! {
        r = rkube_node::NodeAgent::run(client, config) => r?,
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Server { data_dir, listen, store, etcd_endpoints, bookmark_interval_seconds, compaction_interval_seconds } => {
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
                let mut config = rkube_apiserver::Config::new(data_dir, listen, store);
                config.bookmark_interval = Duration::from_secs(bookmark_interval_seconds.max(1));
                config.compaction_interval = Duration::from_secs(compaction_interval_seconds.max(1));
                rkube_apiserver::run(
                    config,
                    |s| {
                        eprintln!("rkube API server listening on https://{}", s.addr);
                        println!("Cluster is up. Point kubectl at it with:\n  export KUBECONFIG={}\n  kubectl get ns", s.kubeconfig.display());
                    },
                    shutdown_signal(),
                )
                .await?;
                Ok(())
            }
            Cmd::Agent(args) => run_agent(args).await,
        }
    })
}

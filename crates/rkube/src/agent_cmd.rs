//! The real node agent (runc containers, CNI networking, the streaming
//! HTTPS API) as run by `rkube agent` and embedded in `rkube server`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use rkube_node::kubelet::reserved::{self, Capacity, Reserved, Threshold};

/// Flags of the real agent, shared by `rkube agent` and `rkube server`.
#[derive(clap::Args, Clone, Debug)]
pub struct RealAgentArgs {
    /// Where the agent keeps images, pods, logs and container state
    /// (default: /var/lib/rkube/agent; in `rkube server`: DATA_DIR/agent).
    #[arg(long)]
    pub agent_root_dir: Option<PathBuf>,
    /// The OCI runtime binary (runc, crun or youki).
    #[arg(long, default_value = "/usr/sbin/runc")]
    pub runtime_binary: PathBuf,
    /// Bridge of the generated pod network.
    #[arg(long, default_value = "cni0")]
    pub cni_bridge: String,
    /// Use the first CNI conflist in this directory instead of the
    /// generated bridge network.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Port of the agent's HTTPS API (logs, exec, port-forward); 0 picks one.
    #[arg(long, default_value_t = 10250)]
    pub agent_port: u16,
    /// Cluster DNS server addresses for pods' resolv.conf (none: the
    /// node's resolver).
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<String>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resources reserved for the OS, e.g. cpu=100m,memory=256Mi,ephemeral-storage=1Gi
    /// (subtracted from allocatable).
    #[arg(long, value_parser = reserved_arg, default_value = "")]
    pub system_reserved: Reserved,
    /// Resources reserved for Kubernetes system daemons (same syntax).
    #[arg(long, value_parser = reserved_arg, default_value = "")]
    pub kube_reserved: Reserved,
    /// Hard eviction thresholds, signal<quantity or signal<percent%; a given
    /// value replaces the defaults. They set MemoryPressure/DiskPressure and
    /// the memory and ephemeral-storage thresholds come off allocatable.
    #[arg(long, value_parser = thresholds_arg, default_value = reserved::DEFAULT_EVICTION_HARD)]
    pub eviction_hard: Thresholds,
    /// How long a pressure condition stays after its threshold was last met.
    #[arg(long, value_parser = crate::duration_arg, default_value = "5m")]
    pub eviction_pressure_transition_period: Duration,
    /// How often memory and disk are measured (and image gc checked).
    #[arg(long, value_parser = crate::duration_arg, default_value = "10s")]
    pub housekeeping_interval: Duration,
    /// Image gc starts when the image file system is used above this percent.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: u8,
    /// Image gc frees down to this percent.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// Unused images pulled or used more recently than this are never
    /// garbage-collected (upstream's imageMinimumGCAge).
    #[arg(long, value_parser = crate::duration_arg, default_value = "2m")]
    pub minimum_image_ttl_duration: Duration,
    /// Rotate a container's log file at this size (quantity, e.g. 10Mi).
    #[arg(long, value_parser = size_arg, default_value = "10Mi")]
    pub container_log_max_size: u64,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..))]
    pub container_log_max_files: u64,
}

/// Parsed `--eviction-hard` (a newtype, so clap takes it as one value).
#[derive(Clone, Debug)]
pub struct Thresholds(pub Vec<Threshold>);

fn reserved_arg(s: &str) -> Result<Reserved, String> {
    reserved::parse_reserved(s).map_err(|e| e.to_string())
}

fn thresholds_arg(s: &str) -> Result<Thresholds, String> {
    reserved::parse_thresholds(s)
        .map(Thresholds)
        .map_err(|e| e.to_string())
}

fn size_arg(s: &str) -> Result<u64, String> {
    let q = rkube_api::quantity::Quantity::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
    u64::try_from(q.value()).map_err(|_| format!("{s:?}: must not be negative"))
}

/// The host's CPU count and memory (`MemTotal`), as capacity quantities.
pub fn host_capacity() -> (String, String) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(4 * 1024 * 1024);
    (cpus.to_string(), format!("{mem_kib}Ki"))
}

/// The CA of the kubeconfig's cluster (to verify the API server's client
/// certificate on the agent's HTTPS API).
pub fn kubeconfig_ca(path: &std::path::Path) -> anyhow::Result<String> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("kubeconfig has no cluster")?;
    if let Some(data) = cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("certificate-authority-data is not base64")?;
        return Ok(String::from_utf8(pem)?);
    }
    let file = cluster
        .certificate_authority
        .context("kubeconfig names no certificate authority")?;
    std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))
}

/// Runs one real node until an error.
pub async fn run(
    client: kube::Client,
    mut node: rkube_node::NodeConfig,
    engine: rkube_node::EngineConfig,
    args: RealAgentArgs,
    root_dir: PathBuf,
    ca_pem: String,
    static_pods: Option<rkube_node::agent::StaticPods>,
) -> anyhow::Result<()> {
    if args.image_gc_low_threshold > args.image_gc_high_threshold {
        anyhow::bail!(
            "--image-gc-low-threshold ({}) must not be above --image-gc-high-threshold ({})",
            args.image_gc_low_threshold,
            args.image_gc_high_threshold
        );
    }
    std::fs::create_dir_all(&root_dir)
        .with_context(|| format!("creating {}", root_dir.display()))?;
    let (fs_capacity, _) = rkube_image::fs_space(&root_dir)?;
    node.ephemeral_storage = fs_capacity.to_string();
    let pods = node.max_pods.to_string();
    let capacity = Capacity::from_strings([
        ("cpu", node.cpu.as_str()),
        ("memory", node.memory.as_str()),
        ("ephemeral-storage", node.ephemeral_storage.as_str()),
        ("pods", pods.as_str()),
    ])?;
    node.ephemeral_storage = capacity.to_strings()["ephemeral-storage"].clone();
    let alloc = capacity
        .allocatable(
            &args.system_reserved,
            &args.kube_reserved,
            &args.eviction_hard.0,
        )
        .to_strings();
    tracing::info!(capacity = ?capacity.to_strings(), allocatable = ?alloc, "node resources");
    let mut allocatable = std::collections::HashMap::new();
    for k in ["cpu", "memory"] {
        if let Ok(q) = rkube_api::quantity::Quantity::parse(&alloc[k]) {
            allocatable.insert(k.to_string(), q);
        }
    }
    node.allocatable = alloc;
    let cfg = rkube_node::kubelet::setup::RealAgentConfig {
        node_name: node.node_name.clone(),
        host_ip: node.host_ip.clone(),
        root_dir,
        runtime_binary: args.runtime_binary.clone(),
        monitor_command: crate::monitor_cmd::monitor_command()?,
        cni_bridge: args.cni_bridge.clone(),
        cni_conf_dir: args.cni_conf_dir.clone(),
        cluster_domain: args.cluster_domain.clone(),
        cluster_dns: args.cluster_dns.clone(),
        node_allocatable: allocatable,
        eviction_hard: args.eviction_hard.0.clone(),
        pressure_transition_period: args.eviction_pressure_transition_period,
        image_gc: rkube_node::kubelet::housekeeping::ImageGcConfig {
            high_percent: args.image_gc_high_threshold,
            low_percent: args.image_gc_low_threshold,
            minimum_age: args.minimum_image_ttl_duration,
        },
        log_max_size: args.container_log_max_size,
        log_max_files: usize::try_from(args.container_log_max_files).unwrap_or(usize::MAX),
    };
    let mut agent = rkube_node::kubelet::setup::build(client.clone(), cfg)?;
    if let Err(e) = agent.housekeeping.measure() {
        tracing::warn!(error = %e, "first node measurement failed");
    }
    node.facts = Some(agent.facts.clone());
    agent
        .runtime
        .sweep_orphans_of_node(&client, &node.node_name)
        .await;
    let ip: std::net::IpAddr = node.host_ip.parse().unwrap_or([0, 0, 0, 0].into());
    let listen = std::net::SocketAddr::new(ip, args.agent_port);
    let mut sc = rkube_node::server::ServerConfig::new(listen, ca_pem);
    sc.names = vec![node.node_name.clone(), "localhost".into()];
    let streaming = agent.streaming.clone();
    let srv = rkube_node::server::StreamingServer::bind(sc, streaming)
        .await
        .context("starting the agent's HTTPS API")?
        .with_summary(agent.stats.clone());
    node.kubelet_port = Some(srv.local_addr().port());
    node.runtime_version =
        rkube_node::sysinfo::HostSystem::runtime_version_of(&args.runtime_binary)
            .unwrap_or_else(|| format!("runc://{}", env!("CARGO_PKG_VERSION")));
    node.host = Some(rkube_node::sysinfo::HostSystem::read());
    tracing::info!(addr = %srv.local_addr(), node = %node.node_name, "agent API listening");
    let server_task = tokio::spawn(srv.run(std::future::pending()));
    let housekeeping = tokio::spawn(agent.housekeeping.run(args.housekeeping_interval));
    let runtime: Arc<dyn rkube_node::Runtime> = agent.runtime.clone();
    let r =
        rkube_node::NodeAgent::run_with_runtime(client, node, engine, runtime, static_pods).await;
    server_task.abort();
    housekeeping.abort();
    Ok(r?)
}

//! The real node agent (runc containers, CNI networking, the streaming
//! HTTPS API) as run by `rkube agent` and embedded in `rkube server`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;

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
    let mut allocatable = std::collections::HashMap::new();
    for (k, v) in [("cpu", &node.cpu), ("memory", &node.memory)] {
        if let Ok(q) = rkube_api::quantity::Quantity::parse(v) {
            allocatable.insert(k.to_string(), q);
        }
    }
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
    };
    let agent = rkube_node::kubelet::setup::build(client.clone(), cfg)?;
    let ip: std::net::IpAddr = node.host_ip.parse().unwrap_or([0, 0, 0, 0].into());
    let listen = std::net::SocketAddr::new(ip, args.agent_port);
    let mut sc = rkube_node::server::ServerConfig::new(listen, ca_pem);
    sc.names = vec![node.node_name.clone(), "localhost".into()];
    let streaming = agent.streaming.clone();
    let srv = rkube_node::server::StreamingServer::bind(sc, streaming)
        .await
        .context("starting the agent's HTTPS API")?;
    node.kubelet_port = Some(srv.local_addr().port());
    node.runtime_version = format!("runc://{}", env!("CARGO_PKG_VERSION"));
    tracing::info!(addr = %srv.local_addr(), node = %node.node_name, "agent API listening");
    let server_task = tokio::spawn(srv.run(std::future::pending()));
    let runtime: Arc<dyn rkube_node::Runtime> = agent.runtime.clone();
    let r =
        rkube_node::NodeAgent::run_with_runtime(client, node, engine, runtime, static_pods).await;
    server_task.abort();
    Ok(r?)
}

//! `rkube controller-manager`: the controllers alone, with leader election
//! through the `kube-system/kube-controller-manager` Lease so replicas can
//! run side by side. `rkube server` runs the same controllers in process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rkube_controllers::ControllerMetrics;

/// Controller flags shared by `rkube controller-manager` and `rkube server`.
#[derive(clap::Args, Clone)]
pub struct ControllerFlags {
    /// Controllers to run: `*` (the default set), NAME, -NAME; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// IPv4 range node pod CIDRs are allocated from.
    #[arg(long, default_value = "10.128.0.0/11")]
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// How long a node may go without renewing its Lease before it is
    /// marked unreachable.
    #[arg(long, value_parser = crate::duration_arg, default_value = "40s")]
    pub node_monitor_grace_period: Duration,
    /// How long a new node may take to post its first status before it is
    /// marked unreachable.
    #[arg(long, value_parser = crate::duration_arg, default_value = "1m")]
    pub node_startup_grace_period: Duration,
    /// Nodes per second tainted for eviction in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// Nodes per second tainted for eviction in a partially disrupted zone
    /// larger than --large-cluster-size-threshold.
    #[arg(long, default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f64,
    /// Share of not-Ready nodes that makes a zone partially disrupted.
    #[arg(long, default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f64,
    /// Partially disrupted zones with at most this many nodes stop tainting.
    #[arg(long, default_value_t = 50)]
    pub large_cluster_size_threshold: usize,
    /// Most endpoints one EndpointSlice holds.
    #[arg(long, default_value_t = 100)]
    pub max_endpoints_per_slice: usize,
}

impl ControllerFlags {
    pub fn config(&self) -> anyhow::Result<rkube_controllers::Config> {
        let config = rkube_controllers::Config {
            controllers: self.controllers.clone(),
            node_ipam: rkube_controllers::nodeipam::NodeIpamConfig {
                cluster_cidr: self.cluster_cidr.clone(),
                node_cidr_mask_size: self.node_cidr_mask_size,
            },
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            node_eviction_rate: self.node_eviction_rate,
            secondary_node_eviction_rate: self.secondary_node_eviction_rate,
            unhealthy_zone_threshold: self.unhealthy_zone_threshold,
            large_cluster_size_threshold: self.large_cluster_size_threshold,
            max_endpoints_per_slice: self.max_endpoints_per_slice,
            ..Default::default()
        };
        rkube_controllers::manager::enabled(&config.controllers)?;
        Ok(config)
    }
}

/// Flags of `rkube controller-manager`.
#[derive(clap::Args)]
pub struct ControllerManagerArgs {
    /// Kubeconfig with the API server and credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL, overriding the kubeconfig's.
    #[arg(long)]
    pub server: Option<String>,
    #[command(flatten)]
    pub flags: ControllerFlags,
    /// Take part in leader election (the `kube-system/kube-controller-manager`
    /// Lease); only the leader runs controllers.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Serve /metrics and /healthz over plain HTTP on this loopback address
    /// (e.g. 127.0.0.1:10257). Off by default.
    #[arg(long)]
    pub metrics_bind_address: Option<std::net::SocketAddr>,
}

/// Runs the controllers; with leader election only while this process holds
/// the lease, campaigning again after losing it.
pub async fn run(
    client: kube::Client,
    config: rkube_controllers::Config,
    metrics: Arc<ControllerMetrics>,
    leader_elect: bool,
) -> anyhow::Result<()> {
    if !leader_elect {
        return Ok(rkube_controllers::run(client, &config, metrics).await?);
    }
    loop {
        let elector = rkube_leader::Elector::new(
            client.clone(),
            rkube_leader::Config::new("kube-system", "kube-controller-manager"),
        );
        let work = rkube_controllers::run(client.clone(), &config, metrics.clone());
        match elector.run(work).await {
            Ok(r) => return Ok(r?),
            Err(e) => {
                tracing::warn!(error = %e, "controller manager stepped down; campaigning again")
            }
        }
    }
}

/// `rkube controller-manager`.
pub async fn main(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let Some(kubeconfig) = args.kubeconfig.clone() else {
        anyhow::bail!("--kubeconfig is required: the kubeconfig of the API server to control");
    };
    let config = args.flags.config()?;
    let client = rkube_node::client_from_kubeconfig(&kubeconfig, args.server.as_deref())
        .await
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
    let metrics = Arc::new(ControllerMetrics::new());
    let serve = async {
        match args.metrics_bind_address {
            Some(addr) => {
                let m = metrics.clone();
                crate::metrics_http::serve(addr, Arc::new(move || m.render())).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = run(client, config, metrics.clone(), args.leader_elect) => r,
        r = serve => r,
        _ = crate::shutdown_signal() => Ok(()),
    }
}

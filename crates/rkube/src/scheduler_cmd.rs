//! `rkube scheduler`: the scheduler alone (with leader election through the
//! `kube-system/kube-scheduler` Lease, so replicas can run side by side),
//! and `rkube scheduler explain <namespace>/<pod>`. `rkube server` runs the
//! same scheduler in process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rkube_scheduler::metrics::SchedulerMetrics;

/// Flags of `rkube scheduler`.
#[derive(clap::Args)]
pub struct SchedulerArgs {
    #[command(subcommand)]
    pub action: Option<SchedulerAction>,
    /// Kubeconfig with the API server and credentials.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL, overriding the kubeconfig's.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// A KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Serve /metrics and /healthz over plain HTTP on this loopback address
    /// (e.g. 127.0.0.1:10259). Off by default.
    #[arg(long)]
    pub metrics_bind_address: Option<std::net::SocketAddr>,
}

#[derive(clap::Subcommand)]
pub enum SchedulerAction {
    /// Explain, per node, why a pod fits or not and how each node scores,
    /// for a scheduling attempt against the cluster as it is now.
    Explain {
        /// The pod, as NAMESPACE/NAME (or NAME in namespace default).
        pod: String,
    },
}

/// Reads the configuration file, or upstream's defaults without one, and
/// checks that its profiles build (unknown plugins, bad args).
pub fn load_config(path: Option<&Path>) -> anyhow::Result<rkube_scheduler::Config> {
    let config = match path {
        Some(p) => rkube_scheduler::Config::from_file(p)?,
        None => rkube_scheduler::Config::default(),
    };
    let (probe, _) = rkube_scheduler::listers::Listers::new();
    config.build_profiles(&rkube_scheduler::plugins::Handle {
        client: None,
        listers: probe,
        waiting: Default::default(),
    })?;
    Ok(config)
}

fn election_config(c: &rkube_scheduler::config::LeaderElection) -> rkube_leader::Config {
    let d = |s: &str, dflt: u64| {
        rkube_scheduler::config::parse_duration(s).unwrap_or(Duration::from_secs(dflt))
    };
    let mut cfg = rkube_leader::Config::new(&c.resource_namespace, &c.resource_name);
    cfg.lease_duration = d(&c.lease_duration, 15);
    cfg.renew_deadline = d(&c.renew_deadline, 10);
    cfg.retry_period = d(&c.retry_period, 2);
    cfg
}

/// Runs the scheduler; with leader election (the default) only while this
/// process holds the lease, campaigning again after losing it.
pub async fn run(
    client: kube::Client,
    config: rkube_scheduler::Config,
    metrics: Arc<SchedulerMetrics>,
) -> anyhow::Result<()> {
    if !config.leader_election.leader_elect {
        return Ok(rkube_scheduler::run(client, &config, metrics).await?);
    }
    loop {
        let elector =
            rkube_leader::Elector::new(client.clone(), election_config(&config.leader_election));
        let work = rkube_scheduler::run(client.clone(), &config, metrics.clone());
        match elector.run(work).await {
            Ok(r) => return Ok(r?),
            Err(e) => tracing::warn!(error = %e, "scheduler stepped down; campaigning again"),
        }
    }
}

/// `rkube scheduler [explain POD]`.
pub async fn main(args: SchedulerArgs) -> anyhow::Result<()> {
    let Some(kubeconfig) = args.kubeconfig.clone() else {
        anyhow::bail!("--kubeconfig is required: the kubeconfig of the API server to schedule for");
    };
    let config = load_config(args.config.as_deref())?;
    let client = rkube_node::client_from_kubeconfig(&kubeconfig, args.server.as_deref())
        .await
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
    match args.action {
        Some(SchedulerAction::Explain { pod }) => {
            let (ns, name) = pod.split_once('/').unwrap_or(("default", pod.as_str()));
            if ns.is_empty() || name.is_empty() {
                anyhow::bail!("pod must be NAMESPACE/NAME, got {pod:?}");
            }
            let report = rkube_scheduler::explain::explain(client, &config, ns, name).await?;
            print!("{}", report.render());
            Ok(())
        }
        None => {
            let metrics = Arc::new(SchedulerMetrics::new());
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
                r = run(client, config, metrics.clone()) => r,
                r = serve => r,
                _ = crate::shutdown_signal() => Ok(()),
            }
        }
    }
}

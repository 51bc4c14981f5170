//! The rkube scheduler: upstream kube-scheduler's scheduling framework
//! (extension points, plugins one per file behind a central registry), its
//! queue (active, backoff, unschedulable), its cache of nodes and assumed
//! pods, and asynchronous binding. It talks to the API server only through
//! the Kubernetes API (the `kube` crate).

pub mod cache;
pub mod config;
pub mod core;
pub mod explain;
pub mod framework;
pub mod listers;
pub mod metrics;
pub mod nominator;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod waiting;

pub use config::{Config, ConfigError};
pub use profile::Profile;
pub use scheduler::{Scheduler, SchedulerError};

/// Builds the configured profiles and runs the scheduler with its
/// listers (namespaces, workloads, PDBs) until a watch ends.
pub async fn run(
    client: kube::Client,
    config: &Config,
    metrics: std::sync::Arc<metrics::SchedulerMetrics>,
) -> Result<(), SchedulerError> {
    let (listers, writers) = listers::Listers::new();
    let handle = plugins::Handle {
        client: Some(client.clone()),
        listers,
        waiting: waiting::WaitingPods::default(),
    };
    let profiles = config
        .build_profiles(&handle)
        .map_err(|e| SchedulerError::Config(e.to_string()))?;
    tokio::select! {
        _ = writers.run(client.clone()) => Err(SchedulerError::WatchEnded("lister")),
        r = Scheduler::run_full(client, profiles, metrics, handle.waiting.clone()) => r,
    }
}

#[cfg(test)]
pub(crate) mod testing;

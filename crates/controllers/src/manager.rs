//! The controller manager: builds the shared informers, sets up every
//! enabled controller from the registry ([`CONTROLLERS`]), then runs the
//! informers and the controllers' workers together.
//!
//! Controllers are chosen like upstream's `--controllers`: `*` enables the
//! default set, `name` enables one, `-name` disables one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::Client;
use tracing::Instrument;

use crate::events::Recorder;
use crate::informers::Informers;
use crate::metrics::ControllerMetrics;
use crate::nodeipam::NodeIpamConfig;
use crate::workqueue::WorkQueue;

/// The controller manager's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which controllers run (`--controllers`): `*`, `name`, `-name`.
    pub controllers: Vec<String>,
    /// Node IPAM: the cluster CIDR and per-node mask.
    pub node_ipam: NodeIpamConfig,
    /// Workers per controller (upstream's `--concurrent-*-syncs`, 5 by
    /// default for most).
    pub workers: usize,
    /// How long a node may go without renewing its Lease before it is
    /// marked unreachable (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// How long a new node may take to post its first status
    /// (`--node-startup-grace-period`).
    pub node_startup_grace_period: Duration,
    /// Nodes per second tainted for eviction (`--node-eviction-rate`).
    pub node_eviction_rate: f64,
    /// The rate in a partially disrupted large zone
    /// (`--secondary-node-eviction-rate`).
    pub secondary_node_eviction_rate: f64,
    /// The share of not-Ready nodes that makes a zone partially disrupted
    /// (`--unhealthy-zone-threshold`).
    pub unhealthy_zone_threshold: f64,
    /// Zones at most this big stop tainting when partially disrupted
    /// (`--large-cluster-size-threshold`).
    pub large_cluster_size_threshold: usize,
    /// Most endpoints one EndpointSlice holds (`--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            controllers: vec!["*".into()],
            node_ipam: NodeIpamConfig::default(),
            workers: 5,
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_size_threshold: 50,
            max_endpoints_per_slice: crate::endpointslice::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("unknown controller {0:?} in --controllers (known: {1})")]
    UnknownController(String, String),
    #[error("controller {0}: {1}")]
    Controller(&'static str, String),
}

/// What a controller gets to set itself up.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub informers: Arc<Informers>,
    pub metrics: Arc<ControllerMetrics>,
    pub config: Arc<Config>,
}

impl Context {
    /// A new work queue reporting as `name`.
    pub fn queue(&self, name: &str) -> Arc<WorkQueue> {
        WorkQueue::new(name, &self.metrics)
    }

    /// An event recorder posting as `component`.
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::new(self.client.clone(), component)
    }
}

/// A controller's running part, returned by its set-up function.
pub type Running = BoxFuture<'static, Result<(), String>>;

/// One entry of the registry.
pub struct Descriptor {
    /// The name `--controllers` knows it by (upstream's names).
    pub name: &'static str,
    /// Whether `*` includes it.
    pub default_on: bool,
    /// Registers informers and handlers, returns the workers' future.
    pub start: fn(&Context) -> Running,
}

/// Every controller, in start order.
pub const CONTROLLERS: &[Descriptor] = &[
    Descriptor {
        name: "nodeipam",
        default_on: true,
        start: |ctx| {
            let client = ctx.client.clone();
            let cfg = ctx.config.node_ipam.clone();
            Box::pin(async move {
                crate::nodeipam::run(client, cfg)
                    .await
                    .map_err(|e| e.to_string())
            })
        },
    },
    Descriptor {
        name: crate::daemonset::NAME,
        default_on: true,
        start: crate::daemonset::start,
    },
    Descriptor {
        name: crate::statefulset::NAME,
        default_on: true,
        start: crate::statefulset::start,
    },
    Descriptor {
        name: "garbagecollector",
        default_on: true,
        start: crate::garbagecollector::start,
    },
    Descriptor {
        name: "serviceaccount",
        default_on: true,
        start: crate::serviceaccount::start,
    },
    Descriptor {
        name: "replicaset",
        default_on: true,
        start: crate::replicaset::start,
    },
    Descriptor {
        name: "deployment",
        default_on: true,
        start: crate::deployment::start,
    },
    Descriptor {
        name: "nodelifecycle",
        default_on: true,
        start: crate::nodelifecycle::start,
    },
    Descriptor {
        name: "taint-eviction-controller",
        default_on: true,
        start: crate::tainteviction::start,
    },
    Descriptor {
        name: "disruption",
        default_on: true,
        start: crate::disruption::start,
    },
    Descriptor {
        name: "endpoint",
        default_on: true,
        start: crate::endpoints::start,
    },
    Descriptor {
        name: "endpointslice",
        default_on: true,
        start: crate::endpointslice::start,
    },
    Descriptor {
        name: "job",
        default_on: true,
        start: crate::job::start,
    },
    Descriptor {
        name: "cronjob",
        default_on: true,
        start: crate::cronjob::start,
    },
    Descriptor {
        name: "ttl-after-finished",
        default_on: true,
        start: crate::ttlafterfinished::start,
    },
];

/// Resolves `--controllers` to the descriptors to start.
pub fn enabled(spec: &[String]) -> Result<Vec<&'static Descriptor>, ManagerError> {
    let known = || {
        CONTROLLERS
            .iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for s in spec {
        let name = s.strip_prefix('-').unwrap_or(s);
        if name != "*" && !CONTROLLERS.iter().any(|d| d.name == name) {
            return Err(ManagerError::UnknownController(s.clone(), known()));
        }
    }
    let star = spec.iter().any(|s| s == "*");
    Ok(CONTROLLERS
        .iter()
        .filter(|d| {
            if spec.iter().any(|s| s.strip_prefix('-') == Some(d.name)) {
                false
            } else {
                spec.iter().any(|s| s == d.name) || (star && d.default_on)
            }
        })
        .collect())
}

/// Runs the enabled controllers until one fails (or the future is dropped).
pub async fn run(
    client: Client,
    config: &Config,
    metrics: Arc<ControllerMetrics>,
) -> Result<(), ManagerError> {
    let descriptors = enabled(&config.controllers)?;
    let ctx = Context {
        informers: Informers::new(client.clone()),
        client,
        metrics,
        config: Arc::new(config.clone()),
    };
    let mut running = Vec::new();
    for d in descriptors {
        let name = d.name;
        let fut = (d.start)(&ctx);
        running.push(Box::pin(
            async move { fut.await.map_err(|e| ManagerError::Controller(name, e)) },
        ) as BoxFuture<'static, Result<(), ManagerError>>);
    }
    tracing::info!(controllers = running.len(), "controller manager starting");
    let informers = ctx.informers.run();
    tokio::select! {
        _ = informers => Ok(()),
        r = futures::future::try_join_all(running) => r.map(|_| ()),
    }
}

/// Runs `workers` workers over `queue`, each taking a key and reconciling
/// it in a `reconcile` tracing span. `Ok(None)` is done; `Ok(Some(d))`
/// looks again after `d`; an error is logged, counted and retried with the
/// queue's backoff.
pub async fn run_workers<F, Fut, E>(queue: Arc<WorkQueue>, workers: usize, reconcile: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send,
    E: std::fmt::Display,
{
    let reconcile = Arc::new(reconcile);
    let workers = (0..workers.max(1)).map(|_| {
        let q = queue.clone();
        let r = reconcile.clone();
        async move {
            while let Some(key) = q.get().await {
                let span = tracing::info_span!("reconcile", controller = q.name(), key = %key);
                let started = Instant::now();
                let res = r(key.clone()).instrument(span).await;
                q.done(&key, started.elapsed());
                match res {
                    Ok(None) => q.forget(&key),
                    Ok(Some(after)) => {
                        q.forget(&key);
                        q.add_after(key, after);
                    }
                    Err(e) => {
                        q.record_error();
                        tracing::warn!(controller = q.name(), key = %key, error = %e, "reconcile failed; retrying");
                        q.add_rate_limited(key);
                    }
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &[&str]) -> Vec<&'static str> {
        let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        enabled(&spec).unwrap().iter().map(|d| d.name).collect()
    }

    #[test]
    fn controllers_flag_selects_like_upstream() {
        let all: Vec<&str> = CONTROLLERS
            .iter()
            .filter(|d| d.default_on)
            .map(|d| d.name)
            .collect();
        assert_eq!(names(&["*"]), all);
        assert!(!names(&["*", "-nodeipam"]).contains(&"nodeipam"));
        assert_eq!(names(&["nodeipam"]), vec!["nodeipam"]);
        assert!(names(&[]).is_empty());
        let err = enabled(&["bogus".to_string()]).err().unwrap().to_string();
        assert!(err.contains("unknown controller \"bogus\""), "{err}");
    }
}

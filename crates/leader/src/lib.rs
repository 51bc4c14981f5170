//! Leader election through a `coordination.k8s.io/v1` Lease, with
//! client-go's semantics: a candidate takes the lease when it is free or
//! when its holder has not renewed it for `lease_duration` (measured on the
//! candidate's own clock, from when it first saw the current record); the
//! leader renews it every `retry_period` and steps down when it could not
//! renew for `renew_deadline`. Every write is a compare-and-swap on the
//! Lease's resourceVersion, so two candidates never both win.
//!
//! No Rust crate for this was available to the project (the usual choices,
//! `kube-leader-election` and `kube-lease-manager`, are not in the offline
//! registry), so it is written here; see ARCHITECTURE.md.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election lost: the lease {0} could not be renewed within the renew deadline")]
    Lost(String),
}

/// Where the lease lives and how it is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity (hostname plus a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Config {
    /// Upstream's defaults (15 s, 10 s, 2 s) for the lease `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Config {
        Config {
            namespace: namespace.into(),
            name: name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// `<hostname>_<uuid>`, as upstream components name themselves.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The lease record last seen, and when this candidate first saw it.
struct Observed {
    holder: Option<String>,
    renew: Option<Timestamp>,
    at: Instant,
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    cfg: Config,
    observed: Option<Observed>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, cfg: Config) -> Elector {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// One attempt to acquire or renew; true when this candidate holds the
    /// lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        let secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let existing = match self.api.get_opt(&self.cfg.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "reading the lease failed");
                return false;
            }
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return self
                .api
                .create(&PostParams::default(), &lease)
                .await
                .is_ok();
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew != renew);
        if changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew,
                at: Instant::now(),
            });
        }
        let me = holder.as_deref() == Some(self.cfg.identity.as_str());
        if !me {
            let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            let duration = spec
                .lease_duration_seconds
                .map_or(self.cfg.lease_duration, |s| {
                    Duration::from_secs(s.max(0) as u64)
                });
            if holder.is_some() && seen + duration > Instant::now() {
                return false;
            }
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.cfg.identity.clone());
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !me {
                    tracing::info!(
                        lease = self.cfg.name,
                        identity = self.cfg.identity,
                        "became leader"
                    );
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "lease update failed");
                false
            }
        }
    }

    /// Gives the lease up (holder cleared), so another candidate takes
    /// over at once.
    pub async fn release(&mut self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
            let _ = self
                .api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await;
        }
    }

    /// Waits until this candidate leads, then runs `work` while renewing
    /// the lease. Returns `work`'s result, or an error when the lease is
    /// lost (the work is then dropped, as upstream exits).
    pub async fn run<F: Future>(mut self, work: F) -> Result<F::Output, LeaderError> {
        tracing::info!(
            lease = format!("{}/{}", self.cfg.namespace, self.cfg.name),
            identity = self.cfg.identity,
            "waiting to become leader"
        );
        while !self.try_acquire_or_renew().await {
            tokio::time::sleep(self.cfg.retry_period).await;
        }
        let mut last_renew = Instant::now();
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => {
                    self.release().await;
                    return Ok(out);
                }
                _ = tokio::time::sleep(self.cfg.retry_period) => {
                    if self.try_acquire_or_renew().await {
                        last_renew = Instant::now();
                    } else if last_renew.elapsed() > self.cfg.renew_deadline {
                        return Err(LeaderError::Lost(self.cfg.name.clone()));
                    }
                }
            }
        }
    }
}

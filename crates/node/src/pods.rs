//! The pod worker: watches the pods bound to the node, runs them through the
//! [`Runtime`], posts their status, enforces max-pods, and finishes graceful
//! deletion (stop, release the IP, delete with grace period 0).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;

use crate::agent::NodeConfig;
use crate::ipam::{Ipam, IpamError};
use crate::runtime::{PodRuntimeStatus, Runtime, RuntimeError, RuntimePhase};
use crate::status;

/// Errors of the pod worker.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("ipam: {0}")]
    Ipam(#[from] IpamError),
    #[error("pod watch ended")]
    WatchEnded,
}

/// A pod this node runs.
struct Tracked {
    name: String,
    namespace: String,
    ip: Ipv4Addr,
    posted: Option<PodRuntimeStatus>,
}

/// Runs the pods of one node.
pub struct PodWorker {
    client: Client,
    cfg: NodeConfig,
    runtime: Arc<dyn Runtime>,
    ipam: Ipam,
    pods: HashMap<String, Tracked>,
    /// Uids seen during a relist (between Init and InitDone).
    relist: Option<HashSet<String>>,
}

impl PodWorker {
    pub fn new(client: Client, cfg: NodeConfig, runtime: Arc<dyn Runtime>, ipam: Ipam) -> Self {
        PodWorker {
            client,
            cfg,
            runtime,
            ipam,
            pods: HashMap::new(),
            relist: None,
        }
    }

    /// Watches and syncs pods until the watch ends.
    #[tracing::instrument(skip_all, fields(node = %self.cfg.node_name))]
    pub async fn run(mut self) -> Result<(), PodError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let wc =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.cfg.node_name));
        let mut events = watcher::watcher(api, wc).default_backoff().boxed();
        let mut tick = tokio::time::interval(self.cfg.pod_sync_interval);
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    None => return Err(PodError::WatchEnded),
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch error"),
                    Some(Ok(ev)) => self.on_event(ev).await,
                },
                _ = tick.tick() => self.sync_all().await,
            }
        }
    }

    async fn on_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Init => self.relist = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => {
                if let (Some(seen), Some(uid)) = (self.relist.as_mut(), pod.metadata.uid.as_ref()) {
                    seen.insert(uid.clone());
                }
                if let Err(e) = self.on_pod(&pod).await {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "pod sync failed");
                }
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid {
                    self.forget(&uid).await;
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget(&uid).await;
                    }
                }
            }
        }
    }

    /// Stops a pod and releases its address.
    async fn forget(&mut self, uid: &str) {
        if let Some(t) = self.pods.remove(uid) {
            if let Err(e) = self.runtime.stop_pod(uid).await {
                tracing::warn!(pod = %t.name, error = %e, "stop failed");
            }
            self.ipam.release(t.ip);
            tracing::info!(pod = %t.name, ns = %t.namespace, ip = %t.ip, "pod stopped");
        }
    }

    #[tracing::instrument(skip_all, fields(pod = ?pod.metadata.name, ns = ?pod.metadata.namespace))]
    async fn on_pod(&mut self, pod: &Pod) -> Result<(), PodError> {
        let (Some(uid), Some(name), Some(ns)) = (
            pod.metadata.uid.clone(),
            pod.metadata.name.clone(),
            pod.metadata.namespace.clone(),
        ) else {
            return Ok(());
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            self.forget(&uid).await;
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            return match api.delete(&name, &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if self.pods.contains_key(&uid) {
            return Ok(());
        }
        let status = pod.status.clone().unwrap_or_default();
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return Ok(());
        }
        if self.active() >= self.cfg.max_pods as usize {
            tracing::warn!(max_pods = self.cfg.max_pods, "rejecting pod: node full");
            return self
                .patch_status(&api, &name, status::out_of_pods_status(self.cfg.max_pods))
                .await;
        }
        let ip = match status
            .pod_ip
            .as_deref()
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .filter(|ip| self.ipam.reserve(*ip).is_ok())
        {
            Some(ip) => ip,
            None => self.ipam.allocate()?,
        };
        if let Err(e) = self.runtime.start_pod(pod).await {
            self.ipam.release(ip);
            let failed = PodStatus {
                phase: Some("Failed".into()),
                reason: Some("StartError".into()),
                message: Some(e.to_string()),
                ..Default::default()
            };
            self.patch_status(&api, &name, failed).await?;
            return Err(e.into());
        }
        tracing::info!(%ip, "pod started");
        self.pods.insert(
            uid.clone(),
            Tracked {
                name,
                namespace: ns,
                ip,
                posted: None,
            },
        );
        self.sync_one(&uid).await
    }

    /// Pods counting against max-pods: all but those known to be finished.
    fn active(&self) -> usize {
        self.pods
            .values()
            .filter(|t| {
                t.posted
                    .as_ref()
                    .is_none_or(|p| p.phase() == RuntimePhase::Running)
            })
            .count()
    }

    async fn patch_status(
        &self,
        api: &Api<Pod>,
        name: &str,
        status: PodStatus,
    ) -> Result<(), PodError> {
        let body = json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        Ok(())
    }

    /// Posts the pod's status if the runtime's view changed.
    async fn sync_one(&mut self, uid: &str) -> Result<(), PodError> {
        let Some(t) = self.pods.get(uid) else {
            return Ok(());
        };
        if t.posted
            .as_ref()
            .is_some_and(|p| p.phase() != RuntimePhase::Running)
        {
            return Ok(());
        }
        let rt = self.runtime.status(uid).await?;
        if t.posted.as_ref() == Some(&rt) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &t.namespace);
        let st = status::pod_status(&rt, &t.ip.to_string(), &self.cfg.host_ip, uid);
        match self.patch_status(&api, &t.name, st).await {
            Err(PodError::Kube(kube::Error::Api(s))) if s.code == 404 => {
                self.forget(uid).await;
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => {
                tracing::debug!(pod = %t.name, phase = rt.phase().as_str(), "status posted");
                if let Some(t) = self.pods.get_mut(uid) {
                    t.posted = Some(rt);
                }
                Ok(())
            }
        }
    }

    async fn sync_all(&mut self) {
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in uids {
            if let Err(e) = self.sync_one(&uid).await {
                tracing::warn!(uid, error = %e, "pod status sync failed");
            }
        }
    }
}

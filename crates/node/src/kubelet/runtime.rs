//! [`KubeletRuntime`]: the real runtime behind the agent's [`Runtime`]
//! trait. Each pod gets a [`Worker`] task; the runtime posts pod statuses
//! itself, hands out no addresses from the agent's IPAM (the CNI plugins
//! do), and stops pods within their grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, oneshot};

use super::worker::{Deps, Msg, Worker};
use crate::runtime::{PodRuntimeStatus, Runtime, RuntimeError};

/// Runs pods in real containers.
pub struct KubeletRuntime {
    deps: Arc<Deps>,
    workers: Mutex<HashMap<String, mpsc::UnboundedSender<Msg>>>,
}

impl KubeletRuntime {
    pub fn new(deps: Deps) -> Self {
        KubeletRuntime {
            deps: Arc::new(deps),
            workers: Mutex::new(HashMap::new()),
        }
    }

    fn sender(&self, uid: &str) -> Option<mpsc::UnboundedSender<Msg>> {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }

    /// Whether a worker runs the pod with `uid`.
    pub fn has_worker(&self, uid: &str) -> bool {
        self.sender(uid).is_some()
    }

    /// The shared dependencies (for the streaming server).
    pub fn deps(&self) -> Arc<Deps> {
        self.deps.clone()
    }
}

#[async_trait]
impl Runtime for KubeletRuntime {
    async fn start_pod(&self, pod: &Pod) -> Result<(), RuntimeError> {
        let uid = pod.metadata.uid.clone().ok_or(RuntimeError::NoUid)?;
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if workers.contains_key(&uid) {
            return Ok(());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        workers.insert(uid, tx);
        tokio::spawn(Worker::run(self.deps.clone(), pod.clone(), rx));
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<(), RuntimeError> {
        let uid = pod.metadata.uid.clone().ok_or(RuntimeError::NoUid)?;
        if let Some(tx) = self.sender(&uid) {
            let _ = tx.send(Msg::Update(Box::new(pod.clone())));
        }
        Ok(())
    }

    async fn restart_container(&self, _uid: &str, _container: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn stop_pod(&self, uid: &str) -> Result<(), RuntimeError> {
        self.stop_pod_within(uid, None).await
    }

    async fn status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError> {
        Err(RuntimeError::NotFound(uid.to_string()))
    }

    fn next_change(&self, _uid: &str) -> Option<Duration> {
        None
    }

    fn reports_status(&self) -> bool {
        true
    }

    fn set_pod_cidr(&self, cidr: &str) {
        if let Err(e) = self.deps.network.set_pod_cidr(cidr) {
            tracing::error!(cidr, error = %e, "pod network setup failed");
        }
    }

    async fn stop_pod_within(
        &self,
        uid: &str,
        grace: Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let tx = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        let Some(tx) = tx else { return Ok(()) };
        let (done, wait) = oneshot::channel();
        let grace = grace.unwrap_or(Duration::from_secs(30));
        if tx.send(Msg::Stop { grace, done }).is_ok() {
            let _ = wait.await;
        }
        Ok(())
    }
}

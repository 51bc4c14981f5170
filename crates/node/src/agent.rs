//! The node agent of one node (rkube's kubelet): registers (or adopts) its
//! Node, keeps it alive, and runs the pods bound to it through a
//! [`Runtime`]. It is the [`Engine`] with a single node, watching only its
//! own Node and its own pods.

use std::net::Ipv4Addr;
use std::sync::Arc;

use kube::Client;

use crate::config::{EngineConfig, NodeConfig};
use crate::engine::{Engine, EngineError, EngineSpec};
use crate::runtime::{Runtime, SimulatedRuntime};

/// Errors of loading the agent's credentials.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid server URL {0:?}")]
    ServerUrl(String),
}

/// A client from the kubeconfig file at `path` (its current context),
/// optionally pointed at another `server` URL.
pub async fn client_from_kubeconfig(
    path: &std::path::Path,
    server: Option<&str>,
) -> Result<Client, AgentError> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    if let Some(url) = server {
        cfg.cluster_url = url
            .parse()
            .map_err(|_| AgentError::ServerUrl(url.to_string()))?;
    }
    Ok(Client::try_from(cfg)?)
}

/// Static pods of an agent: manifests in `dir`, checked every `period`.
#[derive(Debug, Clone)]
pub struct StaticPods {
    pub dir: std::path::PathBuf,
    pub period: std::time::Duration,
}

/// The agent of one node.
pub struct NodeAgent;

impl NodeAgent {
    /// Runs the agent with the simulated runtime until an error.
    pub async fn run(
        client: Client,
        node: NodeConfig,
        cfg: EngineConfig,
    ) -> Result<(), EngineError> {
        Self::run_with_runtime(client, node, cfg, Arc::new(SimulatedRuntime::new()), None).await
    }

    /// Runs the agent with `runtime` (and static pods) until an error.
    pub async fn run_with_runtime(
        client: Client,
        node: NodeConfig,
        cfg: EngineConfig,
        runtime: Arc<dyn Runtime>,
        static_pods: Option<StaticPods>,
    ) -> Result<(), EngineError> {
        let name = node.node_name.clone();
        let _static = static_pods.map(|sp| {
            AbortOnDrop(tokio::spawn(crate::static_pods::run(
                client.clone(),
                name.clone(),
                sp.dir,
                sp.period,
            )))
        });
        let spec = EngineSpec {
            registrations: vec![node],
            adopt_annotated: false,
            node_selector: Some(format!("metadata.name={name}")),
            pod_selector: format!("spec.nodeName={name}"),
            adopted_ip_base: Ipv4Addr::UNSPECIFIED,
        };
        Engine::run(client, spec, cfg, runtime).await
    }
}

/// Stops a background task when the agent stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! The node agent for one node: registers (or adopts) the Node, posts its
//! status, renews its Lease in `kube-node-lease`, and runs the pods bound to
//! it (see [`crate::pods`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::ipam::{Ipam, IpamError};
use crate::maxpods::DEFAULT_MAX_PODS;
use crate::pods::{PodError, PodWorker};
use crate::runtime::{Runtime, SimulatedRuntime};
use crate::status;

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("pod CIDR: {0}")]
    Ipam(#[from] IpamError),
    #[error("pods: {0}")]
    Pods(#[from] PodError),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("invalid config: {0}")]
    Config(String),
}

/// How one node is configured.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    /// IPv4 pod CIDR, e.g. `10.244.1.0/24`; also `spec.podCIDR`.
    pub pod_cidr: String,
    pub max_pods: u32,
    pub cpu: String,
    pub memory: String,
    /// `kubernetes.io/arch` (amd64, arm64, ...).
    pub arch: String,
    /// The node's InternalIP and the pods' hostIP.
    pub host_ip: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub lease_renew_interval: Duration,
    pub lease_duration_seconds: i32,
    pub status_interval: Duration,
    /// How often running pods are checked for runtime status changes.
    pub pod_sync_interval: Duration,
}

/// The Go name of this machine's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl NodeConfig {
    /// Defaults: 4 CPUs, 8Gi, 110 pods, host IP 127.0.0.1, lease every 10 s.
    pub fn new(node_name: impl Into<String>, pod_cidr: impl Into<String>) -> Self {
        NodeConfig {
            node_name: node_name.into(),
            pod_cidr: pod_cidr.into(),
            max_pods: DEFAULT_MAX_PODS,
            cpu: "4".into(),
            memory: "8Gi".into(),
            arch: host_arch().into(),
            host_ip: "127.0.0.1".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_interval: Duration::from_secs(60),
            pod_sync_interval: Duration::from_secs(1),
        }
    }
}

/// Parses `key=value:Effect` (or `key:Effect`), as `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint, AgentError> {
    let bad = || AgentError::Config(format!("invalid taint {s:?}, want key=value:Effect"));
    let (kv, effect) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad());
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(bad());
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Parses `k=v` node labels, as `--node-labels`.
pub fn parse_label(s: &str) -> Result<(String, String), AgentError> {
    match s.trim().split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(AgentError::Config(format!(
            "invalid label {s:?}, want key=value"
        ))),
    }
}

/// The agent of one node.
pub struct NodeAgent;

impl NodeAgent {
    /// A client from the kubeconfig file at `path` (its current context).
    pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<Client, AgentError> {
        let kc = kube::config::Kubeconfig::read_from(path)?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(Client::try_from(cfg)?)
    }

    /// Runs the agent with the simulated runtime until an error.
    pub async fn run(client: Client, config: NodeConfig) -> Result<(), AgentError> {
        Self::run_with_runtime(client, config, Arc::new(SimulatedRuntime::new())).await
    }

    /// Runs the agent with `runtime` until an error.
    #[tracing::instrument(skip_all, fields(node = %config.node_name))]
    pub async fn run_with_runtime(
        client: Client,
        config: NodeConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<(), AgentError> {
        let ipam = Ipam::new(&config.pod_cidr)?;
        if config.max_pods == 0 {
            return Err(AgentError::Config("max pods must be at least 1".into()));
        }
        let node = register_node(&client, &config).await?;
        post_node_status(&client, &config).await?;
        tracing::info!(cidr = ipam.cidr(), "node registered");
        let worker = PodWorker::new(client.clone(), config.clone(), runtime, ipam);
        let pods = tokio::spawn(worker.run());
        let heartbeat = heartbeat(client, config, node);
        tokio::select! {
            r = pods => match r {
                Ok(r) => r.map_err(AgentError::from),
                Err(e) => Err(AgentError::Config(format!("pod worker died: {e}"))),
            },
            r = heartbeat => r,
        }
    }
}

/// Creates the Node, or adopts an existing one (labels, taints, podCIDR).
#[tracing::instrument(skip_all)]
async fn register_node(client: &Client, cfg: &NodeConfig) -> Result<Node, AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(status::node_labels(cfg)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(cfg.pod_cidr.clone()),
            pod_cidrs: Some(vec![cfg.pod_cidr.clone()]),
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: None,
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => return Ok(n),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let existing = api.get(&cfg.node_name).await?;
    let mut patch = json!({"metadata": {"labels": status::node_labels(cfg)}});
    let spec = existing.spec.clone().unwrap_or_default();
    if spec.pod_cidr.is_none() {
        patch["spec"] = json!({"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]});
    } else if spec.pod_cidr.as_deref() != Some(cfg.pod_cidr.as_str()) {
        return Err(AgentError::Config(format!(
            "node {} already has podCIDR {:?}",
            cfg.node_name, spec.pod_cidr
        )));
    }
    if !cfg.taints.is_empty() {
        let mut taints = spec.taints.unwrap_or_default();
        for t in &cfg.taints {
            if !taints
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect)
            {
                taints.push(t.clone());
            }
        }
        patch["spec"]["taints"] = serde_json::to_value(taints).unwrap_or_default();
    }
    tracing::info!("adopting existing node");
    Ok(api
        .patch(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

#[tracing::instrument(skip_all)]
async fn post_node_status(client: &Client, cfg: &NodeConfig) -> Result<(), AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let body = json!({"status": status::node_status(cfg, Timestamp::now())});
    api.patch_status(
        &cfg.node_name,
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

/// Creates or renews the node's Lease.
#[tracing::instrument(skip_all)]
async fn renew_lease(client: &Client, cfg: &NodeConfig, node: &Node) -> Result<(), AgentError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let spec = LeaseSpec {
        holder_identity: Some(cfg.node_name.clone()),
        lease_duration_seconds: Some(cfg.lease_duration_seconds),
        renew_time: Some(now),
        ..Default::default()
    };
    let patch = json!({"spec": spec});
    match api
        .patch(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: node.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: cfg.node_name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
    };
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Renews the Lease and re-posts node status forever; API errors are logged
/// and retried on the next tick.
async fn heartbeat(client: Client, cfg: NodeConfig, node: Node) -> Result<(), AgentError> {
    let mut lease_tick = tokio::time::interval(cfg.lease_renew_interval);
    let mut status_tick = tokio::time::interval(cfg.status_interval);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &cfg, &node).await {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
            _ = status_tick.tick() => {
                if let Err(e) = post_node_status(&client, &cfg).await {
                    tracing::warn!(error = %e, "node status update failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("spot:NoExecute").unwrap();
        assert_eq!((t.key.as_str(), t.value), ("spot", None));
        assert!(parse_taint("a=b").is_err());
        assert!(parse_taint("a=b:Sometimes").is_err());
        assert!(parse_taint("=b:NoSchedule").is_err());
        assert_eq!(parse_label("a=b").unwrap(), ("a".into(), "b".into()));
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }

    #[test]
    fn labels_and_resources() {
        let mut cfg = NodeConfig::new("n1", "10.244.1.0/24");
        cfg.labels.insert("zone".into(), "a".into());
        let l = status::node_labels(&cfg);
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["zone"], "a");
        let r = status::resources(&cfg);
        assert_eq!(r["pods"].0, "110");
        let s = status::node_status(&cfg, Timestamp::now());
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    }
}

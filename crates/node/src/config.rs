//! How a node is configured: [`NodeConfig`] (one node) and [`EngineConfig`]
//! (intervals shared by every node an agent process runs), and the parsers of
//! the `--node-labels` and `--register-with-taints` flags.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::maxpods::DEFAULT_MAX_PODS;

/// A flag value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How one node is configured.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    /// IPv4 pod CIDR set at registration (`--pod-cidr`); `None` waits for
    /// the control plane's node IPAM controller to set `spec.podCIDR`.
    pub pod_cidr: Option<String>,
    pub max_pods: u32,
    pub cpu: String,
    pub memory: String,
    /// `kubernetes.io/arch` (amd64, arm64, ...).
    pub arch: String,
    /// The node's InternalIP and the pods' hostIP.
    pub host_ip: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `containerRuntimeVersion` reported in the node info.
    pub runtime_version: String,
    /// Port of the agent's streaming server, reported in
    /// `status.daemonEndpoints.kubeletEndpoint.Port` (API server proxying).
    pub kubelet_port: Option<u16>,
    /// `ephemeral-storage` capacity (the real agent: its root dir's file
    /// system).
    pub ephemeral_storage: String,
    /// Allocatable where it differs from capacity (reservations and hard
    /// eviction thresholds of the real agent).
    pub allocatable: BTreeMap<String, String>,
    /// Measured pressure conditions (the real agent); `None`: no pressure.
    pub facts: Option<crate::facts::NodeFacts>,
    /// The host's OS image, kernel, machine/boot IDs (the real agent);
    /// `None`: a simulated node's placeholders.
    pub host: Option<crate::sysinfo::HostSystem>,
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
    /// Defaults: 4 CPUs, 16Gi, 110 pods, host IP 127.0.0.1, no pod CIDR.
    pub fn new(node_name: impl Into<String>) -> Self {
        NodeConfig {
            node_name: node_name.into(),
            pod_cidr: None,
            max_pods: DEFAULT_MAX_PODS,
            cpu: "4".into(),
            memory: "16Gi".into(),
            arch: host_arch().into(),
            host_ip: "127.0.0.1".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            runtime_version: format!("simulated://{}", env!("CARGO_PKG_VERSION")),
            kubelet_port: None,
            ephemeral_storage: "100Gi".into(),
            allocatable: BTreeMap::new(),
            host: None,
            facts: None,
        }
    }

    /// The same node with a pod CIDR set at registration.
    pub fn with_pod_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.pod_cidr = Some(cidr.into());
        self
    }
}

/// Timings shared by all nodes of one agent process.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Lease renewal period (upstream: 10 s).
    pub lease_renew_interval: Duration,
    /// `spec.leaseDurationSeconds` (upstream: 40).
    pub lease_duration_seconds: i32,
    /// How often the node status is re-posted when nothing changed
    /// (upstream's nodeStatusReportFrequency: 5 min).
    pub status_report_interval: Duration,
    /// How often a real runtime's pods are polled for changes; the simulated
    /// runtime says itself when its pods next change.
    pub pod_poll_interval: Duration,
    /// API writes in flight at once.
    pub concurrency: usize,
    /// Status writes queued before the agent stops reading pod events.
    pub max_queued: usize,
    /// Registrations (Node creates) in flight at once.
    pub register_concurrency: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_report_interval: Duration::from_secs(300),
            pod_poll_interval: Duration::from_secs(1),
            concurrency: 32,
            max_queued: 4096,
            register_concurrency: 32,
        }
    }
}

/// Parses `key=value:Effect` (or `key:Effect`), as `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint, ConfigError> {
    let bad = || ConfigError(format!("invalid taint {s:?}, want key=value:Effect"));
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
pub fn parse_label(s: &str) -> Result<(String, String), ConfigError> {
    match s.trim().split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ConfigError(format!("invalid label {s:?}, want key=value"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_and_labels() {
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
}

//! [`Cni`]: attaches pod sandboxes to the node network and detaches them,
//! by running the loopback network and the configured chain through the CNI
//! protocol, caching results so DEL works across agent restarts.
//!
//! Calls block on plugin processes (tens of milliseconds); call them from
//! `tokio::task::spawn_blocking` in async code. A [`Cni`] is `Send + Sync`
//! and sandboxes may be set up concurrently.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tracing::{debug, info_span, warn};

use crate::cache::{CacheEntry, CacheError, ResultCache};
use crate::config::{self, ConfigError, DefaultNetwork, NetworkConfigList};
use crate::exec::{cni_args, CniCommand, ExecError, Invocation, PluginExec, ProcessExec};
use crate::masq::{ensure_node_masquerade, MasqError, Masquerade};
use crate::result::{CniResult, ResultError};

/// Where plugin binaries are looked for by default: the conventional CNI
/// dir, then Debian's `containernetworking-plugins`.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// Errors attaching, detaching or checking a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The network config could not be loaded or generated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin failed or could not run.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A plugin printed something that is not a CNI result.
    #[error("CNI plugin {plugin} {command}: {source}")]
    BadResult {
        /// The plugin `type`.
        plugin: String,
        /// The operation.
        command: CniCommand,
        /// What is wrong with the output.
        #[source]
        source: ResultError,
    },
    /// The result cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// CHECK on a sandbox with no cached ADD result.
    #[error("sandbox {0} has no cached CNI result (never set up, or torn down)")]
    NotSetUp(String),
    /// The node masquerade rule could not be installed.
    #[error(transparent)]
    Masquerade(#[from] MasqError),
    /// `net.ipv4.ip_forward` (or IPv6 forwarding) could not be enabled.
    #[error("enabling IP forwarding: {0}")]
    IpForward(#[source] std::io::Error),
}

/// Where the pod network's config comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkSource {
    /// The first `*.conflist`/`*.conf`/`*.json` by name in this directory
    /// (read once, by [`Cni::new`]).
    ConfDir(PathBuf),
    /// The generated default node network.
    Generated(DefaultNetwork),
    /// A list given directly.
    List(NetworkConfigList),
}

/// How to build a [`Cni`].
#[derive(Debug, Clone, PartialEq)]
pub struct CniConfig {
    /// Directories holding plugin binaries, searched in order (`CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The pod network.
    pub network: NetworkSource,
    /// Where ADD results are cached (e.g. `/var/lib/rkube/cni/results`).
    pub cache_dir: PathBuf,
    /// Turn on `net.ipv4.ip_forward` (and IPv6 forwarding for an IPv6
    /// generated network) in [`Cni::new`]; [`Cni::with_executor`] never does.
    pub enable_ip_forward: bool,
}

impl CniConfig {
    /// The generated default network over `pod_cidr`, the default plugin
    /// dirs, and IP forwarding on.
    pub fn generated(pod_cidr: &str, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            network: NetworkSource::Generated(DefaultNetwork::new(pod_cidr)),
            cache_dir: cache_dir.into(),
            enable_ip_forward: true,
        }
    }
}

/// A transport protocol for a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// A hostPort mapping, handed to `portmap` as the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Host address to bind; all addresses when `None`.
    pub host_ip: Option<IpAddr>,
}

/// The sandbox to attach: its id and (already created) network namespace,
/// plus the pod identity passed in `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNetwork {
    /// Sandbox id (`CNI_CONTAINERID`, `K8S_POD_INFRA_CONTAINER_ID`).
    pub id: String,
    /// The network namespace path (`CNI_NETNS`).
    pub netns_path: PathBuf,
    /// Interface to create in the sandbox, normally `eth0`.
    pub ifname: String,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`.
    pub pod_name: String,
    /// `K8S_POD_UID`.
    pub pod_uid: String,
    /// hostPort mappings.
    pub port_mappings: Vec<PortMapping>,
}

/// The outcome of [`Cni::setup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// The pod's addresses (on the sandbox interface), in result order.
    pub ips: Vec<IpAddr>,
    /// The default gateway of the first address, if any.
    pub gateway: Option<IpAddr>,
    /// The sandbox interface name.
    pub interface: String,
    /// Its MAC address, if reported.
    pub mac: Option<String>,
    /// The full final result (routes, DNS, host-side interfaces).
    pub result: CniResult,
}

impl NetworkStatus {
    fn from_result(result: CniResult, ifname: &str) -> Result<Self, ResultError> {
        let mut ips = Vec::new();
        let mut gateway = None;
        for ip in result.sandbox_ips(ifname) {
            ips.push(ip.addr()?.0);
            gateway = gateway.or(ip.gateway);
        }
        let mac = result
            .sandbox_interface(ifname)
            .map(|i| i.mac.clone())
            .filter(|m| !m.is_empty());
        Ok(Self {
            ips,
            gateway,
            interface: ifname.to_string(),
            mac,
            result,
        })
    }
}

/// Plugin version information (the VERSION command's output).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginVersions {
    /// The version the answer is written in.
    pub cni_version: String,
    /// Versions the plugin accepts.
    #[serde(default)]
    pub supported_versions: Vec<String>,
}

/// The CNI driver for one node network.
#[derive(Clone)]
pub struct Cni {
    exec: Arc<dyn PluginExec>,
    network: NetworkConfigList,
    loopback: NetworkConfigList,
    cache: ResultCache,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni")
            .field("network", &self.network.name)
            .field("cache", &self.cache.dir())
            .finish_non_exhaustive()
    }
}

/// Which sandbox a plugin invocation is for.
struct Target<'a> {
    id: &'a str,
    netns: String,
    ifname: &'a str,
    args: String,
}

impl Cni {
    /// Loads or generates the network config, prepares the host (IP
    /// forwarding if asked; the node masquerade rule for a generated network
    /// with [`Masquerade::Node`]), and runs plugins from `config.plugin_dirs`.
    pub fn new(config: CniConfig) -> Result<Self, CniError> {
        let exec = Arc::new(ProcessExec::new(config.plugin_dirs.clone()));
        let generated = match &config.network {
            NetworkSource::Generated(net) => Some(net.clone()),
            _ => None,
        };
        let enable_forward = config.enable_ip_forward;
        let cni = Self::with_executor(config, exec)?;
        if enable_forward {
            let ipv6 = generated.as_ref().is_some_and(|n| n.pod_cidr.contains(':'));
            enable_ip_forward(ipv6).map_err(CniError::IpForward)?;
        }
        if let Some(net) = generated.filter(|n| n.masquerade == Masquerade::Node) {
            ensure_node_masquerade(&net.pod_cidr)?;
        }
        Ok(cni)
    }

    /// As [`Cni::new`] with a given plugin executor (tests use a fake), and
    /// without touching the host: no sysctls, no iptables.
    pub fn with_executor(config: CniConfig, exec: Arc<dyn PluginExec>) -> Result<Self, CniError> {
        let network = match config.network {
            NetworkSource::ConfDir(dir) => config::load_from_dir(&dir)?,
            NetworkSource::Generated(net) => net.generate()?,
            NetworkSource::List(list) => list,
        };
        Ok(Self {
            exec,
            network,
            loopback: config::loopback(),
            cache: ResultCache::new(config.cache_dir),
        })
    }

    /// The pod network's config list.
    pub fn network(&self) -> &NetworkConfigList {
        &self.network
    }

    /// Attaches the sandbox: ADD for the loopback network and, concurrently,
    /// the pod network chain (each plugin getting the previous one's result).
    /// The result is cached for DEL/CHECK. On failure whatever was attached
    /// is detached again (best effort) before the error is returned.
    pub fn setup(&self, sb: &SandboxNetwork) -> Result<NetworkStatus, CniError> {
        let _span =
            info_span!("cni_setup", sandbox = %sb.id, network = %self.network.name).entered();
        let start = Instant::now();
        let target = self.target(sb, sb.netns_path.to_string_lossy().into_owned());
        let caps = capability_args(sb);
        let (lo, chain) = std::thread::scope(|s| {
            let lo = s.spawn(|| self.run_add(&self.loopback, &target, &Map::new()));
            let chain = self.run_add(&self.network, &target, &caps);
            (lo.join().expect("loopback ADD thread panicked"), chain)
        });
        let outcome = lo.and(chain).and_then(|result| {
            let status = NetworkStatus::from_result(
                CniResult::from_json(&result).map_err(|source| CniError::BadResult {
                    plugin: self
                        .network
                        .plugin_type(self.network.plugins.len() - 1)
                        .into(),
                    command: CniCommand::Add,
                    source,
                })?,
                sb.ifname.as_str(),
            )
            .map_err(|source| CniError::BadResult {
                plugin: self.network.name.clone(),
                command: CniCommand::Add,
                source,
            })?;
            self.cache.store(&CacheEntry {
                kind: "cniCacheV1".into(),
                container_id: sb.id.clone(),
                if_name: sb.ifname.clone(),
                network_name: self.network.name.clone(),
                cni_args: target.args.clone(),
                capability_args: caps.clone(),
                config: self.network.to_value(),
                result: Some(result),
            })?;
            Ok(status)
        });
        match outcome {
            Ok(status) => {
                debug!(ips = ?status.ips, elapsed_ms = start.elapsed().as_millis() as u64, "sandbox attached");
                Ok(status)
            }
            Err(e) => {
                warn!(error = %e, "CNI ADD failed; detaching");
                if let Err(del) = self.run_del(&self.network, &target, None, &caps) {
                    warn!(error = %del, "CNI DEL after failed ADD also failed");
                }
                Err(e)
            }
        }
    }

    /// Detaches the sandbox: DEL for the pod network chain in reverse order
    /// (with the cached ADD result and config, so this works after an agent
    /// restart) and for the loopback network. Idempotent: a second call, or
    /// one for a sandbox never set up, succeeds. A missing netns is passed
    /// as an empty `CNI_NETNS`, which the standard plugins accept.
    pub fn teardown(&self, sb: &SandboxNetwork) -> Result<(), CniError> {
        let _span = info_span!("cni_teardown", sandbox = %sb.id).entered();
        let start = Instant::now();
        let netns_exists = sb.netns_path.exists();
        let netns = if netns_exists {
            sb.netns_path.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        let entry = self.cached(sb);
        let (list, prev, caps, args) = match &entry {
            Some(e) => (
                NetworkConfigList::from_conflist(
                    e.config.clone(),
                    &self.cache.dir().join(&e.network_name),
                )
                .unwrap_or_else(|_| self.network.clone()),
                e.result.clone(),
                e.capability_args.clone(),
                e.cni_args.clone(),
            ),
            None => (
                self.network.clone(),
                None,
                capability_args(sb),
                self.target(sb, String::new()).args,
            ),
        };
        let target = Target {
            id: &sb.id,
            netns,
            ifname: &sb.ifname,
            args,
        };
        let (lo, chain) = std::thread::scope(|s| {
            // With the netns gone, `lo` went with it: nothing to undo.
            let lo = netns_exists
                .then(|| s.spawn(|| self.run_del(&self.loopback, &target, None, &Map::new())));
            let chain = self.run_del(&list, &target, prev.as_ref(), &caps);
            let lo = lo.map_or(Ok(()), |h| h.join().expect("loopback DEL thread panicked"));
            (lo, chain)
        });
        chain.and(lo)?;
        self.cache.remove(&list.name, &sb.id, &sb.ifname)?;
        debug!(
            elapsed_ms = start.elapsed().as_millis() as u64,
            "sandbox detached"
        );
        Ok(())
    }

    /// Verifies the attachment with CHECK (in chain order, with the cached
    /// result). A no-op when the list sets `disableCheck` or predates 0.4.0.
    pub fn check(&self, sb: &SandboxNetwork) -> Result<(), CniError> {
        let _span = info_span!("cni_check", sandbox = %sb.id).entered();
        let entry = self
            .cached(sb)
            .ok_or_else(|| CniError::NotSetUp(sb.id.clone()))?;
        let list = NetworkConfigList::from_conflist(
            entry.config.clone(),
            &self.cache.dir().join(&entry.network_name),
        )?;
        if list.disable_check
            || matches!(
                list.cni_version.as_str(),
                "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1"
            )
        {
            return Ok(());
        }
        let target = Target {
            id: &sb.id,
            netns: sb.netns_path.to_string_lossy().into_owned(),
            ifname: &sb.ifname,
            args: entry.cni_args.clone(),
        };
        for i in 0..list.plugins.len() {
            let stdin = list.plugin_stdin(i, entry.result.as_ref(), &entry.capability_args);
            self.invoke(&list, i, CniCommand::Check, &target, &stdin)?;
        }
        Ok(())
    }

    /// The cached status of an attached sandbox (e.g. to learn a pod's IP
    /// after an agent restart without re-running ADD).
    pub fn cached_status(&self, sb: &SandboxNetwork) -> Option<NetworkStatus> {
        let result = self.cached(sb)?.result?;
        NetworkStatus::from_result(CniResult::from_json(&result).ok()?, &sb.ifname).ok()
    }

    /// Asks a plugin which spec versions it supports (VERSION).
    pub fn plugin_versions(&self, plugin: &str) -> Result<PluginVersions, CniError> {
        let inv = Invocation {
            command: CniCommand::Version,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            args: String::new(),
        };
        let stdin =
            serde_json::to_vec(&json!({"cniVersion": config::CNI_VERSION})).expect("serializes");
        let out = self.exec.exec(plugin, &inv, &stdin)?;
        serde_json::from_slice(&out).map_err(|e| CniError::BadResult {
            plugin: plugin.into(),
            command: CniCommand::Version,
            source: ResultError::Json(e),
        })
    }

    fn cached(&self, sb: &SandboxNetwork) -> Option<CacheEntry> {
        self.cache
            .load(&self.network.name, &sb.id, &sb.ifname)
            .or_else(|| self.cache.find(&sb.id, &sb.ifname))
    }

    fn target<'a>(&self, sb: &'a SandboxNetwork, netns: String) -> Target<'a> {
        Target {
            id: &sb.id,
            netns,
            ifname: &sb.ifname,
            args: cni_args(&sb.pod_namespace, &sb.pod_name, &sb.id, &sb.pod_uid),
        }
    }

    fn invoke(
        &self,
        list: &NetworkConfigList,
        index: usize,
        command: CniCommand,
        target: &Target<'_>,
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let plugin = list.plugin_type(index);
        let inv = Invocation {
            command,
            container_id: target.id.to_string(),
            netns: target.netns.clone(),
            ifname: target.ifname.to_string(),
            args: target.args.clone(),
        };
        let start = Instant::now();
        let out = self.exec.exec(plugin, &inv, stdin);
        debug!(plugin, %command, elapsed_ms = start.elapsed().as_millis() as u64, ok = out.is_ok(), "CNI plugin ran");
        Ok(out?)
    }

    /// ADD through the chain; returns the last plugin's result.
    fn run_add(
        &self,
        list: &NetworkConfigList,
        target: &Target<'_>,
        caps: &Map<String, Value>,
    ) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            let stdin = list.plugin_stdin(i, prev.as_ref(), caps);
            let out = self.invoke(list, i, CniCommand::Add, target, &stdin)?;
            let value: Value = serde_json::from_slice(&out).map_err(|e| CniError::BadResult {
                plugin: list.plugin_type(i).into(),
                command: CniCommand::Add,
                source: ResultError::Json(e),
            })?;
            if !value.is_object() {
                return Err(CniError::BadResult {
                    plugin: list.plugin_type(i).into(),
                    command: CniCommand::Add,
                    source: ResultError::Json(serde::de::Error::custom(
                        "result is not a JSON object",
                    )),
                });
            }
            prev = Some(value);
        }
        Ok(prev.unwrap_or_else(|| json!({"cniVersion": list.cni_version})))
    }

    /// DEL through the chain in reverse. Every plugin runs even if one
    /// fails (so one failure does not leak another plugin's resources);
    /// the first error is returned.
    fn run_del(
        &self,
        list: &NetworkConfigList,
        target: &Target<'_>,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) -> Result<(), CniError> {
        let mut first_err = None;
        for i in (0..list.plugins.len()).rev() {
            let stdin = list.plugin_stdin(i, prev, caps);
            if let Err(e) = self.invoke(list, i, CniCommand::Del, target, &stdin) {
                warn!(error = %e, "CNI DEL failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The capability arguments (`runtimeConfig` source) for a sandbox.
fn capability_args(sb: &SandboxNetwork) -> Map<String, Value> {
    let mut caps = Map::new();
    if !sb.port_mappings.is_empty() {
        let mappings: Vec<Value> = sb
            .port_mappings
            .iter()
            .map(|pm| {
                let mut m = json!({
                    "hostPort": pm.host_port,
                    "containerPort": pm.container_port,
                    "protocol": pm.protocol.as_str(),
                });
                if let Some(ip) = pm.host_ip {
                    m["hostIP"] = json!(ip.to_string());
                }
                m
            })
            .collect();
        caps.insert("portMappings".into(), Value::Array(mappings));
    }
    caps
}

/// Turns on IPv4 (and optionally IPv6) forwarding, as pods on a bridge need.
pub fn enable_ip_forward(ipv6: bool) -> std::io::Result<()> {
    let mut knobs = vec!["/proc/sys/net/ipv4/ip_forward"];
    if ipv6 {
        knobs.push("/proc/sys/net/ipv6/conf/all/forwarding");
    }
    for knob in knobs {
        if std::fs::read_to_string(knob)?.trim() != "1" {
            std::fs::write(knob, "1")?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "cni_tests.rs"]
mod tests;

//! Assembles the real agent: image store, OCI runtime with its monitors,
//! CNI networking and the pod workers ([`KubeletRuntime`]), the streaming
//! backend and Summary API of the agent's HTTPS API, and the housekeeping
//! (pressure conditions, image gc).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use rkube_container::{Containers, ContainersConfig, Runc};
use rkube_image::ImageStore;

use super::cni_net::CniNetwork;
use super::events::Events;
use super::hostfacts::{HostFacts, ProcHost};
use super::housekeeping::{Housekeeping, ImageGcConfig};
use super::oci_images::OciImages;
use super::reserved::Threshold;
use super::runc_ctr::{RuncContainers, RuncStats};
use super::runtime::KubeletRuntime;
use super::stats::StatsCollector;
use super::streaming::KubeletStreaming;
use super::volumes::HostMounter;
use super::worker::{Deps, KubeletConfig};
use crate::facts::NodeFacts;
use crate::poster::Poster;

/// Errors of setting the real agent up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("image store: {0}")]
    Images(#[from] rkube_image::ImageError),
    #[error("containers: {0}")]
    Containers(#[from] rkube_container::ContainerError),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// How the real agent runs.
#[derive(Debug, Clone)]
pub struct RealAgentConfig {
    pub node_name: String,
    pub host_ip: String,
    /// Everything the agent keeps: images, pods, logs, container state.
    pub root_dir: PathBuf,
    /// The OCI runtime binary (runc, crun, youki).
    pub runtime_binary: PathBuf,
    /// `[rkube binary, "container-monitor"]`.
    pub monitor_command: Vec<OsString>,
    /// Bridge of the generated CNI network.
    pub cni_bridge: String,
    /// Use the first conflist of this directory instead.
    pub cni_conf_dir: Option<PathBuf>,
    pub cluster_domain: String,
    pub cluster_dns: Vec<String>,
    pub node_allocatable: HashMap<String, rkube_api::quantity::Quantity>,
    /// `--eviction-hard`.
    pub eviction_hard: Vec<Threshold>,
    /// `--eviction-pressure-transition-period`.
    pub pressure_transition_period: std::time::Duration,
    pub image_gc: ImageGcConfig,
    /// `--container-log-max-size` in bytes.
    pub log_max_size: u64,
    /// `--container-log-max-files`.
    pub log_max_files: usize,
}

/// The parts of a real agent.
pub struct RealAgent {
    pub runtime: Arc<KubeletRuntime>,
    pub streaming: Arc<KubeletStreaming>,
    /// The Summary API.
    pub stats: Arc<StatsCollector>,
    /// Measured conditions (give them to the node's config).
    pub facts: NodeFacts,
    /// Run it with [`Housekeeping::run`] once measured once.
    pub housekeeping: Housekeeping,
}

/// Builds the real agent's parts.
pub fn build(client: Client, cfg: RealAgentConfig) -> Result<RealAgent, SetupError> {
    let dir = |d: &str| {
        let p = cfg.root_dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| SetupError::Io(p.clone(), e))?;
        Ok::<PathBuf, SetupError>(p)
    };
    let image_store = ImageStore::open(&dir("images")?)?;
    let images = OciImages {
        store: image_store.clone(),
        registries: HashMap::new(),
    };
    let mut ccfg = ContainersConfig::new(cfg.monitor_command.clone());
    ccfg.root = dir("containers")?;
    ccfg.runtime = Runc {
        binary: cfg.runtime_binary.clone(),
        root: dir("runc")?,
    };
    let containers = Containers::new(ccfg)?;
    let pods_dir = dir("pods")?;
    let kcfg = KubeletConfig {
        node_name: cfg.node_name.clone(),
        host_ip: cfg.host_ip.clone(),
        pods_dir: pods_dir.clone(),
        logs_dir: dir("logs")?,
        cluster_domain: cfg.cluster_domain.clone(),
        cluster_dns: cfg.cluster_dns.clone(),
        host_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        host_resolv: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        node_allocatable: cfg.node_allocatable.clone(),
    };
    let deps = Deps {
        images: Arc::new(images),
        containers: Arc::new(RuncContainers {
            containers: containers.clone(),
            log_max_size: cfg.log_max_size,
            log_max_files: cfg.log_max_files.max(1),
        }),
        network: Arc::new(CniNetwork::new(
            dir("cni")?,
            cfg.cni_conf_dir.clone(),
            cfg.cni_bridge.clone(),
        )),
        mounter: Arc::new(HostMounter),
        poster: Poster::start(client.clone(), 4),
        events: Events::new(client.clone(), cfg.node_name.clone()),
        services: super::sources::Services::watch(client.clone()),
        client,
        cfg: kcfg,
    };
    let host: Arc<dyn HostFacts> = Arc::new(ProcHost);
    let stats = Arc::new(StatsCollector::new(
        cfg.node_name.clone(),
        cfg.root_dir.clone(),
        image_store.root().to_path_buf(),
        host.clone(),
        Arc::new(RuncStats {
            containers: containers.clone(),
            cgroups: rkube_container::cgroup::Cgroups::default(),
        }),
    ));
    let facts = NodeFacts::default();
    let housekeeping = Housekeeping::new(
        facts.clone(),
        host,
        cfg.eviction_hard.clone(),
        cfg.pressure_transition_period,
        cfg.root_dir.clone(),
        image_store,
        containers.clone(),
        stats.clone(),
        cfg.image_gc,
    );
    Ok(RealAgent {
        runtime: Arc::new(KubeletRuntime::new(deps)),
        streaming: Arc::new(KubeletStreaming {
            containers,
            pods_dir,
        }),
        stats,
        facts,
        housekeeping,
    })
}

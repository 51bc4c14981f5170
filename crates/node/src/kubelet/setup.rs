//! Assembles the real agent: image store, OCI runtime with its monitors,
//! CNI networking and the pod workers ([`KubeletRuntime`]), plus the
//! streaming backend for the agent's HTTPS API.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use rkube_container::{Containers, ContainersConfig, Runc};
use rkube_image::ImageStore;

use super::cni_net::CniNetwork;
use super::events::Events;
use super::oci_images::OciImages;
use super::runc_ctr::RuncContainers;
use super::runtime::KubeletRuntime;
use super::streaming::KubeletStreaming;
use super::volumes::HostMounter;
use super::worker::{Deps, KubeletConfig};
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
}

/// The runtime and the streaming backend of a real agent.
pub struct RealAgent {
    pub runtime: Arc<KubeletRuntime>,
    pub streaming: Arc<KubeletStreaming>,
}

/// Builds the real agent's parts.
pub fn build(client: Client, cfg: RealAgentConfig) -> Result<RealAgent, SetupError> {
    let dir = |d: &str| {
        let p = cfg.root_dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| SetupError::Io(p.clone(), e))?;
        Ok::<PathBuf, SetupError>(p)
    };
    let images = OciImages {
        store: ImageStore::open(&dir("images")?)?,
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
        }),
        network: Arc::new(CniNetwork::new(
            dir("cni")?,
            cfg.cni_conf_dir.clone(),
            cfg.cni_bridge.clone(),
        )),
        mounter: Arc::new(HostMounter),
        poster: Poster::start(client.clone(), 4),
        events: Events::new(client.clone(), cfg.node_name.clone()),
        client,
        cfg: kcfg,
    };
    Ok(RealAgent {
        runtime: Arc::new(KubeletRuntime::new(deps)),
        streaming: Arc::new(KubeletStreaming {
            containers,
            pods_dir,
        }),
    })
}

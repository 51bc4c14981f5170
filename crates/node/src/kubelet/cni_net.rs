//! [`NetworkService`] over `rkube-cni`: one network namespace per pod
//! (`/run/netns/rkube-<uid>`), attached with the CNI plugins (the generated
//! bridge + host-local + portmap chain over the node's pod CIDR, or the
//! first conflist of a conf dir).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rkube_cni::{
    netns_path, Cni, CniConfig, HostNetns, NetnsOps, NetworkSource, PortMapping as CniPort,
    Protocol, SandboxNetwork,
};

use super::backend::{NetworkService, PortMapping, Sandbox};

/// Pod networking through CNI.
pub struct CniNetwork {
    cni: OnceLock<Arc<Cni>>,
    cache_dir: PathBuf,
    conf_dir: Option<PathBuf>,
    bridge: String,
    ipam_dir: PathBuf,
}

impl CniNetwork {
    /// `conf_dir`: use its first conflist instead of the generated network.
    /// `state_dir` holds CNI results and host-local's allocations; the
    /// generated network uses `bridge`.
    pub fn new(state_dir: PathBuf, conf_dir: Option<PathBuf>, bridge: String) -> Self {
        CniNetwork {
            cni: OnceLock::new(),
            cache_dir: state_dir.join("results"),
            ipam_dir: state_dir.join("networks"),
            conf_dir,
            bridge,
        }
    }

    fn configure(&self, cidr: &str) -> Result<(), String> {
        if self.cni.get().is_some() {
            return Ok(());
        }
        let mut cfg = CniConfig::generated(cidr, self.cache_dir.clone());
        match &self.conf_dir {
            Some(dir) => cfg.network = NetworkSource::ConfDir(dir.clone()),
            None => {
                let mut net = rkube_cni::DefaultNetwork::new(cidr);
                net.bridge = self.bridge.clone();
                net.ipam_data_dir = Some(self.ipam_dir.clone());
                cfg.network = NetworkSource::Generated(net);
            }
        }
        let cni = Cni::new(cfg).map_err(|e| e.to_string())?;
        let _ = self.cni.set(Arc::new(cni));
        Ok(())
    }

    fn cni(&self) -> Result<Arc<Cni>, String> {
        self.cni
            .get()
            .cloned()
            .ok_or_else(|| "the node has no pod CIDR yet".to_string())
    }
}

fn sandbox(uid: &str, namespace: &str, name: &str, ports: &[PortMapping]) -> SandboxNetwork {
    SandboxNetwork {
        id: uid.to_string(),
        netns_path: netns_path(&format!("rkube-{uid}")),
        ifname: "eth0".into(),
        pod_namespace: namespace.into(),
        pod_name: name.into(),
        pod_uid: uid.into(),
        port_mappings: ports
            .iter()
            .map(|p| CniPort {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: match p.protocol.as_str() {
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                host_ip: p.host_ip.parse().ok(),
            })
            .collect(),
    }
}

#[async_trait]
impl NetworkService for CniNetwork {
    fn set_pod_cidr(&self, cidr: &str) -> Result<(), String> {
        self.configure(cidr)
    }

    async fn setup(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        ports: &[PortMapping],
    ) -> Result<Sandbox, String> {
        let cni = self.cni()?;
        let sb = sandbox(uid, namespace, name, ports);
        tokio::task::spawn_blocking(move || {
            if !HostNetns.exists(&sb.netns_path) {
                HostNetns
                    .create(&sb.netns_path)
                    .map_err(|e| e.to_string())?;
            }
            match cni.setup(&sb) {
                Ok(st) => {
                    let ip = st
                        .ips
                        .first()
                        .copied()
                        .ok_or_else(|| "the CNI result has no address".to_string())?;
                    Ok(Sandbox {
                        ip,
                        netns: sb.netns_path.clone(),
                    })
                }
                Err(e) => {
                    let _ = HostNetns.delete(&sb.netns_path);
                    Err(e.to_string())
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn exists(&self, sandbox: &Sandbox) -> bool {
        HostNetns.exists(&sandbox.netns)
    }

    async fn teardown(&self, uid: &str, namespace: &str, name: &str) -> Result<(), String> {
        let sb = sandbox(uid, namespace, name, &[]);
        let cni = self.cni().ok();
        tokio::task::spawn_blocking(move || {
            if let Some(cni) = cni {
                cni.teardown(&sb).map_err(|e| e.to_string())?;
            }
            if HostNetns.exists(&sb.netns_path) {
                HostNetns
                    .delete(&sb.netns_path)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

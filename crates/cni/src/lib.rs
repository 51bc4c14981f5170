//! Pod sandbox networking for the rkube node agent, knowing nothing of
//! Kubernetes objects: named network namespaces ([`netns`]), running code and
//! connecting sockets inside them ([`connect_tcp_in_netns`]), and attaching
//! sandboxes to the node network with CNI plugins ([`Cni`]).
//!
//! Host requirements: the CNI plugins (Debian `containernetworking-plugins`,
//! looked up in [`DEFAULT_PLUGIN_DIRS`]) and `iptables` (nf_tables or legacy
//! backend) for masquerading ([`Masquerade`]) and hostPorts (`portmap`).
//! hostPorts answer on every host address, including `127.0.0.1`: with
//! `snat: true` portmap sets `route_localnet` on the bridge and masquerades
//! loopback-sourced connections.
//!
//! Measured on the 2-core dev box: creating a netns takes ~1 ms; `setup`
//! ~20 ms (loopback runs concurrently with bridge + host-local + portmap),
//! ~65-110 ms with a hostPort (portmap's iptables calls); `teardown` ~30 ms.
//!
//! ```no_run
//! use rkube_cni::{Cni, CniConfig, HostNetns, NetnsOps, SandboxNetwork, netns_path};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cni = Cni::new(CniConfig::generated("10.244.0.0/24", "/var/lib/rkube/cni/results"))?;
//! let path = netns_path("rkube-abc123");
//! HostNetns.create(&path)?;
//! let sb = SandboxNetwork {
//!     id: "abc123".into(),
//!     netns_path: path.clone(),
//!     ifname: "eth0".into(),
//!     pod_namespace: "default".into(),
//!     pod_name: "web".into(),
//!     pod_uid: "0b1c".into(),
//!     port_mappings: vec![],
//! };
//! let status = cni.setup(&sb)?;
//! println!("pod IP {:?}", status.ips);
//! cni.teardown(&sb)?;
//! HostNetns.delete(&path)?;
//! # Ok(()) }
//! ```

pub mod cache;
pub mod cni;
pub mod config;
pub mod exec;
pub mod masq;
pub mod netns;
pub mod result;

pub use cni::{
    enable_ip_forward, Cni, CniConfig, CniError, NetworkSource, NetworkStatus, PluginVersions,
    PortMapping, Protocol, SandboxNetwork, DEFAULT_PLUGIN_DIRS,
};
pub use config::{DefaultNetwork, NetworkConfigList};
pub use exec::{CniCommand, ExecError, Invocation, PluginExec, ProcessExec};
pub use masq::{ensure_node_masquerade, remove_node_masquerade, MasqError, Masquerade};
pub use netns::{connect_tcp_in_netns, in_netns, netns_path, HostNetns, NetnsError, NetnsOps};
pub use result::CniResult;

//! The rkube node agent: registers Nodes, renews their Leases, and runs the
//! pods bound to them through a [`runtime::Runtime`], talking to the API
//! server only through the Kubernetes API. One [`engine::Engine`] runs one
//! node ([`agent::NodeAgent`]) or thousands of simulated ones ([`sim`]).

pub mod admit;
pub mod agent;
pub mod config;
pub mod engine;
pub mod facts;
pub mod heartbeat;
pub mod ipam;
pub mod kubelet;
pub mod lifecycle;
pub mod maxpods;
pub mod pods;
pub mod poster;
pub mod runtime;
pub mod server;
pub mod sim;
pub mod static_pods;
pub mod status;
pub mod sysinfo;

pub use agent::{client_from_kubeconfig, AgentError, NodeAgent};
pub use config::{parse_label, parse_taint, ConfigError, EngineConfig, NodeConfig};
pub use engine::{EngineError, ANN_HEARTBEAT, ANN_SIMULATED};
pub use ipam::{Ipam, IpamError};
pub use maxpods::{MaxPods, MaxPodsError};
pub use runtime::{Runtime, RuntimeError, SimulatedRuntime};
pub use sim::SimConfig;

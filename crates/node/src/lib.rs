//! The rkube node agent: registers a Node, renews its Lease, and runs the
//! pods bound to it through a [`runtime::Runtime`], talking to the API server
//! only through the Kubernetes API.

pub mod agent;
pub mod ipam;
pub mod maxpods;
pub mod pods;
pub mod runtime;
pub mod status;

pub use agent::{AgentError, NodeAgent, NodeConfig};
pub use ipam::{Ipam, IpamError};
pub use maxpods::{MaxPods, MaxPodsError};
pub use runtime::{Runtime, RuntimeError, SimulatedRuntime};

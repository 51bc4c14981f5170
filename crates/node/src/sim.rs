//! Simulated nodes: many node agents in one process (like KWOK), sharing
//! one Node watch, one pod watch (filtered per node in memory), one
//! heartbeat schedule spread over the lease interval, and one bounded pool
//! of API writers. Pods run on the [`SimulatedRuntime`].

use std::net::Ipv4Addr;
use std::sync::Arc;

use kube::Client;

use crate::config::{EngineConfig, NodeConfig};
use crate::engine::{Engine, EngineError, EngineSpec};
use crate::runtime::SimulatedRuntime;

/// First InternalIP of nodes made by `--simulate` (node i gets base + i).
pub const SIM_IP_BASE: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
/// First InternalIP of adopted nodes that come without one.
pub const ADOPTED_IP_BASE: Ipv4Addr = Ipv4Addr::new(172, 24, 0, 1);

/// What a simulator runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes to register, named `{prefix}{i}`.
    pub count: usize,
    pub prefix: String,
    /// Every registered node is this one with its name and InternalIP set.
    pub template: NodeConfig,
    /// Adopt Nodes annotated `rkube.io/simulated: "true"`.
    pub adopt_annotated: bool,
}

impl SimConfig {
    /// The registered nodes' configs.
    pub fn nodes(&self) -> Vec<NodeConfig> {
        (0..self.count)
            .map(|i| {
                let mut c = self.template.clone();
                c.node_name = format!("{}{i}", self.prefix);
                c.host_ip =
                    Ipv4Addr::from(u32::from(SIM_IP_BASE).wrapping_add(i as u32)).to_string();
                c
            })
            .collect()
    }
}

/// Runs the simulator until a watch ends for good.
pub async fn run(client: Client, sim: SimConfig, cfg: EngineConfig) -> Result<(), EngineError> {
    let spec = EngineSpec {
        registrations: sim.nodes(),
        adopt_annotated: sim.adopt_annotated,
        node_selector: None,
        pod_selector: "spec.nodeName!=".into(),
        adopted_ip_base: ADOPTED_IP_BASE,
    };
    Engine::run(client, spec, cfg, Arc::new(SimulatedRuntime::new())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_and_ips() {
        let sim = SimConfig {
            count: 3,
            prefix: "sim-".into(),
            template: NodeConfig::new("x"),
            adopt_annotated: false,
        };
        let n = sim.nodes();
        assert_eq!(
            n.iter().map(|c| c.node_name.as_str()).collect::<Vec<_>>(),
            ["sim-0", "sim-1", "sim-2"]
        );
        assert_eq!(n[2].host_ip, "172.16.0.3");
    }
}

//! CNI results (spec 1.0.0, also reading 0.4.0 output): interfaces, IPs with
//! gateways, routes and DNS, as a plugin prints them on stdout after ADD.
//!
//! The raw JSON is what is handed to the next plugin as `prevResult` and
//! what is cached; these typed structs are a read-only view of it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Errors reading a CNI result.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// The plugin's output is not a valid CNI result.
    #[error("invalid CNI result: {0}")]
    Json(#[from] serde_json::Error),
    /// An IP entry's `address` is not `ADDR/PREFIX`.
    #[error("invalid CIDR address {0:?} in CNI result")]
    BadAddress(String),
}

/// A plugin's ADD result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// The spec version the result is written in.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces created or used (host side and sandbox side).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes added in the sandbox.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings the plugin suggests.
    #[serde(default)]
    pub dns: Dns,
}

/// One interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`cni0`, `veth1234`, `eth0`).
    pub name: String,
    /// MAC address, if the plugin reported one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path when the interface is inside a sandbox; empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One assigned address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `ADDR/PREFIX`, e.g. `10.88.0.5/24`.
    pub address: String,
    /// The default gateway for this address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address and prefix length of [`IpConfig::address`].
    pub fn addr(&self) -> Result<(IpAddr, u8), ResultError> {
        parse_cidr(&self.address).ok_or_else(|| ResultError::BadAddress(self.address.clone()))
    }
}

/// One route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination `ADDR/PREFIX`.
    pub dst: String,
    /// Next hop; the default gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl CniResult {
    /// Reads a result from a plugin's JSON output.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ResultError> {
        let result = Self::deserialize(value)?;
        for ip in &result.ips {
            ip.addr()?;
        }
        Ok(result)
    }

    /// Addresses on the sandbox interface named `ifname` (those whose
    /// `interface` index points at it), or every address when no entry
    /// names an interface.
    pub fn sandbox_ips(&self, ifname: &str) -> Vec<&IpConfig> {
        let on_if: Vec<&IpConfig> = self
            .ips
            .iter()
            .filter(|ip| {
                ip.interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|i| i.name == ifname && !i.sandbox.is_empty())
            })
            .collect();
        if on_if.is_empty() {
            self.ips.iter().collect()
        } else {
            on_if
        }
    }

    /// The sandbox-side interface named `ifname`, if reported.
    pub fn sandbox_interface(&self, ifname: &str) -> Option<&Interface> {
        self.interfaces
            .iter()
            .find(|i| i.name == ifname && !i.sandbox.is_empty())
    }
}

/// Parses `ADDR/PREFIX` with the prefix in range for the address family.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bridge_result() -> serde_json::Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x"}
            ],
            "ips": [{"address": "10.88.0.5/24", "gateway": "10.88.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
        })
    }

    #[test]
    fn parses_a_bridge_result() {
        let r = CniResult::from_json(&bridge_result()).unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        let ips = r.sandbox_ips("eth0");
        assert_eq!(ips.len(), 1);
        assert_eq!(ips[0].addr().unwrap(), ("10.88.0.5".parse().unwrap(), 24));
        assert_eq!(ips[0].gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst, "0.0.0.0/0");
        assert_eq!(r.routes[0].gw, None);
        assert_eq!(r.dns.nameservers, vec!["10.96.0.10"]);
        assert_eq!(
            r.sandbox_interface("eth0").unwrap().mac,
            "aa:bb:cc:dd:ee:03"
        );
    }

    #[test]
    fn reads_0_4_0_results_and_ignores_unknown_fields() {
        let r = CniResult::from_json(&json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.1.0.2/16"}],
            "extra": true
        }))
        .unwrap();
        assert_eq!(r.sandbox_ips("eth0").len(), 1);
        assert!(r.interfaces.is_empty());
    }

    #[test]
    fn rejects_bad_addresses() {
        let err = CniResult::from_json(&json!({"ips": [{"address": "10.1.0.2"}]})).unwrap_err();
        assert!(matches!(err, ResultError::BadAddress(_)), "{err}");
        assert!(CniResult::from_json(&json!({"ips": "nope"})).is_err());
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(
            parse_cidr("fd00::/64"),
            Some(("fd00::".parse().unwrap(), 64))
        );
    }

    #[test]
    fn round_trips_through_json() {
        let r = CniResult::from_json(&bridge_result()).unwrap();
        let back = CniResult::from_json(&serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(r, back);
    }
}

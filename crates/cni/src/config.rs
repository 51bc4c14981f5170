//! Network configuration lists: loaded from a CNI conf dir or generated for
//! a node, and turned into each plugin's stdin (`name`, `cniVersion`,
//! `prevResult`, `runtimeConfig`), as libcni builds it.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::masq::Masquerade;
use crate::result::parse_cidr;

/// The spec version rkube speaks and writes into generated configs.
pub const CNI_VERSION: &str = "1.0.0";

/// Errors loading or generating network configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The conf dir could not be read.
    #[error("reading CNI conf dir {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No `*.conflist`, `*.conf` or `*.json` file in the conf dir.
    #[error("no CNI network config (*.conflist, *.conf, *.json) in {0}")]
    NoConfig(PathBuf),
    /// A config file is not valid JSON.
    #[error("parsing CNI config {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A config is valid JSON but not a valid network config.
    #[error("invalid CNI config {path}: {reason}")]
    Invalid {
        /// The file (or `<generated>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A network configuration list: a named chain of plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network name (`name`).
    pub name: String,
    /// The list's `cniVersion`, passed to each plugin.
    pub cni_version: String,
    /// `disableCheck`: CHECK is a no-op when set.
    pub disable_check: bool,
    /// Each plugin's config object (with at least `type`).
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkConfigList {
    /// Parses a `.conflist` document.
    pub fn from_conflist(value: Value, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let Value::Object(mut obj) = value else {
            return Err(invalid("not a JSON object"));
        };
        let name = take_string(&obj, "name").ok_or_else(|| invalid("missing name"))?;
        let cni_version = take_string(&obj, "cniVersion").unwrap_or_else(|| CNI_VERSION.into());
        let disable_check = obj.get("disableCheck").and_then(Value::as_bool) == Some(true);
        let Some(Value::Array(plugins)) = obj.remove("plugins") else {
            return Err(invalid("missing plugins list"));
        };
        if plugins.is_empty() {
            return Err(invalid("empty plugins list"));
        }
        let plugins = plugins
            .into_iter()
            .map(|p| match p {
                Value::Object(p) if take_string(&p, "type").is_some_and(|t| !t.is_empty()) => Ok(p),
                _ => Err(invalid("every plugin needs a string type")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            cni_version,
            disable_check,
            plugins,
        })
    }

    /// Parses a single-plugin `.conf` document into a one-plugin list.
    pub fn from_conf(value: Value, path: &Path) -> Result<Self, ConfigError> {
        let Value::Object(mut obj) = value else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: "not a JSON object".into(),
            });
        };
        let name = obj.get("name").cloned().unwrap_or(Value::Null);
        let version = obj.remove("cniVersion").unwrap_or(json!(CNI_VERSION));
        Self::from_conflist(
            json!({"name": name, "cniVersion": version, "plugins": [obj]}),
            path,
        )
    }

    /// The list as a `.conflist` document (what is cached for DEL).
    pub fn to_value(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    /// The plugin `type` at `index`.
    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins[index]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The stdin for plugin `index`: its config plus `name`, `cniVersion`,
    /// `prevResult` when given, and `runtimeConfig` holding those of
    /// `capability_args` the plugin declares in `capabilities`.
    pub fn plugin_stdin(
        &self,
        index: usize,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Vec<u8> {
        let mut conf = self.plugins[index].clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let mut runtime = Map::new();
        if let Some(Value::Object(caps)) = conf.get("capabilities") {
            for (cap, enabled) in caps {
                if enabled.as_bool() == Some(true) {
                    if let Some(arg) = capability_args.get(cap) {
                        runtime.insert(cap.clone(), arg.clone());
                    }
                }
            }
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        serde_json::to_vec(&conf).expect("a JSON map serializes")
    }
}

fn take_string(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Loads the first network config in `dir` by file name, as kubelet's
/// runtimes do: `*.conflist` as a list, `*.conf`/`*.json` as one plugin.
pub fn load_from_dir(dir: &Path) -> Result<NetworkConfigList, ConfigError> {
    let io = |path: &Path, source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
        })
        .collect();
    files.sort();
    let path = files
        .into_iter()
        .next()
        .ok_or_else(|| ConfigError::NoConfig(dir.to_path_buf()))?;
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|source| ConfigError::Json {
        path: path.clone(),
        source,
    })?;
    if path.extension().and_then(|e| e.to_str()) == Some("conflist") {
        NetworkConfigList::from_conflist(value, &path)
    } else {
        NetworkConfigList::from_conf(value, &path)
    }
}

/// The loopback network, run separately before the pod's network (as
/// kubelet's runtimes do) so `lo` is up in every sandbox.
pub fn loopback() -> NetworkConfigList {
    NetworkConfigList {
        name: "cni-loopback".into(),
        cni_version: CNI_VERSION.into(),
        disable_check: false,
        plugins: vec![json_obj(json!({"type": "loopback"}))],
    }
}

fn json_obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("literal objects only"),
    }
}

/// Parameters of the default node network: `bridge` + `host-local` over the
/// node's podCIDR, then `portmap` for hostPorts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// Network name (also names host-local's data dir and the cache files).
    pub name: String,
    /// The Linux bridge (at most 15 bytes), e.g. `cni0`.
    pub bridge: String,
    /// The node's podCIDR, e.g. `10.244.0.0/24`.
    pub pod_cidr: String,
    /// How traffic leaving the pod CIDR is masqueraded (needs iptables
    /// unless [`Masquerade::Off`]); [`Masquerade::PerPod`] sets bridge `ipMasq`.
    pub masquerade: Masquerade,
    /// Let a pod reach itself through a Service/hostPort (bridge `hairpinMode`).
    pub hairpin_mode: bool,
    /// Add `portmap` for hostPorts (needs iptables).
    pub port_map: bool,
    /// host-local's `dataDir`; its default (`/var/lib/cni/networks`) when `None`.
    pub ipam_data_dir: Option<PathBuf>,
    /// Interface MTU; the kernel default when `None`.
    pub mtu: Option<u32>,
}

impl DefaultNetwork {
    /// The defaults for a node with `pod_cidr`: network `rkube`, bridge
    /// `cni0`, node-level masquerade, hairpin and portmap on.
    pub fn new(pod_cidr: impl Into<String>) -> Self {
        Self {
            name: "rkube".into(),
            bridge: "cni0".into(),
            pod_cidr: pod_cidr.into(),
            masquerade: Masquerade::Node,
            hairpin_mode: true,
            port_map: true,
            ipam_data_dir: None,
            mtu: None,
        }
    }

    /// Builds the configuration list.
    pub fn generate(&self) -> Result<NetworkConfigList, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: PathBuf::from("<generated>"),
            reason,
        };
        let (addr, _) = parse_cidr(&self.pod_cidr)
            .ok_or_else(|| invalid(format!("podCIDR {:?} is not a CIDR", self.pod_cidr)))?;
        if self.bridge.is_empty() || self.bridge.len() > 15 || self.bridge.contains('/') {
            return Err(invalid(format!("bad bridge name {:?}", self.bridge)));
        }
        let default_route = if addr.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{"subnet": self.pod_cidr}]],
            "routes": [{"dst": default_route}],
        });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = json!(dir);
        }
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": self.masquerade == Masquerade::PerPod,
            "hairpinMode": self.hairpin_mode,
            "ipam": ipam,
        });
        if let Some(mtu) = self.mtu {
            bridge["mtu"] = json!(mtu);
        }
        let mut plugins = vec![json_obj(bridge)];
        if self.port_map {
            plugins.push(json_obj(json!({
                "type": "portmap",
                "snat": true,
                "capabilities": {"portMappings": true},
            })));
        }
        Ok(NetworkConfigList {
            name: self.name.clone(),
            cni_version: CNI_VERSION.into(),
            disable_check: false,
            plugins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdin_json(list: &NetworkConfigList, i: usize, prev: Option<&Value>, caps: &Value) -> Value {
        let caps = caps.as_object().unwrap().clone();
        serde_json::from_slice(&list.plugin_stdin(i, prev, &caps)).unwrap()
    }

    #[test]
    fn generates_the_default_node_network() {
        let list = DefaultNetwork::new("10.244.1.0/24").generate().unwrap();
        assert_eq!(
            list.to_value(),
            json!({
                "cniVersion": "1.0.0",
                "name": "rkube",
                "disableCheck": false,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": true,
                        "ipMasq": false,
                        "hairpinMode": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": "10.244.1.0/24"}]],
                            "routes": [{"dst": "0.0.0.0/0"}]
                        }
                    },
                    {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}
                ]
            })
        );
    }

    #[test]
    fn generation_options_and_validation() {
        let mut net = DefaultNetwork::new("fd00:10::/64");
        net.port_map = false;
        net.masquerade = Masquerade::PerPod;
        net.ipam_data_dir = Some("/tmp/ipam".into());
        net.mtu = Some(1400);
        let list = net.generate().unwrap();
        assert_eq!(list.plugins.len(), 1);
        let bridge = &list.plugins[0];
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["mtu"], 1400);
        assert_eq!(bridge["ipam"]["dataDir"], "/tmp/ipam");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "::/0");

        assert!(DefaultNetwork::new("10.0.0.0").generate().is_err());
        let mut long = DefaultNetwork::new("10.0.0.0/24");
        long.bridge = "a-very-long-bridge".into();
        assert!(long.generate().is_err());
    }

    #[test]
    fn plugin_stdin_injects_name_version_prev_result_and_runtime_config() {
        let list = DefaultNetwork::new("10.1.0.0/24").generate().unwrap();
        let caps = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                          "bandwidth": {"ingressRate": 1}});
        let bridge = stdin_json(&list, 0, None, &caps);
        assert_eq!(bridge["name"], "rkube");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("prevResult").is_none());
        assert!(
            bridge.get("runtimeConfig").is_none(),
            "bridge declares no capabilities"
        );

        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]});
        let portmap = stdin_json(&list, 1, Some(&prev), &caps);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );
        let none = stdin_json(&list, 1, None, &json!({}));
        assert!(none.get("runtimeConfig").is_none());
    }

    #[test]
    fn loads_the_first_config_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_from_dir(dir.path()),
            Err(ConfigError::NoConfig(_))
        ));
        std::fs::write(dir.path().join("README"), "not a config").unwrap();
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"0.4.0","name":"b","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"a","type":"bridge","bridge":"br9"}"#,
        )
        .unwrap();
        let list = load_from_dir(dir.path()).unwrap();
        assert_eq!((list.name.as_str(), list.plugin_type(0)), ("a", "bridge"));
        assert_eq!(list.plugins[0]["bridge"], "br9");
        assert!(list.plugins[0].get("cniVersion").is_none());

        std::fs::remove_file(dir.path().join("10-a.conf")).unwrap();
        let list = load_from_dir(dir.path()).unwrap();
        assert_eq!(
            (list.name.as_str(), list.cni_version.as_str()),
            ("b", "0.4.0")
        );
    }

    #[test]
    fn rejects_invalid_lists() {
        let p = Path::new("x.conflist");
        for bad in [
            json!([]),
            json!({"plugins": [{"type": "bridge"}]}),
            json!({"name": "n", "plugins": []}),
            json!({"name": "n", "plugins": [{"bridge": "x"}]}),
        ] {
            assert!(
                matches!(
                    NetworkConfigList::from_conflist(bad.clone(), p),
                    Err(ConfigError::Invalid { .. })
                ),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conflist"), "{").unwrap();
        assert!(matches!(
            load_from_dir(dir.path()),
            Err(ConfigError::Json { .. })
        ));
    }
}

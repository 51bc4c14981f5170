//! A container's environment as upstream's kubelet builds it: `envFrom`
//! (ConfigMaps and Secrets, with prefixes) first, then `env` in order, with
//! `valueFrom` (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef)
//! and `$(VAR)` references expanded against the variables defined before;
//! then `command` and `args` expanded against the result. Service
//! variables (see [`super::service_env`]) can be referred to by `$(VAR)`
//! and come last, unless the container defines the same name.
//!
//! Pure: the ConfigMaps, Secrets and Service variables the pod refers to
//! are gathered by the caller and passed in as [`EnvSources`].

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use rkube_api::quantity::Quantity;

/// Why a container's environment cannot be built (the container waits with
/// `CreateContainerConfigError` and this message, as upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("unsupported container resource: {0}")]
    Resource(String),
    #[error("invalid divisor {0:?}")]
    Divisor(String),
}

/// The objects and facts environment variables may refer to.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// ConfigMaps of the pod's namespace, by name (absent: not found).
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets of the pod's namespace, by name (absent: not found).
    pub secrets: HashMap<String, Secret>,
    pub pod_ip: String,
    pub host_ip: String,
    /// The node's allocatable cpu and memory, used for resourceFieldRef
    /// limits the container does not set.
    pub node_allocatable: HashMap<String, Quantity>,
    /// The service environment variables of the pod's namespace.
    pub service_env: BTreeMap<String, String>,
}

/// The environment of one container, in order, plus invalid names skipped
/// (upstream reports them in an `InvalidEnvironmentVariableNames` event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    pub invalid_names: Vec<String>,
    /// For each invalid name, its envFrom source (`configMap ns/name` or
    /// `secret ns/name`), as upstream's event names it.
    pub invalid_sources: Vec<String>,
}

impl Environment {
    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `NAME=value` strings for an OCI process.
    pub fn to_strings(&self) -> Vec<String> {
        self.vars.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

/// Whether `name` is a valid environment variable name (upstream's
/// `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || "-._".contains(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Expands `$(VAR)` in `input` with `lookup`; `$$` is an escaped `$`;
/// references to unknown variables and malformed ones are kept as written
/// (upstream's `expansion.Expand`).
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[last..i]);
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(end) => {
                        let name = &input[i + 2..i + 2 + end];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i += 2 + end + 1;
                    }
                    None => {
                        out.push_str(&input[i..]);
                        i = bytes.len();
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&input[last.min(input.len())..]);
    out
}

fn bytes_to_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A key of an env source object: the value, `None` when `optional`
/// allows what is missing, else the error for a missing object or key.
fn source_value(
    found: Option<Option<String>>,
    optional: bool,
    not_found: impl FnOnce() -> EnvError,
    no_key: impl FnOnce() -> EnvError,
) -> Result<Option<String>, EnvError> {
    match found {
        Some(Some(v)) => Ok(Some(v)),
        _ if optional => Ok(None),
        None => Err(not_found()),
        Some(None) => Err(no_key()),
    }
}

fn config_map_value(
    src: &EnvSources,
    ns: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, EnvError> {
    let found = src.config_maps.get(name).map(|cm| {
        let data = cm.data.as_ref().and_then(|d| d.get(key)).cloned();
        data.or_else(|| {
            let bin = cm.binary_data.as_ref().and_then(|d| d.get(key));
            bin.map(|v| bytes_to_string(&v.0))
        })
    });
    source_value(
        found,
        optional,
        || EnvError::ConfigMapNotFound(name.into()),
        || EnvError::ConfigMapKey {
            key: key.into(),
            namespace: ns.into(),
            name: name.into(),
        },
    )
}

fn secret_value(
    src: &EnvSources,
    ns: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, EnvError> {
    let found = src.secrets.get(name).map(|s| {
        let data = s.data.as_ref().and_then(|d| d.get(key));
        data.map(|v| bytes_to_string(&v.0))
            .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key)).cloned())
    });
    source_value(
        found,
        optional,
        || EnvError::SecretNotFound(name.into()),
        || EnvError::SecretKey {
            key: key.into(),
            namespace: ns.into(),
            name: name.into(),
        },
    )
}

/// The value of a downward-API `fieldPath` for `pod`.
pub fn field_value(pod: &Pod, path: &str, src: &EnvSources) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    let map_lines = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map_lines(meta.labels.as_ref()),
        "metadata.annotations" => map_lines(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => src.host_ip.clone(),
        "status.podIP" | "status.podIPs" => src.pod_ip.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(EnvError::FieldPath(path.into()));
            }
        }
    })
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`,
/// ...) with its divisor: rounded up, as upstream; an unset limit is the
/// node's allocatable.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    src: &EnvSources,
) -> Result<String, EnvError> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::Resource(resource.into()))?;
    if !matches!(kind, "limits" | "requests")
        || !matches!(name, "cpu" | "memory" | "ephemeral-storage")
    {
        return Err(EnvError::Resource(resource.into()));
    }
    let res = container.resources.as_ref();
    let given = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        _ => res.and_then(|r| r.requests.as_ref()),
    }
    .and_then(|m| m.get(name))
    .and_then(|q| Quantity::parse(&q.0).ok());
    let value = match given {
        Some(q) => q,
        None if kind == "limits" => src
            .node_allocatable
            .get(name)
            .cloned()
            .unwrap_or_else(|| Quantity::from_milli(0)),
        None => Quantity::from_milli(0),
    };
    let divisor = match divisor {
        Some(d) if !d.is_empty() => Quantity::parse(d).map_err(|_| EnvError::Divisor(d.into()))?,
        _ => Quantity::parse("1").map_err(|_| EnvError::Divisor("1".into()))?,
    };
    let div = divisor.milli_value();
    if div <= 0 {
        return Err(EnvError::Divisor(divisor.canonical()));
    }
    let v = value.milli_value();
    let out = (v + div - 1).div_euclid(div);
    Ok(out.to_string())
}

/// Builds the environment of `container` of `pod`.
pub fn build(pod: &Pod, container: &Container, src: &EnvSources) -> Result<Environment, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = Environment::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let source = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => format!("configMap {ns}/{}", r.name),
            (None, Some(r)) => format!("secret {ns}/{}", r.name),
            (None, None) => String::new(),
        };
        let pairs: Vec<(String, String)> = if let Some(r) = &from.config_map_ref {
            match src.config_maps.get(&r.name) {
                Some(cm) => {
                    let mut v: Vec<(String, String)> = cm
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    v.extend(
                        cm.binary_data
                            .iter()
                            .flatten()
                            .map(|(k, b)| (k.clone(), bytes_to_string(&b.0))),
                    );
                    v
                }
                None if r.optional == Some(true) => Vec::new(),
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match src.secrets.get(&r.name) {
                Some(s) => s
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, b)| (k.clone(), bytes_to_string(&b.0)))
                    .collect(),
                None if r.optional == Some(true) => Vec::new(),
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            Vec::new()
        };
        for (k, v) in pairs {
            let name = format!("{prefix}{k}");
            if is_env_var_name(&name) {
                env.set(name, v);
            } else {
                env.invalid_names.push(name);
                env.invalid_sources.push(source.clone());
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = env_var_value(pod, container, var, ns, src, &env)? {
            env.set(var.name.clone(), value);
        }
    }
    // Upstream appends the service variables the container does not define.
    for (k, v) in &src.service_env {
        if env.get(k).is_none() {
            env.vars.push((k.clone(), v.clone()));
        }
    }
    Ok(env)
}

fn env_var_value(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    ns: &str,
    src: &EnvSources,
    env: &Environment,
) -> Result<Option<String>, EnvError> {
    let Some(from) = &var.value_from else {
        let raw = var.value.as_deref().unwrap_or("");
        let lookup = |n: &str| {
            env.get(n)
                .or_else(|| src.service_env.get(n).map(String::as_str))
                .map(str::to_string)
        };
        return Ok(Some(expand(raw, &lookup)));
    };
    if let Some(r) = &from.config_map_key_ref {
        return config_map_value(src, ns, &r.name, &r.key, r.optional == Some(true));
    }
    if let Some(r) = &from.secret_key_ref {
        return secret_value(src, ns, &r.name, &r.key, r.optional == Some(true));
    }
    if let Some(r) = &from.field_ref {
        return field_value(pod, &r.field_path, src).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
        return resource_value(container, &r.resource, divisor, src).map(Some);
    }
    Ok(None)
}

/// The process arguments: the container's `command` (else the image's
/// entrypoint) and `args` (else, only without `command`, the image's cmd),
/// with `$(VAR)` expanded against `env` — upstream's rules.
pub fn process_args(
    container: &Container,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &Environment,
) -> Vec<String> {
    let lookup = |n: &str| env.get(n).map(str::to_string);
    let command: Vec<String> = match &container.command {
        Some(c) if !c.is_empty() => c.iter().map(|s| expand(s, &lookup)).collect(),
        _ => image_entrypoint.to_vec(),
    };
    let args: Vec<String> = match (&container.command, &container.args) {
        (_, Some(a)) if !a.is_empty() => a.iter().map(|s| expand(s, &lookup)).collect(),
        (Some(c), _) if !c.is_empty() => Vec::new(),
        _ => image_cmd.to_vec(),
    };
    command.into_iter().chain(args).collect()
}

#[cfg(test)]
mod tests;

//! The scheduler's configuration file, in upstream's
//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`) shape,
//! and how it becomes profiles, as upstream does it:
//!
//! 1. **Defaulting**: each profile's plugin sets are merged with the
//!    defaults (all in `multiPoint`): a default plugin stays at its place
//!    unless disabled (`*` disables all defaults of that set); a custom
//!    entry of the same name replaces it there (with its weight); other
//!    custom entries are appended.
//! 2. **Expansion**: each `multiPoint` plugin joins every extension point
//!    it implements, unless disabled at that point. At each point the
//!    plugins named there that are also in `multiPoint` come first (in the
//!    point's order), then the `multiPoint` ones, then the point's others.
//!    A Score plugin's weight is the one given at `score`, else at
//!    `multiPoint`; 0 means 1.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use crate::plugins::{self, Extensions, Handle, PluginError};
use crate::profile::{Profile, ProfileError, DEFAULT_SCHEDULER_NAME};

/// The API version and kind of the file.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";

/// Errors of reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("decoding the scheduler configuration: {0}")]
    Decode(String),
    #[error("apiVersion {0:?} is not supported (want {API_VERSION})")]
    ApiVersion(String),
    #[error("kind {0:?} is not supported (want {KIND})")]
    Kind(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// One plugin in a set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Enabled and disabled plugins at one extension point.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// The extension points, in upstream's field names.
pub const POINTS: &[&str] = &[
    "preEnqueue",
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
];

/// `profiles[].plugins`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub multi_point: PluginSet,
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
}

impl Plugins {
    fn point(&self, name: &str) -> &PluginSet {
        match name {
            "preEnqueue" => &self.pre_enqueue,
            "queueSort" => &self.queue_sort,
            "preFilter" => &self.pre_filter,
            "filter" => &self.filter,
            "postFilter" => &self.post_filter,
            "preScore" => &self.pre_score,
            "score" => &self.score,
            "reserve" => &self.reserve,
            "permit" => &self.permit,
            "preBind" => &self.pre_bind,
            "bind" => &self.bind,
            "postBind" => &self.post_bind,
            _ => &self.multi_point,
        }
    }
}

/// `profiles[].pluginConfig[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

/// One profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// `leaderElection` (upstream's `LeaderElectionConfiguration`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    #[serde(default = "yes")]
    pub leader_elect: bool,
    #[serde(default = "lease_duration")]
    pub lease_duration: String,
    #[serde(default = "renew_deadline")]
    pub renew_deadline: String,
    #[serde(default = "retry_period")]
    pub retry_period: String,
    #[serde(default = "resource_lock")]
    pub resource_lock: String,
    #[serde(default = "resource_name")]
    pub resource_name: String,
    #[serde(default = "resource_namespace")]
    pub resource_namespace: String,
}

fn yes() -> bool {
    true
}
fn lease_duration() -> String {
    "15s".into()
}
fn renew_deadline() -> String {
    "10s".into()
}
fn retry_period() -> String {
    "2s".into()
}
fn resource_lock() -> String {
    "leases".into()
}
fn resource_name() -> String {
    "kube-scheduler".into()
}
fn resource_namespace() -> String {
    "kube-system".into()
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            leader_elect: true,
            lease_duration: lease_duration(),
            renew_deadline: renew_deadline(),
            retry_period: retry_period(),
            resource_lock: resource_lock(),
            resource_name: resource_name(),
            resource_namespace: resource_namespace(),
        }
    }
}

/// The whole file. Fields upstream has that rkube does not use
/// (`clientConnection`, `parallelism`, profiling, bind addresses) are
/// accepted and ignored; unknown fields are errors, as upstream's strict
/// decoding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub parallelism: Option<i32>,
    #[serde(default)]
    pub leader_election: LeaderElection,
    #[serde(default)]
    pub client_connection: Option<Value>,
    #[serde(default)]
    pub healthz_bind_address: Option<String>,
    #[serde(default)]
    pub metrics_bind_address: Option<String>,
    #[serde(default)]
    pub enable_profiling: Option<bool>,
    #[serde(default)]
    pub enable_contention_profiling: Option<bool>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pub pod_initial_backoff_seconds: Option<i64>,
    #[serde(default)]
    pub pod_max_backoff_seconds: Option<i64>,
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
    #[serde(default)]
    pub extenders: Vec<Value>,
    #[serde(default)]
    pub delay_cache_until_active: Option<bool>,
}

/// Parses a duration such as `15s`, `1m30s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

impl Config {
    /// Reads and validates a YAML (or JSON) file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and validates the text of a configuration.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?;
        if c.api_version != API_VERSION {
            return Err(ConfigError::ApiVersion(c.api_version));
        }
        if c.kind != KIND {
            return Err(ConfigError::Kind(c.kind));
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let pct_ok = |p: Option<i32>| p.is_none_or(|p| (0..=100).contains(&p));
        if !pct_ok(self.percentage_of_nodes_to_score) {
            return bad(
                "percentageOfNodesToScore: Invalid value: not in valid range [0-100]".into(),
            );
        }
        if !self.extenders.is_empty() {
            return bad("extenders: Unsupported value: rkube has no scheduler extenders".into());
        }
        let le = &self.leader_election;
        for (f, v) in [
            ("leaseDuration", &le.lease_duration),
            ("renewDeadline", &le.renew_deadline),
            ("retryPeriod", &le.retry_period),
        ] {
            if parse_duration(v).is_none_or(|d| d.is_zero()) {
                return bad(format!("leaderElection.{f}: Invalid value: {v:?}"));
            }
        }
        if le.resource_lock != "leases" {
            return bad(format!(
                "leaderElection.resourceLock: Unsupported value: {:?}: supported values: \"leases\"",
                le.resource_lock
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.profiles.iter().enumerate() {
            let name = p
                .scheduler_name
                .as_deref()
                .unwrap_or(DEFAULT_SCHEDULER_NAME);
            if name.is_empty() {
                return bad(format!("profiles[{i}].schedulerName: Required value"));
            }
            if !names.insert(name) {
                return bad(format!(
                    "profiles[{i}].schedulerName: Duplicate value: {name:?}"
                ));
            }
            if !pct_ok(p.percentage_of_nodes_to_score) {
                return bad(format!(
                    "profiles[{i}].percentageOfNodesToScore: Invalid value: not in valid range [0-100]"
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for (j, pc) in p.plugin_config.iter().enumerate() {
                if !seen.insert(pc.name.as_str()) {
                    return bad(format!(
                        "profiles[{i}].pluginConfig[{j}]: Duplicate value: {:?}",
                        pc.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The profiles (the default one when none is configured).
    pub fn build_profiles(&self, handle: &Handle) -> Result<Vec<Profile>, ConfigError> {
        let defaults = [ProfileConfig::default()];
        let configs: &[ProfileConfig] = if self.profiles.is_empty() {
            &defaults
        } else {
            &self.profiles
        };
        let mut out = Vec::new();
        for pc in configs {
            let mut p = build_profile(pc, handle)?;
            p.percentage_of_nodes_to_score = pc
                .percentage_of_nodes_to_score
                .or(self.percentage_of_nodes_to_score)
                .filter(|p| *p > 0)
                .map(|p| p as u32);
            out.push(p);
        }
        // Upstream: every profile must use the same QueueSort plugin.
        if let Some(first) = out.first() {
            let q = first.queue_sort.name();
            if let Some(other) = out.iter().find(|p| p.queue_sort.name() != q) {
                return Err(ConfigError::Invalid(format!(
                    "profiles[].plugins.queueSort: Invalid value: {:?}: queueSort must be the same for all profiles",
                    other.queue_sort.name()
                )));
            }
        }
        Ok(out)
    }
}

/// Upstream's `mergePluginSet`.
fn merge(default: &PluginSet, custom: &PluginSet) -> Vec<PluginRef> {
    let all_disabled = custom.disabled.iter().any(|p| p.name == "*");
    let disabled = |n: &str| all_disabled || custom.disabled.iter().any(|p| p.name == n);
    let mut out: Vec<PluginRef> = Vec::new();
    for d in &default.enabled {
        if disabled(&d.name) {
            continue;
        }
        match custom.enabled.iter().find(|c| c.name == d.name) {
            Some(c) => out.push(c.clone()),
            None => out.push(d.clone()),
        }
    }
    for c in &custom.enabled {
        if !out.iter().any(|o| o.name == c.name) {
            out.push(c.clone());
        }
    }
    out
}

fn implements(e: &Extensions, point: &str) -> bool {
    match point {
        "preEnqueue" => e.pre_enqueue.is_some(),
        "queueSort" => e.queue_sort.is_some(),
        "preFilter" => e.pre_filter.is_some(),
        "filter" => e.filter.is_some(),
        "postFilter" => e.post_filter.is_some(),
        "preScore" => e.pre_score.is_some(),
        "score" => e.score.is_some(),
        "reserve" => e.reserve.is_some(),
        "permit" => e.permit.is_some(),
        "preBind" => e.pre_bind.is_some(),
        "bind" => e.bind.is_some(),
        "postBind" => e.post_bind.is_some(),
        _ => false,
    }
}

/// Args for a plugin: `pluginConfig` minus `apiVersion`/`kind`.
fn args_of(pc: &ProfileConfig, name: &str) -> Value {
    let mut v = pc
        .plugin_config
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.args.clone())
        .unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

pub(crate) fn build_profile(pc: &ProfileConfig, handle: &Handle) -> Result<Profile, ConfigError> {
    let name = pc
        .scheduler_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string());
    let custom = pc.plugins.clone().unwrap_or_default();
    let default_mp = PluginSet {
        enabled: plugins::DEFAULT_PLUGINS
            .iter()
            .map(|(n, w)| PluginRef {
                name: n.to_string(),
                weight: Some(*w),
            })
            .collect(),
        disabled: Vec::new(),
    };
    let multi = merge(&default_mp, &custom.multi_point);
    let specific: BTreeMap<&str, Vec<PluginRef>> = POINTS
        .iter()
        .map(|p| (*p, merge(&PluginSet::default(), custom.point(p))))
        .collect();
    // Build every plugin named anywhere once.
    let mut built: HashMap<String, Extensions> = HashMap::new();
    for r in multi.iter().chain(specific.values().flatten()) {
        if built.contains_key(&r.name) {
            continue;
        }
        let f = plugins::factory(&r.name).ok_or_else(|| PluginError::Unknown(r.name.clone()))?;
        built.insert(r.name.clone(), f(&args_of(pc, &r.name), handle)?);
    }
    let mut points: BTreeMap<&'static str, Vec<(String, i64)>> = BTreeMap::new();
    for point in POINTS {
        let own = &specific[point];
        let disabled_here = custom.point(point).disabled.iter();
        let all_disabled = disabled_here.clone().any(|p| p.name == "*");
        let mut list: Vec<(String, i64)> = Vec::new();
        let weight_of = |r: &PluginRef, mp: Option<&PluginRef>| {
            let w = r.weight.or(mp.and_then(|m| m.weight)).unwrap_or(0);
            if w == 0 {
                1
            } else {
                w
            }
        };
        // Part 1: the point's own plugins that are also multi-point.
        for r in own
            .iter()
            .filter(|r| multi.iter().any(|m| m.name == r.name))
        {
            let mp = multi.iter().find(|m| m.name == r.name);
            list.push((r.name.clone(), weight_of(r, mp)));
        }
        // Part 2: multi-point plugins implementing the point.
        for m in &multi {
            let off = all_disabled || disabled_here.clone().any(|d| d.name == m.name);
            if off || list.iter().any(|(n, _)| *n == m.name) || !implements(&built[&m.name], point)
            {
                continue;
            }
            list.push((m.name.clone(), weight_of(m, None)));
        }
        // Part 3: the point's other plugins.
        for r in own {
            if !list.iter().any(|(n, _)| *n == r.name) {
                list.push((r.name.clone(), weight_of(r, None)));
            }
        }
        for (n, _) in &list {
            if !implements(&built[n], point) {
                return Err(PluginError::NotAt {
                    plugin: n.clone(),
                    point,
                }
                .into());
            }
        }
        points.insert(point, list);
    }
    Ok(Profile::from_points(&name, &points, &built)?)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

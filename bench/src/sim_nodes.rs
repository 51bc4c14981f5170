//! Scenario `sim-nodes`: one `rkube agent --simulate N` process (N simulated
//! nodes, KWOK-style) against the real `rkube server`.
//!
//! 1. A Node watch is opened, then the agent is spawned; the time from the
//!    spawn until every Node `{prefix}i` is Ready (Ready condition True) and
//!    until every one has a `spec.podCIDR` (set by the server's node IPAM
//!    controller) is measured.
//! 2. Steady state without pods: CPU (utime + stime from `/proc/PID/stat`) of
//!    the agent and the server over a window, their VmRSS, and how many node
//!    Leases in `kube-node-lease` are fresh.
//! 3. A pod watch is opened, then P pods are created in namespace default
//!    with `spec.nodeName = {prefix}(i % N)` through the shared client; the
//!    watch records, per pod, when it was ADDED and when it first reported
//!    `status.phase=Running`, and checks every pod IP (present, inside its
//!    node's podCIDR, unique).
//! 4. Settling: a watcher that fell behind during the burst (410 Gone)
//!    re-lists every pod page by page; the harness waits until the server
//!    (its `/metrics` request counters) has served no pod list page for 10 s.
//! 5. Steady state with every pod Running: CPU and memory again.
//! 6. One paginated list of every pod (limit 500, as kube-runtime's watcher
//!    re-lists) is timed while the node Leases keep the revision moving.
//!
//! Every window and phase also reports the requests the server served
//! (`apiserver_request_total` differences).
//!
//! Both watches are small list-then-watch loops like client-go's reflector:
//! a paginated list, then a watch from its resourceVersion, resumed from the
//! last resourceVersion seen when the stream ends and re-listed on 410 Gone.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::AsyncBufReadExt;
use k8s_openapi::api::coordination::v1::Lease;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::agent_proc::Agent;
use crate::list_pods::{get, paginated_list, query_escape};
use crate::load::{create_loop, one_line, BodyFn, CreateLoad};
use crate::procs::{cpu_time, mib, stat_path, CpuMeter, Memory, RkubeServer};
use crate::stats::{nanos, thousands, Summary};
use crate::{Env, Row, Verdict};

/// Target: every node Ready within this long of spawning the agent.
const TARGET_READY: Duration = Duration::from_secs(60);
/// Target: the agent's steady-state CPU, in cores.
const TARGET_AGENT_CORES: f64 = 0.25;
/// Target: the agent's VmRSS, 500 MB (decimal).
const TARGET_AGENT_BYTES: u64 = 500_000_000;
/// Target: the server's VmRSS with every pod Running, 4 GB (decimal).
const TARGET_SERVER_BYTES: u64 = 4_000_000_000;

/// Give up waiting for the nodes after this long.
const NODES_TIMEOUT: Duration = Duration::from_secs(600);
/// Creating the pods may take at most this long.
const MAX_CREATE_TIME: Duration = Duration::from_secs(1800);
/// Give up waiting for Running pods after this long without progress.
const RUNNING_STALL: Duration = Duration::from_secs(180);
/// Give up waiting for Running pods after this long in all.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(3600);
/// Wait at most this long for pod re-lists to end before the last window.
const SETTLE_MAX: Duration = Duration::from_secs(600);
/// Page size of the reflectors' lists.
const LIST_PAGE: u64 = 500;
/// Names of the pods: `sp-0`, `sp-1`, ...
const POD_PREFIX: &str = "sp-";

/// Arguments of `sim-nodes`.
#[derive(Clone, Debug)]
pub struct SimArgs {
    pub nodes: u64,
    pub pods: u64,
    pub window_seconds: u64,
    pub concurrency: usize,
    /// `--node-name-prefix` of the agent.
    pub prefix: String,
    /// `RKUBE_LOG` of the agent.
    pub agent_log: String,
}

// ---------------------------------------------------------------------------
// A minimal reflector over raw list/watch requests.

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Meta {
    pub(crate) name: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// The parts of an object a tracker reads; everything else is skipped.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, St: Deserialize<'de>"))]
pub(crate) struct Obj<S, St> {
    #[serde(default)]
    pub(crate) metadata: Meta,
    #[serde(default)]
    pub(crate) spec: Option<S>,
    #[serde(default)]
    pub(crate) status: Option<St>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct WatchEvent<T> {
    #[serde(rename = "type")]
    kind: String,
    object: T,
}

#[derive(Deserialize)]
struct ErrorEvent {
    #[serde(rename = "type")]
    kind: String,
    object: StatusObj,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusObj {
    code: Option<u16>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct ListOf<T> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// How an object reached a tracker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Listed,
    Added,
    Modified,
    Deleted,
}

/// Keeps whatever it needs from the objects of one collection.
pub(crate) trait Tracker: Send + 'static {
    type Spec: DeserializeOwned + Send;
    type Status: DeserializeOwned + Send;
    fn apply(&mut self, obj: Obj<Self::Spec, Self::Status>, change: Change, now: Instant);
}

/// What a reflector did.
#[derive(Default)]
pub(crate) struct WatchStats {
    lists: u64,
    events: u64,
    bytes: u64,
    /// Watch streams that ended and were resumed.
    resumes: u64,
    pub(crate) errors: u64,
    first_errors: Vec<String>,
}

impl WatchStats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            eprintln!("rkube-bench: watch: {}", one_line(&e, 300));
            self.first_errors.push(e);
        }
    }

    pub(crate) fn describe(&self, what: &str) -> String {
        let mut s = format!(
            "{what} watch: {} events, {:.1} MiB, {} list(s), {} resume(s), {} error(s)",
            thousands(self.events),
            self.bytes as f64 / 1048576.0,
            self.lists,
            self.resumes,
            self.errors
        );
        if let Some(e) = self.first_errors.first() {
            s.push_str(&format!(" (first: {})", one_line(e, 200)));
        }
        s
    }
}

/// A tracker and its reflector's statistics, shared with the scenario.
pub(crate) struct Shared<T> {
    pub(crate) t: T,
    pub(crate) stats: WatchStats,
}

pub(crate) type SharedRef<T> = Arc<Mutex<Shared<T>>>;

/// Lists `path` page by page, applying every item; returns the list's
/// resourceVersion.
async fn list_into<T: Tracker>(
    client: &kube::Client,
    path: &str,
    shared: &SharedRef<T>,
) -> anyhow::Result<String> {
    let mut token: Option<String> = None;
    for _ in 0..100_000 {
        let url = match &token {
            None => format!("{path}?limit={LIST_PAGE}"),
            Some(c) => format!("{path}?limit={LIST_PAGE}&continue={}", query_escape(c)),
        };
        let text = get(client, &url).await?;
        let page: ListOf<Obj<T::Spec, T::Status>> =
            serde_json::from_str(&text).with_context(|| format!("parsing the list {url}"))?;
        let now = Instant::now();
        {
            let mut s = shared.lock().expect("lock");
            for item in page.items {
                s.t.apply(item, Change::Listed, now);
            }
        }
        token = page.metadata.continue_token.filter(|c| !c.is_empty());
        if token.is_none() {
            shared.lock().expect("lock").stats.lists += 1;
            return page
                .metadata
                .resource_version
                .context("the list has no resourceVersion");
        }
    }
    bail!("pagination of {path} did not end")
}

/// List, then watch from the list's resourceVersion, forever (the task is
/// aborted at the end). `ready` fires once the first watch is open.
async fn reflect<T: Tracker>(
    client: kube::Client,
    path: &'static str,
    shared: SharedRef<T>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut rv: Option<String> = None;
    let mut line = Vec::with_capacity(16 * 1024);
    loop {
        let from = match &rv {
            Some(rv) => rv.clone(),
            None => match list_into(&client, path, &shared).await {
                Ok(r) => {
                    rv = Some(r.clone());
                    r
                }
                Err(e) => {
                    shared
                        .lock()
                        .expect("lock")
                        .stats
                        .error(format!("list: {e:#}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let req = http::Request::get(format!(
            "{path}?watch=1&resourceVersion={from}&timeoutSeconds=3600"
        ))
        .body(Vec::new())
        .expect("valid request");
        let stream =
            match tokio::time::timeout(Duration::from_secs(60), client.request_stream(req)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared
                        .lock()
                        .expect("lock")
                        .stats
                        .error(format!("opening the watch: {e}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(_) => {
                    shared
                        .lock()
                        .expect("lock")
                        .stats
                        .error("opening the watch timed out after 60 s".into());
                    continue;
                }
            };
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        }
        let mut stream = std::pin::pin!(stream);
        loop {
            line.clear();
            match stream.read_until(b'\n', &mut line).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    shared
                        .lock()
                        .expect("lock")
                        .stats
                        .error(format!("reading the watch: {e}"));
                    break;
                }
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let now = Instant::now();
            let mut s = shared.lock().expect("lock");
            s.stats.bytes += line.len() as u64;
            match serde_json::from_slice::<WatchEvent<Obj<T::Spec, T::Status>>>(&line) {
                Ok(ev) => {
                    s.stats.events += 1;
                    if let Some(r) = &ev.object.metadata.resource_version {
                        rv = Some(r.clone());
                    }
                    let change = match ev.kind.as_str() {
                        "ADDED" => Change::Added,
                        "MODIFIED" => Change::Modified,
                        "DELETED" => Change::Deleted,
                        _ => continue, // BOOKMARK
                    };
                    s.t.apply(ev.object, change, now);
                }
                Err(parse_err) => match serde_json::from_slice::<ErrorEvent>(&line) {
                    Ok(ev) if ev.kind == "ERROR" => {
                        let code = ev.object.code.unwrap_or(0);
                        s.stats.error(format!(
                            "ERROR event {code}: {}",
                            ev.object.message.unwrap_or_default()
                        ));
                        if code == 410 {
                            rv = None;
                        }
                        break;
                    }
                    _ => {
                        let text = String::from_utf8_lossy(&line);
                        s.stats
                            .error(format!("bad event ({parse_err}): {}", one_line(&text, 200)));
                    }
                },
            }
        }
        shared.lock().expect("lock").stats.resumes += 1;
    }
}

/// Starts a reflector and waits (up to 60 s) until its watch is open.
pub(crate) async fn start_reflector<T: Tracker>(
    client: &kube::Client,
    path: &'static str,
    shared: &SharedRef<T>,
) -> anyhow::Result<JoinHandle<()>> {
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(reflect(client.clone(), path, shared.clone(), tx));
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(())) => Ok(task),
        _ => {
            task.abort();
            let errs = shared.lock().expect("lock").stats.first_errors.join("; ");
            bail!("could not open the {path} watch within 60 s: {errs}")
        }
    }
}

/// `i` from `{prefix}{i}` when `i < n`.
pub(crate) fn index_of(name: Option<&str>, prefix: &str, n: usize) -> Option<usize> {
    let i: usize = name?.strip_prefix(prefix)?.parse().ok()?;
    (i < n).then_some(i)
}

/// An IPv4 CIDR as (network, mask).
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, mask))
}

// ---------------------------------------------------------------------------
// Nodes.

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeSpec {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeStatus {
    conditions: Option<Vec<Condition>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Condition {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

/// Which of the expected nodes exist, are Ready and have a pod CIDR.
struct Nodes {
    prefix: String,
    seen: Vec<bool>,
    ready: Vec<bool>,
    cidr: Vec<Option<(u32, u32)>>,
    seen_count: usize,
    ready_count: usize,
    cidr_count: usize,
    all_seen_at: Option<Instant>,
    all_ready_at: Option<Instant>,
    all_cidr_at: Option<Instant>,
    /// Ready → not Ready transitions.
    lost_ready: u64,
    /// Node updates (MODIFIED) since the counter was last reset.
    updates: u64,
    /// Nodes not named `{prefix}i`, or CIDRs that do not parse.
    unexpected: u64,
}

impl Nodes {
    fn new(n: usize, prefix: &str) -> Nodes {
        Nodes {
            prefix: prefix.to_string(),
            seen: vec![false; n],
            ready: vec![false; n],
            cidr: vec![None; n],
            seen_count: 0,
            ready_count: 0,
            cidr_count: 0,
            all_seen_at: None,
            all_ready_at: None,
            all_cidr_at: None,
            lost_ready: 0,
            updates: 0,
            unexpected: 0,
        }
    }
}

impl Tracker for Nodes {
    type Spec = NodeSpec;
    type Status = NodeStatus;

    fn apply(&mut self, obj: Obj<NodeSpec, NodeStatus>, change: Change, now: Instant) {
        let n = self.seen.len();
        let Some(i) = index_of(obj.metadata.name.as_deref(), &self.prefix, n) else {
            self.unexpected += 1;
            return;
        };
        if change == Change::Modified {
            self.updates += 1;
        }
        if change == Change::Deleted {
            return;
        }
        if !self.seen[i] {
            self.seen[i] = true;
            self.seen_count += 1;
            if self.seen_count == n {
                self.all_seen_at.get_or_insert(now);
            }
        }
        let ready = obj
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.kind.as_deref() == Some("Ready") && c.status.as_deref() == Some("True"));
        if ready != self.ready[i] {
            self.ready[i] = ready;
            if ready {
                self.ready_count += 1;
                if self.ready_count == n {
                    self.all_ready_at.get_or_insert(now);
                }
            } else {
                self.ready_count -= 1;
                self.lost_ready += 1;
            }
        }
        if let Some(c) = obj.spec.and_then(|s| s.pod_cidr) {
            match parse_cidr(&c) {
                Some(c) => {
                    if self.cidr[i].is_none() {
                        self.cidr_count += 1;
                        if self.cidr_count == n {
                            self.all_cidr_at.get_or_insert(now);
                        }
                    }
                    self.cidr[i] = Some(c);
                }
                None => self.unexpected += 1,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Pods.

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodSpec {}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
}

const PENDING: u8 = 1;
const RUNNING: u8 = 2;
const SUCCEEDED: u8 = 3;
const FAILED: u8 = 4;
const OTHER: u8 = 5;

/// Per pod: phase, when it was ADDED and when it first ran; IP checks.
struct Pods {
    nodes: usize,
    /// Pod CIDR of each node.
    cidrs: Arc<Vec<Option<(u32, u32)>>>,
    phase: Vec<u8>,
    added_at: Vec<Option<Instant>>,
    /// Watch ADDED → first Running, ns.
    start_latency: Vec<u64>,
    ran: Vec<bool>,
    running_count: usize,
    ran_count: usize,
    first_running_at: Option<Instant>,
    all_running_at: Option<Instant>,
    last_progress_at: Instant,
    /// Running → another phase.
    left_running: u64,
    /// Running without a podIP.
    no_ip: u64,
    /// podIP outside the pod CIDR of the pod's node (or no CIDR known).
    outside_cidr: u64,
    duplicate_ip: u64,
    ips: HashSet<u32>,
    updates: u64,
    unexpected: u64,
}

impl Pods {
    fn new(n: usize, nodes: usize, cidrs: Arc<Vec<Option<(u32, u32)>>>) -> Pods {
        Pods {
            nodes,
            cidrs,
            phase: vec![0; n],
            added_at: vec![None; n],
            start_latency: Vec::with_capacity(n),
            ran: vec![false; n],
            running_count: 0,
            ran_count: 0,
            first_running_at: None,
            all_running_at: None,
            last_progress_at: Instant::now(),
            left_running: 0,
            no_ip: 0,
            outside_cidr: 0,
            duplicate_ip: 0,
            ips: HashSet::with_capacity(n),
            updates: 0,
            unexpected: 0,
        }
    }

    fn count(&self, phase: u8) -> usize {
        self.phase.iter().filter(|&&p| p == phase).count()
    }

    fn check_ip(&mut self, i: usize, ip: Option<&str>) {
        let Some(ip) = ip.and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
            self.no_ip += 1;
            return;
        };
        let ip = u32::from(ip);
        match self.cidrs.get(i % self.nodes.max(1)).copied().flatten() {
            Some((net, mask)) if ip & mask == net => {}
            _ => self.outside_cidr += 1,
        }
        if !self.ips.insert(ip) {
            self.duplicate_ip += 1;
        }
    }
}

impl Tracker for Pods {
    type Spec = PodSpec;
    type Status = PodStatus;

    fn apply(&mut self, obj: Obj<PodSpec, PodStatus>, change: Change, now: Instant) {
        let n = self.phase.len();
        let Some(i) = index_of(obj.metadata.name.as_deref(), POD_PREFIX, n) else {
            self.unexpected += 1;
            return;
        };
        match change {
            Change::Modified => self.updates += 1,
            Change::Deleted => {
                self.unexpected += 1;
                return;
            }
            Change::Listed | Change::Added => {}
        }
        if self.added_at[i].is_none() {
            self.added_at[i] = Some(now);
        }
        let status = obj.status.unwrap_or_default();
        let phase = match status.phase.as_deref() {
            None | Some("Pending") => PENDING,
            Some("Running") => RUNNING,
            Some("Succeeded") => SUCCEEDED,
            Some("Failed") => FAILED,
            Some(_) => OTHER,
        };
        let before = self.phase[i];
        self.phase[i] = phase;
        if before == RUNNING && phase != RUNNING {
            self.running_count -= 1;
            self.left_running += 1;
        }
        if phase == RUNNING && before != RUNNING {
            self.running_count += 1;
            self.last_progress_at = now;
            self.first_running_at.get_or_insert(now);
            if !self.ran[i] {
                self.ran[i] = true;
                self.ran_count += 1;
                if let Some(t) = self.added_at[i] {
                    self.start_latency
                        .push(nanos(now.saturating_duration_since(t)));
                }
                self.check_ip(i, status.pod_ip.as_deref());
            }
            if self.running_count == n {
                self.all_running_at.get_or_insert(now);
            }
        }
    }
}

/// A minimal Pod `{POD_PREFIX}n` bound to node `{prefix}(n % nodes)`.
fn bound_pod_body(prefix: &str, nodes: u64) -> BodyFn {
    let prefix = prefix.to_string();
    Arc::new(move |n| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{POD_PREFIX}{n}"}},"spec":{{"nodeName":"{prefix}{}","containers":[{{"name":"c","image":"x"}}]}}}}"#,
            n % nodes.max(1)
        )
        .into_bytes()
    })
}

// ---------------------------------------------------------------------------
// Measurements.

/// CPU and memory of the agent and the server over a quiet window.
struct Steady {
    agent_cores: f64,
    /// When, relative to the agent's spawn.
    span: String,
    /// CpuMeter's report (includes bench and others).
    cpu: String,
    /// Range of the per-slice CPU of the server and the agent.
    slices: String,
    agent: Memory,
    server: Memory,
    /// The server's RssAnon and RssFile, KiB.
    server_split: Option<(u64, u64)>,
    /// Requests the server served in the window.
    requests: String,
    /// Fresh leases / expected, and the oldest renewTime's age.
    leases: String,
    node_updates: u64,
    pod_updates: u64,
}

impl Steady {
    fn describe(&self) -> String {
        format!(
            "{}: {}{}; {}; RSS agent {} (peak {}), server {} (peak {}{}); {}; \
             in the window {} node and {} pod updates",
            self.span,
            self.cpu,
            self.slices,
            self.requests,
            mib(self.agent.rss_kib),
            mib(self.agent.hwm_kib),
            mib(self.server.rss_kib),
            mib(self.server.hwm_kib),
            self.server_split
                .map_or(String::new(), |(anon, file)| format!(
                    "; anon {}, file {}",
                    mib(anon),
                    mib(file)
                )),
            self.leases,
            thousands(self.node_updates),
            thousands(self.pod_updates)
        )
    }
}

/// The server's request counters (`apiserver_request_total` in
/// `/metrics`) by (verb, resource, code), and the open watches.
#[derive(Default)]
pub(crate) struct Requests {
    pub(crate) counts: HashMap<(String, String, String), f64>,
    watches: f64,
}

/// The value of `name="..."` in a Prometheus label set.
fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix("=\""))
        .map_or("", |v| v.trim_end_matches('"'))
}

impl Requests {
    /// Scrapes `/metrics` (empty on failure: the numbers are diagnostics).
    pub(crate) async fn scrape(client: &kube::Client) -> Requests {
        match get(client, "/metrics").await {
            Ok(text) => Requests::parse(&text),
            Err(_) => Requests::default(),
        }
    }

    /// Reads the counters from Prometheus text.
    fn parse(text: &str) -> Requests {
        let mut r = Requests::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
                let Some((labels, value)) = rest.rsplit_once("} ") else {
                    continue;
                };
                let key = (
                    label(labels, "verb").to_string(),
                    label(labels, "resource").to_string(),
                    label(labels, "code").to_string(),
                );
                r.counts.insert(key, value.trim().parse().unwrap_or(0.0));
            } else if let Some(v) = line.strip_prefix("apiserver_longrunning_requests ") {
                r.watches = v.trim().parse().unwrap_or(0.0);
            }
        }
        r
    }

    /// "requests: PATCH leases 30,012 (500.2/s), ...; 7 watches open", the
    /// `top` largest differences from `before`.
    pub(crate) fn since(&self, before: &Requests, secs: f64, top: usize) -> String {
        let mut d: Vec<(String, f64)> = self
            .counts
            .iter()
            .filter_map(|(k, v)| {
                let n = v - before.counts.get(k).copied().unwrap_or(0.0);
                let code = if k.2.starts_with('2') {
                    String::new()
                } else {
                    format!(" {}", k.2)
                };
                (n > 0.0).then(|| (format!("{} {}{code}", k.0, k.1), n))
            })
            .collect();
        if d.is_empty() {
            return "requests: none seen (no /metrics?)".into();
        }
        d.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total: f64 = d.iter().map(|(_, n)| n).sum();
        let mut parts: Vec<String> = d
            .iter()
            .take(top)
            .map(|(k, n)| format!("{k} {} ({:.1}/s)", thousands(*n as u64), n / secs.max(1e-9)))
            .collect();
        if d.len() > top {
            parts.push(format!("{} more kinds", d.len() - top));
        }
        format!(
            "requests {} ({:.0}/s): {}; {} watches open",
            thousands(total as u64),
            total / secs.max(1e-9),
            parts.join(", "),
            self.watches
        )
    }
}

/// Pod list requests (pages) the server has served.
fn pod_lists(r: &Requests) -> f64 {
    r.counts
        .iter()
        .filter(|(k, _)| k.0 == "LIST" && k.1 == "pods")
        .map(|(_, v)| v)
        .sum()
}

/// Waits (at most `SETTLE_MAX`) until the server has served no pod list
/// page for 10 s: a watcher that fell behind (410 Gone) re-lists every pod
/// page by page, and the steady state starts when that is over. Returns
/// the time waited and the pages served meanwhile.
async fn settle(
    client: &kube::Client,
    server: &mut RkubeServer,
    agent: &mut Agent,
) -> anyhow::Result<(Duration, u64)> {
    let t0 = Instant::now();
    let first = pod_lists(&Requests::scrape(client).await);
    let (mut prev, mut quiet) = (first, 0);
    while t0.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_secs(5)).await;
        server.check_alive()?;
        agent.check_alive()?;
        let now = pod_lists(&Requests::scrape(client).await);
        if now == prev {
            quiet += 1;
            if quiet >= 2 {
                break;
            }
        } else {
            quiet = 0;
            eprintln!(
                "rkube-bench: {:.0} s: pod list pages still being served ({} since all Running)",
                t0.elapsed().as_secs_f64(),
                now - first
            );
        }
        prev = now;
    }
    Ok((t0.elapsed(), (prev - first) as u64))
}

/// RssAnon and RssFile (+ RssShmem) of a process, KiB.
fn rss_split(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((
        field("RssAnon:")?,
        field("RssFile:")? + field("RssShmem:").unwrap_or(0),
    ))
}

/// Counts the node Leases renewed within their duration.
async fn lease_freshness(client: &kube::Client, prefix: &str, nodes: usize) -> String {
    let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "kube-node-lease");
    let list = match tokio::time::timeout(
        Duration::from_secs(120),
        api.list(&kube::api::ListParams::default()),
    )
    .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return format!("listing leases failed: {e}"),
        Err(_) => return "listing leases timed out".into(),
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let (mut ours, mut fresh, mut oldest_ms) = (0usize, 0usize, 0i64);
    for l in &list.items {
        if index_of(l.metadata.name.as_deref(), prefix, nodes).is_none() {
            continue;
        }
        ours += 1;
        let spec = l.spec.clone().unwrap_or_default();
        let duration_ms = i64::from(spec.lease_duration_seconds.unwrap_or(40)) * 1000;
        if let Some(t) = spec.renew_time {
            let age = now - t.0.as_millisecond();
            oldest_ms = oldest_ms.max(age);
            if age <= duration_ms {
                fresh += 1;
            }
        }
    }
    format!(
        "leases fresh {}/{} (of {ours} listed; oldest renewTime {:.1} s ago)",
        thousands(fresh as u64),
        thousands(nodes as u64),
        oldest_ms as f64 / 1000.0
    )
}

/// Sleeps `window`, checking that both processes stay up, and measures.
async fn steady_window(
    window: Duration,
    server: &mut RkubeServer,
    agent: &mut Agent,
    client: &kube::Client,
    a: &SimArgs,
    nodes: &SharedRef<Nodes>,
    pods: Option<&SharedRef<Pods>>,
) -> anyhow::Result<Steady> {
    eprintln!("rkube-bench: steady state for {} s", window.as_secs_f64());
    let node_updates0 = nodes.lock().expect("lock").t.updates;
    let pod_updates0 = pods.map_or(0, |p| p.lock().expect("lock").t.updates);
    let procs = [
        ("agent", stat_path(agent.pid())),
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".to_string()),
    ];
    let requests0 = Requests::scrape(client).await;
    let meter = CpuMeter::start(&procs);
    let t0 = Instant::now();
    let span_start = t0.saturating_duration_since(agent.started);
    // Per-slice CPU shows bursts (status re-posts, compaction) the average hides.
    let slice = if window >= Duration::from_secs(20) {
        Duration::from_secs(10)
    } else {
        window
    };
    let cpu_of = |path: &str| cpu_time(path).unwrap_or_default();
    let (mut slice_at, mut prev) = (t0, (cpu_of(&procs[1].1), cpu_of(&procs[0].1)));
    let (mut server_slices, mut agent_slices) = (Vec::new(), Vec::new());
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed()))).await;
        server.check_alive()?;
        agent.check_alive()?;
        if slice_at.elapsed() >= slice || t0.elapsed() >= window {
            let now = (cpu_of(&procs[1].1), cpu_of(&procs[0].1));
            let dt = slice_at.elapsed().as_secs_f64().max(1e-9);
            server_slices.push(now.0.saturating_sub(prev.0).as_secs_f64() / dt);
            agent_slices.push(now.1.saturating_sub(prev.1).as_secs_f64() / dt);
            (slice_at, prev) = (Instant::now(), now);
        }
    }
    let range = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        format!("{min:.2}–{max:.2}")
    };
    let slices = if server_slices.len() > 1 {
        format!(
            " (per {} s: server {}, agent {})",
            slice.as_secs(),
            range(&server_slices),
            range(&agent_slices)
        )
    } else {
        String::new()
    };
    let secs = t0.elapsed().as_secs_f64();
    let requests = Requests::scrape(client).await.since(&requests0, secs, 6);
    let cores = |label: &str| meter.used(label).unwrap_or_default().as_secs_f64() / secs;
    let agent_cores = cores("agent");
    let cpu = meter.report();
    let node_updates = nodes.lock().expect("lock").t.updates - node_updates0;
    let pod_updates = pods.map_or(0, |p| p.lock().expect("lock").t.updates) - pod_updates0;
    let steady = Steady {
        agent_cores,
        span: format!(
            "t+{:.0}–{:.0} s",
            span_start.as_secs_f64(),
            agent.started.elapsed().as_secs_f64()
        ),
        cpu,
        slices,
        agent: Memory::of(agent.pid())?,
        server: server.memory()?,
        server_split: rss_split(server.pid()),
        requests,
        leases: lease_freshness(client, &a.prefix, a.nodes as usize).await,
        node_updates,
        pod_updates,
    };
    eprintln!("rkube-bench: {}", steady.describe());
    Ok(steady)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn since(at: Option<Instant>, t0: Instant) -> Option<Duration> {
    at.map(|t| t.saturating_duration_since(t0))
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_string(), secs)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// What the node phase measured.
struct NodePhase {
    registered: Option<Duration>,
    ready: Option<Duration>,
    cidr: Option<Duration>,
    cpu: String,
}

/// Spawns the agent and waits until every node is Ready and has a CIDR.
async fn node_phase(
    env: &Env,
    server: &mut RkubeServer,
    a: &SimArgs,
    nodes: &SharedRef<Nodes>,
) -> anyhow::Result<(Agent, NodePhase)> {
    let n = a.nodes as usize;
    eprintln!("rkube-bench: starting rkube agent --simulate {}", a.nodes);
    let t0 = Instant::now();
    let args: Vec<String> = vec![
        "--simulate".into(),
        a.nodes.to_string(),
        "--node-name-prefix".into(),
        a.prefix.clone(),
    ];
    let mut agent = Agent::start(&env.rkube_bin, &server.kubeconfig, &args, &a.agent_log)?;
    let meter = CpuMeter::start(&[
        ("agent", stat_path(agent.pid())),
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".to_string()),
    ]);
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.check_alive()?;
        agent.check_alive()?;
        let s = nodes.lock().expect("lock");
        let done = s.t.all_ready_at.is_some() && s.t.all_cidr_at.is_some();
        if done || last_print.elapsed() >= Duration::from_secs(5) || t0.elapsed() > NODES_TIMEOUT {
            last_print = Instant::now();
            eprintln!(
                "rkube-bench: {:.1} s: nodes {} registered, {} Ready, {} with podCIDR",
                t0.elapsed().as_secs_f64(),
                s.t.seen_count,
                s.t.ready_count,
                s.t.cidr_count
            );
        }
        if done {
            break;
        }
        if t0.elapsed() > NODES_TIMEOUT {
            if s.t.ready_count < n {
                bail!(
                    "only {} of {n} nodes Ready ({} registered, {} with podCIDR) after {}; {}",
                    s.t.ready_count,
                    s.t.seen_count,
                    s.t.cidr_count,
                    secs(NODES_TIMEOUT),
                    agent.describe_log()
                );
            }
            // Ready but some CIDRs missing: go on, the row reports it.
            break;
        }
    }
    let s = nodes.lock().expect("lock");
    let phase = NodePhase {
        registered: since(s.t.all_seen_at, t0),
        ready: since(s.t.all_ready_at, t0),
        cidr: since(s.t.all_cidr_at, t0),
        cpu: meter.report(),
    };
    drop(s);
    Ok((agent, phase))
}

/// What the pod phase measured.
struct PodPhase {
    created: crate::load::CreateResult,
    create_cpu: String,
    /// From the first create until every pod was Running.
    all_running: Option<Duration>,
    running: usize,
    pending: usize,
    failed: usize,
    other: usize,
    start_latency: Summary,
    waited: Duration,
    /// Requests the server served from the first create until all ran.
    requests: String,
}

async fn pod_phase(
    client: &kube::Client,
    server: &mut RkubeServer,
    agent: &mut Agent,
    a: &SimArgs,
    pods: &SharedRef<Pods>,
) -> anyhow::Result<PodPhase> {
    eprintln!(
        "rkube-bench: creating {} pods bound to {} nodes with {} clients",
        a.pods, a.nodes, a.concurrency
    );
    let meter = CpuMeter::start(&[
        ("agent", stat_path(agent.pid())),
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".to_string()),
    ]);
    let requests0 = Requests::scrape(client).await;
    let t0 = Instant::now();
    let progress = {
        let pods = pods.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let s = pods.lock().expect("lock");
                let added = s.t.added_at.iter().filter(|t| t.is_some()).count();
                eprintln!(
                    "rkube-bench: {:.1} s: pods {added} seen, {} Running",
                    t0.elapsed().as_secs_f64(),
                    s.t.running_count
                );
            }
        })
    };
    let created = create_loop(
        client,
        CreateLoad {
            path: "/api/v1/namespaces/default/pods".into(),
            concurrency: a.concurrency,
            max_count: a.pods,
            max_time: MAX_CREATE_TIME,
            body: bound_pod_body(&a.prefix, a.nodes),
        },
    )
    .await;
    let create_cpu = meter.report();
    eprintln!(
        "rkube-bench: created {} pods in {} ({}); {}",
        created.ok,
        secs(created.elapsed),
        created.describe_errors(),
        create_cpu
    );
    let outcome = async {
        loop {
            server.check_alive()?;
            agent.check_alive()?;
            let done = {
                let s = pods.lock().expect("lock");
                s.t.running_count as u64 >= created.ok
                    || s.t.last_progress_at.elapsed() > RUNNING_STALL
                    || t0.elapsed() > RUNNING_TIMEOUT
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    }
    .await;
    progress.abort();
    outcome?;
    let waited = t0.elapsed();
    let requests = Requests::scrape(client)
        .await
        .since(&requests0, waited.as_secs_f64(), 8);
    eprintln!("rkube-bench: pod phase {requests}");
    let mut s = pods.lock().expect("lock");
    let all_running = since(s.t.all_running_at, t0);
    let start_latency = Summary::of(&mut s.t.start_latency);
    eprintln!(
        "rkube-bench: {} of {} pods Running after {}",
        s.t.running_count,
        a.pods,
        secs(waited)
    );
    Ok(PodPhase {
        created,
        create_cpu,
        all_running,
        running: s.t.running_count,
        pending: s.t.count(PENDING) + s.t.count(0),
        failed: s.t.count(FAILED) + s.t.count(SUCCEEDED),
        other: s.t.count(OTHER),
        start_latency,
        waited,
        requests,
    })
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &SimArgs) -> anyhow::Result<Row> {
    let n = a.nodes as usize;
    let window = Duration::from_secs(a.window_seconds);
    let mut server = RkubeServer::start(&env.server(Vec::new())).await?;
    let client = server.client_of(env.http.unwrap_or(1)).await?;
    let mem_empty = server.memory()?;

    // 1. Nodes.
    let nodes = Arc::new(Mutex::new(Shared {
        t: Nodes::new(n, &a.prefix),
        stats: WatchStats::default(),
    }));
    let node_watch = start_reflector(&client, "/api/v1/nodes", &nodes).await?;
    let (mut agent, np) = node_phase(env, &mut server, a, &nodes).await?;

    // 2. Steady state, no pods.
    let idle = steady_window(window, &mut server, &mut agent, &client, a, &nodes, None).await?;

    // 3. Pods.
    let mut pp = None;
    let mut busy = None;
    let mut pod_stats = String::new();
    let mut ip_checks = String::new();
    let mut pods_ok = true;
    let mut relist_note = String::new();
    let mut settle_note = String::new();
    if a.pods > 0 {
        let cidrs = Arc::new(nodes.lock().expect("lock").t.cidr.clone());
        let pods = Arc::new(Mutex::new(Shared {
            t: Pods::new(a.pods as usize, n, cidrs),
            stats: WatchStats::default(),
        }));
        let pod_watch = start_reflector(&client, "/api/v1/namespaces/default/pods", &pods).await?;
        let phase = pod_phase(&client, &mut server, &mut agent, a, &pods).await?;
        eprintln!("rkube-bench: waiting until no pod list pages are served (re-lists over)");
        let settled = settle(&client, &mut server, &mut agent).await?;
        // 4. Steady state with every pod Running.
        let steady = steady_window(
            window,
            &mut server,
            &mut agent,
            &client,
            a,
            &nodes,
            Some(&pods),
        )
        .await?;
        // What one re-list of every pod costs now (limit 500, as kube-runtime's
        // watcher pages), while the leases keep the revision moving.
        eprintln!("rkube-bench: paginated list of every pod (limit {LIST_PAGE})");
        let relist = paginated_list(&client, a.pods, LIST_PAGE).await;
        relist_note = match &relist.error {
            None => format!(
                "a paginated list of every pod (limit {LIST_PAGE}) afterwards: {} items in {} pages, {} (page {})",
                thousands(relist.items),
                relist.pages,
                secs(relist.elapsed),
                relist.page_latency.describe()
            ),
            Some(e) => format!(
                "a paginated list of every pod afterwards failed after {} pages: {}",
                relist.pages,
                one_line(e, 200)
            ),
        };
        settle_note = format!(
            "settled (no pod list page for 10 s) {} after all Running ({} pod list pages meanwhile{})",
            secs(settled.0),
            thousands(settled.1),
            if settled.0 >= SETTLE_MAX {
                "; gave up waiting"
            } else {
                ""
            }
        );
        pod_watch.abort();
        let s = pods.lock().expect("lock");
        pod_stats = s.stats.describe("pod");
        ip_checks = format!(
            "pod IPs: {} missing, {} outside the node's podCIDR, {} duplicate; \
             {} left Running, {} unexpected pod events",
            s.t.no_ip, s.t.outside_cidr, s.t.duplicate_ip, s.t.left_running, s.t.unexpected
        );
        pods_ok = s.t.no_ip == 0
            && s.t.outside_cidr == 0
            && s.t.duplicate_ip == 0
            && s.t.left_running == 0
            && s.t.unexpected == 0
            && s.t.running_count == a.pods as usize
            && phase.created.ok == a.pods;
        drop(s);
        pp = Some(phase);
        busy = Some(steady);
    }
    node_watch.abort();
    let nstate = nodes.lock().expect("lock");
    let node_stats = nstate.stats.describe("node");
    let (nodes_ready_end, lost_ready, node_unexpected) = (
        nstate.t.ready_count,
        nstate.t.lost_ready,
        nstate.t.unexpected,
    );
    drop(nstate);
    let alive = server.check_alive().and(agent.check_alive());
    let agent_log = agent.describe_log();
    drop(agent);

    // Verdicts.
    let ready_ok = np.ready.is_some_and(|d| d <= TARGET_READY);
    let agent_cores = busy
        .as_ref()
        .map_or(idle.agent_cores, |b| b.agent_cores.max(idle.agent_cores));
    let agent_cpu_ok = agent_cores <= TARGET_AGENT_CORES;
    let agent_rss_kib = busy.as_ref().map_or(idle.agent.rss_kib, |b| {
        b.agent.rss_kib.max(idle.agent.rss_kib)
    });
    let agent_rss_ok = agent_rss_kib * 1024 <= TARGET_AGENT_BYTES;
    let last = busy.as_ref().unwrap_or(&idle);
    let server_rss_ok = last.server.rss_kib * 1024 <= TARGET_SERVER_BYTES;
    let correct = alive.is_ok()
        && pods_ok
        && np.cidr.is_some()
        && nodes_ready_end == n
        && lost_ready == 0
        && node_unexpected == 0;

    let mut result = format!(
        "nodes: all registered {}, **all Ready {}**, all with podCIDR {} after the agent's spawn \
         (CPU during registration: {}); \
         idle (no pods, {} s): {}",
        opt_secs(np.registered),
        opt_secs(np.ready),
        opt_secs(np.cidr),
        np.cpu.trim_start_matches("CPU: "),
        a.window_seconds,
        idle.describe(),
    );
    if let (Some(p), Some(b)) = (&pp, &busy) {
        result.push_str(&format!(
            "; pods: created {} in {} ({}/s, create {}, {}; {}); \
             **all Running {} after the first create** ({} Running, {} Pending, {} Failed/Succeeded, {} other after {}); \
             start latency (watch ADDED → Running) {}; {}; server {}; {}; \
             with pods ({} s): {}; {}",
            thousands(p.created.ok),
            secs(p.created.elapsed),
            thousands(p.created.rate().round() as u64),
            p.created.latency.describe(),
            p.created.describe_errors(),
            p.create_cpu,
            opt_secs(p.all_running),
            thousands(p.running as u64),
            thousands(p.pending as u64),
            thousands(p.failed as u64),
            thousands(p.other as u64),
            secs(p.waited),
            p.start_latency.describe(),
            ip_checks,
            p.requests,
            settle_note,
            a.window_seconds,
            b.describe(),
            relist_note,
        ));
    }
    result.push_str(&format!(
        "; server RSS empty {}; nodes Ready at the end {}/{}, {} lost Ready; {}",
        mib(mem_empty.rss_kib),
        thousands(nodes_ready_end as u64),
        thousands(n as u64),
        lost_ready,
        node_stats
    ));
    if !pod_stats.is_empty() {
        result.push_str(&format!("; {pod_stats}"));
    }
    result.push_str(&format!("; {agent_log}"));
    if let Err(e) = &alive {
        result.push_str(&format!("; {e}"));
    }
    let target = format!(
        "all Ready ≤ 60 s: {} ({}); agent CPU ≤ {TARGET_AGENT_CORES} core: {} (idle {:.2}{}); \
         agent RSS ≤ 500 MB: {} ({:.0} MB); server RSS ≤ 4 GB: {} ({:.2} GB{})",
        met(ready_ok),
        opt_secs(np.ready),
        met(agent_cpu_ok),
        idle.agent_cores,
        busy.as_ref().map_or(String::new(), |b| format!(
            ", with pods {:.2}",
            b.agent_cores
        )),
        met(agent_rss_ok),
        agent_rss_kib as f64 * 1024.0 / 1e6,
        met(server_rss_ok),
        last.server.rss_kib as f64 * 1024.0 / 1e9,
        if busy.is_some() {
            format!(
                " with {} pods; peak {:.2} GB",
                thousands(a.pods),
                last.server.hwm_kib as f64 * 1024.0 / 1e9
            )
        } else {
            String::new()
        },
    );
    let verdict = if !correct {
        Verdict::Failed
    } else {
        Verdict::from_bool(ready_ok && agent_cpu_ok && agent_rss_ok && server_rss_ok)
    };
    Ok(Row {
        scenario: "sim-nodes".into(),
        setup: format!(
            "{} simulated nodes in one `rkube agent --simulate` process, {} pods \
             ({} per node, concurrency {}), {} s windows, {}",
            thousands(a.nodes),
            thousands(a.pods),
            a.pods / a.nodes.max(1),
            a.concurrency,
            a.window_seconds,
            crate::http_name(env.http.unwrap_or(1))
        ),
        result,
        target,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_indexes() {
        let (net, mask) = parse_cidr("10.128.5.0/24").expect("cidr");
        assert_eq!(u32::from(Ipv4Addr::new(10, 128, 5, 77)) & mask, net);
        assert_ne!(u32::from(Ipv4Addr::new(10, 128, 6, 1)) & mask, net);
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("0.0.0.0/0"), Some((0, 0)));
        assert_eq!(index_of(Some("sim-node-42"), "sim-node-", 100), Some(42));
        assert_eq!(index_of(Some("sim-node-100"), "sim-node-", 100), None);
        assert_eq!(index_of(Some("other"), "sim-node-", 100), None);
        assert_eq!(index_of(None, "sim-node-", 100), None);
    }

    #[test]
    fn request_counters_are_parsed_and_diffed() {
        let mut before = Requests::default();
        before
            .counts
            .insert(("PATCH".into(), "leases".into(), "200".into()), 100.0);
        let text = "# HELP x\n\
            apiserver_request_total{verb=\"PATCH\",resource=\"leases\",code=\"200\"} 1100\n\
            apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"410\"} 3\n\
            apiserver_longrunning_requests 7\n";
        let after = Requests::parse(text);
        assert_eq!(
            after.since(&before, 10.0, 5),
            "requests 1,003 (100/s): PATCH leases 1,000 (100.0/s), LIST pods 410 3 (0.3/s); 7 watches open"
        );
    }

    #[test]
    fn pod_body_binds_round_robin() {
        let body = bound_pod_body("sim-node-", 3);
        let v: serde_json::Value = serde_json::from_slice(&body(7)).expect("json");
        assert_eq!(v["metadata"]["name"], "sp-7");
        assert_eq!(v["spec"]["nodeName"], "sim-node-1");
    }

    #[test]
    fn pods_count_running_once_and_check_ips() {
        let cidrs = Arc::new(vec![parse_cidr("10.0.0.0/24"), parse_cidr("10.0.1.0/24")]);
        let mut p = Pods::new(3, 2, cidrs);
        let now = Instant::now();
        let ev = |name: &str, phase: &str, ip: &str| -> Obj<PodSpec, PodStatus> {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "resourceVersion": "5"},
                "spec": {"nodeName": "x"},
                "status": {"phase": phase, "podIP": ip},
            }))
            .expect("pod")
        };
        p.apply(ev("sp-0", "Pending", ""), Change::Added, now);
        p.apply(ev("sp-0", "Running", "10.0.0.2"), Change::Modified, now);
        p.apply(ev("sp-0", "Running", "10.0.0.2"), Change::Modified, now);
        p.apply(ev("sp-1", "Running", "10.0.0.3"), Change::Added, now);
        assert_eq!(p.running_count, 2);
        assert_eq!(p.outside_cidr, 1, "sp-1 runs on node 1 (10.0.1.0/24)");
        p.apply(ev("sp-2", "Running", "10.0.0.2"), Change::Added, now);
        assert_eq!(p.duplicate_ip, 1);
        assert_eq!(p.all_running_at, Some(now));
        p.apply(ev("nope", "Running", ""), Change::Added, now);
        assert_eq!(p.unexpected, 1);
    }

    #[test]
    fn status_events_parse_as_errors_not_objects() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","code":410,"message":"too old"}}"#;
        assert!(serde_json::from_slice::<WatchEvent<Obj<PodSpec, PodStatus>>>(line).is_err());
        let ev: ErrorEvent = serde_json::from_slice(line).expect("error event");
        assert_eq!((ev.kind.as_str(), ev.object.code), ("ERROR", Some(410)));
    }
}

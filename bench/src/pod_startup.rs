//! Scenario `pod-startup`: one real node (`rkube agent` with runc, the CNI
//! bridge network and the image store) against the real `rkube server`.
//!
//! 1. A real `docker-registry` on loopback serves a busybox image; a
//!    warm-up pod pulls it (not measured) and is deleted again, so every
//!    measured pod finds the image present (imagePullPolicy IfNotPresent).
//! 2. A pod watch is opened, then P pods (`sleep 3600`) are created, one
//!    every `--interval-ms` (0: all at once), already bound
//!    (`spec.nodeName` set, so creation is the binding). Per pod, the time
//!    from just before its create request until the watch first shows
//!    `status.phase=Running` is the startup latency.
//! 3. With every pod Running, the agent's VmRSS and its CPU over a window
//!    are read, as well as the RSS of the per-container monitors.
//! 4. Bare `runc run -d` of the same bundle: the config.json of one pod's
//!    container (its rootfs, mounts and the pod's namespaces) with only the
//!    cgroup path changed, run P times under a separate runc root; the time
//!    until `runc run -d` returns (the container's process runs) is taken.
//! 5. Every pod is deleted and the harness waits until the agent has
//!    removed them, so that no container outlives the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_image::testing::{ImageBuilder, TestRegistry};

use crate::agent_proc::Agent;
use crate::procs::{mib, stat_path, CpuMeter, Memory, RkubeServer};
use crate::stats::{nanos, Summary};
use crate::{Env, Row, Verdict};

/// Targets of the issue: p50 and p99 from binding to Running.
const TARGET_P50: Duration = Duration::from_millis(200);
const TARGET_P99: Duration = Duration::from_millis(500);
/// Target: the agent's VmRSS with the pods running, 40 MB (decimal).
const TARGET_AGENT_BYTES: u64 = 40_000_000;
/// Give up waiting for the pods after this long.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(300);
const NODE: &str = "bench-node";
const NAMESPACE: &str = "default";

/// Arguments of `pod-startup`.
#[derive(Clone, Debug)]
pub struct StartupArgs {
    pub pods: u64,
    /// Between two creates; 0 creates all at once.
    pub interval: Duration,
    /// CPU window with every pod running.
    pub window: Duration,
    pub runtime_binary: PathBuf,
    pub agent_log: String,
}

/// When each pod was first seen Running.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn pod_body(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pod-startup"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
        },
    }))
    .expect("a valid pod")
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Watches pods from `rv` (re-watching when the stream ends) and records
/// the first time each is seen Running.
fn spawn_watch(pods: Api<Pod>, mut rv: String, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wp = WatchParams::default().labels("app=pod-startup");
            let mut stream = match pods.watch(&wp, &rv).await {
                Ok(s) => s.boxed(),
                Err(e) => {
                    eprintln!("rkube-bench: watch: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                let pod = match ev {
                    Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => p,
                    Ok(WatchEvent::Bookmark(b)) => {
                        rv = b.metadata.resource_version;
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("rkube-bench: watch event: {e}");
                        break;
                    }
                };
                if let Some(v) = &pod.metadata.resource_version {
                    rv = v.clone();
                }
                if is_running(&pod) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    seen.lock().expect("lock").entry(name).or_insert(now);
                }
            }
        }
    })
}

async fn wait_node_ready(nodes: &Api<Node>, agent: &mut Agent) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        agent.check_alive()?;
        if let Ok(n) = nodes.get(NODE).await {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let cidr = n.spec.and_then(|s| s.pod_cidr).is_some();
            if ready && cidr {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("node {NODE} not Ready with a pod CIDR within 120 s")
}

async fn wait_running(pods: &Api<Pod>, name: &str, agent: &mut Agent) -> anyhow::Result<()> {
    let deadline = Instant::now() + RUNNING_TIMEOUT;
    while Instant::now() < deadline {
        agent.check_alive()?;
        if pods.get(name).await.is_ok_and(|p| is_running(&p)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("pod {name} not Running within {RUNNING_TIMEOUT:?}")
}

/// Deletes the benchmark's pods and waits until the agent has removed them.
async fn delete_all(pods: &Api<Pod>, agent: &mut Agent) -> anyhow::Result<()> {
    let lp = ListParams::default().labels("app=pod-startup");
    let _ = pods
        .delete_collection(&DeleteParams::default(), &lp)
        .await
        .context("deleting the pods")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = pods.list(&lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        agent.check_alive()?;
        if Instant::now() > deadline {
            bail!("{left} pods still not removed by the agent after 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The state directories of the agent's containers that have started and
/// not exited (`<root>/containers/<id>/`).
fn running_container_dirs(agent_root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(agent_root.join("containers")) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|d| d.join("started.json").exists() && !d.join("exited.json").exists())
        .collect()
}

/// `RssAnon` of a process in KiB: its private memory, without the pages of
/// the (shared) rkube binary that VmRSS also counts.
fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line["RssAnon:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Summed VmRSS and RssAnon of the monitors of running containers, and
/// their count.
fn monitors_rss(dirs: &[PathBuf]) -> (u64, u64, usize) {
    let (mut rss, mut anon, mut n) = (0, 0, 0);
    for d in dirs {
        let pid = std::fs::read_to_string(d.join("monitor.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some((m, a)) = pid.and_then(|p| Some((Memory::of(p).ok()?, rss_anon_kib(p)?))) {
            rss += m.rss_kib;
            anon += a;
            n += 1;
        }
    }
    (rss, anon, n)
}

/// Times `runc run -d` of a copy of `state_dir`'s bundle `n` times (each
/// with its own cgroup), then deletes the containers. Returns nanoseconds.
fn bare_runc(runc: &Path, state_dir: &Path, n: u64) -> anyhow::Result<Vec<u64>> {
    let cfg_path = state_dir.join("bundle/config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
    )?;
    // The rootfs path may be relative to the bundle directory.
    let root = cfg["root"]["path"]
        .as_str()
        .ok_or_else(|| anyhow!("no root.path in {}", cfg_path.display()))?;
    let root = state_dir.join("bundle").join(root);
    cfg["root"]["path"] = serde_json::Value::String(root.display().to_string());
    let work = tempfile::Builder::new()
        .prefix("rkube-bench-runc-")
        .tempdir()?;
    let runc_root = work.path().join("state");
    let ids: Vec<String> = (0..n).map(|i| format!("rkube-bench-{i}")).collect();
    let mut samples = Vec::with_capacity(ids.len());
    let mut result = Ok(());
    for (i, id) in ids.iter().enumerate() {
        let bundle = work.path().join(id);
        std::fs::create_dir_all(&bundle)?;
        cfg["linux"]["cgroupsPath"] = serde_json::Value::String(format!("/rkube-bench/{id}"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&cfg)?)?;
        // stderr to a file: the detached container inherits runc's stdio,
        // so a pipe would never reach EOF.
        let err_path = bundle.join("runc.stderr");
        let err = std::fs::File::create(&err_path)?;
        let t0 = Instant::now();
        let status = std::process::Command::new(runc)
            .arg("--root")
            .arg(&runc_root)
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg("--pid-file")
            .arg(bundle.join("pid"))
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .status()?;
        let took = t0.elapsed();
        if !status.success() {
            let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
            result = Err(anyhow!("runc run #{i} failed: {}", msg.trim()));
            break;
        }
        samples.push(nanos(took));
    }
    for id in &ids {
        let _ = std::process::Command::new(runc)
            .arg("--root")
            .arg(&runc_root)
            .args(["delete", "-f", id])
            .stderr(std::process::Stdio::null())
            .status();
    }
    result.map(|()| samples)
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &StartupArgs) -> anyhow::Result<Row> {
    let registry = TestRegistry::start().map_err(|e| anyhow!("docker-registry: {e}"))?;
    let image = ImageBuilder::busybox()
        .map_err(|e| anyhow!("busybox image: {e}"))?
        .build();
    registry
        .push("busybox", "1", &image)
        .await
        .map_err(|e| anyhow!("pushing busybox: {e}"))?;
    let image = registry.reference("busybox:1");

    let server = RkubeServer::start(&env.server(vec![])).await?;
    let client = server.client().await?;
    let root = tempfile::Builder::new()
        .prefix("rkube-bench-agent-")
        .tempdir()?;
    let args: Vec<String> = [
        "--node-name",
        NODE,
        "--agent-port",
        "0",
        "--cni-bridge",
        "rkbench0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--agent-root-dir".to_string(),
        root.path().display().to_string(),
        "--runtime-binary".to_string(),
        a.runtime_binary.display().to_string(),
    ])
    .collect();
    let mut agent = Agent::start(&env.rkube_bin, &server.kubeconfig, &args, &a.agent_log)?;
    wait_node_ready(&Api::all(client.clone()), &mut agent).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

    let outcome = measure(a, &pods, &image, root.path(), &mut agent).await;
    let cleanup = delete_all(&pods, &mut agent).await;
    let agent_log = agent.describe_log();
    drop(agent);
    drop(server);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "rkbench0"])
        .output();
    let m = outcome?;
    cleanup?;

    let pod = m.pod.describe();
    let runc = m.runc.describe();
    let ratio = m.pod.p50 as f64 / m.runc.p50.max(1) as f64;
    let ok = m.pod.p50 <= nanos(TARGET_P50)
        && m.pod.p99 <= nanos(TARGET_P99)
        && m.agent.rss_kib * 1024 <= TARGET_AGENT_BYTES;
    let pace = if a.interval.is_zero() {
        "all created at once".to_string()
    } else {
        format!("one created every {} ms", a.interval.as_millis())
    };
    Ok(Row {
        scenario: "pod-startup".into(),
        setup: format!(
            "{} busybox pods (image present) on 1 real node (runc, CNI bridge), {pace}",
            a.pods
        ),
        result: format!(
            "binding→Running {pod}; bare `runc run -d` of the same bundle {runc}; \
             ratio of p50s {ratio:.1}×; with {} pods running: agent RSS {} (peak {}, \
             anonymous {}), {}; {} container monitors: RSS {} each, anonymous {} each; \
             {agent_log}",
            a.pods,
            mib(m.agent.rss_kib),
            mib(m.agent.hwm_kib),
            mib(m.agent_anon_kib),
            m.cpu,
            m.monitors,
            mib(m.monitors_kib / (m.monitors.max(1) as u64)),
            mib(m.monitors_anon_kib / (m.monitors.max(1) as u64)),
        ),
        target: "p50 ≤ 200 ms, p99 ≤ 500 ms; agent RSS ≤ 40 MB".into(),
        verdict: Verdict::from_bool(ok),
    })
}

struct Measured {
    pod: Summary,
    runc: Summary,
    agent: Memory,
    agent_anon_kib: u64,
    cpu: String,
    monitors: usize,
    monitors_kib: u64,
    monitors_anon_kib: u64,
}

async fn measure(
    a: &StartupArgs,
    pods: &Api<Pod>,
    image: &str,
    agent_root: &Path,
    agent: &mut Agent,
) -> anyhow::Result<Measured> {
    // Warm-up: pull the image, then remove the pod.
    pods.create(&PostParams::default(), &pod_body("warm-up", image))
        .await?;
    wait_running(pods, "warm-up", agent).await?;
    delete_all(pods, agent).await?;
    eprintln!("rkube-bench: image pulled; creating {} pods", a.pods);

    let rv = pods
        .list(&ListParams::default().labels("app=pod-startup"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let seen: Seen = Arc::default();
    let watch = spawn_watch(pods.clone(), rv, seen.clone());
    let t_start = Instant::now();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut creates = Vec::new();
    for i in 0..a.pods {
        let due = t_start + a.interval * u32::try_from(i)?;
        tokio::time::sleep_until(due.into()).await;
        let name = format!("ps-{i}");
        let body = pod_body(&name, image);
        let api = pods.clone();
        created.insert(name, Instant::now());
        creates.push(tokio::spawn(async move {
            api.create(&PostParams::default(), &body).await
        }));
    }
    for c in creates {
        c.await?.context("creating a pod")?;
    }
    let deadline = Instant::now() + RUNNING_TIMEOUT;
    loop {
        let n = seen.lock().expect("lock").len();
        if n as u64 >= a.pods {
            break;
        }
        agent.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "only {n} of {} pods Running after {RUNNING_TIMEOUT:?}",
                a.pods
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    let mut samples: Vec<u64> = {
        let seen = seen.lock().expect("lock");
        created
            .iter()
            .filter_map(|(name, t0)| {
                seen.get(name)
                    .map(|t| nanos(t.saturating_duration_since(*t0)))
            })
            .collect()
    };
    let pod = Summary::of(&mut samples);
    eprintln!(
        "rkube-bench: all {} pods Running: {}",
        a.pods,
        pod.describe()
    );

    // Steady state with every pod running.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let meter = CpuMeter::start(&[("agent", stat_path(agent.pid()))]);
    tokio::time::sleep(a.window).await;
    agent.check_alive()?;
    let cpu = meter.report();
    let mem = Memory::of(agent.pid())?;
    let dirs = running_container_dirs(agent_root);
    let agent_anon_kib = rss_anon_kib(agent.pid()).unwrap_or(0);
    let (monitors_kib, monitors_anon_kib, monitors) = monitors_rss(&dirs);

    let dir = dirs
        .first()
        .ok_or_else(|| anyhow!("no running container under {}", agent_root.display()))?
        .clone();
    let runtime = a.runtime_binary.clone();
    let n = a.pods;
    let mut runc_samples =
        tokio::task::spawn_blocking(move || bare_runc(&runtime, &dir, n)).await??;
    let runc = Summary::of(&mut runc_samples);
    eprintln!("rkube-bench: bare runc run -d: {}", runc.describe());
    Ok(Measured {
        pod,
        runc,
        agent: mem,
        agent_anon_kib,
        cpu,
        monitors,
        monitors_kib,
        monitors_anon_kib,
    })
}

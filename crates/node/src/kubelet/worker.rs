//! One task per pod (upstream's pod worker): sets up the pod's network
//! sandbox and volumes, runs init containers in order (restartable ones as
//! sidecars), starts and restarts containers per the restart policy with
//! crash-loop back-off, runs probes, and posts the pod's status whenever it
//! changes. On stop it runs preStop hooks, stops containers within the
//! grace period and tears everything down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backend::{ContainerService, ImageService, NetworkService, RunState, Sandbox};
use super::env::EnvSources;
use super::events::Events;
use super::podstatus::{self, CState, CStatus, PodFacts, Transitions};
use super::probe::Kind;
use super::volumes::Mounter;
use crate::lifecycle::{RestartPolicy, BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_RESET};
use crate::poster::{Job, Poster};

/// Label keys on containers.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
pub const LABEL_ATTEMPT: &str = "rkube.io/attempt";

/// How often sources of configMap/secret volumes are checked for changes.
const VOLUME_REFRESH: Duration = Duration::from_secs(5);

/// Node-wide settings of the real agent.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub host_ip: String,
    /// Per-pod directories (volumes, hosts files).
    pub pods_dir: PathBuf,
    /// Container logs: `<logs_dir>/<ns>_<name>_<uid>/<container>/<n>.log`.
    pub logs_dir: PathBuf,
    pub cluster_domain: String,
    pub cluster_dns: Vec<String>,
    pub host_hosts: String,
    pub host_resolv: String,
    pub node_allocatable: HashMap<String, rkube_api::quantity::Quantity>,
}

/// What every pod worker shares.
pub struct Deps {
    pub images: Arc<dyn ImageService>,
    pub containers: Arc<dyn ContainerService>,
    pub network: Arc<dyn NetworkService>,
    pub mounter: Arc<dyn Mounter>,
    pub client: Client,
    /// Every Service (for service environment variables).
    pub services: super::sources::Services,
    pub poster: Poster,
    pub events: Events,
    pub cfg: KubeletConfig,
}

/// Messages to a worker.
pub enum Msg {
    Update(Box<Pod>),
    Stop {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// What a worker's own tasks report.
pub(super) enum Internal {
    Exited {
        name: String,
        id: String,
    },
    Probe {
        name: String,
        id: String,
        kind: Kind,
        ok: bool,
        flipped: bool,
        message: String,
    },
}

/// One container of the pod as the worker tracks it.
pub(super) struct Ctr {
    pub spec: Container,
    pub init: bool,
    pub sidecar: bool,
    pub status: CStatus,
    /// The current container (running or exited).
    pub id: Option<String>,
    pub attempt: u32,
    pub started_once: bool,
    pub backoff: Duration,
    pub restart_at: Option<Instant>,
    pub image_backoff: Duration,
    pub image_retry_at: Option<Instant>,
    pub config_retry_at: Option<Instant>,
    /// Probe tasks of the current container.
    pub tasks: Vec<JoinHandle<()>>,
    /// The task waiting for the current container's exit.
    pub watcher: Option<JoinHandle<()>>,
    pub started_flag: Arc<AtomicBool>,
}

impl Ctr {
    fn new(spec: &Container, init: bool) -> Self {
        let sidecar = init && spec.restart_policy.as_deref() == Some("Always");
        Ctr {
            status: CStatus {
                name: spec.name.clone(),
                image: spec.image.clone().unwrap_or_default(),
                image_id: String::new(),
                container_id: None,
                state: CState::Waiting {
                    reason: if init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    }
                    .into(),
                    message: String::new(),
                },
                last: None,
                restart_count: 0,
                ready: false,
                started: false,
                sidecar,
            },
            spec: spec.clone(),
            init,
            sidecar,
            id: None,
            attempt: 0,
            started_once: false,
            backoff: Duration::ZERO,
            restart_at: None,
            image_backoff: Duration::ZERO,
            image_retry_at: None,
            config_retry_at: None,
            tasks: Vec::new(),
            watcher: None,
            started_flag: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.status.state, CState::Running { .. })
    }

    /// Stops the probes (the exit watcher keeps watching).
    pub fn stop_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.started_flag.store(false, Ordering::SeqCst);
    }

    /// Stops the probes and the exit watcher.
    pub fn stop_all_tasks(&mut self) {
        self.stop_tasks();
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// The pod worker.
pub struct Worker {
    pub(super) deps: Arc<Deps>,
    pub(super) pod: Pod,
    pub(super) uid: String,
    pub(super) dir: PathBuf,
    pub(super) sandbox: Option<Sandbox>,
    pub(super) volumes: Option<HashMap<String, PathBuf>>,
    pub(super) sources: EnvSources,
    pub(super) ctrs: Vec<Ctr>,
    pub(super) policy: RestartPolicy,
    pub(super) transitions: Transitions,
    pub(super) start_time: Timestamp,
    pub(super) posted: Option<PodStatus>,
    pub(super) tx: mpsc::UnboundedSender<Internal>,
    pub(super) wake: Option<Instant>,
    pub(super) next_refresh: Instant,
    pub(super) finished: bool,
}

fn merge_wake(w: &mut Option<Instant>, at: Instant) {
    *w = Some(w.map_or(at, |x| x.min(at)));
}

impl Worker {
    /// Runs the worker for `pod` until it is stopped.
    pub async fn run(deps: Arc<Deps>, pod: Pod, mut inbox: mpsc::UnboundedReceiver<Msg>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut ctrs: Vec<Ctr> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| Ctr::new(c, true))
            .collect();
        ctrs.extend(spec.containers.iter().map(|c| Ctr::new(c, false)));
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let sources = EnvSources {
            host_ip: deps.cfg.host_ip.clone(),
            node_allocatable: deps.cfg.node_allocatable.clone(),
            ..Default::default()
        };
        let mut w = Worker {
            dir: deps.cfg.pods_dir.join(&uid),
            policy: RestartPolicy::of(&pod),
            deps,
            pod,
            uid,
            sandbox: None,
            volumes: None,
            sources,
            ctrs,
            transitions: Transitions::default(),
            start_time,
            posted: None,
            tx,
            wake: None,
            next_refresh: Instant::now() + VOLUME_REFRESH,
            finished: false,
        };
        w.adopt().await;
        let mut resync = true;
        loop {
            if resync {
                w.wake = None;
                if !w.finished {
                    w.sync().await;
                }
            }
            resync = true;
            w.post();
            let wake = w.wake;
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(Msg::Update(p)) => {
                        // Our own status posts come back as updates: only a
                        // change of the spec or metadata calls for a sync.
                        resync = p.spec != w.pod.spec
                            || p.metadata.labels != w.pod.metadata.labels
                            || p.metadata.annotations != w.pod.metadata.annotations;
                        w.pod = *p;
                    }
                    Some(Msg::Stop { grace, done }) => {
                        w.terminate(grace).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        w.terminate(Duration::from_secs(30)).await;
                        return;
                    }
                },
                Some(ev) = rx.recv() => w.on_internal(ev).await,
                _ = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    pub(super) fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    pub(super) fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    pub(super) fn at(&mut self, after: Duration) {
        merge_wake(&mut self.wake, Instant::now() + after);
    }

    pub(super) fn at_instant(&mut self, at: Instant) {
        merge_wake(&mut self.wake, at);
    }

    /// Posts the status if it changed.
    fn post(&mut self) {
        let init: Vec<CStatus> = self
            .ctrs
            .iter()
            .filter(|c| c.init)
            .map(|c| c.status.clone())
            .collect();
        let main: Vec<CStatus> = self
            .ctrs
            .iter()
            .filter(|c| !c.init)
            .map(|c| c.status.clone())
            .collect();
        let ip = self.sandbox.as_ref().map(|s| s.ip.to_string());
        let facts = PodFacts {
            policy: self.policy,
            sandbox_ready: self.sandbox.is_some() || self.finished,
            pod_ip: ip.as_deref(),
            host_ip: &self.deps.cfg.host_ip,
            start_time: self.start_time,
            init: &init,
            containers: &main,
        };
        let mut tr = self.transitions.clone();
        let st = podstatus::build(&facts, &mut tr, Timestamp::now());
        let comparable = |s: &PodStatus| {
            let mut s = s.clone();
            for c in s.conditions.iter_mut().flatten() {
                c.last_transition_time = None;
            }
            s
        };
        if self.posted.as_ref().map(comparable) == Some(comparable(&st)) {
            return;
        }
        self.transitions = tr;
        let terminal = matches!(st.phase.as_deref(), Some("Succeeded" | "Failed"));
        self.deps.poster.submit(
            self.uid.clone(),
            Job::PodStatus {
                namespace: self.namespace(),
                name: self.name(),
                status: serde_json::to_value(&st).unwrap_or_default(),
            },
        );
        self.posted = Some(st);
        if terminal && !self.finished {
            self.finished = true;
            self.finish_terminal();
        }
    }

    /// A Succeeded/Failed pod: sidecars stop and the sandbox goes; the
    /// exited containers stay for their logs until the pod is deleted.
    fn finish_terminal(&mut self) {
        let deps = self.deps.clone();
        let running: Vec<String> = self
            .ctrs
            .iter_mut()
            .filter(|c| c.running())
            .filter_map(|c| {
                c.stop_tasks();
                c.id.clone()
            })
            .collect();
        let (uid, ns, name) = (self.uid.clone(), self.namespace(), self.name());
        let had_netns = self
            .sandbox
            .as_ref()
            .is_some_and(|s| !s.netns.as_os_str().is_empty());
        tokio::spawn(async move {
            for id in running {
                deps.containers.stop(&id, Duration::from_secs(2)).await;
            }
            if had_netns {
                if let Err(e) = deps.network.teardown(&uid, &ns, &name).await {
                    tracing::warn!(pod = %name, error = %e, "network teardown");
                }
            }
        });
    }

    async fn on_internal(&mut self, ev: Internal) {
        match ev {
            Internal::Exited { name, id } => self.on_exit(&name, &id).await,
            Internal::Probe {
                name,
                id,
                kind,
                ok,
                flipped,
                message,
            } => self.on_probe(&name, &id, kind, ok, flipped, &message).await,
        }
    }

    /// A container exited: record it and schedule its restart.
    async fn on_exit(&mut self, name: &str, id: &str) {
        let state = self.deps.containers.state(id).await;
        let msg = self.termination_message(name).await;
        let Some(c) = self.ctrs.iter_mut().find(|c| c.status.name == name) else {
            return;
        };
        if c.id.as_deref() != Some(id) {
            return;
        }
        c.stop_tasks();
        c.watcher = None;
        let (exit_code, started_at, finished_at, oom) = match state {
            Some(RunState::Exited {
                started_at,
                finished_at,
                exit_code,
                oom_killed,
            }) => (exit_code, Some(started_at), finished_at, oom_killed),
            _ => (137, None, Timestamp::now(), false),
        };
        let reason = if oom {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        c.status.state = CState::Terminated {
            exit_code,
            reason: reason.into(),
            message: msg,
            started_at,
            finished_at,
        };
        c.status.ready = false;
        c.status.started = false;
        let ran_long = started_at
            .map(|s| finished_at.duration_since(s).as_secs() >= BACKOFF_RESET.as_secs() as i64)
            .unwrap_or(false);
        if ran_long {
            c.backoff = Duration::ZERO;
        }
        let restarts = if c.sidecar {
            true
        } else {
            self.policy.restarts(exit_code)
        };
        if restarts {
            c.restart_at = Some(Instant::now() + c.backoff);
            c.backoff = if c.backoff.is_zero() {
                BACKOFF_INITIAL
            } else {
                (c.backoff * 2).min(BACKOFF_MAX)
            };
        }
    }

    async fn on_probe(
        &mut self,
        name: &str,
        id: &str,
        kind: Kind,
        ok: bool,
        flipped: bool,
        message: &str,
    ) {
        let pod = self.pod.clone();
        let grace = self.grace(None);
        let Some(c) = self.ctrs.iter_mut().find(|c| c.status.name == name) else {
            return;
        };
        if c.id.as_deref() != Some(id) || !c.running() {
            return;
        }
        if !ok {
            self.deps.events.emit(
                &pod,
                Some(name),
                true,
                "Unhealthy",
                &format!("{} probe failed: {message}", kind.as_str()),
            );
        }
        match kind {
            Kind::Readiness => {
                if flipped {
                    c.status.ready = ok && c.status.started;
                }
            }
            Kind::Startup if ok => {
                c.status.started = true;
                c.started_flag.store(true, Ordering::SeqCst);
                if !has_probe(&c.spec, Kind::Readiness) {
                    c.status.ready = true;
                }
            }
            Kind::Liveness | Kind::Startup => {
                if flipped && !ok {
                    let what = if kind == Kind::Liveness {
                        "liveness"
                    } else {
                        "startup"
                    };
                    self.deps.events.emit(
                        &pod,
                        Some(name),
                        false,
                        "Killing",
                        &format!("Container {name} failed {what} probe, will be restarted"),
                    );
                    c.stop_tasks();
                    let containers = self.deps.containers.clone();
                    let id = id.to_string();
                    tokio::spawn(async move { containers.stop(&id, grace).await });
                }
            }
        }
    }

    /// The grace period of a stop (`deletionGracePeriodSeconds`, else
    /// `terminationGracePeriodSeconds`, else 30 s).
    pub(super) fn grace(&self, given: Option<Duration>) -> Duration {
        given.unwrap_or_else(|| {
            let s = self
                .pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(30);
            Duration::from_secs(s.max(0) as u64)
        })
    }

    /// Moves the pod forward as far as it can now.
    async fn sync(&mut self) {
        if !self.ensure_sandbox().await || !self.ensure_volumes().await {
            return;
        }
        if Instant::now() >= self.next_refresh {
            self.refresh_volumes().await;
        }
        self.at_instant(self.next_refresh);
        // Init containers, in order.
        for i in 0..self.ctrs.len() {
            if !self.ctrs[i].init {
                continue;
            }
            if self.ctrs[i].sidecar {
                if !self.ctrs[i].running() {
                    self.ensure_started(i).await;
                }
                if !self.ctrs[i].status.started {
                    return;
                }
                continue;
            }
            match self.ctrs[i].status.state.clone() {
                CState::Terminated { exit_code: 0, .. } => continue,
                CState::Running { .. } => return,
                CState::Terminated { exit_code, .. } => {
                    if self.policy == RestartPolicy::Never || !self.policy.restarts(exit_code) {
                        return;
                    }
                    self.ensure_started(i).await;
                    return;
                }
                CState::Waiting { .. } => {
                    self.ensure_started(i).await;
                    return;
                }
            }
        }
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].init || self.ctrs[i].running() {
                continue;
            }
            let should = match &self.ctrs[i].status.state {
                CState::Waiting { .. } => true,
                CState::Terminated { exit_code, .. } => self.policy.restarts(*exit_code),
                CState::Running { .. } => false,
            };
            if should {
                self.ensure_started(i).await;
            }
        }
    }
}

/// Whether the container has a probe of `kind`.
pub(super) fn has_probe(c: &Container, kind: Kind) -> bool {
    match kind {
        Kind::Liveness => c.liveness_probe.is_some(),
        Kind::Readiness => c.readiness_probe.is_some(),
        Kind::Startup => c.startup_probe.is_some(),
    }
}

//! The pod worker's side effects: the network sandbox and its hosts files,
//! volumes, pulling images (with ErrImagePull / ImagePullBackOff), creating
//! and starting containers (CreateContainerConfigError, StartError,
//! crash-loop back-off), probes and lifecycle hooks, re-adopting containers
//! after an agent restart, and tearing the pod down.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use super::backend::{ContainerService, PortMapping, RunState, Sandbox};
use super::podstatus::CState;
use super::probe::{self, Kind};
use super::worker::{has_probe, Internal, Worker, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_POD_UID};
use super::{hosts, sources, volumes};
use crate::lifecycle::BACKOFF_MAX;

pub(super) struct ExecIn {
    pub containers: Arc<dyn ContainerService>,
    pub id: String,
}

#[async_trait::async_trait]
impl probe::Exec for ExecIn {
    async fn exec(&self, cmd: &[String], timeout: Duration) -> Result<(i32, String), String> {
        self.containers.exec(&self.id, cmd, timeout).await
    }
}

pub(super) fn next_backoff(b: Duration) -> Duration {
    if b.is_zero() {
        Duration::from_secs(10)
    } else {
        (b * 2).min(BACKOFF_MAX)
    }
}

impl Worker {
    fn sandbox_file(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    /// Picks up containers and the sandbox of this pod left by an earlier
    /// run of the agent.
    pub(super) async fn adopt(&mut self) {
        if let Ok(b) = std::fs::read(self.sandbox_file()) {
            if let Ok(sb) = serde_json::from_slice::<Sandbox>(&b) {
                if self.deps.network.exists(&sb).await || sb.netns.as_os_str().is_empty() {
                    self.sources.pod_ip = sb.ip.to_string();
                    self.sandbox = Some(sb);
                }
            }
        }
        let mut newest: std::collections::HashMap<String, (u32, String)> = Default::default();
        for (id, labels) in self.deps.containers.list().await {
            if labels.get(LABEL_POD_UID) != Some(&self.uid) {
                continue;
            }
            let (Some(name), Some(attempt)) = (
                labels.get(LABEL_CONTAINER),
                labels
                    .get(LABEL_ATTEMPT)
                    .and_then(|a| a.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let e = newest.entry(name.clone()).or_insert((attempt, id.clone()));
            if attempt >= e.0 {
                *e = (attempt, id);
            }
        }
        if newest.is_empty() {
            return;
        }
        let main_seen = self
            .ctrs
            .iter()
            .any(|c| !c.init && newest.contains_key(&c.status.name));
        for i in 0..self.ctrs.len() {
            let name = self.ctrs[i].status.name.clone();
            let Some((attempt, id)) = newest.get(&name).cloned() else {
                if self.ctrs[i].init && !self.ctrs[i].sidecar && main_seen {
                    self.ctrs[i].status.state = CState::Terminated {
                        exit_code: 0,
                        reason: "Completed".into(),
                        message: String::new(),
                        started_at: None,
                        finished_at: Timestamp::now(),
                    };
                }
                continue;
            };
            let c = &mut self.ctrs[i];
            c.id = Some(id.clone());
            c.attempt = attempt;
            c.started_once = true;
            c.status.restart_count = attempt as i32;
            c.status.container_id = Some(format!("rkube://{id}"));
            match self.deps.containers.state(&id).await {
                Some(RunState::Running { started_at }) => {
                    c.status.state = CState::Running { started_at };
                    self.after_start(i, &id);
                }
                _ => {
                    let tx = self.tx.clone();
                    let _ = tx.send(Internal::Exited { name, id });
                }
            }
        }
    }

    /// Creates the pod's network (once); false while it is not there.
    pub(super) async fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        let _ = std::fs::create_dir_all(&self.dir);
        let sb = if self.host_network() {
            Sandbox {
                ip: self
                    .deps
                    .cfg
                    .host_ip
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
                netns: PathBuf::new(),
            }
        } else {
            let ports = port_mappings(&self.pod);
            match self
                .deps
                .network
                .setup(&self.uid, &self.namespace(), &self.name(), &ports)
                .await
            {
                Ok(sb) => sb,
                Err(e) => {
                    let pod = self.pod.clone();
                    self.deps.events.emit(
                        &pod,
                        None,
                        true,
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {e}"),
                    );
                    self.at(Duration::from_secs(2));
                    return false;
                }
            }
        };
        if let Ok(b) = serde_json::to_vec(&sb) {
            let _ = std::fs::write(self.sandbox_file(), b);
        }
        let ip = sb.ip.to_string();
        let cfg = &self.deps.cfg;
        let files = [
            (
                "hosts",
                hosts::hosts_file(&self.pod, &ip, &cfg.cluster_domain, &cfg.host_hosts),
            ),
            (
                "resolv.conf",
                hosts::resolv_conf(
                    &self.pod,
                    &cfg.cluster_dns,
                    &cfg.cluster_domain,
                    &cfg.host_resolv,
                ),
            ),
            ("hostname", format!("{}\n", hosts::hostname(&self.pod))),
        ];
        for (f, text) in files {
            let _ = std::fs::write(self.dir.join(f), text);
        }
        self.sources.pod_ip = ip;
        self.sandbox = Some(sb);
        true
    }

    /// Sets up volumes (once); false while they cannot be.
    pub(super) async fn ensure_volumes(&mut self) -> bool {
        if self.volumes.is_some() {
            return true;
        }
        if let Err(e) = sources::fetch(&self.deps.client, &self.pod, &mut self.sources).await {
            tracing::warn!(pod = %self.name(), error = %e, "fetching volume sources");
            self.at(Duration::from_secs(2));
            return false;
        }
        match volumes::setup(
            &self.pod,
            &self.dir,
            &self.sources,
            self.deps.mounter.as_ref(),
        ) {
            Ok(v) => {
                self.volumes = Some(v);
                true
            }
            Err(e) => {
                let pod = self.pod.clone();
                let vol = match &e {
                    volumes::VolumeError::Io(v, _) | volumes::VolumeError::Unsupported(v) => {
                        v.clone()
                    }
                    _ => String::new(),
                };
                self.deps.events.emit(
                    &pod,
                    None,
                    true,
                    "FailedMount",
                    &format!("MountVolume.SetUp failed for volume \"{vol}\" : {e}"),
                );
                self.at(Duration::from_secs(2));
                false
            }
        }
    }

    /// Rewrites configMap/secret volumes whose sources changed.
    pub(super) async fn refresh_volumes(&mut self) {
        self.next_refresh = Instant::now() + Duration::from_secs(5);
        let has = volumes::pod_volumes(&self.pod).any(volumes::is_projected);
        if !has {
            return;
        }
        if sources::fetch(&self.deps.client, &self.pod, &mut self.sources)
            .await
            .is_ok()
        {
            let changed = volumes::refresh(&self.pod, &self.dir, &self.sources);
            if !changed.is_empty() {
                tracing::debug!(pod = %self.name(), ?changed, "volumes updated");
            }
        }
    }

    pub(super) fn waiting(&mut self, i: usize, reason: &str, message: String) {
        self.ctrs[i].status.state = CState::Waiting {
            reason: reason.into(),
            message,
        };
    }

    /// Starts container `i` unless a back-off holds it.
    pub(super) async fn ensure_started(&mut self, i: usize) {
        let now = Instant::now();
        let pod = self.pod.clone();
        let name = self.ctrs[i].status.name.clone();
        if let Some(at) = self.ctrs[i].restart_at.filter(|at| *at > now) {
            let prev = self.ctrs[i].status.state.clone();
            if let CState::Terminated { .. } = prev {
                self.ctrs[i].status.last = Some(prev);
                self.deps.events.emit(
                    &pod,
                    Some(&name),
                    true,
                    "BackOff",
                    "Back-off restarting failed container",
                );
            }
            let secs = at.saturating_duration_since(now).as_secs().max(1);
            let msg = format!(
                "back-off {}s restarting failed container={name} pod={}_{}({})",
                secs,
                self.name(),
                self.namespace(),
                self.uid
            );
            self.waiting(i, "CrashLoopBackOff", msg);
            self.at_instant(at);
            return;
        }
        if let Some(at) = self.ctrs[i].config_retry_at.filter(|at| *at > now) {
            self.at_instant(at);
            return;
        }
        let image_name = self.ctrs[i].spec.image.clone().unwrap_or_default();
        // Images.
        if let Some(at) = self.ctrs[i].image_retry_at.filter(|at| *at > now) {
            self.waiting(
                i,
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image_name}\""),
            );
            self.at_instant(at);
            return;
        }
        let image = match self.image(i, &image_name).await {
            Some(img) => img,
            None => return,
        };
        // Configuration.
        let c = self.ctrs[i].spec.clone();
        let run = match self.run_spec(i, &c, &image) {
            Ok(r) => r,
            Err(msg) => {
                self.deps
                    .events
                    .emit(&pod, Some(&name), true, "Failed", &format!("Error: {msg}"));
                self.waiting(i, "CreateContainerConfigError", msg);
                self.ctrs[i].config_retry_at = Some(now + Duration::from_secs(2));
                self.at(Duration::from_secs(2));
                return;
            }
        };
        // The previous container goes; its log stays for --previous.
        if let Some(old) = self.ctrs[i].id.take() {
            self.deps.containers.remove(&old).await;
        }
        let prev = self.ctrs[i].status.state.clone();
        if self.ctrs[i].started_once {
            if let CState::Terminated { .. } = prev {
                self.ctrs[i].status.last = Some(prev);
            }
            self.ctrs[i].status.restart_count += 1;
        }
        self.ctrs[i].attempt = self.ctrs[i].status.restart_count as u32;
        self.ctrs[i].started_once = true;
        self.ctrs[i].restart_at = None;
        self.ctrs[i].status.image_id = image.repo_digest.clone();
        self.ctrs[i].status.container_id = Some(format!("rkube://{}", run.id));
        self.ctrs[i].id = Some(run.id.clone());
        self.deps.events.emit(
            &pod,
            Some(&name),
            false,
            "Created",
            &format!("Created container: {name}"),
        );
        match self.deps.containers.start(&run).await {
            Ok(()) => {
                self.deps.events.emit(
                    &pod,
                    Some(&name),
                    false,
                    "Started",
                    &format!("Started container {name}"),
                );
                self.ctrs[i].status.state = CState::Running {
                    started_at: Timestamp::now(),
                };
                self.after_start(i, &run.id);
                self.post_start_hook(i, &run.id).await;
            }
            Err(e) => {
                self.deps
                    .events
                    .emit(&pod, Some(&name), true, "Failed", &format!("Error: {e}"));
                self.ctrs[i].status.state = CState::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: e,
                    started_at: None,
                    finished_at: Timestamp::now(),
                };
                let c = &mut self.ctrs[i];
                c.restart_at = Some(Instant::now() + c.backoff);
                c.backoff = next_backoff(c.backoff);
                self.at(Duration::ZERO);
            }
        }
    }

    /// After a container runs: its exit watcher and probes.
    pub(super) fn after_start(&mut self, i: usize, id: &str) {
        let c = &mut self.ctrs[i];
        let has_startup = has_probe(&c.spec, Kind::Startup);
        c.status.started = !has_startup;
        c.started_flag.store(!has_startup, Ordering::SeqCst);
        c.status.ready = !has_startup && !has_probe(&c.spec, Kind::Readiness);
        let containers = self.deps.containers.clone();
        let tx = self.tx.clone();
        let (name, cid) = (c.status.name.clone(), id.to_string());
        c.watcher = Some(tokio::spawn(async move {
            containers.wait(&cid).await;
            let _ = tx.send(Internal::Exited { name, id: cid });
        }));
        let ip = self.sources.pod_ip.clone();
        let probes = [
            (Kind::Startup, c.spec.startup_probe.clone()),
            (Kind::Liveness, c.spec.liveness_probe.clone()),
            (Kind::Readiness, c.spec.readiness_probe.clone()),
        ];
        for (kind, p) in probes {
            let Some(p) = p else { continue };
            let spec = probe::spec(kind, &p, &c.spec, &ip);
            let exec = ExecIn {
                containers: self.deps.containers.clone(),
                id: id.to_string(),
            };
            let tx = self.tx.clone();
            let started = c.started_flag.clone();
            let (name, cid) = (c.status.name.clone(), id.to_string());
            c.tasks.push(tokio::spawn(async move {
                tokio::time::sleep(spec.initial_delay).await;
                let mut tracker = probe::Tracker::new(&spec);
                loop {
                    if kind == Kind::Startup || started.load(Ordering::SeqCst) {
                        let (ok, message) =
                            probe::run_once(&spec.action, spec.timeout, &exec).await;
                        let flipped = tracker.record(ok).is_some();
                        if flipped || !ok {
                            let _ = tx.send(Internal::Probe {
                                name: name.clone(),
                                id: cid.clone(),
                                kind,
                                ok,
                                flipped,
                                message,
                            });
                        }
                        if kind == Kind::Startup && tracker.result {
                            return;
                        }
                    }
                    tokio::time::sleep(spec.period).await;
                }
            }));
        }
    }
}

/// The pod's hostPorts.
pub fn port_mappings(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            let Some(hp) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            out.push(PortMapping {
                host_port: hp as u16,
                container_port: p.container_port as u16,
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

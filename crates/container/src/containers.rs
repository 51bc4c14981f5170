//! [`Containers`]: create, start, watch, signal and remove containers, each
//! kept in a state directory `<root>/<id>/` and run by its own monitor
//! process, so a new `Containers` over the same root (a restarted agent)
//! finds running containers with [`Containers::list`] and keeps managing them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::bundle::{self, BundleError};
use crate::cgroup::{CgroupError, Cgroups, Usage};
use crate::logfmt;
use crate::logs::{read_logs, LogOptions, LogsError};
use crate::rootfs::{Mounter, RootfsError, SysMounter};
use crate::runtime::{is_gone, run_async, OciRuntime, Runc, RuntimeError};
use crate::spec::{valid_id, ContainerSpec, Rootfs};
use crate::state::{self, files, Exited, MonitorConfig, Started, StateError, Status};
use crate::watch::{DirWatcher, WatchError};

/// Errors managing containers.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The id is not usable.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// A container with this id exists.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// No such container.
    #[error("container {0} not found")]
    NotFound(String),
    /// The container is not running.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The runtime could not start the process (message as the runtime gives it).
    #[error("{0}")]
    StartFailed(String),
    /// The monitor process failed.
    #[error("container monitor for {id} failed: {message}")]
    Monitor {
        /// The container.
        id: String,
        /// What went wrong (the monitor's log).
        message: String,
    },
    /// File-system trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Bundle generation.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Root filesystem.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The runtime binary.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// State files.
    #[error(transparent)]
    State(#[from] StateError),
    /// Watching for exits.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// Reading cgroup statistics.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Reading logs.
    #[error(transparent)]
    Logs(#[from] LogsError),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// How to run containers on this node.
#[derive(Clone, Debug)]
pub struct ContainersConfig {
    /// State directories live here (`/run/rkube/containers`).
    pub root: PathBuf,
    /// The OCI runtime (binary and `--root`).
    pub runtime: Runc,
    /// The command that starts a monitor, e.g. `[current_exe, "container-monitor"]`;
    /// `run STATE_DIR` (or `exec-tty ...`) is appended.
    pub monitor_command: Vec<OsString>,
    /// cgroup filesystem root (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
}

impl ContainersConfig {
    /// Defaults under `/run/rkube` with the given monitor command.
    pub fn new(monitor_command: Vec<OsString>) -> Self {
        ContainersConfig {
            root: "/run/rkube/containers".into(),
            runtime: Runc::default(),
            monitor_command,
            cgroup_root: "/sys/fs/cgroup".into(),
        }
    }
}

/// A container found in the state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its status.
    pub status: Status,
}

pub(crate) struct Inner {
    pub(crate) cfg: ContainersConfig,
    mounter: Arc<dyn Mounter>,
    cgroups: Cgroups,
    watcher: Mutex<Option<DirWatcher>>,
}

/// The containers under one state root; cheap to clone.
#[derive(Clone)]
pub struct Containers {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Containers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containers")
            .field("root", &self.inner.cfg.root)
            .finish()
    }
}

/// How often a waiter checks that the monitor is still alive.
const MONITOR_CHECK: Duration = Duration::from_secs(1);
/// How long `remove` waits for a killed container to be reported ended.
const REMOVE_WAIT: Duration = Duration::from_secs(10);

impl Containers {
    /// Opens (creating) the state root. Existing containers are adopted as they are.
    pub fn new(cfg: ContainersConfig) -> Result<Self, ContainerError> {
        Self::with_mounter(cfg, Arc::new(SysMounter))
    }

    /// Like [`Containers::new`] with another [`Mounter`].
    pub fn with_mounter(
        cfg: ContainersConfig,
        mounter: Arc<dyn Mounter>,
    ) -> Result<Self, ContainerError> {
        std::fs::create_dir_all(&cfg.root)
            .map_err(io_err(format!("creating {}", cfg.root.display())))?;
        let cgroups = Cgroups::new(&cfg.cgroup_root);
        Ok(Containers {
            inner: Arc::new(Inner {
                cfg,
                mounter,
                cgroups,
                watcher: Mutex::new(None),
            }),
        })
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &Runc {
        &self.inner.cfg.runtime
    }

    /// The state directory of a container.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.inner.cfg.root.join(id)
    }

    pub(crate) fn existing_dir(&self, id: &str) -> Result<PathBuf, ContainerError> {
        if !valid_id(id) {
            return Err(ContainerError::InvalidId(id.into()));
        }
        let dir = self.state_dir(id);
        if dir.join(files::SPEC).exists() {
            Ok(dir)
        } else {
            Err(ContainerError::NotFound(id.into()))
        }
    }

    /// Creates the container and starts it. Returns once the process runs,
    /// or with the runtime's error (e.g. executable not found); after a start
    /// error the container stays, `Exited` with reason `StartError`, until removed.
    #[tracing::instrument(skip_all, fields(id = %spec.id))]
    pub async fn create_and_start(&self, spec: &ContainerSpec) -> Result<Started, ContainerError> {
        if !valid_id(&spec.id) {
            return Err(ContainerError::InvalidId(spec.id.clone()));
        }
        let dir = self.state_dir(&spec.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::AlreadyExists(spec.id.clone()))
            }
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
        match self.prepare(spec, &dir) {
            Ok(()) => {}
            Err(e) => {
                self.cleanup_dir(spec, &dir);
                return Err(e);
            }
        }
        self.start_monitor(&spec.id, &dir).await
    }

    fn prepare(&self, spec: &ContainerSpec, dir: &Path) -> Result<(), ContainerError> {
        let rootfs = match &spec.rootfs {
            Rootfs::Path(p) => p.clone(),
            Rootfs::Layers(layers) => {
                let (upper, work, target) =
                    (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
                for d in [&upper, &work, &target] {
                    std::fs::create_dir(d).map_err(io_err(format!("creating {}", d.display())))?;
                }
                self.inner
                    .mounter
                    .mount_overlay(layers, &upper, &work, &target)?;
                target
            }
        };
        let oci = bundle::build(spec, &rootfs)?;
        let bundle_dir = dir.join(files::BUNDLE);
        std::fs::create_dir(&bundle_dir).map_err(io_err("creating the bundle directory"))?;
        bundle::write(&oci, &bundle_dir)?;
        let cfg = &self.inner.cfg;
        let monitor = MonitorConfig {
            id: spec.id.clone(),
            runtime: cfg.runtime.binary.clone(),
            runtime_root: cfg.runtime.root.clone(),
            bundle: bundle_dir,
            cgroup_path: bundle::cgroup_path(spec),
            tty: spec.tty,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            log: spec.log.clone(),
        };
        state::write_json(dir, files::MONITOR, &monitor)?;
        // The log file exists before the container runs, so a reader that
        // starts as soon as `create_and_start` returns finds it (the monitor
        // opens it for appending).
        if let Some(parent) = spec.log.path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating the log directory"))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log.path)
            .map_err(io_err(format!("creating {}", spec.log.path.display())))?;
        // Written last: a directory with spec.json is a container.
        state::write_json(dir, files::SPEC, spec)?;
        Ok(())
    }

    fn cleanup_dir(&self, spec: &ContainerSpec, dir: &Path) {
        if matches!(spec.rootfs, Rootfs::Layers(_)) {
            let _ = self.inner.mounter.unmount(&dir.join("rootfs"));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn start_monitor(&self, id: &str, dir: &Path) -> Result<Started, ContainerError> {
        let cmd_line = &self.inner.cfg.monitor_command;
        let Some((program, args)) = cmd_line.split_first() else {
            return Err(ContainerError::Monitor {
                id: id.into(),
                message: "no monitor command configured".into(),
            });
        };
        let log = std::fs::File::create(dir.join(files::MONITOR_LOG))
            .map_err(io_err("creating monitor.log"))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .arg("run")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io_err(format!(
                "starting the monitor {}",
                Path::new(program).display()
            )))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(io_err("reading the monitor's report"))?;
        // The child is reaped by tokio in the background once it exits.
        drop(child);
        if n == 0 {
            let message = std::fs::read_to_string(dir.join(files::MONITOR_LOG)).unwrap_or_default();
            return Err(ContainerError::Monitor {
                id: id.into(),
                message: message.trim().to_string(),
            });
        }
        crate::monitor::parse_report(&line).map_err(ContainerError::StartFailed)
    }

    /// The container's spec as created.
    pub fn spec(&self, id: &str) -> Result<ContainerSpec, ContainerError> {
        let dir = self.existing_dir(id)?;
        state::read_json(&dir, files::SPEC)?.ok_or_else(|| ContainerError::NotFound(id.into()))
    }

    /// The container's status. A container whose monitor died without a
    /// record reads as exited with reason `Unknown`.
    pub fn status(&self, id: &str) -> Result<Status, ContainerError> {
        let dir = self.existing_dir(id)?;
        let status = state::read_status(&dir)?;
        if status.exited().is_none() {
            if let Some(pid) = state::monitor_pid(&dir) {
                if !pid_alive(pid) {
                    // Re-read: it may have finished between the two reads.
                    if let Status::Exited(e) = state::read_status(&dir)? {
                        return Ok(Status::Exited(e));
                    }
                    let started_at = match status {
                        Status::Running { started_at, .. } => Some(started_at),
                        _ => None,
                    };
                    return Ok(Status::Exited(Exited {
                        exit_code: 255,
                        started_at,
                        finished_at: Timestamp::now(),
                        oom_killed: false,
                        reason: "Unknown".into(),
                        message: Some(
                            "the container monitor exited without recording an exit".into(),
                        ),
                    }));
                }
            }
        }
        Ok(status)
    }

    fn watcher(&self) -> Result<DirWatcher, ContainerError> {
        let mut w = self.inner.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_ref() {
            return Ok(w.clone());
        }
        let new = DirWatcher::new()?;
        *w = Some(new.clone());
        Ok(new)
    }

    /// Resolves when the container has exited.
    pub async fn wait(&self, id: &str) -> Result<Exited, ContainerError> {
        let dir = self.existing_dir(id)?;
        let guard = self.watcher()?.watch(&dir)?;
        loop {
            let notified = guard.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Status::Exited(e) = self.status(id)? {
                return Ok(e);
            }
            let _ = tokio::time::timeout(MONITOR_CHECK, notified).await;
        }
    }

    /// Sends a signal to the container's init process. An already ended container is not an error.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), ContainerError> {
        match self.status(id)? {
            Status::Exited(_) => Ok(()),
            Status::Created => Err(ContainerError::NotRunning(id.into())),
            Status::Running { .. } => {
                let rt = &self.inner.cfg.runtime;
                match run_async(rt, rt.kill_args(id, signal)).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_gone(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit record.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<Exited, ContainerError> {
        if let Status::Exited(e) = self.status(id)? {
            return Ok(e);
        }
        if !grace.is_zero() {
            self.kill(id, 15).await?;
            if let Ok(r) = tokio::time::timeout(grace, self.wait(id)).await {
                return r;
            }
        }
        self.kill(id, 9).await?;
        self.wait(id).await
    }

    /// Removes the container: kills it if needed, deletes the runtime's state,
    /// unmounts the rootfs and removes the state directory (not the log files).
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let dir = match self.existing_dir(id) {
            Ok(d) => d,
            Err(ContainerError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let spec = self.spec(id)?;
        if self.status(id)?.exited().is_none() {
            let _ = self.kill(id, 9).await;
            let _ = tokio::time::timeout(REMOVE_WAIT, self.wait(id)).await;
        }
        let rt = &self.inner.cfg.runtime;
        if let Err(e) = run_async(rt, rt.delete_args(id, true)).await {
            if !is_gone(&e) {
                tracing::warn!(id, error = %e, "runtime delete failed");
            }
        }
        if matches!(spec.rootfs, Rootfs::Layers(_)) {
            self.inner.mounter.unmount(&dir.join("rootfs"))?;
        }
        std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))
    }

    /// All containers under the root.
    pub fn list(&self) -> Result<Vec<ContainerInfo>, ContainerError> {
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&self.inner.cfg.root).map_err(io_err("listing containers"))?;
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(spec) = self.spec(&id) else { continue };
            let Ok(status) = self.status(&id) else {
                continue;
            };
            out.push(ContainerInfo {
                id,
                labels: spec.labels,
                status,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The container's log (rotated files first), decoded as `kubectl logs` shows it.
    pub fn logs(
        &self,
        id: &str,
        opts: LogOptions,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, LogsError>> + Send + 'static, ContainerError>
    {
        let spec = self.spec(id)?;
        let this = self.clone();
        let id = id.to_string();
        let exited: crate::logs::ExitFuture = Box::pin(async move {
            let _ = this.wait(&id).await;
        });
        Ok(read_logs(
            logfmt::all_files(&spec.log.path),
            opts,
            Some(exited),
        ))
    }

    /// CPU and memory usage from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<Usage, ContainerError> {
        let spec = self.spec(id)?;
        Ok(self.inner.cgroups.usage(&bundle::cgroup_path(&spec))?)
    }
}

/// Whether a process exists (zombies count as alive).
pub(crate) fn pid_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}

//! [`ContainerService`] over `rkube-container` (an OCI runtime such as runc,
//! with one monitor process per container), and the containers' cgroup
//! usage for the Summary API ([`ContainerStats`]).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use rkube_container::{
    ContainerSpec, Containers, ExecSpec, LogConfig, Mount, Resources, Rootfs, Status, User,
};
use tokio::io::AsyncReadExt;

use super::backend::{ContainerService, RunSpec, RunState};
use super::stats::{ContainerSample, ContainerStats, PodReference};
use super::worker::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

/// Containers run by an OCI runtime.
pub struct RuncContainers {
    pub containers: Containers,
    /// Log rotation (`--container-log-max-size`, `--container-log-max-files`).
    pub log_max_size: u64,
    pub log_max_files: usize,
}

impl RuncContainers {
    /// With upstream's default log rotation (10Mi, 5 files).
    pub fn new(containers: Containers) -> Self {
        let d = LogConfig::default();
        RuncContainers {
            containers,
            log_max_size: d.max_size,
            log_max_files: d.max_files,
        }
    }
}

fn to_spec(r: &RunSpec, log_max_size: u64, log_max_files: usize) -> ContainerSpec {
    let mut mounts: Vec<Mount> = r
        .mounts
        .iter()
        .map(|m| Mount::Bind {
            source: m.source.clone(),
            destination: m.destination.clone(),
            readonly: m.read_only,
        })
        .collect();
    mounts.sort_by_key(|m| match m {
        Mount::Bind { destination, .. } | Mount::Tmpfs { destination, .. } => {
            destination.matches('/').count()
        }
    });
    ContainerSpec {
        id: r.id.clone(),
        labels: r
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        // rkube-container wants the top-most layer first.
        rootfs: Rootfs::Layers(r.layers.iter().rev().cloned().collect()),
        args: r.args.clone(),
        env: r.env.clone(),
        cwd: Some(r.cwd.clone()),
        user: User {
            uid: r.uid,
            gid: r.gid,
            additional_gids: r.additional_gids.clone(),
        },
        hostname: Some(r.hostname.clone()),
        netns: r.netns.clone(),
        mounts,
        readonly_rootfs: r.readonly_rootfs,
        privileged: r.privileged,
        cap_add: r.caps_add.clone(),
        cap_drop: r.caps_drop.clone(),
        no_new_privileges: r.no_new_privileges,
        resources: Resources {
            memory_limit: r.memory_limit,
            cpu_quota: r.cpu_quota,
            cpu_period: r.cpu_period,
            cpu_shares: r.cpu_shares,
            pids_limit: None,
        },
        cgroup_parent: Some(r.cgroup_parent.clone()),
        tty: r.tty,
        stdin: r.stdin,
        stdin_once: r.stdin_once,
        log: LogConfig {
            path: r.log_path.clone(),
            max_size: log_max_size,
            max_files: log_max_files,
        },
    }
}

#[async_trait]
impl ContainerService for RuncContainers {
    async fn start(&self, spec: &RunSpec) -> Result<(), String> {
        self.containers
            .create_and_start(&to_spec(spec, self.log_max_size, self.log_max_files))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn state(&self, id: &str) -> Option<RunState> {
        match self.containers.status(id).ok()? {
            Status::Created => None,
            Status::Running { started_at, .. } => Some(RunState::Running { started_at }),
            Status::Exited(e) => Some(RunState::Exited {
                started_at: e.started_at.unwrap_or(e.finished_at),
                finished_at: e.finished_at,
                exit_code: e.exit_code,
                oom_killed: e.oom_killed,
            }),
        }
    }

    async fn wait(&self, id: &str) {
        let _ = self.containers.wait(id).await;
    }

    async fn stop(&self, id: &str, grace: Duration) {
        if let Err(e) = self.containers.stop(id, grace).await {
            tracing::debug!(id, error = %e, "stop");
        }
    }

    async fn remove(&self, id: &str) {
        if let Err(e) = self.containers.remove(id).await {
            tracing::warn!(id, error = %e, "remove");
        }
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, String), String> {
        let spec = ExecSpec {
            args: cmd.to_vec(),
            env: Vec::new(),
            tty: false,
            stdin: false,
        };
        let run = async {
            let mut s = self
                .containers
                .exec(id, &spec)
                .await
                .map_err(|e| e.to_string())?;
            let (stdout, stderr) = (s.stdout.take(), s.stderr.take());
            let read = |r: Option<rkube_container::exec::Reader>| async move {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf).await;
                }
                buf
            };
            let (mut out, err) = tokio::join!(read(stdout), read(stderr));
            out.extend(err);
            let code = s.wait().await.map_err(|e| e.to_string())?;
            Ok((code, String::from_utf8_lossy(&out).into_owned()))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "command {cmd:?} timed out after {}s",
                timeout.as_secs()
            )),
        }
    }

    async fn list(&self) -> Vec<(String, HashMap<String, String>)> {
        self.containers
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.id, c.labels.into_iter().collect()))
            .collect()
    }
}

/// Cgroup usage of the running containers and of their pods' cgroups.
pub struct RuncStats {
    pub containers: Containers,
    pub cgroups: rkube_container::cgroup::Cgroups,
}

impl ContainerStats for RuncStats {
    fn running(&self) -> Vec<ContainerSample> {
        let mut out = Vec::new();
        for c in self.containers.list().unwrap_or_default() {
            let Status::Running { started_at, .. } = c.status else {
                continue;
            };
            let label = |k: &str| c.labels.get(k).cloned();
            let (Some(uid), Some(name), Some(namespace), Some(container)) = (
                label(LABEL_POD_UID),
                label(LABEL_POD_NAME),
                label(LABEL_POD_NAMESPACE),
                label(LABEL_CONTAINER),
            ) else {
                continue;
            };
            let Ok(usage) = self.containers.stats(&c.id) else {
                continue;
            };
            out.push(ContainerSample {
                id: c.id,
                pod: PodReference {
                    name,
                    namespace,
                    uid,
                },
                name: container,
                started_at,
                usage,
            });
        }
        out
    }

    fn pod_usage(&self, uid: &str) -> Option<rkube_container::Usage> {
        self.cgroups
            .usage(&super::create::pod_cgroup(uid))
            .ok()
            .filter(|u| u.memory_usage_bytes > 0)
    }
}

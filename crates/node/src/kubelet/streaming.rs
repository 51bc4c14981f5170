//! The real runtime's [`StreamingBackend`]: finds a pod's containers by
//! their labels, reads their CRI log files (`--previous`: the attempt
//! before), runs `exec` through the OCI runtime, attaches to the main
//! process through the container's monitor, and port-forwards by
//! connecting inside the pod's network namespace (so servers bound to the
//! pod's 127.0.0.1 are reached too).

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rkube_container::{AttachStreams, ContainerError, Containers, ExecSpec};
use tokio::sync::mpsc;

use super::backend::Sandbox;
use super::worker::{
    LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use crate::server::backend::{
    BackendError, Duplex, ExecOptions, ExecSession, LogOptions, PodRef, StreamingBackend,
};

/// Streaming into real containers.
pub struct KubeletStreaming {
    pub containers: Containers,
    /// Per-pod directories (`<pods_dir>/<uid>/sandbox.json`).
    pub pods_dir: PathBuf,
}

struct Found {
    id: String,
    attempt: u32,
}

impl KubeletStreaming {
    /// The newest container named `container` of the pod.
    fn find(&self, pod: &PodRef, container: &str) -> Result<Found, BackendError> {
        let list = self
            .containers
            .list()
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        let mut pod_seen = false;
        let mut best: Option<Found> = None;
        for c in list {
            let l = &c.labels;
            if l.get(LABEL_POD_NAMESPACE) != Some(&pod.namespace)
                || l.get(LABEL_POD_NAME) != Some(&pod.name)
            {
                continue;
            }
            pod_seen = true;
            if l.get(LABEL_CONTAINER).map(String::as_str) != Some(container) {
                continue;
            }
            let attempt = l
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if best.as_ref().is_none_or(|b| attempt >= b.attempt) {
                best = Some(Found {
                    id: c.id.clone(),
                    attempt,
                });
            }
        }
        best.ok_or_else(|| {
            if pod_seen {
                BackendError::ContainerNotFound {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    container: container.into(),
                }
            } else {
                BackendError::PodNotFound {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                }
            }
        })
    }

    fn sandbox(&self, uid: &str) -> Option<Sandbox> {
        let b = std::fs::read(self.pods_dir.join(uid).join("sandbox.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

fn previous_log(current: &Path, attempt: u32) -> Option<PathBuf> {
    let prev = attempt.checked_sub(1)?;
    Some(current.with_file_name(format!("{prev}.log")))
}

#[async_trait]
impl StreamingBackend for KubeletStreaming {
    async fn logs(
        &self,
        pod: &PodRef,
        container: &str,
        opts: LogOptions,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, BackendError> {
        let found = self.find(pod, container)?;
        let spec = self
            .containers
            .spec(&found.id)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        let copts = opts.reader_options();
        let stream = if opts.previous {
            let prev = previous_log(&spec.log.path, found.attempt).filter(|p| p.exists());
            let Some(prev) = prev else {
                return Err(BackendError::BadRequest(format!(
                    "previous terminated container \"{container}\" in pod \"{}\" not found",
                    pod.name
                )));
            };
            rkube_container::read_logs(rkube_container::logfmt::all_files(&prev), copts, None)
                .boxed()
        } else {
            self.containers
                .logs(&found.id, copts)
                .map_err(|e| BackendError::Internal(e.to_string()))?
                .boxed()
        };
        Ok(stream.map(|r| r.map_err(io::Error::other)).boxed())
    }

    async fn exec(
        &self,
        pod: &PodRef,
        container: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError> {
        let found = self.find(pod, container)?;
        let spec = ExecSpec {
            args: cmd,
            env: Vec::new(),
            tty: opts.tty,
            stdin: opts.stdin,
        };
        let mut s = self
            .containers
            .exec(&found.id, &spec)
            .await
            .map_err(|e| BackendError::BadRequest(e.to_string()))?;
        let stdin = s.stdin.take();
        let stdout = s.stdout.take();
        let stderr = s.stderr.take();
        let (tx, mut rx) = mpsc::channel::<crate::server::backend::TerminalSize>(4);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    size = rx.recv() => match size {
                        Some(sz) => { let _ = s.resize(sz.width, sz.height); }
                        None => break,
                    },
                    code = s.wait() => {
                        let _ = done_tx.send(code.map_err(|e| e.to_string()));
                        return;
                    }
                }
            }
            let code = s.wait().await.map_err(|e| e.to_string());
            let _ = done_tx.send(code);
        });
        let exit = async move {
            match done_rx.await {
                Ok(Ok(code)) => Ok(code),
                Ok(Err(e)) => Err(BackendError::Internal(e)),
                Err(_) => Err(BackendError::Internal("exec session ended".into())),
            }
        }
        .boxed();
        Ok(ExecSession {
            stdin,
            stdout,
            stderr,
            resize: opts.tty.then_some(tx),
            exit,
        })
    }

    /// As kubelet with a CRI runtime: the newest attempt, which must be
    /// running (kubelet only looks among running containers); the terminal
    /// setting is the container's; stdin is dropped if the container has
    /// none. The session ends (with a Success status) when the container
    /// exits or the session detaches.
    #[tracing::instrument(skip(self, opts), fields(pod = %pod.name, ns = %pod.namespace))]
    async fn attach(
        &self,
        pod: &PodRef,
        container: &str,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError> {
        let found = self.find(pod, container)?;
        let want = AttachStreams {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        let s = match self.containers.attach(&found.id, want).await {
            Ok(s) => s,
            Err(ContainerError::NotRunning(_)) => {
                return Err(BackendError::Internal(format!(
                    "container {container} not found in pod {}_{}",
                    pod.name, pod.namespace
                )))
            }
            Err(e) => return Err(BackendError::Internal(e.to_string())),
        };
        let resize = s.resize.map(|r| {
            let (tx, mut rx) = mpsc::channel::<crate::server::backend::TerminalSize>(4);
            tokio::spawn(async move {
                while let Some(sz) = rx.recv().await {
                    if r.resize(sz.width, sz.height).await.is_err() {
                        break;
                    }
                }
            });
            tx
        });
        let ended = s.ended;
        Ok(ExecSession {
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
            resize,
            exit: async move {
                ended.await;
                Ok(0)
            }
            .boxed(),
        })
    }

    async fn port_forward(&self, pod: &PodRef, port: u16) -> Result<Box<dyn Duplex>, BackendError> {
        let containers = self.containers.list().unwrap_or_default();
        let uid = containers
            .iter()
            .find(|c| {
                c.labels.get(LABEL_POD_NAMESPACE) == Some(&pod.namespace)
                    && c.labels.get(LABEL_POD_NAME) == Some(&pod.name)
            })
            .and_then(|c| c.labels.get(LABEL_POD_UID).cloned())
            .ok_or_else(|| BackendError::PodNotFound {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            })?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let sandbox = self.sandbox(&uid);
        let std_stream = match sandbox.filter(|s| !s.netns.as_os_str().is_empty()) {
            Some(sb) => tokio::task::spawn_blocking(move || {
                rkube_cni::connect_tcp_in_netns(&sb.netns, addr)
                    .map_err(|e| BackendError::Internal(e.to_string()))
            })
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))??,
            None => std::net::TcpStream::connect(addr)?,
        };
        std_stream.set_nonblocking(true)?;
        Ok(Box::new(tokio::net::TcpStream::from_std(std_stream)?))
    }
}

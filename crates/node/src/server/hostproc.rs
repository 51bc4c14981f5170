//! A [`StreamingBackend`] of host processes, for tests and development:
//! "containers" are names registered per pod; exec runs the command on the
//! host (with a pseudo-terminal for TTY sessions, via `setsid -c`), attach
//! runs the container's configured command, logs are CRI-format files
//! `DIR/<ns>_<pod>/<container>.log` (followed until `<container>.exited`
//! exists), and port-forward connects to the port on the host's loopback.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Mutex;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::backend::{
    BackendError, Duplex, ExecOptions, ExecSession, LogOptions, PodRef, StreamingBackend,
    TerminalSize,
};

/// Container name → the command attach runs, per (namespace, pod).
type Pods = HashMap<(String, String), HashMap<String, Vec<String>>>;

/// Host processes behind the streaming API.
pub struct HostBackend {
    log_dir: PathBuf,
    pods: Mutex<Pods>,
}

impl HostBackend {
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        HostBackend {
            log_dir: log_dir.into(),
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a pod's containers (attach runs `sh` in each).
    pub fn add_pod(&self, namespace: &str, name: &str, containers: &[&str]) {
        let map = containers
            .iter()
            .map(|c| (c.to_string(), vec!["sh".to_string()]))
            .collect();
        self.pods
            .lock()
            .expect("pods lock")
            .insert((namespace.into(), name.into()), map);
    }

    /// The CRI log file of a container.
    pub fn log_path(&self, pod: &PodRef, container: &str) -> PathBuf {
        self.log_dir
            .join(format!("{}_{}", pod.namespace, pod.name))
            .join(format!("{container}.log"))
    }

    fn container(&self, pod: &PodRef, container: &str) -> Result<Vec<String>, BackendError> {
        let pods = self.pods.lock().expect("pods lock");
        let cs = pods
            .get(&(pod.namespace.clone(), pod.name.clone()))
            .ok_or_else(|| BackendError::PodNotFound {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            })?;
        cs.get(container)
            .cloned()
            .ok_or_else(|| BackendError::ContainerNotFound {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                container: container.to_string(),
            })
    }
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(-1)
}

/// Reads a pty master; EIO (every slave closed: the process ended) is EOF.
struct PtyReader(tokio::fs::File);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

fn spawn_plain(cmd: &[String], opts: ExecOptions) -> Result<ExecSession, BackendError> {
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(pipe(opts.stdin))
        .stdout(pipe(opts.stdout))
        .stderr(pipe(opts.stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BackendError::Internal(format!("cannot run {:?}: {e}", cmd[0])))?;
    let stdin = child
        .stdin
        .take()
        .map(|w| Box::pin(w) as super::backend::Writer);
    let stdout = child
        .stdout
        .take()
        .map(|r| Box::pin(r) as super::backend::Reader);
    let stderr = child
        .stderr
        .take()
        .map(|r| Box::pin(r) as super::backend::Reader);
    Ok(ExecSession {
        stdin,
        stdout,
        stderr,
        resize: None,
        exit: async move { Ok(exit_code(child.wait().await?)) }.boxed(),
    })
}

fn spawn_tty(cmd: &[String]) -> Result<ExecSession, BackendError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let io_err = |e: rustix::io::Errno| BackendError::Io(e.into());
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(io_err)?;
    grantpt(&master).map_err(io_err)?;
    unlockpt(&master).map_err(io_err)?;
    let name = ptsname(&master, Vec::new()).map_err(io_err)?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let mut child = tokio::process::Command::new("setsid")
        .arg("-c")
        .arg("-w")
        .args(cmd)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .env("TERM", "xterm")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BackendError::Internal(format!("cannot run {:?}: {e}", cmd[0])))?;
    let master = std::fs::File::from(master);
    let writer = tokio::fs::File::from_std(master.try_clone()?);
    let sizer = master.try_clone()?;
    let reader = PtyReader(tokio::fs::File::from_std(master));
    let (resize, mut sizes) = mpsc::channel::<TerminalSize>(4);
    tokio::spawn(async move {
        while let Some(s) = sizes.recv().await {
            let ws = rustix::termios::Winsize {
                ws_row: s.height,
                ws_col: s.width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(&sizer, ws);
        }
    });
    Ok(ExecSession {
        stdin: Some(Box::pin(writer)),
        stdout: Some(Box::pin(reader)),
        stderr: None,
        resize: Some(resize),
        exit: async move { Ok(exit_code(child.wait().await?)) }.boxed(),
    })
}

#[async_trait]
impl StreamingBackend for HostBackend {
    async fn logs(
        &self,
        pod: &PodRef,
        container: &str,
        opts: LogOptions,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, BackendError> {
        self.container(pod, container)?;
        let mut path = self.log_path(pod, container);
        if opts.previous {
            path.set_extension("previous.log");
            if !path.exists() {
                return Err(BackendError::BadRequest(format!(
                    "previous terminated container \"{container}\" in pod \"{}\" not found",
                    pod.name
                )));
            }
        }
        let exited = self.log_path(pod, container).with_extension("exited");
        let copts = opts.reader_options();
        // The container has ended once its `.exited` marker exists.
        let ended: rkube_container::logs::ExitFuture = Box::pin(async move {
            while !tokio::fs::try_exists(&exited).await.unwrap_or(false) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        Ok(rkube_container::read_logs(vec![path], copts, Some(ended))
            .map(|r| r.map_err(io::Error::other))
            .boxed())
    }

    async fn exec(
        &self,
        pod: &PodRef,
        container: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError> {
        self.container(pod, container)?;
        if cmd.is_empty() {
            return Err(BackendError::BadRequest("empty command".into()));
        }
        if opts.tty {
            spawn_tty(&cmd)
        } else {
            spawn_plain(&cmd, opts)
        }
    }

    async fn attach(
        &self,
        pod: &PodRef,
        container: &str,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError> {
        let cmd = self.container(pod, container)?;
        self.exec(pod, container, cmd, opts).await
    }

    async fn port_forward(&self, pod: &PodRef, port: u16) -> Result<Box<dyn Duplex>, BackendError> {
        self.container_any(pod)?;
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        Ok(Box::new(s))
    }
}

impl HostBackend {
    fn container_any(&self, pod: &PodRef) -> Result<(), BackendError> {
        let pods = self.pods.lock().expect("pods lock");
        if pods.contains_key(&(pod.namespace.clone(), pod.name.clone())) {
            Ok(())
        } else {
            Err(BackendError::PodNotFound {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            })
        }
    }
}

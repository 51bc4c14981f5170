//! Running an extra process in a running container (`runc exec`).
//!
//! Without a terminal, `runc exec` runs in the foreground with pipes and
//! exits with the process's code. With a terminal, runc only hands out the
//! pty master when detached, so the monitor binary's `exec-tty` helper (a
//! child subreaper) runs it, passes the master back over a socket pair and
//! then reports the exit code.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

use crate::console::{self, PtyStream};
use crate::containers::{io_err, ContainerError, Containers};
use crate::runtime::{last_log_error, OciRuntime};
use crate::spec::ExecSpec;
use crate::state::Status;

/// Errors of an exec session.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The process could not be started (the runtime's message).
    #[error("{0}")]
    StartFailed(String),
    /// Waiting for it failed.
    #[error("waiting for exec: {0}")]
    Wait(std::io::Error),
    /// Not a terminal session.
    #[error("not a terminal session")]
    NoTty,
    /// Terminal trouble.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
}

/// An async byte source.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// An async byte sink.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

enum Waiter {
    Foreground {
        child: tokio::process::Child,
        pid_file: PathBuf,
        log_file: PathBuf,
    },
    Helper {
        lines: BufReader<tokio::net::UnixStream>,
        child: tokio::process::Child,
    },
    Done(i32),
}

/// A running exec'd process. Take the streams out of the public fields.
pub struct ExecSession {
    /// Its stdin (when requested).
    pub stdin: Option<Writer>,
    /// Its stdout (with a terminal: the combined output).
    pub stdout: Option<Reader>,
    /// Its stderr (`None` with a terminal).
    pub stderr: Option<Reader>,
    pty: Option<OwnedFd>,
    waiter: Waiter,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("tty", &self.pty.is_some())
            .finish()
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl ExecSession {
    /// Sets the terminal size (terminal sessions only).
    pub fn resize(&self, width: u16, height: u16) -> Result<(), ExecError> {
        let fd = self.pty.as_ref().ok_or(ExecError::NoTty)?;
        Ok(console::resize(fd, width, height)?)
    }

    /// Waits for the process; its exit code (128 + signal if killed).
    pub async fn wait(&mut self) -> Result<i32, ExecError> {
        let code = match &mut self.waiter {
            Waiter::Done(code) => return Ok(*code),
            Waiter::Foreground {
                child,
                pid_file,
                log_file,
            } => {
                let status = child.wait().await.map_err(ExecError::Wait)?;
                let started = pid_file.exists();
                let _ = std::fs::remove_file(&*pid_file);
                let message = last_log_error(log_file);
                let _ = std::fs::remove_file(&*log_file);
                if !started {
                    return Err(ExecError::StartFailed(
                        message.unwrap_or_else(|| format!("exec failed: {status}")),
                    ));
                }
                use std::os::unix::process::ExitStatusExt;
                status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(255)
            }
            Waiter::Helper { lines, child } => {
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = lines.read_line(&mut line).await.map_err(ExecError::Wait)?;
                    if n == 0 {
                        let _ = child.wait().await;
                        return Err(ExecError::Wait(std::io::Error::other(
                            "exec helper ended without reporting",
                        )));
                    }
                    if line.trim().is_empty() {
                        continue;
                    }
                    break;
                }
                let _ = child.wait().await;
                crate::monitor::parse_exec_report(&line).map_err(ExecError::StartFailed)?
            }
        };
        self.waiter = Waiter::Done(code);
        Ok(code)
    }
}

impl Containers {
    /// Starts `exec.args` in the running container `id`.
    pub async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecSession, ContainerError> {
        let dir = self.existing_dir(id)?;
        if !matches!(self.status(id)?, Status::Running { .. }) {
            return Err(ContainerError::NotRunning(id.into()));
        }
        let rt = self.runtime();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!("exec-{}-{n}", std::process::id());
        if !exec.tty {
            let pid_file = dir.join(format!("{tag}.pid"));
            let log_file = dir.join(format!("{tag}.log"));
            let mut child = tokio::process::Command::new(rt.binary())
                .args(rt.exec_args(id, exec, &pid_file, None, &log_file))
                .stdin(if exec.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(io_err(format!("running {}", rt.binary().display())))?;
            let stdin = child.stdin.take().map(|s| Box::pin(s) as Writer);
            let stdout = child.stdout.take().map(|s| Box::pin(s) as Reader);
            let stderr = child.stderr.take().map(|s| Box::pin(s) as Reader);
            return Ok(ExecSession {
                stdin,
                stdout,
                stderr,
                pty: None,
                waiter: Waiter::Foreground {
                    child,
                    pid_file,
                    log_file,
                },
            });
        }

        // Terminal: through the exec-tty helper.
        let req = crate::monitor::ExecTtyRequest {
            id: id.into(),
            runtime: rt.binary.clone(),
            runtime_root: rt.root.clone(),
            args: exec.args.clone(),
            env: exec.env.clone(),
            tag,
        };
        let req = serde_json::to_string(&req)
            .map_err(|e| io_err("encoding the exec request")(std::io::Error::other(e)))?;
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(io_err("socketpair"))?;
        let cmd_line = &self.inner.cfg.monitor_command;
        let (program, args) = cmd_line
            .split_first()
            .ok_or_else(|| ContainerError::Monitor {
                id: id.into(),
                message: "no monitor command configured".into(),
            })?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .arg("exec-tty")
            .arg(&dir)
            .arg(req)
            .stdin(OwnedFd::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io_err("starting the exec helper"))?;
        let (ours, received) = tokio::task::spawn_blocking(move || {
            let r = console::recv_msg(&ours);
            (ours, r)
        })
        .await
        .map_err(|e| io_err("exec helper")(std::io::Error::other(e)))?;
        let received = received.map_err(|e| ContainerError::Io {
            what: "receiving the terminal".into(),
            source: std::io::Error::other(e),
        });
        let master = match received? {
            (Some(fd), _) => fd,
            (None, data) => {
                // The helper reported an error instead (or died: no data).
                let line = String::from_utf8_lossy(&data);
                let msg = crate::monitor::parse_exec_report(&line)
                    .err()
                    .filter(|m| !m.is_empty());
                let mut child = child;
                let _ = child.wait().await;
                return Err(ContainerError::StartFailed(msg.unwrap_or_else(|| {
                    "exec failed: the exec helper ended without a terminal".into()
                })));
            }
        };
        ours.set_nonblocking(true).map_err(io_err("socket"))?;
        let lines =
            BufReader::new(tokio::net::UnixStream::from_std(ours).map_err(io_err("socket"))?);
        let resize_fd = master.try_clone().map_err(io_err("dup"))?;
        let pty = PtyStream::new(master).map_err(|e| ContainerError::Io {
            what: "pty".into(),
            source: std::io::Error::other(e),
        })?;
        let (r, w) = tokio::io::split(pty);
        Ok(ExecSession {
            stdin: exec.stdin.then(|| Box::pin(w) as Writer),
            stdout: Some(Box::pin(r)),
            stderr: None,
            pty: Some(resize_fd),
            waiter: Waiter::Helper { lines, child },
        })
    }
}

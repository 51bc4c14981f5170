//! Attaching to a running container's main process: [`Containers::attach`]
//! connects to the monitor's attach socket ([`crate::attach_proto`]) and
//! turns the session into byte streams: a stdin writer (shutting it down
//! tells the monitor the input ended), stdout/stderr readers, a terminal
//! [`Resizer`](AttachResizer) and a future that resolves when the monitor
//! ends the session (the container exited, or the session detached).

use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use crate::attach_proto::{self, decode, AttachStreams, Frame};
use crate::containers::{io_err, ContainerError, Containers};
use crate::exec::{Reader, Writer};
use crate::state::Status;

/// Errors of an attach session.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The container has no terminal to resize.
    #[error("not a terminal session")]
    NoTty,
    /// The session is over.
    #[error("the attach session has ended")]
    Ended,
}

/// Bytes buffered per output stream between the socket and its reader.
const PIPE: usize = 64 * 1024;

/// Sends terminal sizes to the container's pty; cheap to clone.
#[derive(Clone, Debug)]
pub struct AttachResizer {
    tx: mpsc::Sender<Frame>,
}

impl AttachResizer {
    /// Sets the terminal size.
    pub async fn resize(&self, width: u16, height: u16) -> Result<(), AttachError> {
        self.tx
            .send(Frame::Resize { width, height })
            .await
            .map_err(|_| AttachError::Ended)
    }
}

/// Resolves when the monitor has ended the session.
#[derive(Debug)]
pub struct AttachEnded(oneshot::Receiver<()>);

impl Future for AttachEnded {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// An attach session. Take the streams out of the public fields.
pub struct AttachSession {
    /// Input for the container (if asked for and the container has stdin).
    pub stdin: Option<Writer>,
    /// Its stdout (with a terminal: all output), if asked for.
    pub stdout: Option<Reader>,
    /// Its stderr, if asked for (never with a terminal).
    pub stderr: Option<Reader>,
    /// Terminal size changes (terminal containers only).
    pub resize: Option<AttachResizer>,
    /// The container has a terminal.
    pub tty: bool,
    /// Resolves once the session is over; the output streams end with it.
    /// Dropping it leaves the session.
    pub ended: AttachEnded,
}

impl std::fmt::Debug for AttachSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachSession")
            .field("tty", &self.tty)
            .finish()
    }
}

impl Containers {
    /// Attaches to the running container `id`. Like the CRI, the streams
    /// follow the container: stderr is dropped with a terminal, stdin
    /// without the container's stdin.
    #[tracing::instrument(skip(self))]
    pub async fn attach(
        &self,
        id: &str,
        want: AttachStreams,
    ) -> Result<AttachSession, ContainerError> {
        let dir = self.existing_dir(id)?;
        if !matches!(self.status(id)?, Status::Running { .. }) {
            return Err(ContainerError::NotRunning(id.into()));
        }
        let spec = self.spec(id)?;
        let streams = AttachStreams {
            stdin: want.stdin && spec.stdin,
            stdout: want.stdout,
            stderr: want.stderr && !spec.tty,
        };
        // Through the directory's descriptor: the state path may exceed the
        // 108-byte limit of socket paths.
        let dir_fd =
            std::fs::File::open(&dir).map_err(io_err(format!("opening {}", dir.display())))?;
        let path = format!(
            "/proc/self/fd/{}/{}",
            dir_fd.as_raw_fd(),
            attach_proto::SOCKET
        );
        let conn = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(io_err(format!("connecting to the attach socket of {id}")))?;
        drop(dir_fd);
        let (mut rd, mut wr) = conn.into_split();
        wr.write_all(&Frame::Hello(streams).encode())
            .await
            .map_err(io_err("attach handshake"))?;
        // Registered once READY comes; EOF instead: the container ended.
        let mut buf = BytesMut::with_capacity(32 * 1024);
        loop {
            match decode(&mut buf) {
                Ok(Some(Frame::Ready)) => break,
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => {
                    return Err(io_err("attach handshake")(std::io::Error::other(
                        "unexpected frame from the container monitor",
                    )))
                }
            }
            let n = rd
                .read_buf(&mut buf)
                .await
                .map_err(io_err("attach handshake"))?;
            if n == 0 {
                return Err(ContainerError::NotRunning(id.into()));
            }
        }

        let (stdout, out_w) = pipe(streams.stdout);
        let (stderr, err_w) = pipe(streams.stderr);
        let (ended_tx, ended_rx) = oneshot::channel();
        let (gone_tx, gone_rx) = watch::channel(());
        tokio::spawn(demux(rd, buf, out_w, err_w, ended_tx, gone_tx));

        let (stdin, stdin_r) = if streams.stdin {
            let (r, w) = tokio::io::simplex(PIPE);
            (Some(Box::pin(w) as Writer), Some(r))
        } else {
            (None, None)
        };
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        tokio::spawn(mux(wr, stdin_r, ctl_rx, gone_rx));
        Ok(AttachSession {
            stdin,
            stdout,
            stderr,
            resize: spec.tty.then_some(AttachResizer { tx: ctl_tx }),
            tty: spec.tty,
            ended: AttachEnded(ended_rx),
        })
    }
}

type PipeWriter = tokio::io::WriteHalf<tokio::io::SimplexStream>;

fn pipe(wanted: bool) -> (Option<Reader>, Option<PipeWriter>) {
    if !wanted {
        return (None, None);
    }
    let (r, w) = tokio::io::simplex(PIPE);
    (Some(Box::pin(r)), Some(w))
}

/// Monitor → caller: output frames into the stream pipes until the monitor
/// closes the connection (then the pipes end and `ended` fires) or the
/// caller drops [`AttachEnded`]. `_gone` tells [`mux`] when this is over.
async fn demux(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    mut out: Option<PipeWriter>,
    mut err: Option<PipeWriter>,
    mut ended: oneshot::Sender<()>,
    _gone: watch::Sender<()>,
) {
    'session: loop {
        loop {
            let (target, data) = match decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Frame::Stdout(d))) => (&mut out, d),
                Ok(Some(Frame::Stderr(d))) => (&mut err, d),
                Ok(Some(_)) | Err(_) => {
                    tracing::warn!("unexpected frame from the container monitor");
                    break 'session;
                }
            };
            // A caller that dropped a reader no longer gets that stream.
            if let Some(w) = target {
                if w.write_all(&data).await.is_err() {
                    *target = None;
                }
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            () = ended.closed() => return,
        }
    }
    for w in [out.as_mut(), err.as_mut()].into_iter().flatten() {
        let _ = w.shutdown().await;
    }
    let _ = ended.send(());
}

/// Caller → monitor: stdin bytes (then CLOSE_STDIN at their end) and
/// resizes. The connection stays open (a half-close would read as the
/// client leaving) until [`demux`] is over.
async fn mux(
    mut wr: OwnedWriteHalf,
    mut stdin: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>,
    mut ctl: mpsc::Receiver<Frame>,
    mut gone: watch::Receiver<()>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut ctl_open = true;
    while stdin.is_some() || ctl_open {
        // Controls first: a resize sent before input applies before it.
        let frame = tokio::select! {
            biased;
            _ = gone.changed() => return,
            f = ctl.recv(), if ctl_open => match f {
                Some(f) => f,
                None => {
                    ctl_open = false;
                    continue;
                }
            },
            r = async { stdin.as_mut().expect("guarded").read(&mut buf).await }, if stdin.is_some() => {
                match r {
                    Ok(n) if n > 0 => Frame::Stdin(bytes::Bytes::copy_from_slice(&buf[..n])),
                    _ => {
                        stdin = None;
                        Frame::CloseStdin
                    }
                }
            }
        };
        if wr.write_all(&frame.encode()).await.is_err() {
            return;
        }
    }
    let _ = gone.changed().await;
}

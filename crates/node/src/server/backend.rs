//! What the agent's streaming server needs from a container runtime: logs,
//! exec, attach and port-forward into a pod's containers. The real runtime
//! implements [`StreamingBackend`]; [`super::hostproc`] is a host-process
//! implementation for tests.

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Why a streaming request failed, mapped onto kubelet's HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("pod {namespace}/{name} not found")]
    PodNotFound { namespace: String, name: String },
    #[error("container {container} not found in pod {namespace}/{name}")]
    ContainerNotFound {
        namespace: String,
        name: String,
        container: String,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("not implemented")]
    NotImplemented,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl BackendError {
    pub fn status(&self) -> StatusCode {
        match self {
            BackendError::PodNotFound { .. } | BackendError::ContainerNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            BackendError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BackendError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            BackendError::Internal(_) | BackendError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A pod addressed by a streaming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// `kubectl logs` options (upstream's PodLogOptions, already validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u64>,
    /// Only lines at or after this instant (from sinceSeconds or sinceTime).
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// The container log reader's options (a `--previous` log is read
    /// whole, never followed).
    pub fn reader_options(&self) -> rkube_container::LogOptions {
        rkube_container::LogOptions {
            follow: self.follow && !self.previous,
            tail_lines: self
                .tail_lines
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since_time: self.since,
            timestamps: self.timestamps,
            limit_bytes: self.limit_bytes,
        }
    }
}

/// Exec/attach options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A terminal size sent by the client (`{"Width":..,"Height":..}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A bidirectional byte stream (port-forward).
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A running exec or attach. With a TTY, output comes on `stdout` only.
pub struct ExecSession {
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
    /// Terminal size changes (TTY sessions).
    pub resize: Option<mpsc::Sender<TerminalSize>>,
    /// Resolves to the exit code once the process ends.
    pub exit: BoxFuture<'static, Result<i32, BackendError>>,
}

/// The runtime behind the agent's streaming API.
#[async_trait]
pub trait StreamingBackend: Send + Sync + 'static {
    /// A container's log, formatted per `opts`; with `follow`, the stream
    /// ends when the container does.
    async fn logs(
        &self,
        pod: &PodRef,
        container: &str,
        opts: LogOptions,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, BackendError>;

    /// Runs `cmd` in the container.
    async fn exec(
        &self,
        pod: &PodRef,
        container: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError>;

    /// Attaches to the container's main process.
    async fn attach(
        &self,
        pod: &PodRef,
        container: &str,
        opts: ExecOptions,
    ) -> Result<ExecSession, BackendError>;

    /// A connection to `port` inside the pod's network namespace.
    async fn port_forward(&self, pod: &PodRef, port: u16) -> Result<Box<dyn Duplex>, BackendError>;

    /// The Summary API document (`/stats/summary`).
    async fn stats_summary(&self) -> Result<serde_json::Value, BackendError> {
        Err(BackendError::NotImplemented)
    }
}

//! What the kubelet logic needs from the machine, as three small traits:
//! images ([`ImageService`]), containers ([`ContainerService`]) and pod
//! networks ([`NetworkService`]). The real implementations wrap
//! `rkube-image`, `rkube-container` and `rkube-cni`; unit tests use fakes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

/// A local image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image ID (config digest, `sha256:...`).
    pub id: String,
    /// `registry/repository@sha256:...` (the container status' imageID).
    pub repo_digest: String,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub size: u64,
}

/// Why a pull failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    Other(String),
}

/// Registry credentials from an image pull secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerConfig(pub Vec<u8>);

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DockerConfig(<redacted>)")
    }
}

/// Images on the node.
#[async_trait]
pub trait ImageService: Send + Sync {
    /// The local image for `image`, if present.
    async fn get(&self, image: &str) -> Option<ImageInfo>;
    /// Pulls `image`, trying each pull secret's credentials (and none).
    async fn pull(&self, image: &str, secrets: &[DockerConfig]) -> Result<ImageInfo, PullError>;
}

/// A mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Everything needed to run one container (no Kubernetes types).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub layers: Vec<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    /// `None`: the host's network namespace.
    pub netns: Option<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    pub caps_add: Vec<String>,
    pub caps_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub memory_limit: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cgroup_parent: String,
    pub log_path: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    /// Close stdin when the first attach session using it ends.
    pub stdin_once: bool,
}

/// A container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running {
        started_at: Timestamp,
    },
    Exited {
        started_at: Timestamp,
        finished_at: Timestamp,
        exit_code: i32,
        oom_killed: bool,
    },
}

/// Containers on the node.
#[async_trait]
pub trait ContainerService: Send + Sync {
    /// Creates and starts a container; returns when it runs.
    async fn start(&self, spec: &RunSpec) -> Result<(), String>;
    /// The container's state (`None`: unknown).
    async fn state(&self, id: &str) -> Option<RunState>;
    /// Resolves when the container has exited.
    async fn wait(&self, id: &str);
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration);
    /// Removes the container and its state (not its log).
    async fn remove(&self, id: &str);
    /// Runs a command in the container: exit code and combined output.
    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, String), String>;
    /// Every container with its labels (to re-adopt after a restart).
    async fn list(&self) -> Vec<(String, HashMap<String, String>)>;
}

/// A host port a pod asks for (`hostPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
}

/// A pod's network sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sandbox {
    pub ip: IpAddr,
    pub netns: PathBuf,
}

/// Pod networks on the node.
#[async_trait]
pub trait NetworkService: Send + Sync {
    /// The node's pod CIDR, once known (networks that need it wait).
    fn set_pod_cidr(&self, _cidr: &str) -> Result<(), String> {
        Ok(())
    }
    /// Creates the pod's network namespace and attaches it.
    async fn setup(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        ports: &[PortMapping],
    ) -> Result<Sandbox, String>;
    /// Whether a sandbox set up earlier still exists.
    async fn exists(&self, sandbox: &Sandbox) -> bool;
    /// Detaches and deletes it; idempotent.
    async fn teardown(&self, uid: &str, namespace: &str, name: &str) -> Result<(), String>;
}

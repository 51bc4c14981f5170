//! The container description handed in by the node agent: plain data, no
//! Kubernetes types. It is saved as `spec.json` in the container's state
//! directory so that a restarted agent can list containers with their labels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything needed to create and run one container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique id (also the runc container id): `[A-Za-z0-9_.-]`, at most 128 bytes.
    pub id: String,
    /// Free-form labels (pod uid, container name, attempt, ...), returned by `list`.
    pub labels: BTreeMap<String, String>,
    /// Where the root filesystem comes from.
    pub rootfs: Rootfs,
    /// The process: entrypoint and command already resolved.
    pub args: Vec<String>,
    /// `NAME=value` pairs, in order.
    pub env: Vec<String>,
    /// Working directory (default `/`).
    pub cwd: Option<String>,
    /// User and groups the process runs as.
    pub user: User,
    /// Hostname set in the UTS namespace.
    pub hostname: Option<String>,
    /// Network namespace to join (`/var/run/netns/x`); `None` = host network.
    pub netns: Option<PathBuf>,
    /// Extra mounts (volumes, /etc/hosts, /etc/resolv.conf, termination log...).
    pub mounts: Vec<Mount>,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// All capabilities, all devices, no masked paths.
    pub privileged: bool,
    /// Capabilities added to Docker's default set (`NET_ADMIN` or `CAP_NET_ADMIN`, or `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from the default set (`ALL` drops everything not added).
    pub cap_drop: Vec<String>,
    /// Set `no_new_privs` (Kubernetes `allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// cgroup limits.
    pub resources: Resources,
    /// cgroup parent path (cgroupfs driver), e.g. `/rkube/pod<uid>`; the
    /// container's cgroup is `<parent>/<id>`. `None` = `/rkube`.
    pub cgroup_parent: Option<String>,
    /// Allocate a terminal (stdout and stderr are one stream).
    pub tty: bool,
    /// Keep stdin open (for attach); otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// Close stdin once the first attach session that used it ends
    /// (Kubernetes `stdinOnce`; without a terminal only, as containerd).
    #[serde(default)]
    pub stdin_once: bool,
    /// The CRI-format log file and its rotation.
    pub log: LogConfig,
}

/// The root filesystem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rootfs {
    /// Image layer directories, top-most first (overlayfs `lowerdir` order);
    /// the container gets its own upper and work directories.
    Layers(Vec<PathBuf>),
    /// A ready directory used as is.
    Path(PathBuf),
}

impl Default for Rootfs {
    fn default() -> Self {
        Rootfs::Path(PathBuf::new())
    }
}

/// User and groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
}

/// One extra mount.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Mount {
    /// Bind mount of a host path.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path inside the container.
        destination: String,
        /// Read-only.
        readonly: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Path inside the container.
        destination: String,
        /// Size limit in bytes.
        size: Option<u64>,
        /// Read-only.
        readonly: bool,
    },
}

/// cgroup limits. `None` = unlimited / kernel default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes (`memory.limit_in_bytes` / `memory.max`).
    pub memory_limit: Option<i64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (default 100000).
    pub cpu_period: Option<u64>,
    /// CPU shares (`cpu.shares`; converted to weight on cgroup v2 by the runtime).
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// Where the container's output goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// The current log file (`.../<attempt>.log`); rotated files sit beside it.
    pub path: PathBuf,
    /// Rotate when the current file would exceed this many bytes (0 = never).
    pub max_size: u64,
    /// Keep at most this many files, the current one included (at least 2 when rotating).
    pub max_files: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            path: PathBuf::new(),
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// A process to run inside a running container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// Command and arguments.
    pub args: Vec<String>,
    /// Extra `NAME=value` pairs on top of the container's environment.
    pub env: Vec<String>,
    /// Allocate a terminal (one combined output stream, resizable).
    pub tty: bool,
    /// Give the process a stdin pipe (otherwise `/dev/null`).
    pub stdin: bool,
}

/// Checks that an id is safe as a runc id and a directory name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("abc-1_2.3"));
        assert!(!valid_id(""));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(129)));
    }

    #[test]
    fn spec_round_trips_as_json() {
        let spec = ContainerSpec {
            id: "c1".into(),
            rootfs: Rootfs::Layers(vec!["/l1".into(), "/l2".into()]),
            mounts: vec![Mount::Tmpfs {
                destination: "/tmp".into(),
                size: Some(1),
                readonly: false,
            }],
            ..Default::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ContainerSpec>(&json).unwrap(), spec);
    }
}

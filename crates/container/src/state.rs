//! The files in a container's state directory and the status read from them.
//!
//! Layout of `<root>/<id>/`:
//! `spec.json` (the [`ContainerSpec`](crate::spec::ContainerSpec), written by the agent),
//! `monitor.json` ([`MonitorConfig`], what the monitor needs),
//! `monitor.pid`, `started.json` ([`Started`]) and `exited.json` ([`Exited`]),
//! written atomically (temp file + rename) by the monitor,
//! `bundle/config.json`, `rootfs/` (+ `upper/`, `work/` for overlays),
//! `runc.log` (the runtime's JSON log) and `monitor.log` (the monitor's stderr).

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::spec::LogConfig;

/// Errors reading or writing state files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on a state file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// File names inside a state directory.
pub mod files {
    /// The container spec.
    pub const SPEC: &str = "spec.json";
    /// The monitor's configuration.
    pub const MONITOR: &str = "monitor.json";
    /// The monitor's pid.
    pub const MONITOR_PID: &str = "monitor.pid";
    /// Written once the process runs.
    pub const STARTED: &str = "started.json";
    /// Written once the process has ended (or failed to start).
    pub const EXITED: &str = "exited.json";
    /// The bundle directory.
    pub const BUNDLE: &str = "bundle";
    /// The runtime's log.
    pub const RUNC_LOG: &str = "runc.log";
    /// The monitor's own stderr.
    pub const MONITOR_LOG: &str = "monitor.log";
}

/// What the monitor process needs, written by the agent before starting it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Container id.
    pub id: String,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The container's cgroup path (relative to the hierarchy roots).
    pub cgroup_path: String,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Close stdin when the first attach client's stdin ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// Log file and rotation.
    pub log: LogConfig,
}

/// Written when the process is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Host pid of the container's init process.
    pub pid: i32,
    /// When it started.
    pub started_at: Timestamp,
}

/// Written when the process has ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// Exit code (128 + signal when killed by a signal; 128 for a start error).
    pub exit_code: i32,
    /// When it started (`None` if it never did).
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// The cgroup saw an OOM kill.
    pub oom_killed: bool,
    /// `Completed`, `Error`, `OOMKilled`, `StartError` or `Unknown`.
    pub reason: String,
    /// Detail for `StartError` (the runtime's message) or `Unknown`.
    pub message: Option<String>,
}

/// The status of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created but not (yet) running.
    Created,
    /// Running.
    Running {
        /// Host pid of the container's init process.
        pid: i32,
        /// When it started.
        started_at: Timestamp,
    },
    /// Ended.
    Exited(Exited),
}

impl Status {
    /// The exit record, if ended.
    pub fn exited(&self) -> Option<&Exited> {
        match self {
            Status::Exited(e) => Some(e),
            _ => None,
        }
    }
}

/// The reason Kubernetes shows for an exit.
pub fn reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// Writes `value` as JSON to `dir/name` atomically.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), StateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    let data = serde_json::to_vec(value).map_err(|source| StateError::Json {
        path: path.clone(),
        source,
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&data).map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Reads `dir/name` as JSON; `Ok(None)` if it does not exist.
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, StateError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| StateError::Json { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Reads the status from a state directory.
pub fn read_status(dir: &Path) -> Result<Status, StateError> {
    if let Some(exited) = read_json::<Exited>(dir, files::EXITED)? {
        return Ok(Status::Exited(exited));
    }
    Ok(match read_json::<Started>(dir, files::STARTED)? {
        Some(s) => Status::Running {
            pid: s.pid,
            started_at: s.started_at,
        },
        None => Status::Created,
    })
}

/// Reads the monitor's pid, if recorded.
pub fn monitor_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(files::MONITOR_PID))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_status(dir.path()).unwrap(), Status::Created);
        let t = Timestamp::now();
        write_json(
            dir.path(),
            files::STARTED,
            &Started {
                pid: 42,
                started_at: t,
            },
        )
        .unwrap();
        assert_eq!(
            read_status(dir.path()).unwrap(),
            Status::Running {
                pid: 42,
                started_at: t
            }
        );
        let e = Exited {
            exit_code: 137,
            started_at: Some(t),
            finished_at: t,
            oom_killed: true,
            reason: reason(137, true).into(),
            message: None,
        };
        write_json(dir.path(), files::EXITED, &e).unwrap();
        assert_eq!(read_status(dir.path()).unwrap(), Status::Exited(e));
        assert_eq!(reason(0, false), "Completed");
        assert_eq!(reason(3, false), "Error");
    }
}

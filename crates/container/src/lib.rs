//! rkube-container: the OCI-runtime side of the node agent, knowing nothing
//! of Kubernetes objects.
//!
//! * [`ContainerSpec`] describes a container (rootfs layers, process, user,
//!   mounts, capabilities, cgroup limits, log file); [`bundle`] turns it into
//!   an OCI `config.json` with `oci-spec`.
//! * [`Containers`] creates and starts containers through an OCI runtime
//!   ([`Runc`]: runc, crun or youki), each watched by its own monitor process
//!   ([`monitor_main`], run by `rkube container-monitor`) that survives agent
//!   restarts, writes the CRI log file with rotation and records the exit
//!   (code, times, OOM kill). It also waits, signals, stops, removes, lists
//!   (re-adoption), reads cgroup usage, runs `exec` sessions and attaches
//!   to the main process through its monitor ([`attach`]).
//! * [`logs::read_logs`] decodes CRI log files for `kubectl logs`.
//!
//! No AppArmor profile or seccomp filter is applied (Kubernetes'
//! `Unconfined`). Privileged containers get every capability, all devices
//! allowed in the devices cgroup (host device nodes are not bind-mounted)
//! and no masked paths.

pub mod attach;
pub mod attach_proto;
pub mod attach_server;
pub mod bundle;
pub mod cgroup;
pub mod console;
pub mod containers;
pub mod exec;
pub mod logfmt;
pub mod logs;
pub mod monitor;
pub mod rootfs;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod watch;

pub use attach::{AttachError, AttachResizer, AttachSession};
pub use attach_proto::AttachStreams;
pub use cgroup::Usage;
pub use containers::{ContainerError, ContainerInfo, Containers, ContainersConfig};
pub use exec::{ExecError, ExecSession};
pub use logs::{read_logs, LogOptions};
pub use monitor::monitor_main;
pub use runtime::{OciRuntime, Runc};
pub use spec::{ContainerSpec, ExecSpec, LogConfig, Mount, Resources, Rootfs, User};
pub use state::{Exited, Started, Status};

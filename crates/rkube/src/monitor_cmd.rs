//! `rkube container-monitor ...` (hidden): the per-container monitor and the
//! `exec -t` helper of `rkube-container`, started by the node agent with
//! [`monitor_command`]. It must run before logging and the tokio runtime are
//! set up (a monitor is a small synchronous process that outlives the agent),
//! so `main` calls [`dispatch`] first thing.

use std::ffi::OsString;

/// The subcommand name.
pub const SUBCOMMAND: &str = "container-monitor";

/// If this process was started as `rkube container-monitor ARGS...`, runs the
/// monitor and returns its exit code; otherwise `None`.
pub fn dispatch() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(SUBCOMMAND)) {
        return None;
    }
    Some(rkube_container::monitor_main(args.collect()))
}

/// The command line `rkube_container::ContainersConfig::monitor_command` wants:
/// this binary and the subcommand.
pub fn monitor_command() -> std::io::Result<Vec<OsString>> {
    Ok(vec![
        std::env::current_exe()?.into_os_string(),
        SUBCOMMAND.into(),
    ])
}

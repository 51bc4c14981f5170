//! The OCI runtime binary (runc by default; crun and youki take the same
//! command line) behind the [`OciRuntime`] trait, which builds the command
//! lines so they are testable without the binary.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::spec::ExecSpec;

/// Errors running the runtime binary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The binary could not be started.
    #[error("running {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The runtime failed; the message is its own.
    #[error("{0}")]
    Failed(String),
}

/// Default runc path on Debian.
pub const DEFAULT_RUNTIME: &str = "/usr/sbin/runc";
/// Default state directory for the runtime (`--root`).
pub const DEFAULT_RUNTIME_ROOT: &str = "/run/rkube/runc";

/// An OCI runtime with runc's command line.
pub trait OciRuntime: Send + Sync + std::fmt::Debug {
    /// The binary.
    fn binary(&self) -> &Path;
    /// Its state directory (`--root`).
    fn root(&self) -> &Path;

    /// Global arguments (`--root R --log L --log-format json`).
    fn global_args(&self, log: Option<&Path>) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--root".into(), self.root().into()];
        if let Some(log) = log {
            a.extend([
                "--log".into(),
                log.into(),
                "--log-format".into(),
                "json".into(),
            ]);
        }
        a
    }

    /// `run -d`: create and start, detached.
    fn run_args(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        log: &Path,
    ) -> Vec<OsString> {
        let mut a = self.global_args(Some(log));
        a.extend([
            "run".into(),
            "-d".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.into(),
        ]);
        if let Some(s) = console_socket {
            a.extend(["--console-socket".into(), s.into()]);
        }
        a.push(id.into());
        a
    }

    /// `exec`: foreground unless a console socket is given (then detached with a tty).
    fn exec_args(
        &self,
        id: &str,
        exec: &ExecSpec,
        pid_file: &Path,
        console_socket: Option<&Path>,
        log: &Path,
    ) -> Vec<OsString> {
        let mut a = self.global_args(Some(log));
        a.push("exec".into());
        if let Some(s) = console_socket {
            a.extend([
                "-d".into(),
                "--tty".into(),
                "--console-socket".into(),
                s.into(),
            ]);
        }
        a.extend(["--pid-file".into(), pid_file.into()]);
        for e in &exec.env {
            a.extend(["--env".into(), e.into()]);
        }
        a.push(id.into());
        a.extend(exec.args.iter().map(OsString::from));
        a
    }

    /// `kill ID SIGNAL`.
    fn kill_args(&self, id: &str, signal: i32) -> Vec<OsString> {
        let mut a = self.global_args(None);
        a.extend(["kill".into(), id.into(), signal.to_string().into()]);
        a
    }

    /// `delete [-f] ID`.
    fn delete_args(&self, id: &str, force: bool) -> Vec<OsString> {
        let mut a = self.global_args(None);
        a.push("delete".into());
        if force {
            a.push("-f".into());
        }
        a.push(id.into());
        a
    }
}

/// runc (or crun, youki) at a path.
#[derive(Clone, Debug)]
pub struct Runc {
    /// The binary.
    pub binary: PathBuf,
    /// `--root`.
    pub root: PathBuf,
}

impl Default for Runc {
    fn default() -> Self {
        Runc {
            binary: DEFAULT_RUNTIME.into(),
            root: DEFAULT_RUNTIME_ROOT.into(),
        }
    }
}

impl OciRuntime for Runc {
    fn binary(&self) -> &Path {
        &self.binary
    }
    fn root(&self) -> &Path {
        &self.root
    }
}

/// Runs the runtime to completion (blocking), returning its stderr on failure.
pub fn run_blocking(rt: &dyn OciRuntime, args: Vec<OsString>) -> Result<(), RuntimeError> {
    let out = std::process::Command::new(rt.binary())
        .args(args)
        .stdin(Stdio::null())
        .output();
    outcome(rt, out)
}

/// Runs the runtime to completion (async), returning its stderr on failure.
pub async fn run_async(rt: &dyn OciRuntime, args: Vec<OsString>) -> Result<(), RuntimeError> {
    let out = tokio::process::Command::new(rt.binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await;
    outcome(rt, out)
}

/// A finished runtime invocation: its stderr on failure.
fn outcome(
    rt: &dyn OciRuntime,
    out: std::io::Result<std::process::Output>,
) -> Result<(), RuntimeError> {
    let out = out.map_err(|source| RuntimeError::Spawn {
        binary: rt.binary().into(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Failed(clean_message(
            &String::from_utf8_lossy(&out.stderr),
        )))
    }
}

/// Extracts runc's message from logrus text (`time=.. level=error msg="..."`) or returns it trimmed.
pub fn clean_message(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if let Some(pos) = line.find("msg=\"") {
        let rest = &line[pos + 5..];
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        return out;
    }
    line.to_string()
}

/// The last error message in a runtime JSON log (`--log-format json`).
pub fn last_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error" || v["level"] == "fatal")
            .then(|| v["msg"].as_str().map(str::to_string))
            .flatten()
    })
}

/// True if a runtime error says the container is gone or already stopped.
pub fn is_gone(err: &RuntimeError) -> bool {
    match err {
        RuntimeError::Failed(m) => {
            m.contains("does not exist")
                || m.contains("not running")
                || m.contains("no such")
                || m.contains("not found")
        }
        RuntimeError::Spawn { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn command_lines() {
        let rt = Runc {
            binary: "/usr/bin/crun".into(),
            root: "/run/x".into(),
        };
        assert_eq!(
            strs(rt.run_args(
                "c1",
                Path::new("/b"),
                Path::new("/p"),
                None,
                Path::new("/l")
            )),
            [
                "--root",
                "/run/x",
                "--log",
                "/l",
                "--log-format",
                "json",
                "run",
                "-d",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1"
            ]
        );
        let exec = ExecSpec {
            args: vec!["sh".into(), "-c".into(), "x".into()],
            env: vec!["A=1".into()],
            tty: true,
            stdin: true,
        };
        assert_eq!(
            strs(rt.exec_args(
                "c1",
                &exec,
                Path::new("/p"),
                Some(Path::new("/s")),
                Path::new("/l")
            ))[6..],
            [
                "exec",
                "-d",
                "--tty",
                "--console-socket",
                "/s",
                "--pid-file",
                "/p",
                "--env",
                "A=1",
                "c1",
                "sh",
                "-c",
                "x"
            ]
        );
        assert_eq!(strs(rt.kill_args("c1", 15))[2..], ["kill", "c1", "15"]);
        assert_eq!(
            strs(rt.delete_args("c1", true))[2..],
            ["delete", "-f", "c1"]
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            clean_message("time=\"x\" level=error msg=\"container \\\"c\\\" does not exist\"\n"),
            "container \"c\" does not exist"
        );
        assert_eq!(clean_message("plain\n\n"), "plain");
        assert!(is_gone(&RuntimeError::Failed(
            "container does not exist".into()
        )));
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n",
        )
        .unwrap();
        assert_eq!(last_log_error(&log).as_deref(), Some("boom"));
    }
}

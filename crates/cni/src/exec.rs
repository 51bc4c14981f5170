//! Running CNI plugin binaries per the CNI spec: the `CNI_*` environment,
//! the config on stdin, the result (or error JSON) on stdout.
//!
//! [`PluginExec`] is the seam: [`ProcessExec`] runs real binaries found in
//! the plugin directories; unit tests substitute a fake.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CniCommand {
    /// Attach the sandbox to the network.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify the attachment is as ADD left it.
    Check,
    /// Report the spec versions the plugin supports.
    Version,
}

impl CniCommand {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Version => "VERSION",
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-call `CNI_*` variables (all but `CNI_PATH`, which the executor
/// knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: CniCommand,
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: String,
    /// `CNI_NETNS`: the namespace path; empty on DEL when it is gone.
    pub netns: String,
    /// `CNI_IFNAME`: the interface to create in the sandbox.
    pub ifname: String,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: String,
}

/// Errors running a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No executable named after the plugin `type` in the plugin dirs.
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    NotFound {
        /// The plugin `type`.
        plugin: String,
        /// Where it was looked for.
        dirs: Vec<PathBuf>,
    },
    /// The plugin could not be started or its pipes failed.
    #[error("running CNI plugin {plugin}: {source}")]
    Spawn {
        /// The plugin `type`.
        plugin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin failed and reported a CNI error.
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", details_suffix(.details))]
    Plugin {
        /// The plugin `type`.
        plugin: String,
        /// The operation.
        command: CniCommand,
        /// The spec's error code (1-99 well-known, 100+ plugin-specific).
        code: u32,
        /// The message.
        msg: String,
        /// Longer details, possibly empty.
        details: String,
    },
    /// The plugin failed without a parsable error on stdout.
    #[error("CNI plugin {plugin} {command} failed ({status}): {output}")]
    Failed {
        /// The plugin `type`.
        plugin: String,
        /// The operation.
        command: CniCommand,
        /// The exit status.
        status: String,
        /// Its stderr (or stdout), trimmed.
        output: String,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

/// Runs a plugin: `plugin` is its `type`, `stdin` its network config.
/// Returns stdout on success (exit 0).
pub trait PluginExec: Send + Sync {
    /// Runs one plugin invocation.
    fn exec(&self, plugin: &str, inv: &Invocation, stdin: &[u8]) -> Result<Vec<u8>, ExecError>;
}

/// The real [`PluginExec`]: finds `<dir>/<type>` in the plugin dirs and runs
/// it with the agent's environment plus the `CNI_*` variables.
#[derive(Debug, Clone)]
pub struct ProcessExec {
    dirs: Vec<PathBuf>,
    cni_path: String,
}

impl ProcessExec {
    /// An executor searching `dirs` in order (also passed as `CNI_PATH`).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        let cni_path = dirs
            .iter()
            .map(|d| d.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":");
        Self { dirs, cni_path }
    }

    fn find(&self, plugin: &str) -> Result<PathBuf, ExecError> {
        let not_found = || ExecError::NotFound {
            plugin: plugin.to_string(),
            dirs: self.dirs.clone(),
        };
        // A `type` is a file name, never a path.
        if plugin.is_empty() || plugin.contains('/') || plugin == "." || plugin == ".." {
            return Err(not_found());
        }
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| is_executable(p))
            .ok_or_else(not_found)
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl PluginExec for ProcessExec {
    fn exec(&self, plugin: &str, inv: &Invocation, stdin: &[u8]) -> Result<Vec<u8>, ExecError> {
        let path = self.find(plugin)?;
        let spawn_err = |source| ExecError::Spawn {
            plugin: plugin.to_string(),
            source,
        };
        let mut child = Command::new(&path)
            .env("CNI_COMMAND", inv.command.as_str())
            .env("CNI_CONTAINERID", &inv.container_id)
            .env("CNI_NETNS", &inv.netns)
            .env("CNI_IFNAME", &inv.ifname)
            .env("CNI_ARGS", &inv.args)
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // Configs are a few KB, far below the pipe buffer: write, then wait.
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let written = pipe.write_all(stdin);
        drop(pipe);
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            written.map_err(spawn_err)?;
            return Ok(out.stdout);
        }
        Err(plugin_failure(
            plugin,
            inv.command,
            &out.status.to_string(),
            &out.stdout,
            &out.stderr,
        ))
    }
}

/// The spec's error object.
#[derive(Deserialize)]
struct ErrorJson {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Turns a failed plugin's output into an error: the spec's error JSON on
/// stdout when present, else the raw stderr/stdout text.
pub fn plugin_failure(
    plugin: &str,
    command: CniCommand,
    status: &str,
    stdout: &[u8],
    stderr: &[u8],
) -> ExecError {
    if let Ok(e) = serde_json::from_slice::<ErrorJson>(stdout) {
        return ExecError::Plugin {
            plugin: plugin.to_string(),
            command,
            code: e.code,
            msg: e.msg,
            details: e.details,
        };
    }
    let text = if stderr.iter().all(u8::is_ascii_whitespace) {
        stdout
    } else {
        stderr
    };
    ExecError::Failed {
        plugin: plugin.to_string(),
        command,
        status: status.to_string(),
        output: String::from_utf8_lossy(text).trim().to_string(),
    }
}

/// Builds `CNI_ARGS` the way kubelet's runtimes do:
/// `IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`.
/// Values cannot contain `;` or `=` (Kubernetes names and UIDs never do).
pub fn cni_args(namespace: &str, name: &str, sandbox_id: &str, uid: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};\
         K8S_POD_INFRA_CONTAINER_ID={sandbox_id};K8S_POD_UID={uid}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(command: CniCommand) -> Invocation {
        Invocation {
            command,
            container_id: "abc".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: cni_args("default", "web", "abc", "u-1"),
        }
    }

    #[test]
    fn cni_args_match_kubelet() {
        assert_eq!(
            cni_args("ns", "pod", "sb1", "uid-1"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;\
             K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"
        );
    }

    #[test]
    fn error_json_becomes_a_plugin_error() {
        let out =
            br#"{"cniVersion":"1.0.0","code":7,"msg":"failed to allocate","details":"range full"}"#;
        let err = plugin_failure("bridge", CniCommand::Add, "exit status: 1", out, b"");
        match &err {
            ExecError::Plugin {
                plugin,
                code,
                msg,
                details,
                command,
            } => {
                assert_eq!(
                    (plugin.as_str(), *code, *command),
                    ("bridge", 7, CniCommand::Add)
                );
                assert_eq!(
                    (msg.as_str(), details.as_str()),
                    ("failed to allocate", "range full")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "CNI plugin bridge ADD failed (code 7): failed to allocate (range full)"
        );
        let no_details =
            plugin_failure("x", CniCommand::Del, "1", br#"{"code":11,"msg":"m"}"#, b"");
        assert_eq!(
            no_details.to_string(),
            "CNI plugin x DEL failed (code 11): m"
        );
    }

    #[test]
    fn other_output_becomes_a_failed_error() {
        let err = plugin_failure(
            "portmap",
            CniCommand::Add,
            "exit status: 2",
            b"",
            b"panic: boom\n",
        );
        assert_eq!(
            err.to_string(),
            "CNI plugin portmap ADD failed (exit status: 2): panic: boom"
        );
        let err = plugin_failure("p", CniCommand::Check, "s", b"garbage", b"  ");
        assert!(err.to_string().ends_with(": garbage"), "{err}");
    }

    #[test]
    fn missing_and_path_like_plugins_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let exec = ProcessExec::new(vec![dir.path().to_path_buf()]);
        for name in ["missing", "../bin/sh", ""] {
            let err = exec.exec(name, &inv(CniCommand::Add), b"{}").unwrap_err();
            assert!(matches!(err, ExecError::NotFound { .. }), "{err}");
        }
    }

    #[test]
    fn runs_a_script_plugin_with_the_cni_environment() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("echoenv");
        std::fs::write(
            &script,
            "#!/bin/sh\nread -r cfg\nprintf '{\"cmd\":\"%s\",\"id\":\"%s\",\"ns\":\"%s\",\"if\":\"%s\",\"path\":\"%s\",\"cfg\":%s}' \
             \"$CNI_COMMAND\" \"$CNI_CONTAINERID\" \"$CNI_NETNS\" \"$CNI_IFNAME\" \"$CNI_PATH\" \"$cfg\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let exec = ProcessExec::new(vec!["/nonexistent".into(), dir.path().to_path_buf()]);
        let out = exec
            .exec("echoenv", &inv(CniCommand::Check), b"{\"a\":1}\n")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cmd"], "CHECK");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["ns"], "/run/netns/x");
        assert_eq!(v["if"], "eth0");
        assert_eq!(v["path"], format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(v["cfg"]["a"], 1);
    }
}

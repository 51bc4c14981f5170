//! The per-container monitor: a small process in its own session that
//! survives the agent. It runs `runtime run -d` as a child subreaper (so the
//! container's init becomes its child), reports the start on its stdout (one
//! line the agent waits for), copies the container's output into the CRI log
//! file, records `started.json` and, at the end, `exited.json` (exit code,
//! times, OOM kill), then deletes the runtime's state.
//!
//! While the container runs it serves attach clients on `attach.sock`
//! ([`crate::attach_server`]): its output goes to them as well as to the log,
//! their input to its stdin (kept open here), their sizes to its terminal.
//!
//! It also serves as the helper for `exec -t` (`exec-tty` mode): runc can only
//! hand out a terminal when detached, so a subreaper must wait for the exec'd
//! process; the helper passes the pty master to the agent over its stdin
//! (a unix socket) and then reports the exit code there.
//!
//! Entry point: [`monitor_main`], called by `rkube container-monitor ARGS...`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rustix::process::{WaitOptions, WaitStatus};

use crate::attach_proto;
use crate::attach_server::{Hub, HubConfig, Resizer};
use crate::cgroup::Cgroups;
use crate::console;
use crate::logfmt::{LineSplitter, LogWriter, Stream};
use crate::runtime::{last_log_error, run_blocking, OciRuntime, Runc};
use crate::state::{self, files, Exited, MonitorConfig, Started};

/// Errors inside the monitor (reported on its stderr, `monitor.log`).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Bad command line.
    #[error("usage: container-monitor run STATE_DIR | exec-tty STATE_DIR REQUEST_JSON")]
    Usage,
    /// I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A state file problem.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// A terminal problem.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MonitorError {
    let what = what.into();
    move |source| MonitorError::Io { what, source }
}

/// Console socket and pid file names in the state directory (the monitor's
/// working directory). runc is given the socket as `/proc/PID/cwd/NAME` to
/// stay clear of the 108-byte socket path limit.
const CONSOLE_SOCK: &str = "console.sock";
const PID_FILE: &str = "pid";

/// Runs the monitor; returns the process exit code.
pub fn monitor_main(args: Vec<OsString>) -> i32 {
    let mut it = args.into_iter();
    let result = match it.next().and_then(|m| m.into_string().ok()).as_deref() {
        Some("run") => match it.next() {
            Some(dir) => run(Path::new(&dir)),
            None => Err(MonitorError::Usage),
        },
        Some("exec-tty") => exec_tty(it.collect()),
        _ => Err(MonitorError::Usage),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("container-monitor: {e}");
            1
        }
    }
}

/// Exit code from a wait status: the code, or 128 + signal.
fn exit_code(status: WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(sig) = status.terminating_signal() {
        128 + sig
    } else {
        255
    }
}

/// Reaps children until `pid` ends; returns its exit code.
fn reap_until(pid: i32) -> i32 {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((p, status))) if p.as_raw_nonzero().get() == pid => return exit_code(status),
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                eprintln!("container-monitor: wait: {e}");
                return 255;
            }
        }
    }
}

fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn become_subreaper() -> Result<(), MonitorError> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(|e| {
        MonitorError::Io {
            what: "PR_SET_CHILD_SUBREAPER".into(),
            source: e.into(),
        }
    })
}

/// The container's pty master, resized for attach clients.
struct PtyResizer(OwnedFd);

impl Resizer for PtyResizer {
    fn resize(&self, width: u16, height: u16) -> std::io::Result<()> {
        console::resize(&self.0, width, height).map_err(std::io::Error::other)
    }
}

/// Copies one output stream into the log and to attach clients until EOF.
fn copy_stream(mut src: impl Read, stream: Stream, log: Arc<Mutex<Option<LogWriter>>>, hub: Hub) {
    let mut splitter = LineSplitter::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the terminal's other side is gone.
        };
        {
            let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = guard.as_mut() {
                if let Err(e) = splitter.feed(&buf[..n], w) {
                    eprintln!("container-monitor: {e}");
                }
            }
        }
        hub.broadcast(stream == Stream::Stderr, &buf[..n]);
    }
    let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = guard.as_mut() {
        if let Err(e) = splitter.finish(w) {
            eprintln!("container-monitor: {e}");
        }
    }
}

fn run(dir: &Path) -> Result<i32, MonitorError> {
    let _ = rustix::process::setsid();
    std::env::set_current_dir(dir).map_err(io(format!("chdir {}", dir.display())))?;
    let dir = dir.to_path_buf();
    let cfg: MonitorConfig =
        state::read_json(&dir, files::MONITOR)?.ok_or_else(|| MonitorError::Io {
            what: "reading monitor.json".into(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
    std::fs::write(dir.join(files::MONITOR_PID), std::process::id().to_string())
        .map_err(io("writing monitor.pid"))?;
    become_subreaper()?;
    let rt = Runc {
        binary: cfg.runtime.clone(),
        root: cfg.runtime_root.clone(),
    };
    let mut stdout = std::io::stdout();

    // The container's stdio.
    let mut readers: Vec<(Box<dyn Read + Send>, Stream)> = Vec::new();
    let mut keep_stdin = None;
    let mut cmd = Command::new(rt.binary());
    let listener = if cfg.tty {
        let _ = std::fs::remove_file(CONSOLE_SOCK);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Some(UnixListener::bind(CONSOLE_SOCK).map_err(io("binding the console socket"))?)
    } else {
        let (out_r, out_w) = std::io::pipe().map_err(io("pipe"))?;
        let (err_r, err_w) = std::io::pipe().map_err(io("pipe"))?;
        if cfg.stdin {
            let (in_r, in_w) = std::io::pipe().map_err(io("pipe"))?;
            cmd.stdin(in_r);
            keep_stdin = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.stdout(out_w).stderr(err_w);
        readers.push((Box::new(out_r), Stream::Stdout));
        readers.push((Box::new(err_r), Stream::Stderr));
        None
    };
    let log_path = dir.join(files::RUNC_LOG);
    let console = listener.as_ref().map(|_| short_path(CONSOLE_SOCK));
    cmd.args(rt.run_args(
        &cfg.id,
        &cfg.bundle,
        &dir.join(PID_FILE),
        console.as_deref(),
        &log_path,
    ));
    let mut child = cmd
        .spawn()
        .map_err(io(format!("running {}", rt.binary().display())))?;
    drop(cmd); // closes our copies of the container's pipe ends
    let accepted = listener.map(|l| std::thread::spawn(move || console::accept_master(&l)));
    let status = child.wait().map_err(io("waiting for the runtime"))?;
    let pid = if status.success() {
        read_pid(&dir)
    } else {
        None
    };
    let Some(pid) = pid else {
        let message = last_log_error(&log_path)
            .unwrap_or_else(|| format!("{} run failed: {status}", rt.binary().display()));
        let exited = Exited {
            exit_code: 128,
            started_at: None,
            finished_at: Timestamp::now(),
            oom_killed: false,
            reason: "StartError".into(),
            message: Some(message.clone()),
        };
        state::write_json(&dir, files::EXITED, &exited)?;
        let _ = writeln!(stdout, "error {}", message.replace('\n', " "));
        let _ = run_blocking(&rt, rt.delete_args(&cfg.id, true));
        return Ok(1);
    };
    let master: Option<OwnedFd> = match accepted {
        Some(h) => Some(h.join().map_err(|_| MonitorError::Usage)??),
        None => None,
    };
    // Attach is served before the container is reported running; without
    // it the container still runs and is logged.
    let hub = attach_hub(&cfg, keep_stdin, master.as_ref());
    let _ = std::fs::remove_file(attach_proto::SOCKET);
    match UnixListener::bind(attach_proto::SOCKET) {
        Ok(l) => hub.serve(l),
        Err(e) => eprintln!("container-monitor: binding the attach socket: {e}"),
    }
    let started_at = Timestamp::now();
    state::write_json(&dir, files::STARTED, &Started { pid, started_at })?;
    let _ = writeln!(stdout, "ok {pid} {started_at}");
    let _ = stdout.flush();

    // Copy output into the log.
    let writer = match LogWriter::open(&cfg.log.path, cfg.log.max_size, cfg.log.max_files) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("container-monitor: {e}");
            None
        }
    };
    let log = Arc::new(Mutex::new(writer));
    if let Some(m) = &master {
        let file = std::fs::File::from(m.as_fd().try_clone_to_owned().map_err(io("dup"))?);
        readers.push((Box::new(file), Stream::Stdout));
    }
    let copiers: Vec<_> = readers
        .into_iter()
        .map(|(r, s)| {
            let (log, hub) = (log.clone(), hub.clone());
            std::thread::spawn(move || copy_stream(r, s, log, hub))
        })
        .collect();

    let code = reap_until(pid);
    drop(master); // the copier holds its own dup until EIO
    for c in copiers {
        let _ = c.join();
    }
    hub.close();
    let _ = std::fs::remove_file(attach_proto::SOCKET);
    let oom_killed = Cgroups::default()
        .oom_kills(&cfg.cgroup_path)
        .map(|n| n > 0)
        .unwrap_or(false);
    let exited = Exited {
        exit_code: code,
        started_at: Some(started_at),
        finished_at: Timestamp::now(),
        oom_killed,
        reason: state::reason(code, oom_killed).into(),
        message: None,
    };
    state::write_json(&dir, files::EXITED, &exited)?;
    if let Err(e) = run_blocking(&rt, rt.delete_args(&cfg.id, true)) {
        eprintln!("container-monitor: delete: {e}");
    }
    let _ = std::fs::remove_file(CONSOLE_SOCK);
    Ok(0)
}

/// The attach hub: input goes to the stdin pipe or, with a terminal, the
/// pty master (only if the container has stdin); sizes go to the master.
fn attach_hub(
    cfg: &MonitorConfig,
    stdin_pipe: Option<std::io::PipeWriter>,
    master: Option<&OwnedFd>,
) -> Hub {
    let dup = |m: &OwnedFd| match m.as_fd().try_clone_to_owned() {
        Ok(fd) => Some(fd),
        Err(e) => {
            eprintln!("container-monitor: dup of the terminal for attach: {e}");
            None
        }
    };
    let stdin: Option<Box<dyn Write + Send>> = match (stdin_pipe, master) {
        (Some(p), _) => Some(Box::new(p)),
        (None, Some(m)) if cfg.stdin => {
            dup(m).map(|fd| Box::new(std::fs::File::from(fd)) as Box<dyn Write + Send>)
        }
        (None, _) => None,
    };
    let resizer = master
        .and_then(dup)
        .map(|fd| Box::new(PtyResizer(fd)) as Box<dyn Resizer>);
    let hub_cfg = HubConfig {
        stdin: cfg.stdin,
        stdin_once: cfg.stdin_once,
        tty: cfg.tty,
    };
    Hub::new(hub_cfg, stdin, resizer)
}

/// What the `exec-tty` helper runs (its second argument, as JSON).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExecTtyRequest {
    /// Container id.
    pub id: String,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// Its `--root`.
    pub runtime_root: PathBuf,
    /// Command and arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<String>,
    /// Unique name for the socket, pid and log files in the state directory.
    pub tag: String,
}

/// A path to `name` in this process's working directory that stays short
/// (unix socket paths are limited to 108 bytes).
fn short_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/cwd/{name}", std::process::id()))
}

/// `exec-tty STATE_DIR REQUEST_JSON` with stdin a unix socket to the agent:
/// sends `ok PID\n` with the pty master, then `exit CODE\n` (or `error MESSAGE\n`).
fn exec_tty(args: Vec<OsString>) -> Result<i32, MonitorError> {
    let [dir, req] = args.as_slice() else {
        return Err(MonitorError::Usage);
    };
    let req: ExecTtyRequest =
        serde_json::from_str(&req.to_string_lossy()).map_err(|e| MonitorError::Io {
            what: "parsing the exec request".into(),
            source: std::io::Error::other(e),
        })?;
    let agent = UnixStream::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io("dup stdin"))?,
    );
    let dir = PathBuf::from(dir);
    std::env::set_current_dir(&dir).map_err(io("chdir"))?;
    become_subreaper()?;
    let sock = format!("{}.sock", req.tag);
    let pid_file = dir.join(format!("{}.pid", req.tag));
    let log_file = dir.join(format!("{}.log", req.tag));
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(io("binding the console socket"))?;
    let accepted = std::thread::spawn(move || console::accept_master(&listener));
    let rt = Runc {
        binary: req.runtime.clone(),
        root: req.runtime_root.clone(),
    };
    let exec = crate::spec::ExecSpec {
        args: req.args.clone(),
        env: req.env.clone(),
        tty: true,
        stdin: true,
    };
    let status = Command::new(rt.binary())
        .args(rt.exec_args(
            &req.id,
            &exec,
            &pid_file,
            Some(&short_path(&sock)),
            &log_file,
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(io("running the runtime"))?;
    let _ = std::fs::remove_file(&sock);
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let _ = std::fs::remove_file(&pid_file);
    let message = last_log_error(&log_file);
    let _ = std::fs::remove_file(&log_file);
    let (Some(pid), true) = (pid, status.success()) else {
        let msg = message.unwrap_or_else(|| format!("exec failed: {status}"));
        let _ = (&agent).write_all(format!("error {}\n", msg.replace('\n', " ")).as_bytes());
        return Ok(1);
    };
    let master = accepted.join().map_err(|_| MonitorError::Usage)??;
    console::send_fd(&agent, &master, format!("ok {pid}\n").as_bytes())?;
    drop(master);
    let code = reap_until(pid);
    let _ = (&agent).write_all(format!("exit {code}\n").as_bytes());
    Ok(0)
}

/// Parses the monitor's report line: `ok PID STARTED_AT` or `error MESSAGE`.
pub fn parse_report(line: &str) -> Result<Started, String> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("ok ") {
        let mut it = rest.split(' ');
        let pid = it.next().and_then(|p| p.parse().ok());
        let ts = it.next().and_then(|t| t.parse().ok());
        if let (Some(pid), Some(started_at)) = (pid, ts) {
            return Ok(Started { pid, started_at });
        }
    }
    Err(line.strip_prefix("error ").unwrap_or(line).to_string())
}

/// Reads the agent side of an `exec-tty` helper's report lines.
pub fn parse_exec_report(line: &str) -> Result<i32, String> {
    let line = line.trim_end();
    match line.strip_prefix("exit ").and_then(|c| c.parse().ok()) {
        Some(code) => Ok(code),
        None => Err(line.strip_prefix("error ").unwrap_or(line).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        let s = parse_report("ok 42 2024-01-01T00:00:00.5Z\n").unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(
            parse_report("error exec: \"x\": not found\n").unwrap_err(),
            "exec: \"x\": not found"
        );
        assert_eq!(parse_exec_report("exit 3\n").unwrap(), 3);
        assert_eq!(parse_exec_report("error boom").unwrap_err(), "boom");
        assert_eq!(monitor_main(vec!["bogus".into()]), 1);
    }
}

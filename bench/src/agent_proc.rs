//! A `rkube agent` process under test (simulated nodes or one real node):
//! spawned against the server's admin kubeconfig, its stderr counted
//! (lines, WARN, ERROR, the last few for error reports), killed on drop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::one_line;

/// Agent stderr lines echoed to our stderr (the rest are only counted).
const AGENT_ECHO_LINES: u64 = 40;

/// What the agent wrote to stderr.
#[derive(Default)]
struct AgentLog {
    lines: u64,
    warnings: u64,
    errors: u64,
    /// The last few lines (for error reports).
    last: VecDeque<String>,
}

/// `s` without ANSI escape sequences (CSI ... final byte).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A running `rkube agent`; killed on drop.
pub struct Agent {
    child: Child,
    log: Arc<Mutex<AgentLog>>,
    /// When it was spawned.
    pub started: Instant,
}

impl Agent {
    /// Spawns `rkube agent --kubeconfig KUBECONFIG ARGS...` through `sh`,
    /// which raises the soft open-file limit to the hard one (as run.sh
    /// does) and then execs rkube, so the pid is the agent's.
    pub fn start(
        bin: &Path,
        kubeconfig: &Path,
        args: &[String],
        log_level: &str,
    ) -> anyhow::Result<Agent> {
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#)
            .arg(bin)
            .arg("agent")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env("RKUBE_LOG", log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} agent", bin.display()))?;
        rkube_store::testing::spawn_orphan_reaper(child.id());
        let stderr = child.stderr.take().context("agent stderr")?;
        let log = Arc::new(Mutex::new(AgentLog::default()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                let mut l = sink.lock().expect("lock");
                l.lines += 1;
                if line.contains("WARN") {
                    l.warnings += 1;
                }
                if line.contains("ERROR") {
                    l.errors += 1;
                }
                if l.lines <= AGENT_ECHO_LINES {
                    eprintln!("[agent] {line}");
                } else if l.lines == AGENT_ECHO_LINES + 1 {
                    eprintln!("[agent] (further agent output is only counted)");
                }
                if l.last.len() == 5 {
                    l.last.pop_front();
                }
                l.last.push_back(line);
            }
        });
        Ok(Agent {
            child,
            log,
            started,
        })
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the agent has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            // Let the stderr thread catch the last lines.
            std::thread::sleep(Duration::from_millis(200));
            let last: Vec<String> = self
                .log
                .lock()
                .expect("lock")
                .last
                .iter()
                .cloned()
                .collect();
            bail!(
                "AGENT BUG: rkube agent exited ({status}); last stderr lines: {}",
                one_line(&last.join(" / "), 600)
            );
        }
        Ok(())
    }

    /// "agent log: 0 lines" or "agent log: 12 lines (3 WARN, 0 ERROR; last: …)".
    pub fn describe_log(&self) -> String {
        let l = self.log.lock().expect("lock");
        match l.last.back() {
            None => "agent stderr: 0 lines".into(),
            Some(last) => format!(
                "agent stderr: {} lines ({} WARN, {} ERROR; last: {})",
                l.lines,
                l.warnings,
                l.errors,
                one_line(last, 200)
            ),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_escapes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"),
            "2026  WARN x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}

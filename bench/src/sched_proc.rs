//! The scheduler as its own process for the `scheduler` scenario's
//! `--separate-scheduler` mode: `rkube scheduler --kubeconfig K
//! --metrics-bind-address 127.0.0.1:PORT` against a server started with
//! `--disable-scheduler`, so that the scheduler's CPU is measured apart
//! from the API server's and its Prometheus metrics (attempts, time in
//! scheduling cycles and per extension point) can be read.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scheduler stderr lines echoed to our stderr.
const ECHO_LINES: usize = 20;

/// A running `rkube scheduler`; killed on drop.
pub struct SchedulerProcess {
    child: Child,
    /// `127.0.0.1:PORT` of its plain-HTTP metrics.
    metrics_addr: String,
}

impl SchedulerProcess {
    /// Starts the scheduler with the server's admin kubeconfig.
    pub fn start(bin: &Path, kubeconfig: &Path, log: &str) -> anyhow::Result<SchedulerProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("picking a free port")?
            .port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(bin)
            .arg("scheduler")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--metrics-bind-address")
            .arg(&metrics_addr)
            .env("RKUBE_LOG", log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} scheduler", bin.display()))?;
        rkube_store::testing::spawn_orphan_reaper(child.id());
        let stderr = child.stderr.take().context("scheduler stderr")?;
        std::thread::spawn(move || {
            for (i, line) in BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .enumerate()
            {
                if i < ECHO_LINES {
                    eprintln!("[scheduler] {line}");
                }
            }
        });
        eprintln!(
            "rkube-bench: scheduler pid {} (metrics http://{metrics_addr}/metrics)",
            child.id()
        );
        Ok(SchedulerProcess {
            child,
            metrics_addr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the scheduler has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("SCHEDULER BUG: rkube scheduler exited ({status})"),
            None => Ok(()),
        }
    }

    /// Its metrics (three tries of 5 s; empty, not `read`, when they
    /// cannot be read: they are diagnostics).
    pub async fn metrics(&self) -> Metrics {
        for _ in 0..3 {
            match tokio::time::timeout(Duration::from_secs(5), http_get(&self.metrics_addr)).await {
                Ok(Ok(text)) => return Metrics::parse(&text),
                Ok(Err(e)) => eprintln!("rkube-bench: reading the scheduler's metrics: {e:#}"),
                Err(_) => eprintln!("rkube-bench: reading the scheduler's metrics timed out"),
            }
        }
        Metrics::default()
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` over plain HTTP/1.0; the body.
async fn http_get(addr: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200") => {
            Ok(body.to_string())
        }
        _ => bail!("unexpected metrics response"),
    }
}

/// The scheduler metrics the scenario reports, as counters and sums.
#[derive(Default, Clone)]
pub struct Metrics {
    /// Parsed from a response that had scheduler metrics.
    pub read: bool,
    /// `scheduler_schedule_attempts_total` by result.
    pub attempts: BTreeMap<String, f64>,
    /// `scheduler_scheduling_attempt_duration_seconds_sum` over all results:
    /// time inside scheduling cycles (the algorithm, not binding).
    pub cycle_seconds: f64,
    /// `scheduler_framework_extension_point_duration_seconds_sum` by point.
    pub points: BTreeMap<String, f64>,
    pub preemption_attempts: f64,
}

/// The value of `name="..."` in a Prometheus label set.
fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix("=\""))
        .map_or("", |v| v.trim_end_matches('"'))
}

impl Metrics {
    /// Reads Prometheus/OpenMetrics text.
    pub fn parse(text: &str) -> Metrics {
        let mut m = Metrics {
            read: text.contains("scheduler_"),
            ..Metrics::default()
        };
        for line in text.lines() {
            let (key, value) = match line.rsplit_once(' ') {
                Some((k, v)) if !line.starts_with('#') => (k, v.trim().parse().unwrap_or(0.0)),
                _ => continue,
            };
            let (name, labels) = match key.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (key, ""),
            };
            match name {
                "scheduler_schedule_attempts_total" => {
                    *m.attempts
                        .entry(label(labels, "result").to_string())
                        .or_default() += value;
                }
                "scheduler_scheduling_attempt_duration_seconds_sum" => m.cycle_seconds += value,
                "scheduler_framework_extension_point_duration_seconds_sum" => {
                    *m.points
                        .entry(label(labels, "extension_point").to_string())
                        .or_default() += value;
                }
                "scheduler_preemption_attempts_total" => m.preemption_attempts += value,
                _ => {}
            }
        }
        m
    }

    /// "attempts: scheduled 10,000, unschedulable 412; in cycles 4.1 s
    /// (82 % of 5.0 s; Filter 2.9 s, Score 0.8 s, ...); preemption attempts 0"
    /// for the difference from `before` over `secs` of wall time.
    pub fn since(&self, before: &Metrics, secs: f64) -> String {
        if !self.read || !before.read {
            return format!(
                "scheduler metrics could not be read (before the window: {}, after: {})",
                if before.read { "read" } else { "not read" },
                if self.read { "read" } else { "not read" }
            );
        }
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| -> Vec<(String, f64)> {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect()
        };
        let attempts: Vec<String> = diff(&self.attempts, &before.attempts)
            .iter()
            .map(|(k, v)| format!("{k} {}", crate::stats::thousands(*v as u64)))
            .collect();
        let mut points = diff(&self.points, &before.points);
        points.sort_by(|a, b| b.1.total_cmp(&a.1));
        let points: Vec<String> = points
            .iter()
            .map(|(k, v)| format!("{k} {v:.2} s"))
            .collect();
        let cycles = self.cycle_seconds - before.cycle_seconds;
        format!(
            "scheduler attempts: {}; inside scheduling cycles {cycles:.2} s = {:.0} % of the \
             {secs:.1} s (by extension point: {}); preemption attempts {}",
            if attempts.is_empty() {
                "none".to_string()
            } else {
                attempts.join(", ")
            },
            100.0 * cycles / secs.max(1e-9),
            points.join(", "),
            (self.preemption_attempts - before.preemption_attempts) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_parsed_and_diffed() {
        let before = Metrics::parse(
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"p\"} 10\n",
        );
        let text = "# TYPE x counter\n\
            scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"p\"} 110\n\
            scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"p\"} 5\n\
            scheduler_scheduling_attempt_duration_seconds_sum{result=\"scheduled\",profile=\"p\"} 1.5\n\
            scheduler_framework_extension_point_duration_seconds_sum{extension_point=\"Filter\",status=\"Success\",profile=\"p\"} 1.0\n\
            scheduler_preemption_attempts_total 3\n";
        let m = Metrics::parse(text);
        assert_eq!(m.attempts["scheduled"], 110.0);
        assert_eq!(m.points["Filter"], 1.0);
        let s = m.since(&before, 3.0);
        assert!(Metrics::default()
            .since(&before, 1.0)
            .contains("after: not read"));
        assert!(s.contains("scheduled 100, unschedulable 5"), "{s}");
        assert!(s.contains("1.50 s = 50 %"), "{s}");
        assert!(s.contains("Filter 1.00 s"), "{s}");
        assert!(s.ends_with("preemption attempts 3"), "{s}");
    }
}

//! Container probes as upstream's kubelet runs them: liveness, readiness and
//! startup probes of type exec, httpGet (HTTP or HTTPS, see
//! [`super::httpget`]; 200 ≤ status < 400) or tcpSocket,
//! with `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`,
//! `successThreshold` and `failureThreshold`. [`Tracker`] is the pure
//! threshold logic; [`run_once`] performs one probe.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::httpget::{self, Purpose, Target};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Exec(Vec<String>),
    Http {
        https: bool,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// A probe rkube cannot run (gRPC, or a named port that does not
    /// exist): it always fails with this message.
    Invalid(String),
}

/// One probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.filter(|s| *s > 0).unwrap_or(default).max(0) as u64)
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name:?} in container"))
        }
    }
}

/// The probe spec of `p` for `container`, probing `pod_ip`.
pub fn spec(kind: Kind, p: &Probe, container: &Container, pod_ip: &str) -> Spec {
    let action = if let Some(e) = &p.exec {
        Action::Exec(e.command.clone().unwrap_or_default())
    } else if let Some(h) = &p.http_get {
        match resolve_port(&h.port, container) {
            Ok(port) => Action::Http {
                https: h.scheme.as_deref() == Some("HTTPS"),
                host: h
                    .host
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| pod_ip.into()),
                port,
                path: h
                    .path
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "/".into()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            },
            Err(e) => Action::Invalid(e),
        }
    } else if let Some(t) = &p.tcp_socket {
        match resolve_port(&t.port, container) {
            Ok(port) => Action::Tcp {
                host: t
                    .host
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| pod_ip.into()),
                port,
            },
            Err(e) => Action::Invalid(e),
        }
    } else if p.grpc.is_some() {
        Action::Invalid("gRPC probes are not supported".into())
    } else {
        Action::Invalid("probe has no handler".into())
    };
    let success = match kind {
        // Liveness and startup probes require a success threshold of 1.
        Kind::Liveness | Kind::Startup => 1,
        Kind::Readiness => p.success_threshold.filter(|v| *v > 0).unwrap_or(1) as u32,
    };
    Spec {
        kind,
        action,
        initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
        period: secs(p.period_seconds, 10),
        timeout: secs(p.timeout_seconds, 1),
        success_threshold: success,
        failure_threshold: p.failure_threshold.filter(|v| *v > 0).unwrap_or(3) as u32,
    }
}

/// The threshold logic of one probe: the result flips only after
/// `successThreshold` consecutive successes or `failureThreshold`
/// consecutive failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub result: bool,
    ok_run: u32,
    fail_run: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Tracker {
    /// Liveness starts passing; readiness and startup start failing.
    pub fn new(spec: &Spec) -> Self {
        Tracker {
            result: spec.kind == Kind::Liveness,
            ok_run: 0,
            fail_run: 0,
            success_threshold: spec.success_threshold.max(1),
            failure_threshold: spec.failure_threshold.max(1),
        }
    }

    /// Records one probe outcome; returns the new result if it flipped.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.ok_run += 1;
            self.fail_run = 0;
            if !self.result && self.ok_run >= self.success_threshold {
                self.result = true;
                return Some(true);
            }
        } else {
            self.fail_run += 1;
            self.ok_run = 0;
            if self.result && self.fail_run >= self.failure_threshold {
                self.result = false;
                return Some(false);
            }
            if !self.result && self.fail_run == self.failure_threshold {
                // Startup/readiness that never passed: report the failure
                // once the threshold is reached.
                return Some(false);
            }
        }
        None
    }
}

/// Runs commands inside a container for exec probes.
#[async_trait]
pub trait Exec: Send + Sync {
    /// Runs `cmd`; returns its exit code and combined output.
    async fn exec(&self, cmd: &[String], timeout: Duration) -> Result<(i32, String), String>;
}

/// The outcome of one probe: passed, and the failure message.
pub async fn run_once(action: &Action, timeout: Duration, exec: &dyn Exec) -> (bool, String) {
    match action {
        Action::Exec(cmd) => match exec.exec(cmd, timeout).await {
            Ok((0, _)) => (true, String::new()),
            Ok((code, out)) => (
                false,
                if out.trim().is_empty() {
                    format!("command {cmd:?} exited with {code}")
                } else {
                    out.trim_end().to_string()
                },
            ),
            Err(e) => (false, e),
        },
        Action::Tcp { host, port } => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            {
                Ok(Ok(_)) => (true, String::new()),
                Ok(Err(e)) => (false, format!("dial tcp {host}:{port}: {e}")),
                Err(_) => (false, format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Http {
            https,
            host,
            port,
            path,
            headers,
        } => {
            let target = Target {
                https: *https,
                host: host.clone(),
                port: *port,
                path: path.clone(),
            };
            let url = target.url();
            match tokio::time::timeout(timeout, httpget::get(&target, headers, Purpose::Probe)).await
            {
                // 3xx: a redirect to another host ends the chain; upstream
                // calls that a warning, which counts as a success.
                Ok(Ok(r)) if (200..400).contains(&r.status) => (true, String::new()),
                Ok(Ok(r)) => (
                    false,
                    format!("HTTP probe failed with statuscode: {}", r.status),
                ),
                Ok(Err(e)) => (false, format!("Get \"{url}\": {e}")),
                Err(_) => (
                    false,
                    format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    ),
                ),
            }
        }
        Action::Invalid(msg) => (false, msg.clone()),
    }
}

#[cfg(test)]
mod tests;

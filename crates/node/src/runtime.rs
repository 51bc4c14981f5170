//! Container runtimes behind the node agent: the [`Runtime`] trait and the
//! [`SimulatedRuntime`], whose pods run at once with their containers Ready.
//!
//! The simulated runtime honours pod annotations:
//! * `rkube.io/simulate-exit-after: "2s"`: containers exit after that time,
//!   with `rkube.io/simulate-exit-code` (default `"0"`);
//! * `rkube.io/simulate-ready: "false"`: containers run but never get Ready.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

pub const ANN_EXIT_AFTER: &str = "rkube.io/simulate-exit-after";
pub const ANN_EXIT_CODE: &str = "rkube.io/simulate-exit-code";
pub const ANN_READY: &str = "rkube.io/simulate-ready";

/// Errors of runtimes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("pod has no uid")]
    NoUid,
    #[error("pod {0} is not known to the runtime")]
    NotFound(String),
    #[error("invalid annotation {key}={value:?}: {reason}")]
    InvalidAnnotation {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        started_at: Timestamp,
    },
    Terminated {
        started_at: Timestamp,
        finished_at: Timestamp,
        exit_code: i32,
    },
}

/// One container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntimeStatus {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub state: ContainerState,
}

/// A pod as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRuntimeStatus {
    pub started_at: Timestamp,
    pub containers: Vec<ContainerRuntimeStatus>,
}

/// The pod phase a runtime status implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimePhase {
    Running,
    Succeeded,
    Failed,
}

impl RuntimePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimePhase::Running => "Running",
            RuntimePhase::Succeeded => "Succeeded",
            RuntimePhase::Failed => "Failed",
        }
    }
}

impl PodRuntimeStatus {
    /// Running while any container runs; then Succeeded if all exited 0.
    pub fn phase(&self) -> RuntimePhase {
        let mut failed = false;
        for c in &self.containers {
            match c.state {
                ContainerState::Running { .. } => return RuntimePhase::Running,
                ContainerState::Terminated { exit_code, .. } => failed |= exit_code != 0,
            }
        }
        if failed {
            RuntimePhase::Failed
        } else {
            RuntimePhase::Succeeded
        }
    }

    /// Whether every container is ready.
    pub fn ready(&self) -> bool {
        self.containers.iter().all(|c| c.ready)
    }
}

/// What runs pods on a node.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Starts (or, if already started, keeps) the pod's containers.
    async fn start_pod(&self, pod: &Pod) -> Result<(), RuntimeError>;
    /// Takes in a change of a running pod's object (e.g. its annotations).
    async fn update_pod(&self, _pod: &Pod) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Starts the named container of the pod again after it exited.
    async fn restart_container(&self, uid: &str, container: &str) -> Result<(), RuntimeError>;
    /// Stops the pod with this uid; stopping an unknown pod is not an error.
    async fn stop_pod(&self, uid: &str) -> Result<(), RuntimeError>;
    /// The current status of the pod with this uid.
    async fn status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError>;
    /// How long until the pod's status may change on its own (without a
    /// pod update); `None`: only on updates. The agent looks again then.
    fn next_change(&self, uid: &str) -> Option<Duration>;
    /// Whether the runtime runs the whole pod lifecycle itself (addresses,
    /// restarts, status posts): the agent then only admits, starts, updates
    /// and stops pods.
    fn reports_status(&self) -> bool {
        false
    }
    /// The node's pod CIDR, once known.
    fn set_pod_cidr(&self, _cidr: &str) {}
    /// Stops the pod within `grace` (the pod's own period when `None`).
    async fn stop_pod_within(
        &self,
        uid: &str,
        _grace: Option<Duration>,
    ) -> Result<(), RuntimeError> {
        self.stop_pod(uid).await
    }
}

/// Parses durations like `500ms`, `2s`, `1m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct SimContainer {
    name: String,
    image: String,
    started: Instant,
    started_at: Timestamp,
}

#[derive(Debug, Clone)]
struct SimPod {
    started_at: Timestamp,
    exit_after: Option<Duration>,
    exit_code: i32,
    ready: bool,
    containers: Vec<SimContainer>,
}

impl SimPod {
    fn exited(&self, c: &SimContainer) -> Option<Duration> {
        self.exit_after.filter(|d| c.started.elapsed() >= *d)
    }
}

/// A runtime that runs nothing: pods are Running immediately.
#[derive(Debug, Default)]
pub struct SimulatedRuntime {
    pods: Mutex<HashMap<String, SimPod>>,
}

impl SimulatedRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimPod>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn ready_annotation(pod: &Pod) -> bool {
    annotation(pod, ANN_READY) != Some("false")
}

#[async_trait]
impl Runtime for SimulatedRuntime {
    #[tracing::instrument(skip_all, fields(pod = ?pod.metadata.name))]
    async fn start_pod(&self, pod: &Pod) -> Result<(), RuntimeError> {
        let uid = pod.metadata.uid.clone().ok_or(RuntimeError::NoUid)?;
        if self.pods().contains_key(&uid) {
            return Ok(());
        }
        let exit_after = match annotation(pod, ANN_EXIT_AFTER) {
            None => None,
            Some(v) => Some(
                parse_duration(v).ok_or_else(|| RuntimeError::InvalidAnnotation {
                    key: ANN_EXIT_AFTER,
                    value: v.to_string(),
                    reason: "expected a duration like 2s",
                })?,
            ),
        };
        let exit_code = match annotation(pod, ANN_EXIT_CODE) {
            None => 0,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| RuntimeError::InvalidAnnotation {
                    key: ANN_EXIT_CODE,
                    value: v.to_string(),
                    reason: "expected an integer",
                })?,
        };
        let ready = ready_annotation(pod);
        let (started, started_at) = (Instant::now(), Timestamp::now());
        let containers = pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| SimContainer {
                        name: c.name.clone(),
                        image: c.image.clone().unwrap_or_default(),
                        started,
                        started_at,
                    })
                    .collect()
            })
            .unwrap_or_default();
        tracing::debug!(uid, ?exit_after, exit_code, ready, "simulated start");
        self.pods().insert(
            uid,
            SimPod {
                started_at,
                exit_after,
                exit_code,
                ready,
                containers,
            },
        );
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<(), RuntimeError> {
        let uid = pod.metadata.uid.as_deref().ok_or(RuntimeError::NoUid)?;
        if let Some(p) = self.pods().get_mut(uid) {
            p.ready = ready_annotation(pod);
        }
        Ok(())
    }

    async fn restart_container(&self, uid: &str, container: &str) -> Result<(), RuntimeError> {
        let mut pods = self.pods();
        let c = pods
            .get_mut(uid)
            .and_then(|p| p.containers.iter_mut().find(|c| c.name == container))
            .ok_or_else(|| RuntimeError::NotFound(format!("{uid}/{container}")))?;
        c.started = Instant::now();
        c.started_at = Timestamp::now();
        Ok(())
    }

    async fn stop_pod(&self, uid: &str) -> Result<(), RuntimeError> {
        self.pods().remove(uid);
        Ok(())
    }

    async fn status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError> {
        let pods = self.pods();
        let p = pods
            .get(uid)
            .ok_or_else(|| RuntimeError::NotFound(uid.to_string()))?;
        let containers = p
            .containers
            .iter()
            .map(|c| {
                let exited = p.exited(c);
                let state = match exited {
                    None => ContainerState::Running {
                        started_at: c.started_at,
                    },
                    Some(d) => ContainerState::Terminated {
                        started_at: c.started_at,
                        finished_at: c
                            .started_at
                            .checked_add(
                                SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO),
                            )
                            .unwrap_or(c.started_at),
                        exit_code: p.exit_code,
                    },
                };
                ContainerRuntimeStatus {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    ready: exited.is_none() && p.ready,
                    state,
                }
            })
            .collect();
        Ok(PodRuntimeStatus {
            started_at: p.started_at,
            containers,
        })
    }

    fn next_change(&self, uid: &str) -> Option<Duration> {
        let pods = self.pods();
        let p = pods.get(uid)?;
        let after = p.exit_after?;
        p.containers
            .iter()
            .filter(|c| p.exited(c).is_none())
            .map(|c| after.saturating_sub(c.started.elapsed()))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::api::ObjectMeta;

    fn pod(uid: &str, ann: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("p-{uid}")),
                uid: Some(uid.to_string()),
                annotations: Some(
                    ann.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("150ms"), Some(Duration::from_millis(150)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("2x"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn runs_ready_immediately_forever() {
        let rt = SimulatedRuntime::new();
        rt.start_pod(&pod("a", &[])).await.unwrap();
        let s = rt.status("a").await.unwrap();
        assert_eq!(s.phase(), RuntimePhase::Running);
        assert!(s.ready());
        assert_eq!(s.containers[0].name, "c");
        assert_eq!(s.containers[0].image, "nginx");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(rt.status("a").await.unwrap().phase(), RuntimePhase::Running);
        rt.stop_pod("a").await.unwrap();
        assert_eq!(
            rt.status("a").await,
            Err(RuntimeError::NotFound("a".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exits_after_duration() {
        let rt = SimulatedRuntime::new();
        rt.start_pod(&pod("ok", &[(ANN_EXIT_AFTER, "2s")]))
            .await
            .unwrap();
        rt.start_pod(&pod("bad", &[(ANN_EXIT_AFTER, "2s"), (ANN_EXIT_CODE, "3")]))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert_eq!(
            rt.status("ok").await.unwrap().phase(),
            RuntimePhase::Running
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let ok = rt.status("ok").await.unwrap();
        assert_eq!(ok.phase(), RuntimePhase::Succeeded);
        assert!(!ok.ready());
        let bad = rt.status("bad").await.unwrap();
        assert_eq!(bad.phase(), RuntimePhase::Failed);
        assert!(matches!(
            bad.containers[0].state,
            ContainerState::Terminated { exit_code: 3, .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_and_bad_annotations() {
        let rt = SimulatedRuntime::new();
        rt.start_pod(&pod("nr", &[(ANN_READY, "false")]))
            .await
            .unwrap();
        let s = rt.status("nr").await.unwrap();
        assert_eq!(s.phase(), RuntimePhase::Running);
        assert!(!s.ready());
        assert!(matches!(
            rt.start_pod(&pod("x", &[(ANN_EXIT_AFTER, "soon")])).await,
            Err(RuntimeError::InvalidAnnotation { .. })
        ));
        assert!(matches!(
            rt.start_pod(&pod("y", &[(ANN_EXIT_CODE, "one")])).await,
            Err(RuntimeError::InvalidAnnotation { .. })
        ));
        let mut no_uid = pod("z", &[]);
        no_uid.metadata.uid = None;
        assert_eq!(rt.start_pod(&no_uid).await, Err(RuntimeError::NoUid));
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_readiness_updates_and_next_change() {
        let rt = SimulatedRuntime::new();
        rt.start_pod(&pod("r", &[(ANN_EXIT_AFTER, "2s"), (ANN_READY, "false")]))
            .await
            .unwrap();
        assert_eq!(rt.next_change("r"), Some(Duration::from_secs(2)));
        assert!(!rt.status("r").await.unwrap().ready());
        rt.update_pod(&pod("r", &[(ANN_EXIT_AFTER, "2s")]))
            .await
            .unwrap();
        assert!(
            rt.status("r").await.unwrap().ready(),
            "ready follows the annotation"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            rt.status("r").await.unwrap().phase(),
            RuntimePhase::Succeeded
        );
        assert_eq!(rt.next_change("r"), None, "nothing left to change");
        rt.restart_container("r", "c").await.unwrap();
        let s = rt.status("r").await.unwrap();
        assert_eq!(s.phase(), RuntimePhase::Running);
        assert_eq!(rt.next_change("r"), Some(Duration::from_secs(2)));
        assert!(matches!(
            rt.restart_container("r", "nope").await,
            Err(RuntimeError::NotFound(_))
        ));
        assert_eq!(rt.next_change("unknown"), None);
        let forever = SimulatedRuntime::new();
        forever.start_pod(&pod("f", &[])).await.unwrap();
        assert_eq!(forever.next_change("f"), None);
    }
}

//! The pod lifecycle the agent derives from what the runtime reports: the
//! restart policy, crash-loop back-off, restart counts and last states, and
//! the pod phase and readiness. Pure: time comes in as an argument.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::runtime::{ContainerState, PodRuntimeStatus, RuntimePhase};

/// First back-off before restarting a container that exited again (the
/// first restart is immediate), as upstream's kubelet.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting starts over without
/// back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy (default Always).
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// A container's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running {
        started_at: Timestamp,
    },
    Terminated {
        started_at: Timestamp,
        finished_at: Timestamp,
        exit_code: i32,
    },
    Waiting {
        reason: &'static str,
        message: String,
    },
}

/// One container as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub restart_count: i32,
    pub state: State,
    pub last_state: Option<State>,
}

/// A pod as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub phase: RuntimePhase,
    pub ready: bool,
    pub started_at: Timestamp,
    pub containers: Vec<ContainerView>,
}

/// Restart bookkeeping of one container.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    pub count: i32,
    last: Option<State>,
    backoff: Duration,
    /// The back-off the pending restart waits.
    waiting: Duration,
    restart_at: Option<Instant>,
    /// The exit (its finish time) the pending restart is for.
    exit_seen: Option<Timestamp>,
}

/// What to do after looking at a pod.
#[derive(Debug, Clone)]
pub struct Decision {
    pub view: PodView,
    /// Containers to start again now.
    pub restart: Vec<String>,
    /// When to look again (a back-off ends).
    pub wake: Option<Instant>,
}

fn next_backoff(b: Duration) -> Duration {
    if b.is_zero() {
        BACKOFF_INITIAL
    } else {
        (b * 2).min(BACKOFF_MAX)
    }
}

/// Derives the pod's view from the runtime's, deciding restarts.
/// `restarts` holds one entry per container name (created as needed).
pub fn decide(
    policy: RestartPolicy,
    rt: &PodRuntimeStatus,
    restarts: &mut Vec<(String, Restarts)>,
    now: Instant,
) -> Decision {
    let mut restart = Vec::new();
    let mut wake: Option<Instant> = None;
    let mut containers = Vec::with_capacity(rt.containers.len());
    for c in &rt.containers {
        let idx = match restarts.iter().position(|(n, _)| *n == c.name) {
            Some(i) => i,
            None => {
                restarts.push((c.name.clone(), Restarts::default()));
                restarts.len() - 1
            }
        };
        let r = &mut restarts[idx].1;
        let (state, last_state) = match &c.state {
            ContainerState::Running { started_at } => (
                State::Running {
                    started_at: *started_at,
                },
                r.last.clone(),
            ),
            ContainerState::Terminated {
                started_at,
                finished_at,
                exit_code,
            } => {
                let terminated = State::Terminated {
                    started_at: *started_at,
                    finished_at: *finished_at,
                    exit_code: *exit_code,
                };
                if !policy.restarts(*exit_code) {
                    (terminated, r.last.clone())
                } else {
                    if r.exit_seen != Some(*finished_at) {
                        r.exit_seen = Some(*finished_at);
                        let ran = finished_at.duration_since(*started_at);
                        if ran.as_secs() >= BACKOFF_RESET.as_secs() as i64 {
                            r.backoff = Duration::ZERO;
                        }
                        r.restart_at = Some(now + r.backoff);
                        r.waiting = r.backoff;
                        r.backoff = next_backoff(r.backoff);
                    }
                    match r.restart_at {
                        Some(at) if at > now => {
                            wake = Some(wake.map_or(at, |w| w.min(at)));
                            let message = format!(
                                "back-off {}s restarting failed container={}",
                                r.waiting.as_secs(),
                                c.name
                            );
                            (
                                State::Waiting {
                                    reason: "CrashLoopBackOff",
                                    message,
                                },
                                Some(terminated),
                            )
                        }
                        _ => {
                            r.restart_at = None;
                            r.count += 1;
                            r.last = Some(terminated.clone());
                            restart.push(c.name.clone());
                            (
                                State::Waiting {
                                    reason: "ContainerCreating",
                                    message: String::new(),
                                },
                                Some(terminated),
                            )
                        }
                    }
                }
            }
        };
        let ready = c.ready && matches!(state, State::Running { .. });
        containers.push(ContainerView {
            name: c.name.clone(),
            image: c.image.clone(),
            ready,
            restart_count: r.count,
            state,
            last_state,
        });
    }
    let phase = if containers.is_empty()
        || containers
            .iter()
            .any(|c| !matches!(c.state, State::Terminated { .. }))
    {
        RuntimePhase::Running
    } else if containers
        .iter()
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }))
    {
        RuntimePhase::Succeeded
    } else {
        RuntimePhase::Failed
    };
    let ready = phase == RuntimePhase::Running && containers.iter().all(|c| c.ready);
    Decision {
        view: PodView {
            phase,
            ready,
            started_at: rt.started_at,
            containers,
        },
        restart,
        wake,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerRuntimeStatus;
    use k8s_openapi::jiff::SignedDuration;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn rt(states: &[ContainerState]) -> PodRuntimeStatus {
        PodRuntimeStatus {
            started_at: ts(0),
            containers: states
                .iter()
                .enumerate()
                .map(|(i, s)| ContainerRuntimeStatus {
                    name: format!("c{i}"),
                    image: "img".into(),
                    ready: true,
                    state: s.clone(),
                })
                .collect(),
        }
    }

    fn exited(start: i64, end: i64, code: i32) -> ContainerState {
        ContainerState::Terminated {
            started_at: ts(start),
            finished_at: ts(end),
            exit_code: code,
        }
    }

    #[test]
    fn phases_without_restarts() {
        let now = Instant::now();
        let mut r = Vec::new();
        let running = ContainerState::Running { started_at: ts(0) };
        let d = decide(
            RestartPolicy::Never,
            &rt(std::slice::from_ref(&running)),
            &mut r,
            now,
        );
        assert_eq!((d.view.phase, d.view.ready), (RuntimePhase::Running, true));
        let d = decide(
            RestartPolicy::Never,
            &rt(&[exited(0, 2, 0), running]),
            &mut r,
            now,
        );
        assert_eq!((d.view.phase, d.view.ready), (RuntimePhase::Running, false));
        let d = decide(
            RestartPolicy::Never,
            &rt(&[exited(0, 2, 0), exited(0, 3, 0)]),
            &mut r,
            now,
        );
        assert_eq!(d.view.phase, RuntimePhase::Succeeded);
        let d = decide(
            RestartPolicy::OnFailure,
            &rt(&[exited(0, 2, 0), exited(0, 3, 0)]),
            &mut r,
            now,
        );
        assert_eq!(
            d.view.phase,
            RuntimePhase::Succeeded,
            "OnFailure keeps exit 0"
        );
        let d = decide(RestartPolicy::Never, &rt(&[exited(0, 2, 7)]), &mut r, now);
        assert_eq!(d.view.phase, RuntimePhase::Failed);
        assert!(d.restart.is_empty() && d.wake.is_none());
    }

    #[test]
    fn crash_loop_back_off() {
        let t0 = Instant::now();
        let mut r = Vec::new();
        // First exit: restarted at once.
        let d = decide(RestartPolicy::Always, &rt(&[exited(0, 2, 1)]), &mut r, t0);
        assert_eq!(d.restart, vec!["c0".to_string()]);
        assert_eq!(d.view.containers[0].restart_count, 1);
        assert_eq!(d.view.phase, RuntimePhase::Running);
        // Running again: lastState is the exit.
        let running = ContainerState::Running { started_at: ts(2) };
        let d = decide(RestartPolicy::Always, &rt(&[running]), &mut r, t0);
        let c = &d.view.containers[0];
        assert!(matches!(
            c.last_state,
            Some(State::Terminated { exit_code: 1, .. })
        ));
        assert_eq!((c.restart_count, c.ready), (1, true));
        // Second exit: 10 s back-off, waiting in CrashLoopBackOff.
        let d = decide(RestartPolicy::Always, &rt(&[exited(2, 4, 1)]), &mut r, t0);
        assert!(d.restart.is_empty());
        assert_eq!(d.wake, Some(t0 + BACKOFF_INITIAL));
        let c = &d.view.containers[0];
        assert!(matches!(
            c.state,
            State::Waiting {
                reason: "CrashLoopBackOff",
                ..
            }
        ));
        assert_eq!(c.restart_count, 1);
        assert!(!d.view.ready);
        assert_eq!(d.view.phase, RuntimePhase::Running);
        // Same exit seen again before the back-off ends: still waiting.
        let later = t0 + Duration::from_secs(5);
        let d = decide(
            RestartPolicy::Always,
            &rt(&[exited(2, 4, 1)]),
            &mut r,
            later,
        );
        assert!(d.restart.is_empty());
        // Back-off over: restarted; the next back-off doubles.
        let t1 = t0 + BACKOFF_INITIAL;
        let d = decide(RestartPolicy::Always, &rt(&[exited(2, 4, 1)]), &mut r, t1);
        assert_eq!(d.restart.len(), 1);
        assert_eq!(d.view.containers[0].restart_count, 2);
        let d = decide(RestartPolicy::Always, &rt(&[exited(14, 16, 1)]), &mut r, t1);
        assert_eq!(d.wake, Some(t1 + 2 * BACKOFF_INITIAL));
    }

    #[test]
    fn long_runs_reset_back_off_and_policies_differ() {
        let t0 = Instant::now();
        let mut r = Vec::new();
        decide(RestartPolicy::Always, &rt(&[exited(0, 2, 0)]), &mut r, t0);
        let d = decide(RestartPolicy::Always, &rt(&[exited(2, 4, 0)]), &mut r, t0);
        assert!(d.wake.is_some(), "exit 0 also backs off under Always");
        let ran_long = ts(4)
            .checked_add(SignedDuration::from_secs(BACKOFF_RESET.as_secs() as i64))
            .unwrap();
        let t1 = t0 + BACKOFF_INITIAL;
        decide(RestartPolicy::Always, &rt(&[exited(2, 4, 0)]), &mut r, t1);
        let d = decide(
            RestartPolicy::Always,
            &rt(&[ContainerState::Terminated {
                started_at: ts(4),
                finished_at: ran_long,
                exit_code: 0,
            }]),
            &mut r,
            t1,
        );
        assert_eq!(d.restart.len(), 1, "restarted at once after a long run");
        let mut r = Vec::new();
        let d = decide(
            RestartPolicy::OnFailure,
            &rt(&[exited(0, 2, 3)]),
            &mut r,
            t0,
        );
        assert_eq!(d.restart.len(), 1);
        let d = decide(
            RestartPolicy::OnFailure,
            &rt(&[exited(0, 2, 0)]),
            &mut r,
            t0,
        );
        assert!(d.restart.is_empty());
        assert_eq!(d.view.phase, RuntimePhase::Succeeded);
    }
}

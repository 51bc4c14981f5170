//! The pod status the real agent posts, from its containers' states:
//! upstream's phase rules (init containers first; waiting → Pending;
//! restarting containers keep a pod Running), its conditions with reasons
//! and messages, and container statuses with state, last state, restart
//! count, readiness and IDs. Pure.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::lifecycle::RestartPolicy;

/// A container's state as the agent tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

/// One container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CStatus {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: CState,
    pub last: Option<CState>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    /// A restartable (sidecar) init container.
    pub sidecar: bool,
}

/// What the status is computed from.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub policy: RestartPolicy,
    pub sandbox_ready: bool,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: Timestamp,
    pub init: &'a [CStatus],
    pub containers: &'a [CStatus],
}

/// The pod phase.
pub fn phase(f: &PodFacts<'_>) -> &'static str {
    let mut init_done = true;
    for c in f.init {
        if c.sidecar {
            if !c.started {
                init_done = false;
            }
            continue;
        }
        match &c.state {
            CState::Terminated { exit_code: 0, .. } => {}
            CState::Terminated { .. } if f.policy == RestartPolicy::Never => return "Failed",
            _ => init_done = false,
        }
    }
    if !init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in f.containers {
        match &c.state {
            CState::Running { .. } => running += 1,
            CState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            CState::Waiting { .. } => {
                if matches!(c.last, Some(CState::Terminated { .. })) {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if f.policy == RestartPolicy::Always {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if f.policy == RestartPolicy::OnFailure {
            "Running"
        } else {
            "Failed"
        }
    } else {
        "Pending"
    }
}

fn state(s: &CState) -> ContainerState {
    match s {
        CState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        CState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        CState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
                started_at: started_at.map(Time),
                finished_at: Some(Time(*finished_at)),
                container_id: None,
                signal: None,
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &CStatus) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        state: Some(state(&c.state)),
        last_state: Some(c.last.as_ref().map(state).unwrap_or_default()),
        ..Default::default()
    }
}

/// Condition transition times kept between status computations.
#[derive(Debug, Clone, Default)]
pub struct Transitions(HashMap<&'static str, (bool, Timestamp)>);

impl Transitions {
    fn condition(
        &mut self,
        type_: &'static str,
        ok: bool,
        reason: Option<&str>,
        message: Option<String>,
        now: Timestamp,
    ) -> PodCondition {
        let at = match self.0.get(type_) {
            Some((prev, at)) if *prev == ok => *at,
            _ => {
                self.0.insert(type_, (ok, now));
                now
            }
        };
        PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(at)),
            reason: if ok { None } else { reason.map(str::to_string) },
            message: if ok { None } else { message },
            ..Default::default()
        }
    }
}

fn names(cs: &[&CStatus]) -> String {
    format!(
        "[{}]",
        cs.iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The full pod status.
pub fn build(f: &PodFacts<'_>, tr: &mut Transitions, now: Timestamp) -> PodStatus {
    let phase = phase(f);
    let incomplete: Vec<&CStatus> = f
        .init
        .iter()
        .filter(|c| {
            if c.sidecar {
                !c.started
            } else {
                !matches!(c.state, CState::Terminated { exit_code: 0, .. })
            }
        })
        .collect();
    let unready: Vec<&CStatus> = f
        .containers
        .iter()
        .chain(f.init.iter().filter(|c| c.sidecar))
        .filter(|c| !c.ready)
        .collect();
    let completed = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_msg) = if completed {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    let containers_ready = unready.is_empty() && !completed;
    let conditions = vec![
        tr.condition(
            "PodReadyToStartContainers",
            f.sandbox_ready,
            None,
            None,
            now,
        ),
        tr.condition(
            "Initialized",
            incomplete.is_empty(),
            Some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            (!completed)
                .then(|| format!("containers with incomplete status: {}", names(&incomplete))),
            now,
        ),
        tr.condition(
            "Ready",
            containers_ready,
            Some(ready_reason),
            ready_msg.clone(),
            now,
        ),
        tr.condition(
            "ContainersReady",
            containers_ready,
            Some(ready_reason),
            ready_msg,
            now,
        ),
        tr.condition("PodScheduled", true, None, None, now),
    ];
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(f.host_ip.into()),
        host_ips: Some(vec![HostIP {
            ip: f.host_ip.into(),
        }]),
        pod_ip: f.pod_ip.map(str::to_string),
        pod_ips: f.pod_ip.map(|ip| vec![PodIP { ip: ip.into() }]),
        start_time: Some(Time(f.start_time)),
        init_container_statuses: (!f.init.is_empty())
            .then(|| f.init.iter().map(container_status).collect()),
        container_statuses: Some(f.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;

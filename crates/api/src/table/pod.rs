//! The Pod printer: Ready, Status (upstream's reason logic: init
//! containers, waiting/terminated reasons, sidecars, SchedulingGated,
//! Terminating…), Restarts with the last restart's age, and the wide cells.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::docs;
use super::duration::{parse_time, since};
use super::util::{age, arr_at, bool_at, get, int_at, is_deleting, name, obj_at, str_at};
use super::Col;

pub(crate) const COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    Col::new("Status", "string", "The aggregate status of the containers in this pod."),
    Col::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Col::age(),
    Col::new("IP", "string", docs::POD_IP).wide(),
    Col::new("Node", "string", docs::POD_NODE_NAME).wide(),
    Col::new("Nominated Node", "string", docs::POD_NOMINATED).wide(),
    Col::new("Readiness Gates", "string", docs::POD_READINESS_GATES).wide(),
];

/// `status.reason` the node lifecycle controller sets on pods of
/// unreachable nodes.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

/// A sidecar: an init container with `restartPolicy: Always`.
fn is_restartable_init(c: Option<&Value>) -> bool {
    c.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

fn condition_is_true(pod: &Value, ty: &str) -> bool {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == ty)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// Keeps the latest `lastState.terminated.finishedAt` seen.
fn note_restart(latest: &mut Option<Timestamp>, status: &Value) {
    if obj_at(status, &["lastState", "terminated"]).is_none() {
        return;
    }
    if let Some(t) = parse_time(get(status, &["lastState", "terminated", "finishedAt"])) {
        if latest.is_none_or(|l| l < t) {
            *latest = Some(t);
        }
    }
}

/// "Signal:9" / "ExitCode:1" for a terminated state without a reason.
fn exit_reason(term: &Value) -> String {
    let signal = int_at(term, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int_at(term, &["exitCode"]))
    }
}

/// Status, ready count, total count, restarts and the last restart time.
struct Summary {
    reason: String,
    ready: usize,
    total: usize,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn summarize(pod: &Value) -> Summary {
    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = phase.to_string();
    let status_reason = str_at(pod, &["status", "reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    let gated_condition = arr_at(pod, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    });
    // Upstream's API server adds that condition when a pod is created with
    // scheduling gates; read unscheduled gated pods the same way.
    let gated_spec = !arr_at(pod, &["spec", "schedulingGates"]).is_empty()
        && str_at(pod, &["spec", "nodeName"]).is_empty()
        && matches!(phase, "" | "Pending");
    if gated_condition || gated_spec {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let init_spec = |n: &str| init_specs.iter().find(|c| str_at(c, &["name"]) == n);
    let mut total = arr_at(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| is_restartable_init(Some(c)))
        .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let mut initializing = false;
    for (i, c) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(c, &["restartCount"]);
        restarts += count;
        note_restart(&mut last_restart, c);
        let sidecar = is_restartable_init(init_spec(str_at(c, &["name"])));
        if sidecar {
            sidecar_restarts += count;
            note_restart(&mut last_sidecar_restart, c);
        }
        let terminated = get(c, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting_reason =
            obj_at(c, &["state", "waiting"]).map(|_| str_at(c, &["state", "waiting", "reason"]));
        match terminated {
            Some(t) if int_at(t, &["exitCode"]) == 0 => continue,
            _ if sidecar && bool_at(c, &["started"]) => {
                if bool_at(c, &["ready"]) {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                let r = str_at(t, &["reason"]);
                reason = if r.is_empty() {
                    format!("Init:{}", exit_reason(t))
                } else {
                    format!("Init:{r}")
                };
            }
            None => match waiting_reason {
                Some(r) if !r.is_empty() && r != "PodInitializing" => reason = format!("Init:{r}"),
                _ => reason = format!("Init:{i}/{}", init_specs.len()),
            },
        }
        initializing = true;
        break;
    }

    if !initializing || condition_is_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(c, &["restartCount"]);
            note_restart(&mut last_restart, c);
            let waiting = obj_at(c, &["state", "waiting"])
                .map(|_| str_at(c, &["state", "waiting", "reason"]));
            let terminated = get(c, &["state", "terminated"]).filter(|t| t.is_object());
            match (waiting, terminated) {
                (Some(r), _) if !r.is_empty() => reason = r.to_string(),
                (_, Some(t)) => {
                    let r = str_at(t, &["reason"]);
                    reason = if r.is_empty() {
                        exit_reason(t)
                    } else {
                        r.to_string()
                    };
                }
                _ => {
                    if bool_at(c, &["ready"]) && obj_at(c, &["state", "running"]).is_some() {
                        has_running = true;
                        ready += 1;
                    }
                }
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_is_true(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    if is_deleting(pod) && status_reason == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_string();
    } else if is_deleting(pod) && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }
    Summary {
        reason,
        ready,
        total,
        restarts,
        last_restart,
    }
}

/// "<n>/<m>" of the readiness gates whose condition is True, or "<none>".
fn readiness_gates(pod: &Value) -> String {
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let true_count = gates
        .iter()
        .filter(|g| {
            let ty = str_at(g, &["conditionType"]);
            arr_at(pod, &["status", "conditions"])
                .iter()
                .find(|c| str_at(c, &["type"]) == ty)
                .is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

fn or_none(s: &str) -> Value {
    Value::from(if s.is_empty() { "<none>" } else { s })
}

pub(crate) fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let s = summarize(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(t, now)),
        _ => s.restarts.to_string(),
    };
    // The internal Pod only has podIPs; conversion fills it from podIP.
    let ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map(|p| str_at(p, &["ip"]))
        .unwrap_or_else(|| str_at(pod, &["status", "podIP"]));
    vec![
        name(pod),
        Value::from(format!("{}/{}", s.ready, s.total)),
        Value::from(s.reason),
        Value::from(restarts),
        age(pod, now),
        or_none(ip),
        or_none(str_at(pod, &["spec", "nodeName"])),
        or_none(str_at(pod, &["status", "nominatedNodeName"])),
        Value::from(readiness_gates(pod)),
    ]
}

/// The `Completed` row condition of finished pods.
pub(crate) fn conditions(pod: &Value) -> Option<Vec<Value>> {
    let (reason, message) = match str_at(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(vec![
        json!({"type": "Completed", "status": "True", "reason": reason, "message": message}),
    ])
}

//! The pure part of the Job controller: from a Job and its pods, the next
//! status, the pods to create and delete, and the events to record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::indexes::{format_ranges, parse_ranges, pod_index};
use crate::events::{NORMAL, WARNING};
use crate::util::{is_deleting, pod_is_ready};

/// First delay before replacing a failed pod (upstream's
/// `DefaultJobPodFailureBackOff`); it doubles with each further failure.
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest such delay (`MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);

pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
pub const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_COMPLETIONS: &str = "CompletionsReached";
pub const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";

/// An event to record about the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// What to do for a Job.
#[derive(Debug, Default)]
pub struct Decision {
    pub status: JobStatus,
    /// Pods to create: the completion index of each (Indexed Jobs).
    pub create: Vec<Option<i32>>,
    pub delete: Vec<Arc<Pod>>,
    pub events: Vec<JobEvent>,
    /// Look again after this long (deadline, back-off).
    pub requeue: Option<Duration>,
}

fn event(type_: &'static str, reason: &'static str, message: &str) -> JobEvent {
    JobEvent {
        type_,
        reason,
        message: message.to_string(),
    }
}

/// Whether the Job has a True condition of type `ty`.
pub fn has_condition(status: Option<&JobStatus>, ty: &str) -> bool {
    condition(status, ty).is_some()
}

fn condition<'a>(status: Option<&'a JobStatus>, ty: &str) -> Option<&'a JobCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty && c.status == "True")
}

/// Whether the Job finished (Complete or Failed).
pub fn is_finished(job: &Job) -> bool {
    let st = job.status.as_ref();
    has_condition(st, "Complete") || has_condition(st, "Failed")
}

/// When the Job finished: its Complete or Failed condition's transition.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let st = job.status.as_ref();
    condition(st, "Complete")
        .or_else(|| condition(st, "Failed"))
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .or_else(|| st?.completion_time.as_ref().map(|t| t.0))
}

/// Sets a condition, keeping its transition time when the status holds.
fn set_condition(
    st: &mut JobStatus,
    ty: &str,
    status: &str,
    reason: &str,
    msg: &str,
    now: Timestamp,
) {
    let conds = st.conditions.get_or_insert_with(Vec::new);
    let new = JobCondition {
        type_: ty.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(msg.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    match conds.iter_mut().find(|c| c.type_ == ty) {
        Some(c) if c.status == status => {}
        Some(c) => *c = new,
        None => conds.push(new),
    }
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// When the pod's containers last stopped (for the failure back-off).
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| {
            st.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        })
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn restarts(pod: &Pod) -> i32 {
    let st = pod.status.as_ref();
    st.into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum()
}

/// Which active pods go first when there are too many: not ready before
/// ready, then the newest.
fn deletion_order(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        (
            pod_is_ready(p),
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    });
}

fn seconds(d: i64) -> Duration {
    Duration::from_secs(u64::try_from(d).unwrap_or(0))
}

/// Decides the next step of `job` given the pods it controls. With
/// `can_manage` false (earlier creations/deletions not yet seen), no pod
/// is created or deleted.
pub fn decide(job: &Job, pods: &[Arc<Pod>], now: Timestamp, can_manage: bool) -> Decision {
    let old = job.status.clone().unwrap_or_default();
    let mut d = Decision {
        status: old.clone(),
        ..Default::default()
    };
    if is_finished(job) {
        return d;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");

    let terminal = |p: &Pod| matches!(phase(p), Some("Succeeded" | "Failed"));
    let mut active: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| !terminal(p) && !is_deleting(&***p))
        .cloned()
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| !terminal(p) && is_deleting(&***p))
        .count() as i32;
    let succeeded_pods: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| phase(p) == Some("Succeeded"))
        .collect();
    let failed_pods: Vec<&Arc<Pod>> = pods.iter().filter(|p| phase(p) == Some("Failed")).collect();

    // Counts. Terminated pods stay until the Job goes, so the counts are
    // the larger of what was recorded and what is seen.
    let st = &mut d.status;
    let mut done_indexes = BTreeSet::new();
    if indexed {
        let c = completions.unwrap_or(0);
        done_indexes = parse_ranges(old.completed_indexes.as_deref().unwrap_or(""), c);
        done_indexes.extend(succeeded_pods.iter().filter_map(|p| pod_index(p, c)));
        st.completed_indexes = (!done_indexes.is_empty()).then(|| format_ranges(&done_indexes));
        st.succeeded = Some(done_indexes.len() as i32);
    } else {
        st.succeeded = Some(old.succeeded.unwrap_or(0).max(succeeded_pods.len() as i32));
    }
    st.failed = Some(old.failed.unwrap_or(0).max(failed_pods.len() as i32));
    st.active = Some(active.len() as i32);
    st.ready = Some(active.iter().filter(|p| pod_is_ready(p)).count() as i32);
    st.terminating = Some(terminating);
    st.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    if st.start_time.is_none() && !suspended {
        st.start_time = Some(Time(now));
    }
    let succeeded = st.succeeded.unwrap_or(0);
    let failed = st.failed.unwrap_or(0);

    let mut failure = condition(Some(&old), "FailureTarget").map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let success_met = has_condition(Some(&old), "SuccessCriteriaMet");

    // Suspension.
    if failure.is_none() && !success_met {
        let was_suspended = has_condition(Some(&old), "Suspended");
        if suspended {
            if can_manage {
                d.delete = active.clone();
                st.active = Some(0);
                st.ready = Some(0);
                st.terminating = Some(terminating + active.len() as i32);
            }
            if !was_suspended {
                set_condition(
                    st,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                );
                d.events.push(event(NORMAL, "Suspended", "Job suspended"));
            }
            return d;
        }
        if was_suspended {
            set_condition(st, "Suspended", "False", "JobResumed", "Job resumed", now);
            st.start_time = Some(Time(now));
            d.events.push(event(NORMAL, "Resumed", "Job resumed"));
        }
    }

    // Failure: the back-off limit, or the active deadline.
    let start = st.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    if failure.is_none() && !success_met {
        let restarted = active.iter().map(|p| restarts(p)).sum::<i32>();
        let restarts_exceeded = on_failure
            && if backoff_limit == 0 {
                restarted > 0
            } else {
                restarted >= backoff_limit
            };
        let deadline = spec.active_deadline_seconds.map(|s| start.as_second() + s);
        if failed > backoff_limit || restarts_exceeded {
            failure = Some((REASON_BACKOFF_LIMIT.into(), MSG_BACKOFF_LIMIT.into()));
        } else if deadline.is_some_and(|dl| now.as_second() >= dl) {
            failure = Some((REASON_DEADLINE.into(), MSG_DEADLINE.into()));
        } else if let Some(dl) = deadline {
            d.requeue = Some(seconds(dl - now.as_second()));
        }
        if let Some((reason, msg)) = &failure {
            set_condition(st, "FailureTarget", "True", reason, msg, now);
        }
    }
    if let Some((reason, msg)) = failure {
        // Terminate what runs; the Job fails once nothing does.
        if can_manage && !active.is_empty() {
            st.failed = Some(failed + active.len() as i32);
            st.terminating = Some(terminating + active.len() as i32);
            st.active = Some(0);
            st.ready = Some(0);
            d.delete = std::mem::take(&mut active);
        }
        if st.active == Some(0) && st.terminating == Some(0) {
            set_condition(st, "Failed", "True", &reason, &msg, now);
            let reason: &'static str = match reason.as_str() {
                REASON_DEADLINE => REASON_DEADLINE,
                _ => REASON_BACKOFF_LIMIT,
            };
            d.events.push(event(WARNING, reason, &msg));
        }
        return d;
    }

    // Success.
    let complete = match (indexed, completions) {
        (_, Some(c)) => succeeded >= c,
        (false, None) => succeeded > 0 && active.is_empty(),
        (true, None) => false,
    };
    if success_met || complete {
        if !success_met {
            set_condition(
                st,
                "SuccessCriteriaMet",
                "True",
                REASON_COMPLETIONS,
                MSG_COMPLETIONS,
                now,
            );
        }
        if can_manage && !active.is_empty() {
            st.terminating = Some(terminating + active.len() as i32);
            st.active = Some(0);
            st.ready = Some(0);
            d.delete = std::mem::take(&mut active);
        }
        if st.active == Some(0) && st.terminating == Some(0) {
            set_condition(
                st,
                "Complete",
                "True",
                REASON_COMPLETIONS,
                MSG_COMPLETIONS,
                now,
            );
            st.completion_time = Some(Time(now));
            d.events.push(event(NORMAL, "Completed", "Job completed"));
        }
        d.requeue = None;
        return d;
    }

    if !can_manage {
        return d;
    }

    // Replacing failed pods waits out the back-off: 10 s, doubling with
    // each failure since the last success.
    let last_success = succeeded_pods.iter().filter_map(|p| finished_at(p)).max();
    let recent_failures: Vec<Timestamp> = failed_pods
        .iter()
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let mut blocked = false;
    if let Some(last) = recent_failures.iter().max() {
        let n = recent_failures.len().min(16) as u32;
        let delay = POD_FAILURE_BACKOFF
            .saturating_mul(2u32.saturating_pow(n - 1))
            .min(MAX_POD_FAILURE_BACKOFF);
        let ready_at = last.as_second() + delay.as_secs() as i64;
        if now.as_second() < ready_at {
            blocked = true;
            let wait = seconds(ready_at - now.as_second());
            d.requeue = Some(d.requeue.map_or(wait, |r| r.min(wait)));
        }
    }

    if indexed {
        let c = completions.unwrap_or(0);
        let mut by_index: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
        let mut extra = Vec::new();
        for p in active {
            match pod_index(&p, c) {
                Some(i) if !done_indexes.contains(&i) && !by_index.contains_key(&i) => {
                    by_index.insert(i, p);
                }
                _ => extra.push(p),
            }
        }
        let want = parallelism.min(c - succeeded).max(0) as usize;
        while by_index.len() > want {
            if let Some((_, p)) = by_index.pop_last() {
                extra.push(p);
            }
        }
        if !blocked {
            let missing = want.saturating_sub(by_index.len());
            d.create = (0..c)
                .filter(|i| !done_indexes.contains(i) && !by_index.contains_key(i))
                .take(missing)
                .map(Some)
                .collect();
        }
        d.delete = extra;
    } else {
        // Without completions, after a first success whatever runs is
        // left running and nothing new starts.
        let want = match completions {
            None if succeeded > 0 => active.len(),
            None => parallelism as usize,
            Some(c) => parallelism.min(c - succeeded).max(0) as usize,
        };
        if active.len() > want {
            deletion_order(&mut active);
            d.delete = active[..active.len() - want].to_vec();
        } else if !blocked {
            d.create = vec![None; want - active.len()];
        }
    }
    let st = &mut d.status;
    let deleted = d.delete.len() as i32;
    st.active = Some(st.active.unwrap_or(0) - deleted);
    st.terminating = Some(st.terminating.unwrap_or(0) + deleted);
    d
}

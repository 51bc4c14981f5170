//! The pure part of the CronJob controller: the active list, history
//! clean-up, and whether (and which) Job to start now.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rkube_api::validation::CronSchedule;

use crate::events::{NORMAL, WARNING};
use crate::job::{has_condition, is_finished};
use crate::util::controller_ref_to;

/// `batch.kubernetes.io/cronjob-scheduled-timestamp`.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Missed start times beyond which upstream warns.
const TOO_MANY_MISSED: usize = 100;
/// Stop looking for missed times after this many (a year of minutes).
const MAX_SCAN: usize = 530_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronEvent {
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

fn event(type_: &'static str, reason: &'static str, message: String) -> CronEvent {
    CronEvent {
        type_,
        reason,
        message,
    }
}

/// What to do for a CronJob.
#[derive(Debug, Default)]
pub struct CronDecision {
    pub status: CronJobStatus,
    /// The Job to create; the glue adds it to `status.active` once created.
    pub create: Option<Job>,
    /// Jobs to delete (Replace, history limits), with the event to record.
    pub delete: Vec<Arc<Job>>,
    pub events: Vec<CronEvent>,
    pub requeue: Option<Duration>,
}

/// A reference to `job` for `status.active`.
pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The name of the Job for the run at `scheduled`: the CronJob's name and
/// the time in minutes since the epoch.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!("{}-{}", cj.name_any(), scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in `tz`, `Z` for UTC, as Go formats it.
fn rfc3339_in(t: Timestamp, sched: &CronSchedule) -> String {
    let z = t.to_zoned(sched.time_zone().clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job a CronJob starts for the run at `scheduled`.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp, sched: &CronSchedule) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = tmpl.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, sched));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.namespace(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref_to(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

fn job_start(j: &Job) -> Option<Timestamp> {
    j.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(j.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The latest schedule time in (`earliest`, `now`] and how many there
/// were, or `None` when there was none.
pub fn most_recent(
    sched: &CronSchedule,
    earliest: Timestamp,
    now: Timestamp,
) -> Option<(Timestamp, usize)> {
    let mut t = sched.next_after(earliest)?;
    if t > now {
        return None;
    }
    let mut n = 1;
    while n < MAX_SCAN {
        match sched.next_after(t) {
            Some(next) if next <= now => {
                t = next;
                n += 1;
            }
            _ => break,
        }
    }
    Some((t, n))
}

fn after(from: Timestamp, to: Timestamp) -> Duration {
    // Upstream adds 100 ms so that the run is surely due.
    Duration::from_millis(
        u64::try_from((to.as_millisecond() - from.as_millisecond()).max(0)).unwrap_or(0) + 100,
    )
}

/// Decides the next step of `cj` given the Jobs it controls; `gone` names
/// active Jobs confirmed deleted (absent from the cache and the server).
pub fn decide(
    cj: &CronJob,
    jobs: &[Arc<Job>],
    gone: &HashSet<String>,
    now: Timestamp,
) -> CronDecision {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut d = CronDecision {
        status: cj.status.clone().unwrap_or_default(),
        ..Default::default()
    };
    let st = &mut d.status;
    let mut active = st.active.take().unwrap_or_default();
    let in_active = |active: &[ObjectReference], j: &Job| {
        active
            .iter()
            .any(|r| r.uid.is_some() && r.uid == j.metadata.uid || r.name == j.metadata.name)
    };
    // The active list follows the Jobs.
    for j in jobs {
        let listed = in_active(&active, j);
        if !listed && !is_finished(j) {
            active.push(job_ref(j));
        } else if listed && is_finished(j) {
            let outcome = if has_condition(j.status.as_ref(), "Complete") {
                "Complete"
            } else {
                "Failed"
            };
            d.events.push(event(
                NORMAL,
                "SawCompletedJob",
                format!("Saw completed job: {}, status: {outcome}", j.name_any()),
            ));
            active.retain(|r| r.name != j.metadata.name);
            if outcome == "Complete" {
                if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                    if st
                        .last_successful_time
                        .as_ref()
                        .is_none_or(|t| t.0 < done.0)
                    {
                        st.last_successful_time = Some(done);
                    }
                }
            }
        }
    }
    active.retain(|r| {
        let missing = r.name.as_ref().is_some_and(|n| gone.contains(n));
        if missing {
            d.events.push(event(
                WARNING,
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.clone().unwrap_or_default()
                ),
            ));
        }
        !missing
    });

    // History limits.
    let mut finished: Vec<&Arc<Job>> = jobs.iter().filter(|j| is_finished(j)).collect();
    finished.sort_by_key(|j| job_start(j));
    for (ok, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let of_kind: Vec<&Arc<Job>> = finished
            .iter()
            .copied()
            .filter(|j| has_condition(j.status.as_ref(), "Complete") == ok)
            .collect();
        let extra = of_kind
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        d.delete.extend(of_kind.into_iter().take(extra).cloned());
    }

    st.active = (!active.is_empty()).then(|| active.clone());
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return d;
    }
    let sched = match CronSchedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let reason = if e.contains("time zone") {
                "UnknownTimeZone"
            } else {
                "UnparseableSchedule"
            };
            d.events.push(event(
                WARNING,
                reason,
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return d;
        }
    };
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = st
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(created);
    if let Some(sds) = spec.starting_deadline_seconds {
        if let Ok(limit) = Timestamp::from_second(now.as_second() - sds) {
            earliest = earliest.max(limit);
        }
    }
    let next_requeue = |d: &mut CronDecision| {
        d.requeue = sched.next_after(now).map(|n| after(now, n));
    };
    let Some((scheduled, missed)) = most_recent(&sched, earliest, now) else {
        next_requeue(&mut d);
        return d;
    };
    if missed > TOO_MANY_MISSED {
        d.events.push(event(
            WARNING,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    next_requeue(&mut d);
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled.as_second() + sds < now.as_second() {
            d.events.push(event(
                WARNING,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
            ));
            return d;
        }
    }
    let name = job_name(cj, scheduled);
    let already = active.iter().any(|r| r.name.as_deref() == Some(&name))
        || jobs
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(&name))
        || d.status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return d;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            d.events.push(event(
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return d;
        }
        Some("Replace") => {
            for r in &active {
                if let Some(j) = jobs.iter().find(|j| j.metadata.name == r.name) {
                    if !d.delete.iter().any(|x| x.metadata.name == j.metadata.name) {
                        d.delete.push(j.clone());
                    }
                }
            }
            d.status.active = None;
        }
        _ => {}
    }
    d.create = Some(job_from_template(cj, scheduled, &sched));
    d.status.last_schedule_time = Some(Time(scheduled));
    d
}

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, PodStatus,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(
                        [("batch.kubernetes.io/job-name".to_string(), "pi".to_string())].into(),
                    ),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Default::default()],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn pod(name: &str, phase: &str, finished: i64, index: Option<i32>) -> Arc<Pod> {
    let mut meta = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        owner_references: Some(vec![OwnerReference {
            kind: "Job".into(),
            uid: "job-uid".into(),
            controller: Some(true),
            ..Default::default()
        }]),
        creation_timestamp: Some(Time(ts(0))),
        ..Default::default()
    };
    if let Some(i) = index {
        meta.annotations = Some([(COMPLETION_INDEX.to_string(), i.to_string())].into());
    }
    let terminated = matches!(phase, "Succeeded" | "Failed").then(|| ContainerState {
        terminated: Some(ContainerStateTerminated {
            finished_at: Some(Time(ts(finished))),
            exit_code: if phase == "Failed" { 1 } else { 0 },
            ..Default::default()
        }),
        ..Default::default()
    });
    Arc::new(Pod {
        metadata: meta,
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                state: terminated,
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

fn with_status(mut j: Job, d: &Decision) -> Job {
    j.status = Some(d.status.clone());
    j
}

fn cond(st: &JobStatus, ty: &str) -> Option<(String, String)> {
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ty && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[test]
fn creates_up_to_parallelism_then_completes_in_two_steps() {
    let j = job(Some(3), 2);
    let d = decide(&j, &[], ts(100), true);
    assert_eq!(d.create, vec![None, None]);
    assert_eq!(d.status.start_time, Some(Time(ts(100))));
    let j = with_status(j, &d);
    // Expectations not met: nothing created.
    assert!(decide(&j, &[], ts(101), false).create.is_empty());
    // One succeeded, one running: one more to go, at most two active.
    let pods = vec![
        pod("a", "Succeeded", 105, None),
        pod("b", "Running", 0, None),
    ];
    let d = decide(&j, &pods, ts(106), true);
    assert_eq!(d.create.len(), 1);
    assert_eq!((d.status.succeeded, d.status.active), (Some(1), Some(1)));
    let j = with_status(j, &d);
    let pods = vec![
        pod("a", "Succeeded", 105, None),
        pod("b", "Succeeded", 106, None),
        pod("c", "Succeeded", 107, None),
    ];
    let d = decide(&j, &pods, ts(110), true);
    assert_eq!(d.status.succeeded, Some(3));
    let want = Some((
        "CompletionsReached".to_string(),
        "Reached expected number of succeeded pods".to_string(),
    ));
    assert_eq!(cond(&d.status, "SuccessCriteriaMet"), want);
    assert_eq!(cond(&d.status, "Complete"), want);
    assert_eq!(d.status.completion_time, Some(Time(ts(110))));
    assert!(d.events.iter().any(|e| e.reason == "Completed"));
    // Finished: nothing more happens.
    let j = with_status(j, &d);
    let again = decide(&j, &pods, ts(200), true);
    assert!(again.create.is_empty() && again.delete.is_empty() && again.events.is_empty());
}

#[test]
fn backoff_limit_fails_the_job_after_terminating_active_pods() {
    let j = job(Some(2), 2);
    let j = with_status(j.clone(), &decide(&j, &[], ts(100), true));
    // One failure (limit 1): replaced, after the 10 s back-off.
    let pods = vec![pod("a", "Failed", 110, None), pod("b", "Running", 0, None)];
    let d = decide(&j, &pods, ts(112), true);
    assert!(d.create.is_empty());
    assert_eq!(d.requeue, Some(std::time::Duration::from_secs(8)));
    assert_eq!(decide(&j, &pods, ts(120), true).create.len(), 1);
    // Two failures: FailureTarget, the running pod is deleted, no Failed yet.
    let pods = vec![
        pod("a", "Failed", 110, None),
        pod("c", "Failed", 125, None),
        pod("b", "Running", 0, None),
    ];
    let d = decide(&j, &pods, ts(130), true);
    let want = Some((
        "BackoffLimitExceeded".to_string(),
        "Job has reached the specified backoff limit".to_string(),
    ));
    assert_eq!(cond(&d.status, "FailureTarget"), want);
    assert_eq!(cond(&d.status, "Failed"), None);
    assert_eq!(d.delete.len(), 1);
    assert_eq!(d.status.failed, Some(3));
    // Once nothing runs: Failed, with a warning event.
    let j = with_status(j, &d);
    let pods = vec![pod("a", "Failed", 110, None), pod("c", "Failed", 125, None)];
    let d = decide(&j, &pods, ts(131), true);
    assert_eq!(cond(&d.status, "Failed"), want);
    assert_eq!(d.status.failed, Some(3));
    assert!(d
        .events
        .iter()
        .any(|e| e.reason == "BackoffLimitExceeded" && e.type_ == "Warning"));
}

#[test]
fn active_deadline_fails_the_job() {
    let mut j = job(Some(1), 1);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
    let d = decide(&j, &[], ts(100), true);
    assert_eq!(d.requeue, Some(std::time::Duration::from_secs(5)));
    let j = with_status(j, &d);
    let pods = vec![pod("a", "Running", 0, None)];
    let d = decide(&j, &pods, ts(105), true);
    assert_eq!(
        cond(&d.status, "FailureTarget").unwrap().0,
        "DeadlineExceeded"
    );
    assert_eq!(d.delete.len(), 1);
    let j = with_status(j, &d);
    let d = decide(&j, &[], ts(106), true);
    assert_eq!(
        cond(&d.status, "Failed"),
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        ))
    );
}

#[test]
fn indexed_jobs_fill_missing_indexes_and_track_completed_ones() {
    let mut j = job(Some(4), 2);
    j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
    let d = decide(&j, &[], ts(100), true);
    assert_eq!(d.create, vec![Some(0), Some(1)]);
    let j = with_status(j, &d);
    let pods = vec![
        pod("a", "Succeeded", 101, Some(0)),
        pod("b", "Succeeded", 101, Some(2)),
        pod("c", "Running", 0, Some(1)),
        pod("dup", "Running", 0, Some(1)),
    ];
    let d = decide(&j, &pods, ts(102), true);
    assert_eq!(d.status.completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(d.create, vec![Some(3)]);
    assert_eq!(d.delete.len(), 1, "a duplicate index is removed");
    let j = with_status(j, &d);
    let pods = vec![
        pod("c", "Succeeded", 103, Some(1)),
        pod("d", "Succeeded", 103, Some(3)),
    ];
    // Earlier successes are remembered even though those pods are gone.
    let d = decide(&j, &pods, ts(104), true);
    assert_eq!(d.status.completed_indexes.as_deref(), Some("0-3"));
    assert!(cond(&d.status, "Complete").is_some());
}

#[test]
fn indexed_pods_carry_their_index() {
    let mut j = job(Some(3), 3);
    j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
    let p = pod_from_template(&j, Some(2));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
    assert_eq!(
        p.labels().get(COMPLETION_INDEX).map(String::as_str),
        Some("2")
    );
    assert_eq!(
        p.annotations().get(COMPLETION_INDEX).map(String::as_str),
        Some("2")
    );
    let spec = p.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
    assert_eq!(
        spec.containers[0].env.as_ref().unwrap()[0].name,
        "JOB_COMPLETION_INDEX"
    );
    let owner = &p.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Job", "job-uid")
    );
    let plain = pod_from_template(&job(None, 1), None);
    assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
}

#[test]
fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
    let mut j = job(Some(2), 2);
    j = with_status(j.clone(), &decide(&j, &[], ts(100), true));
    j.spec.as_mut().unwrap().suspend = Some(true);
    let pods = vec![pod("a", "Running", 0, None)];
    let d = decide(&j, &pods, ts(110), true);
    assert_eq!(d.delete.len(), 1);
    assert_eq!(cond(&d.status, "Suspended").unwrap().0, "JobSuspended");
    let mut j = with_status(j, &d);
    j.spec.as_mut().unwrap().suspend = Some(false);
    let d = decide(&j, &[], ts(120), true);
    assert_eq!(d.status.start_time, Some(Time(ts(120))));
    assert_eq!(d.create.len(), 2);
    assert!(d.events.iter().any(|e| e.reason == "Resumed"));
}

#[test]
fn work_queue_jobs_complete_when_one_succeeded_and_none_runs() {
    let j = job(None, 2);
    let pods = vec![
        pod("a", "Succeeded", 101, None),
        pod("b", "Running", 0, None),
    ];
    let d = decide(&j, &pods, ts(102), true);
    assert!(d.create.is_empty() && d.delete.is_empty());
    assert!(cond(&d.status, "Complete").is_none());
    let d = decide(&j, &pods[..1], ts(103), true);
    assert!(cond(&d.status, "Complete").is_some());
}

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobStatus, JobTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cj(schedule: &str, policy: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            namespace: Some("default".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(ts("2024-01-01T00:00:10Z"))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some(policy.into()),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "hello".to_string())].into()),
                    ..Default::default()
                }),
                spec: None,
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn job(name: &str, finished: Option<&str>, start: &str) -> Arc<Job> {
    Arc::new(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            owner_references: Some(vec![OwnerReference {
                kind: "CronJob".into(),
                uid: "cj-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: Some(Time(ts(start))),
            completion_time: (finished == Some("Complete")).then(|| Time(ts(start))),
            conditions: finished.map(|f| {
                vec![JobCondition {
                    type_: f.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn with_status(mut c: CronJob, d: &CronDecision) -> CronJob {
    c.status = Some(d.status.clone());
    c
}

#[test]
fn starts_a_job_per_schedule_time_named_by_minutes() {
    let c = cj("*/5 * * * *", "Allow");
    // Before the first time: wait for it.
    let d = decide(&c, &[], &HashSet::new(), ts("2024-01-01T00:03:00Z"));
    assert!(d.create.is_none());
    assert_eq!(d.requeue, Some(std::time::Duration::from_millis(120_100)));
    // Two times missed: only the latest runs.
    let d = decide(&c, &[], &HashSet::new(), ts("2024-01-01T00:11:00Z"));
    let j = d.create.as_ref().unwrap();
    let minutes = ts("2024-01-01T00:10:00Z").as_second() / 60;
    assert_eq!(j.name_any(), format!("hello-{minutes}"));
    assert_eq!(
        j.annotations().get(SCHEDULED_TIMESTAMP).map(String::as_str),
        Some("2024-01-01T00:10:00Z")
    );
    assert_eq!(j.labels().get("app").map(String::as_str), Some("hello"));
    assert_eq!(
        j.metadata.owner_references.as_ref().unwrap()[0].kind,
        "CronJob"
    );
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(ts("2024-01-01T00:10:00Z")))
    );
    // The same time is not run twice.
    let c = with_status(c, &d);
    let d = decide(&c, &[], &HashSet::new(), ts("2024-01-01T00:12:00Z"));
    assert!(d.create.is_none());
}

#[test]
fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
    let running = job("hello-1", None, "2024-01-01T00:00:30Z");
    let now = ts("2024-01-01T00:05:30Z");
    let forbid = cj("*/5 * * * *", "Forbid");
    let d = decide(
        &forbid,
        std::slice::from_ref(&running),
        &HashSet::new(),
        now,
    );
    assert!(d.create.is_none());
    assert!(d.events.iter().any(|e| e.reason == "JobAlreadyActive"));
    assert_eq!(
        d.status.active.as_ref().unwrap().len(),
        1,
        "the running job is adopted into active"
    );

    let replace = cj("*/5 * * * *", "Replace");
    let d = decide(
        &replace,
        std::slice::from_ref(&running),
        &HashSet::new(),
        now,
    );
    assert!(d.create.is_some());
    assert_eq!(d.delete.len(), 1);
    assert_eq!(d.delete[0].name_any(), "hello-1");

    let allow = cj("*/5 * * * *", "Allow");
    let d = decide(&allow, &[running], &HashSet::new(), now);
    assert!(d.create.is_some() && d.delete.is_empty());
}

#[test]
fn finished_jobs_leave_active_and_history_is_trimmed() {
    let mut c = cj("0 0 1 1 *", "Allow");
    c.status = Some(CronJobStatus {
        active: Some(vec![job_ref(&job("j5", None, "2024-01-01T00:05:00Z"))]),
        ..Default::default()
    });
    let jobs = vec![
        job("j1", Some("Complete"), "2024-01-01T00:01:00Z"),
        job("j2", Some("Complete"), "2024-01-01T00:02:00Z"),
        job("j3", Some("Failed"), "2024-01-01T00:03:00Z"),
        job("j4", Some("Complete"), "2024-01-01T00:04:00Z"),
        job("j5", Some("Complete"), "2024-01-01T00:05:00Z"),
        job("j6", Some("Failed"), "2024-01-01T00:06:00Z"),
    ];
    let d = decide(&c, &jobs, &HashSet::new(), ts("2024-01-01T00:07:00Z"));
    assert!(d.status.active.is_none());
    assert!(d
        .events
        .iter()
        .any(|e| e.reason == "SawCompletedJob"
            && e.message == "Saw completed job: j5, status: Complete"));
    assert_eq!(
        d.status.last_successful_time,
        Some(Time(ts("2024-01-01T00:05:00Z")))
    );
    let mut deleted: Vec<String> = d.delete.iter().map(|j| j.name_any()).collect();
    deleted.sort();
    assert_eq!(deleted, ["j1", "j3"]);
}

#[test]
fn suspend_deadline_and_missing_jobs() {
    let mut c = cj("* * * * *", "Allow");
    c.spec.as_mut().unwrap().suspend = Some(true);
    assert!(decide(&c, &[], &HashSet::new(), ts("2024-01-01T01:00:00Z"))
        .create
        .is_none());
    // A deadline bounds how far back missed times count.
    let mut c = cj("0 * * * *", "Allow");
    c.spec.as_mut().unwrap().starting_deadline_seconds = Some(60);
    assert!(decide(&c, &[], &HashSet::new(), ts("2024-01-01T01:05:00Z"))
        .create
        .is_none());
    assert!(decide(&c, &[], &HashSet::new(), ts("2024-01-01T01:00:30Z"))
        .create
        .is_some());
    // A job gone from the server leaves the active list.
    let mut c = cj("0 0 1 1 *", "Allow");
    c.status = Some(CronJobStatus {
        active: Some(vec![job_ref(&job("lost", None, "2024-01-01T00:00:00Z"))]),
        ..Default::default()
    });
    let gone: HashSet<String> = ["lost".to_string()].into();
    let d = decide(&c, &[], &gone, ts("2024-01-01T00:01:00Z"));
    assert!(d.status.active.is_none());
    assert!(d.events.iter().any(|e| e.reason == "MissingJob"));
}

#[test]
fn time_zones_shape_the_scheduled_timestamp() {
    let mut c = cj("0 9 * * *", "Allow");
    c.spec.as_mut().unwrap().time_zone = Some("Asia/Tokyo".into());
    let d = decide(&c, &[], &HashSet::new(), ts("2024-01-02T00:30:00Z"));
    let j = d.create.unwrap();
    assert_eq!(
        j.annotations().get(SCHEDULED_TIMESTAMP).map(String::as_str),
        Some("2024-01-02T09:00:00+09:00")
    );
}

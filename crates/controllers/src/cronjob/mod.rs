//! The CronJob controller (upstream `cronjob`, pkg/controller/cronjob, the
//! v2 controller): starts a Job for each time a CronJob's schedule fires.
//!
//! The schedule (five fields or `@hourly`-style descriptors, in
//! `spec.timeZone` or a `CRON_TZ=` prefix, else UTC) is evaluated by
//! [`rkube_api::validation::CronSchedule`]. For the latest missed time
//! after `status.lastScheduleTime` (or creation), bounded by
//! `startingDeadlineSeconds`, a Job named `<cronjob>-<minutes since
//! epoch>` is created from `jobTemplate`, owned by the CronJob and
//! annotated `batch.kubernetes.io/cronjob-scheduled-timestamp`, unless
//! `concurrencyPolicy: Forbid` and a Job is still active (`Replace`
//! deletes the active ones first). `status.active`, `lastScheduleTime`
//! and `lastSuccessfulTime` follow the Jobs; finished Jobs beyond
//! `successfulJobsHistoryLimit` (3) / `failedJobsHistoryLimit` (1) are
//! deleted; `suspend` stops new runs. Events as upstream: SuccessfulCreate,
//! SawCompletedJob, SuccessfulDelete, JobAlreadyActive, MissSchedule,
//! TooManyMissedTimes, UnparseableSchedule, MissingJob.

mod decide;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

pub use decide::{
    decide, job_from_template, job_name, job_ref, most_recent, CronDecision, SCHEDULED_TIMESTAMP,
};

use crate::events::{Recorder, NORMAL, WARNING};
use crate::manager::{run_workers, Context, Running};
use crate::util::{controller_of, is_controlled_by, key_of, split_key};

#[derive(Debug, thiserror::Error)]
pub enum CronJobError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

struct Controller {
    client: kube::Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<Option<Duration>, CronJobError> {
        let (ns, name) = split_key(key);
        let Some(cj) = self.cronjobs.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .state()
            .into_iter()
            .filter(|j| j.namespace().as_deref() == Some(ns) && is_controlled_by(&**j, &uid))
            .collect();
        let job_api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        // Active Jobs missing from the cache: make sure they are gone.
        let mut gone = HashSet::new();
        for r in cj.status.iter().flat_map(|s| s.active.iter().flatten()) {
            let Some(n) = r.name.as_deref() else { continue };
            if !jobs.iter().any(|j| j.metadata.name.as_deref() == Some(n))
                && job_api.get_opt(n).await?.is_none()
            {
                gone.insert(n.to_string());
            }
        }
        let mut d = decide(&cj, &jobs, &gone, Timestamp::now());
        let bg = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for j in &d.delete {
            match job_api.delete(&j.name_any(), &bg).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    self.recorder
                        .event(&*cj, WARNING, "FailedDelete", format!("Deleted job: {e}"));
                    return Err(e.into());
                }
            }
            self.recorder.event(
                &*cj,
                NORMAL,
                "SuccessfulDelete",
                format!("Deleted job {}", j.name_any()),
            );
        }
        if let Some(job) = d.create.take() {
            match job_api.create(&PostParams::default(), &job).await {
                Ok(created) => {
                    self.recorder.event(
                        &*cj,
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created job {}", created.name_any()),
                    );
                    d.status
                        .active
                        .get_or_insert_with(Vec::new)
                        .push(job_ref(&created));
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Created before (by an earlier attempt): it is ours
                    // and in the active list once the cache has it.
                }
                Err(e) => {
                    self.recorder.event(
                        &*cj,
                        WARNING,
                        "FailedCreate",
                        format!("Error creating job: {e}"),
                    );
                    return Err(e.into());
                }
            }
        }
        let changed = serde_json::to_value(&d.status).ok()
            != serde_json::to_value(cj.status.clone().unwrap_or_default()).ok();
        if changed {
            let mut updated = (*cj).clone();
            updated.status = Some(d.status.clone());
            Api::<CronJob>::namespaced(self.client.clone(), ns)
                .replace_status(name, &PostParams::default(), &updated)
                .await?;
        }
        for ev in &d.events {
            self.recorder
                .event(&*cj, ev.type_, ev.reason, ev.message.clone());
        }
        Ok(d.requeue)
    }
}

/// Sets the controller up: CronJob changes queue the CronJob, Job changes
/// the CronJob controlling the Job.
pub fn start(ctx: &Context) -> Running {
    let cronjobs = ctx.informers.get::<CronJob>();
    let jobs = ctx.informers.get::<Job>();
    let queue = ctx.queue("cronjob");
    let q = queue.clone();
    cronjobs.on_change(move |c| q.add(key_of(&**c.object())));
    let q = queue.clone();
    jobs.on_change(move |c| {
        let j = c.object();
        if let Some(r) = controller_of(&**j).filter(|r| r.kind == "CronJob") {
            q.add(format!("{}/{}", j.namespace().unwrap_or_default(), r.name));
        }
    });
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        cronjobs: cronjobs.store(),
        jobs: jobs.store(),
        recorder: ctx.recorder("cronjob-controller"),
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ctrl.cronjobs.wait_until_ready().await;
        let _ = ctrl.jobs.wait_until_ready().await;
        run_workers(queue, workers, move |key| {
            let c = ctrl.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

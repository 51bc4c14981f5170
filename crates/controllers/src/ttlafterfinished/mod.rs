//! The TTL-after-finished controller (upstream `ttl-after-finished`,
//! pkg/controller/ttlafterfinished): deletes a finished Job (Complete or
//! Failed) `spec.ttlSecondsAfterFinished` seconds after it finished, with
//! `propagationPolicy: Background` and a UID precondition, after checking
//! the TTL against a fresh copy of the Job as upstream does.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::job::{finish_time, is_finished};
use crate::manager::{run_workers, Context, Running};
use crate::util::{is_deleting, key_of, split_key};

#[derive(Debug, thiserror::Error)]
pub enum TtlError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// How long until `job` expires (zero: now), or `None` when it never
/// does (no TTL, not finished, already being deleted).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if is_deleting(job) || !is_finished(job) {
        return None;
    }
    let finished = finish_time(job)?;
    let expires = finished.as_second() + i64::from(ttl);
    Some(Duration::from_secs(
        u64::try_from(expires - now.as_second()).unwrap_or(0),
    ))
}

struct Controller {
    client: kube::Client,
    jobs: Store<Job>,
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<Option<Duration>, TtlError> {
        let (ns, name) = split_key(key);
        let Some(job) = self.jobs.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        match time_left(&job, Timestamp::now()) {
            None => return Ok(None),
            Some(left) if !left.is_zero() => return Ok(Some(left)),
            Some(_) => {}
        }
        // The cache may be stale (TTL changed): check a fresh copy.
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let Some(fresh) = api.get_opt(name).await? else {
            return Ok(None);
        };
        match time_left(&fresh, Timestamp::now()) {
            None => return Ok(None),
            Some(left) if !left.is_zero() => return Ok(Some(left)),
            Some(_) => {}
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(kube::api::Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::info!(job = key, "deleting finished job after its TTL");
        match api.delete(name, &dp).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Sets the controller up: changes of Jobs with a TTL queue them.
pub fn start(ctx: &Context) -> Running {
    let jobs = ctx.informers.get::<Job>();
    let queue = ctx.queue("ttl_jobs_to_delete");
    let q = queue.clone();
    jobs.on_change(move |c| {
        if let crate::informers::Change::Applied { new, .. } = c {
            if time_left(new, Timestamp::now()).is_some() {
                q.add(key_of(&**new));
            }
        }
    });
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        jobs: jobs.store(),
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ctrl.jobs.wait_until_ready().await;
        run_workers(queue, workers, move |key| {
            let c = ctrl.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(ttl: Option<i32>, finished_at: Option<i64>) -> Job {
        Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished_at.map(|t| {
                    vec![JobCondition {
                        type_: "Complete".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(t).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn expiry_counts_from_the_finish() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(time_left(&job(None, Some(900)), now), None);
        assert_eq!(time_left(&job(Some(10), None), now), None);
        assert_eq!(
            time_left(&job(Some(150), Some(900)), now),
            Some(Duration::from_secs(50))
        );
        assert_eq!(
            time_left(&job(Some(10), Some(900)), now),
            Some(Duration::ZERO)
        );
    }
}

//! The Job controller (upstream `job`, pkg/controller/job): runs a Job's
//! pods until enough succeed or the Job fails.
//!
//! Pods are created from the template with the Job as controller owner
//! (the API server has already put `batch.kubernetes.io/controller-uid`,
//! `batch.kubernetes.io/job-name` and their legacy forms on the template),
//! `parallelism` at a time up to `completions`; failed pods are replaced
//! after upstream's exponential back-off (10 s doubling). Indexed Jobs give
//! each pod a completion index (annotation and label
//! `batch.kubernetes.io/job-completion-index`, hostname `<job>-<index>`,
//! `JOB_COMPLETION_INDEX` from the annotation) and track
//! `status.completedIndexes` ("0-2,4"). More failures than `backoffLimit`
//! (or, with restartPolicy OnFailure, as many container restarts) or
//! running past `activeDeadlineSeconds` fail the Job: as upstream 1.32, the
//! interim `FailureTarget` condition comes first, active pods are deleted,
//! and `Failed` (reason BackoffLimitExceeded / DeadlineExceeded) follows
//! once none is left; success likewise adds `SuccessCriteriaMet`, then
//! `Complete` (reason CompletionsReached) with `completionTime`. `suspend`
//! deletes active pods (condition Suspended) and resuming resets
//! `startTime`. Status also carries active, ready, terminating, succeeded,
//! failed, startTime.
//!
//! Deviation: pods get no `batch.kubernetes.io/job-tracking` finalizer;
//! terminated pods stay until their Job goes, so the succeeded and failed
//! counts are the larger of the recorded ones and those seen (pods this
//! controller deletes to fail a Job are counted as failed when deleted),
//! and `uncountedTerminatedPods` stays empty.

mod decide;
mod indexes;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

pub use decide::{decide, finish_time, has_condition, is_finished, Decision, JobEvent};
pub use indexes::{format_ranges, parse_ranges, pod_index, COMPLETION_INDEX};

use crate::events::{Recorder, NORMAL};
use crate::expectations::Expectations;
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{
    controller_of, controller_ref_to, is_controlled_by, is_deleting, key_of, split_key,
};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The pod a Job creates (for completion index `index` of an Indexed Job).
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let tmeta = spec.template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut pod_spec = spec.template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => format!("{}-{i}-", job.name_any()),
        None => format!("{}-", job.name_any()),
    };
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        if pod_spec.hostname.as_deref().is_none_or(str::is_empty) {
            pod_spec.hostname = Some(format!("{}-{i}", job.name_any()));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let containers = pod_spec
            .containers
            .iter_mut()
            .chain(pod_spec.init_containers.iter_mut().flatten());
        for c in containers {
            let envs = c.env.get_or_insert_with(Vec::new);
            if !envs.iter().any(|e| e.name == env.name) {
                envs.push(env.clone());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref_to(job)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The key of the Job controlling `pod`, if any.
fn owner_job_key(pod: &Pod) -> Option<String> {
    let r = controller_of(pod).filter(|r| r.kind == "Job")?;
    Some(format!(
        "{}/{}",
        pod.namespace().unwrap_or_default(),
        r.name
    ))
}

struct Controller {
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Arc<Expectations>,
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<Option<Duration>, JobError> {
        let (ns, name) = split_key(key);
        let Some(job) = self.jobs.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        if is_deleting(&*job) || is_finished(&job) {
            return Ok(None);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns) && is_controlled_by(&**p, &uid))
            .collect();
        let can_manage = self.expectations.satisfied(key);
        let d = decide(&job, &pods, Timestamp::now(), can_manage);
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if !d.create.is_empty() || !d.delete.is_empty() {
            self.expectations
                .expect(key, d.create.len(), d.delete.len());
        }
        let mut first_err = None;
        for index in &d.create {
            match pod_api
                .create(&PostParams::default(), &pod_from_template(&job, *index))
                .await
            {
                Ok(p) => self.recorder.event(
                    &*job,
                    NORMAL,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    self.recorder.event(
                        &*job,
                        crate::events::WARNING,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    first_err.get_or_insert(e);
                }
            }
        }
        for pod in &d.delete {
            match pod_api
                .delete(&pod.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => self.recorder.event(
                    &*job,
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pod.name_any()),
                ),
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.expectations.deletion_observed(key)
                }
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e.into());
        }
        let changed = serde_json::to_value(&d.status).ok()
            != serde_json::to_value(job.status.clone().unwrap_or_default()).ok();
        if changed {
            let mut updated = (*job).clone();
            updated.status = Some(d.status.clone());
            Api::<Job>::namespaced(self.client.clone(), ns)
                .replace_status(name, &PostParams::default(), &updated)
                .await?;
        }
        for ev in &d.events {
            self.recorder
                .event(&*job, ev.type_, ev.reason, ev.message.clone());
        }
        Ok(d.requeue)
    }
}

/// Sets the controller up: Job changes queue the Job, pod changes the Job
/// controlling the pod.
pub fn start(ctx: &Context) -> Running {
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let queue = ctx.queue("job");
    let expectations = Arc::new(Expectations::default());
    let q = queue.clone();
    jobs.on_change(move |c| q.add(key_of(&**c.object())));
    let q = queue.clone();
    let exp = expectations.clone();
    pods.on_change(move |c| {
        let Some(key) = owner_job_key(c.object()) else {
            return;
        };
        match c {
            Change::Applied { old: None, .. } => exp.creation_observed(&key),
            Change::Applied {
                old: Some(old),
                new,
            } if !is_deleting(&**old) && is_deleting(&**new) => exp.deletion_observed(&key),
            Change::Deleted(p) if !is_deleting(&**p) => exp.deletion_observed(&key),
            _ => {}
        }
        q.add(key);
    });
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        jobs: jobs.store(),
        pods: pods.store(),
        recorder: ctx.recorder("job-controller"),
        expectations,
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ctrl.jobs.wait_until_ready().await;
        let _ = ctrl.pods.wait_until_ready().await;
        run_workers(queue, workers, move |key| {
            let c = ctrl.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

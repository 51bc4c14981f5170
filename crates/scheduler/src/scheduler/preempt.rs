//! Carrying out preemption: evicting victims (DisruptionTarget condition,
//! graceful delete, Preempted event), nominating the preemptor, clearing
//! lower-priority nominations.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{scheduler_name, Scheduler};
use crate::framework::{PodInfo, PostFilterResult};
use crate::nominator::nominated_node_name;
use crate::plugins::default_preemption::PREEMPTION_BY_SCHEDULER;
use crate::resources::pod_requests;

impl Scheduler {
    /// Carries out a PostFilter result: evicts the victims (a
    /// DisruptionTarget condition, a graceful delete, a Preempted event),
    /// clears lower-priority nominations to the node, and nominates the pod
    /// (or clears its nomination when preemption cannot help).
    pub(super) fn preempt(&mut self, info: &Arc<PodInfo>, r: PostFilterResult) {
        if r.nominated_node.is_empty() {
            let had = self.alg.nominator.node_of(&info.uid).is_some()
                || nominated_node_name(info).is_some();
            self.alg.nominator.remove(&info.uid);
            if had {
                self.set_nominated_node(info, None);
            }
            return;
        }
        let node = r.nominated_node;
        tracing::info!(
            pod = info.key,
            node,
            victims = r.victims.len(),
            "preempting lower-priority pods"
        );
        self.alg.nominator.add(info.clone(), &node);
        self.metrics.preemption_attempts.inc();
        self.metrics
            .preemption_victims
            .observe(r.victims.len() as f64);
        for p in &r.clear_nominations {
            self.alg.nominator.remove(&p.uid);
            self.set_nominated_node(p, None);
        }
        let scheduler = scheduler_name(&info.pod).to_string();
        for v in &r.victims {
            if v.pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // Seen as terminating by preemption at once, before the API
            // calls land: the preemptor then waits for it instead of
            // preempting again, and no one picks it as a victim twice.
            self.mark_preempted(v, &node, &scheduler);
            let msg = format!("Preempted by pod {} on node {}", info.uid, node);
            self.event(v, "Normal", "Preempted", msg);
            let client = self.client.clone();
            let writes = self.preempt_writes.clone();
            let ns = v.namespace().to_string();
            let name = v.pod.metadata.name.clone().unwrap_or_default();
            let uid = v.uid.clone();
            let body = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": PREEMPTION_BY_SCHEDULER,
                "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": Time(Timestamp::now()),
            }]}});
            tokio::spawn(async move {
                let Ok(_permit) = writes.acquire_owned().await else {
                    return;
                };
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let pp = PatchParams::default();
                if let Err(e) = api.patch_status(&name, &pp, &Patch::Strategic(&body)).await {
                    tracing::debug!(error = %e, "victim condition update failed");
                }
                let dp = kube::api::DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                if let Err(e) = api.delete(&name, &dp).await {
                    tracing::debug!(error = %e, "victim delete failed");
                }
            });
        }
        self.set_nominated_node(info, Some(node));
    }

    /// The cache's copy of a victim gets a deletionTimestamp and the
    /// DisruptionTarget condition, as the API server will soon say.
    fn mark_preempted(&mut self, v: &PodInfo, node: &str, scheduler: &str) {
        let mut pod = (*v.pod).clone();
        let now = Time(Timestamp::now());
        pod.metadata.deletion_timestamp = Some(now.clone());
        let status = pod.status.get_or_insert_with(Default::default);
        let conds = status.conditions.get_or_insert_with(Vec::new);
        conds.retain(|c| c.type_ != "DisruptionTarget");
        conds.push(k8s_openapi::api::core::v1::PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some(PREEMPTION_BY_SCHEDULER.into()),
            message: Some(format!(
                "{scheduler}: preempting to accommodate a higher priority pod"
            )),
            last_transition_time: Some(now),
            ..Default::default()
        });
        let info = Arc::new(PodInfo::with(Arc::new(pod), pod_requests));
        self.cache.upsert_pod(info, node);
    }

    /// Sets or clears `status.nominatedNodeName`.
    pub(super) fn set_nominated_node(&self, info: &PodInfo, node: Option<String>) {
        let client = self.client.clone();
        let writes = self.writes.clone();
        let ns = info.namespace().to_string();
        let name = info.pod.metadata.name.clone().unwrap_or_default();
        let body = json!({"status": {"nominatedNodeName": node}});
        tokio::spawn(async move {
            let Ok(_permit) = writes.acquire_owned().await else {
                return;
            };
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let pp = PatchParams::default();
            if let Err(e) = api.patch_status(&name, &pp, &Patch::Merge(&body)).await {
                tracing::debug!(error = %e, "nominatedNodeName update failed");
            }
        });
    }
}

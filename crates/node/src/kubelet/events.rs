//! core/v1 Events about pods, from source `kubelet` on this node (Pulling,
//! Pulled, Failed, BackOff, Created, Started, Killing, Unhealthy,
//! FailedMount, ...). Repeats of the same event within a pod are counted on
//! the first Event (count and lastTimestamp), as client-go's correlator does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;

/// (pod uid, reason, message) → (event name, count).
type Seen = HashMap<(String, String, String), (String, i32)>;

/// Emits pod events; cheap to clone.
#[derive(Clone)]
pub struct Events {
    client: Client,
    node: String,
    seen: Arc<Mutex<Seen>>,
}

impl Events {
    pub fn new(client: Client, node: String) -> Self {
        Events {
            client,
            node,
            seen: Arc::default(),
        }
    }

    /// Records an event about `pod` (and its `container`, if any).
    pub fn emit(&self, pod: &Pod, container: Option<&str>, warning: bool, reason: &str, msg: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), reason.to_string(), msg.to_string());
        let now = Timestamp::now();
        // The event's name and how often it was seen, counting this time.
        let (ev_name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > 10_000 {
                seen.clear();
            }
            let entry = seen
                .entry(key)
                .or_insert_with(|| (format!("{name}.{:x}", now.as_nanosecond()), 0));
            entry.1 += 1;
            entry.clone()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if count > 1 {
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            tokio::spawn(async move {
                let _ = api
                    .patch(&ev_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            });
            return;
        }
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(ev_name),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns),
                uid: Some(uid),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(msg.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "event not recorded");
            }
        });
    }

    /// Forgets the counts of a pod's events (the pod is gone).
    pub fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(u, _, _), _| u != uid);
    }
}

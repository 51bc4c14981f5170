//! Recording core/v1 Events the way client-go's event recorder does, so
//! `kubectl describe` and `kubectl events` tell an object's story:
//!
//! * **Deduplication**: an event equal to an earlier one (same object,
//!   type, reason, message and source) is not created again; the earlier
//!   Event's `count` goes up and its `lastTimestamp` moves (a merge patch).
//! * **Aggregation**: once more than 10 events with the same object, type,
//!   reason and source but different messages arrive within 10 minutes,
//!   they are folded into one Event whose message is prefixed
//!   `(combined from similar events): `.
//!
//! Recording never blocks a controller: events go through a bounded
//! channel to one task that posts them (dropped, with a debug log, when the
//! channel is full, as client-go drops them).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The event type `Normal`.
pub const NORMAL: &str = "Normal";
/// The event type `Warning`.
pub const WARNING: &str = "Warning";

/// How many distinct messages of one reason are kept apart before they are
/// aggregated (client-go's `maxEvents`).
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// The window in which similar events are aggregated.
pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
const CACHE_CAP: usize = 4096;
const CHANNEL_CAP: usize = 1000;

struct Record {
    object: ObjectReference,
    type_: String,
    reason: String,
    message: String,
}

/// Posts Events as one component (`deployment-controller`, ...).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
}

/// A reference to `obj` for an Event's `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder whose posting task runs until every clone is dropped.
    pub fn new(client: Client, component: &str) -> Recorder {
        let (tx, rx) = mpsc::channel(CHANNEL_CAP);
        let poster = Poster {
            client,
            source: EventSource {
                component: Some(component.to_string()),
                host: None,
            },
            correlator: Correlator::default(),
        };
        tokio::spawn(poster.run(rx));
        Recorder { tx }
    }

    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event_ref(reference(obj), type_, reason, message);
    }

    /// Records an event about the object `object` refers to.
    pub fn event_ref(
        &self,
        object: ObjectReference,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
    ) {
        let r = Record {
            object,
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.into(),
        };
        if self.tx.try_send(r).is_err() {
            tracing::debug!("event channel full; event dropped");
        }
    }
}

/// What the correlator decided for one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create a new Event with this message.
    Create { message: String },
    /// Bump the earlier Event `name` to `count`, with this message.
    Bump {
        name: String,
        count: i32,
        message: String,
    },
}

#[derive(Default)]
struct Similar {
    messages: HashSet<String>,
    since: Option<Instant>,
}

/// client-go's EventCorrelator without the spam filter.
#[derive(Default)]
pub struct Correlator {
    similar: HashMap<String, Similar>,
    seen: HashMap<String, (String, i32)>,
}

impl Correlator {
    /// Decides how to post an event; returns the cache key under which a
    /// created Event is to be remembered ([`Correlator::created`]).
    fn decide(
        &mut self,
        obj: &ObjectReference,
        type_: &str,
        reason: &str,
        msg: &str,
    ) -> (String, Decision) {
        if self.similar.len() > CACHE_CAP {
            self.similar.clear();
        }
        if self.seen.len() > CACHE_CAP {
            self.seen.clear();
        }
        let object_key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            obj.kind.as_deref().unwrap_or(""),
            obj.namespace.as_deref().unwrap_or(""),
            obj.name.as_deref().unwrap_or(""),
            obj.uid.as_deref().unwrap_or(""),
            obj.api_version.as_deref().unwrap_or(""),
            type_,
            reason
        );
        let now = Instant::now();
        let sim = self.similar.entry(object_key.clone()).or_default();
        if sim
            .since
            .is_none_or(|t| now.duration_since(t) > AGGREGATE_WINDOW)
        {
            sim.messages.clear();
            sim.since = Some(now);
        }
        sim.messages.insert(msg.to_string());
        let (key, message) = if sim.messages.len() > AGGREGATE_MAX_EVENTS {
            (
                format!("{object_key}\u{0}(combined)"),
                format!("(combined from similar events): {msg}"),
            )
        } else {
            (format!("{object_key}\u{0}{msg}"), msg.to_string())
        };
        let decision = match self.seen.get_mut(&key) {
            Some((name, count)) => {
                *count += 1;
                Decision::Bump {
                    name: name.clone(),
                    count: *count,
                    message,
                }
            }
            None => Decision::Create { message },
        };
        (key, decision)
    }

    /// Remembers the Event created for `key`.
    fn created(&mut self, key: String, name: String) {
        self.seen.insert(key, (name, 1));
    }
}

struct Poster {
    client: Client,
    source: EventSource,
    correlator: Correlator,
}

fn event_name(obj: &ObjectReference) -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("{}.{:x}", obj.name.as_deref().unwrap_or("unknown"), nanos)
}

impl Poster {
    async fn run(mut self, mut rx: mpsc::Receiver<Record>) {
        while let Some(r) = rx.recv().await {
            self.post(r).await;
        }
    }

    async fn post(&mut self, r: Record) {
        let ns = r
            .object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let (key, decision) = self
            .correlator
            .decide(&r.object, &r.type_, &r.reason, &r.message);
        let now = Time(Timestamp::now());
        if let Decision::Bump {
            name,
            count,
            message,
        } = &decision
        {
            let patch = json!({"count": count, "lastTimestamp": now, "message": message});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::debug!(error = %e, "bumping event {name} failed; creating anew"),
            }
        }
        let message = match decision {
            Decision::Create { message } | Decision::Bump { message, .. } => message,
        };
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(event_name(&r.object)),
                namespace: Some(ns),
                ..Default::default()
            },
            involved_object: r.object,
            reason: Some(r.reason),
            message: Some(message),
            type_: Some(r.type_),
            source: Some(self.source.clone()),
            reporting_component: self.source.component.clone(),
            reporting_instance: self.source.component.clone(),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => {
                self.correlator.created(key, created.name_any());
            }
            Err(e) => tracing::debug!(error = %e, "posting an event failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> ObjectReference {
        ObjectReference {
            kind: Some("Deployment".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    fn decide_and_post(c: &mut Correlator, msg: &str, name: &str) -> Decision {
        let (key, d) = c.decide(&obj(), NORMAL, "ScalingReplicaSet", msg);
        if matches!(d, Decision::Create { .. }) {
            c.created(key, name.to_string());
        }
        d
    }

    #[tokio::test]
    async fn repeats_bump_the_count() {
        let mut c = Correlator::default();
        assert_eq!(
            decide_and_post(&mut c, "Scaled up to 3", "e1"),
            Decision::Create {
                message: "Scaled up to 3".into()
            }
        );
        assert_eq!(
            decide_and_post(&mut c, "Scaled up to 3", "x"),
            Decision::Bump {
                name: "e1".into(),
                count: 2,
                message: "Scaled up to 3".into()
            }
        );
        assert_eq!(
            decide_and_post(&mut c, "Scaled up to 3", "x"),
            Decision::Bump {
                name: "e1".into(),
                count: 3,
                message: "Scaled up to 3".into()
            }
        );
    }

    #[tokio::test]
    async fn many_different_messages_are_combined() {
        let mut c = Correlator::default();
        for i in 0..AGGREGATE_MAX_EVENTS {
            let d = decide_and_post(&mut c, &format!("m{i}"), &format!("e{i}"));
            assert!(matches!(d, Decision::Create { .. }), "{d:?}");
        }
        let d = decide_and_post(&mut c, "m10", "agg");
        assert_eq!(
            d,
            Decision::Create {
                message: "(combined from similar events): m10".into()
            }
        );
        let d = decide_and_post(&mut c, "m11", "x");
        assert_eq!(
            d,
            Decision::Bump {
                name: "agg".into(),
                count: 2,
                message: "(combined from similar events): m11".into()
            }
        );
    }
}

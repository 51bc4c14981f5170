//! The garbage collector's monitors (upstream's `GraphBuilder.monitors`):
//! discovery of every resource the API server serves that can be listed,
//! watched and deleted, one metadata-only watch per resource, and the
//! resolution of an owner reference's apiVersion/kind to a resource.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::StreamExt;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::graph::{group_of, GraphEvent, Identity, ObjectInfo};
use super::GcError;

/// What the monitors send the graph builder.
#[derive(Debug)]
pub enum Msg {
    Event(GraphEvent),
    /// One monitor has its first complete list in.
    Synced(String),
}

/// A resource the garbage collector knows.
#[derive(Debug, Clone)]
pub struct Known {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Resources upstream's garbage collector ignores
/// (`DefaultIgnoredResources`): events.
fn ignored(group: &str, plural: &str) -> bool {
    plural == "events" && (group.is_empty() || group == "events.k8s.io")
}

/// Every resource, at its preferred version, that supports list, watch and
/// delete (upstream's `GetDeletableResources`), events excepted.
pub async fn deletable_resources(client: &Client) -> Result<Vec<Known>, GcError> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(GcError::Discovery)?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let ok = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v));
            if ok && !ignored(&ar.group, &ar.plural) {
                out.push(Known {
                    namespaced: caps.scope == Scope::Namespaced,
                    resource: ar,
                });
            }
        }
    }
    Ok(out)
}

/// Maps an owner reference's apiVersion and kind to a resource: the
/// discovered ones by group and kind, else (e.g. a type added since start)
/// a one-off discovery of that group/version.
pub struct Resolver {
    client: Client,
    by_group_kind: Mutex<HashMap<(String, String), Known>>,
}

impl Resolver {
    pub fn new(client: Client, known: &[Known]) -> Resolver {
        let by_group_kind = known
            .iter()
            .map(|k| {
                (
                    (k.resource.group.clone(), k.resource.kind.clone()),
                    k.clone(),
                )
            })
            .collect();
        Resolver {
            client,
            by_group_kind: Mutex::new(by_group_kind),
        }
    }

    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Known, GcError> {
        let key = (group_of(api_version).to_string(), kind.to_string());
        if let Some(k) = self
            .by_group_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| GcError::UnknownKind(format!("{api_version}/{kind}"), e.to_string()))?;
        let k = Known {
            namespaced: caps.scope == Scope::Namespaced,
            resource,
        };
        self.by_group_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, k.clone());
        Ok(k)
    }

    /// The API of `known` in `namespace` (ignored when cluster-scoped).
    pub fn api(&self, known: &Known, namespace: &str) -> Api<DynamicObject> {
        if known.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &known.resource)
        } else {
            Api::all_with(self.client.clone(), &known.resource)
        }
    }
}

fn info_of(ar: &ApiResource, m: &PartialObjectMeta<DynamicObject>) -> ObjectInfo {
    let meta = &m.metadata;
    ObjectInfo {
        identity: Identity {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        },
        owners: meta.owner_references.clone().unwrap_or_default(),
        being_deleted: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

/// Watches one resource (metadata only) until the channel closes. After a
/// re-list, objects that vanished meanwhile are reported deleted.
pub async fn monitor(client: Client, known: Known, tx: mpsc::UnboundedSender<Msg>) {
    let ar = known.resource;
    let name = format!("{}.{}", ar.plural, ar.group);
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen: HashMap<String, ObjectInfo> = HashMap::new();
    let mut relist: Vec<ObjectInfo> = Vec::new();
    let mut synced = false;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(resource = %name, error = %e, "garbage collector watch error; retrying");
                continue;
            }
        };
        let mut out = Vec::new();
        match ev {
            Event::Apply(m) => {
                let info = info_of(&ar, &m);
                seen.insert(info.identity.uid.clone(), info.clone());
                out.push(Msg::Event(GraphEvent::Upsert(info)));
            }
            Event::Delete(m) => {
                let info = info_of(&ar, &m);
                let last = seen.remove(&info.identity.uid).unwrap_or(info);
                out.push(Msg::Event(GraphEvent::Delete(last)));
            }
            Event::Init => relist.clear(),
            Event::InitApply(m) => relist.push(info_of(&ar, &m)),
            Event::InitDone => {
                let now: HashSet<String> = relist.iter().map(|i| i.identity.uid.clone()).collect();
                for (uid, info) in seen.drain() {
                    if !now.contains(&uid) {
                        out.push(Msg::Event(GraphEvent::Delete(info)));
                    }
                }
                for info in relist.drain(..) {
                    seen.insert(info.identity.uid.clone(), info.clone());
                    out.push(Msg::Event(GraphEvent::Upsert(info)));
                }
                if !synced {
                    synced = true;
                    out.push(Msg::Synced(name.clone()));
                }
            }
        }
        for m in out {
            if tx.send(m).is_err() {
                return;
            }
        }
    }
}

//! Read-only caches of the objects plugins consult besides nodes and pods:
//! namespaces (InterPodAffinity's namespaceSelector), the workload objects
//! that select a pod (PodTopologySpread's default constraints) and
//! PodDisruptionBudgets (DefaultPreemption). Each is a `kube` reflector
//! store fed by one watch per process; unit tests fill them by hand with
//! [`Listers::fill`].

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, ReplicationController, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The stores.
#[derive(Clone)]
pub struct Listers {
    pub namespaces: Store<Namespace>,
    pub services: Store<Service>,
    pub replica_sets: Store<ReplicaSet>,
    pub stateful_sets: Store<StatefulSet>,
    pub replication_controllers: Store<ReplicationController>,
    pub pdbs: Store<PodDisruptionBudget>,
}

/// The writing halves, consumed by [`Writers::run`].
pub struct Writers {
    namespaces: reflector::store::Writer<Namespace>,
    services: reflector::store::Writer<Service>,
    replica_sets: reflector::store::Writer<ReplicaSet>,
    stateful_sets: reflector::store::Writer<StatefulSet>,
    replication_controllers: reflector::store::Writer<ReplicationController>,
    pdbs: reflector::store::Writer<PodDisruptionBudget>,
}

impl Default for Listers {
    fn default() -> Self {
        Listers::new().0
    }
}

impl Listers {
    /// Empty stores and their writers.
    pub fn new() -> (Listers, Writers) {
        let w = Writers {
            namespaces: Default::default(),
            services: Default::default(),
            replica_sets: Default::default(),
            stateful_sets: Default::default(),
            replication_controllers: Default::default(),
            pdbs: Default::default(),
        };
        let l = Listers {
            namespaces: w.namespaces.as_reader(),
            services: w.services.as_reader(),
            replica_sets: w.replica_sets.as_reader(),
            stateful_sets: w.stateful_sets.as_reader(),
            replication_controllers: w.replication_controllers.as_reader(),
            pdbs: w.pdbs.as_reader(),
        };
        (l, w)
    }

    /// Stores holding exactly these objects (for unit tests).
    pub fn fill(
        namespaces: Vec<Namespace>,
        services: Vec<Service>,
        replica_sets: Vec<ReplicaSet>,
        pdbs: Vec<PodDisruptionBudget>,
    ) -> Listers {
        let (l, mut w) = Listers::new();
        w.namespaces.apply_watcher_event(&Event::Init);
        for o in namespaces {
            w.namespaces.apply_watcher_event(&Event::InitApply(o));
        }
        w.namespaces.apply_watcher_event(&Event::InitDone);
        for o in services {
            w.services.apply_watcher_event(&Event::Apply(o));
        }
        for o in replica_sets {
            w.replica_sets.apply_watcher_event(&Event::Apply(o));
        }
        for o in pdbs {
            w.pdbs.apply_watcher_event(&Event::Apply(o));
        }
        l
    }

    /// A namespace's labels (`None` if the namespace is not known).
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let ns = self.namespaces.get(&reflector::ObjectRef::new(name))?;
        Some(ns.metadata.labels.clone().unwrap_or_default())
    }
}

async fn reflect<K>(client: Client, writer: reflector::store::Writer<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream = watcher::watcher(Api::<K>::all(client), Default::default())
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        if let Err(e) = ev {
            tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch error");
        }
    }
}

impl Writers {
    /// Runs one watch per kind, feeding the stores, until the process ends.
    pub async fn run(self, client: Client) {
        tokio::join!(
            reflect(client.clone(), self.namespaces),
            reflect(client.clone(), self.services),
            reflect(client.clone(), self.replica_sets),
            reflect(client.clone(), self.stateful_sets),
            reflect(client.clone(), self.replication_controllers),
            reflect(client, self.pdbs),
        );
    }
}

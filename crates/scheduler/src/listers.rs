//! Read-only caches of the objects plugins consult besides nodes and pods:
//! namespaces (InterPodAffinity's namespaceSelector), the workload objects
//! that select a pod (PodTopologySpread's default constraints; rkube does
//! not serve ReplicationControllers, so that store stays empty) and
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
    /// Always empty: rkube does not serve ReplicationControllers.
    pub replication_controllers: Store<ReplicationController>,
    pub pdbs: Store<PodDisruptionBudget>,
}

/// Objects to load into [`Listers`].
#[derive(Default)]
pub struct Lists {
    pub namespaces: Vec<Namespace>,
    pub services: Vec<Service>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub replication_controllers: Vec<ReplicationController>,
    pub pdbs: Vec<PodDisruptionBudget>,
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
        Listers::from_lists(Lists {
            namespaces,
            services,
            replica_sets,
            pdbs,
            ..Default::default()
        })
    }

    /// Stores holding exactly these objects.
    pub fn from_lists(lists: Lists) -> Listers {
        fn load<K>(w: &mut reflector::store::Writer<K>, objs: Vec<K>)
        where
            K: Resource<DynamicType = ()> + Clone + 'static,
        {
            w.apply_watcher_event(&Event::Init);
            for o in objs {
                w.apply_watcher_event(&Event::InitApply(o));
            }
            w.apply_watcher_event(&Event::InitDone);
        }
        let (l, mut w) = Listers::new();
        load(&mut w.namespaces, lists.namespaces);
        load(&mut w.services, lists.services);
        load(&mut w.replica_sets, lists.replica_sets);
        load(&mut w.stateful_sets, lists.stateful_sets);
        load(
            &mut w.replication_controllers,
            lists.replication_controllers,
        );
        load(&mut w.pdbs, lists.pdbs);
        l
    }

    /// Lists every kind once (for one-shot tools such as `explain`).
    pub async fn list_all(client: &Client) -> Result<Listers, kube::Error> {
        async fn all<K>(client: &Client) -> Result<Vec<K>, kube::Error>
        where
            K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        {
            Ok(Api::<K>::all(client.clone())
                .list(&Default::default())
                .await?
                .items)
        }
        Ok(Listers::from_lists(Lists {
            namespaces: all(client).await?,
            services: all(client).await?,
            replica_sets: all(client).await?,
            stateful_sets: all(client).await?,
            replication_controllers: Vec::new(),
            pdbs: all(client).await?,
        }))
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
            reflect(client, self.pdbs),
        );
    }
}

//! Shared informers: one watch per resource type per process, feeding a
//! `kube` reflector store that every controller reads, and event handlers
//! that controllers register to queue the keys a change concerns (client-go's
//! SharedInformerFactory with ResourceEventHandlers).
//!
//! A handler sees [`Change::Applied`] with the object as the store held it
//! before (none for an addition) and [`Change::Deleted`]. After a re-list
//! (a watch that expired or broke), objects that vanished meanwhile are
//! reported deleted and the others applied, so no controller misses a
//! deletion.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use futures::StreamExt;
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// What happened to an object.
pub enum Change<K> {
    /// Added (`old` is `None`) or updated.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted; the last state seen.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now (or was last, for a deletion).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(o) => o,
        }
    }
}

type Handler<K> = Box<dyn Fn(&Change<K>) + Send + Sync>;

/// The bound every informed type satisfies.
pub trait Informed:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Informed for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// One type's store and handlers.
pub struct Informer<K: Informed> {
    store: Store<K>,
    handlers: RwLock<Vec<Handler<K>>>,
    writer: Mutex<Option<Writer<K>>>,
}

impl<K: Informed> Informer<K> {
    fn new() -> Informer<K> {
        let writer = Writer::<K>::default();
        Informer {
            store: writer.as_reader(),
            handlers: RwLock::new(Vec::new()),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// The store (empty until the first list is in).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Calls `f` on every change from now on (register before
    /// [`Informers::start`] to also see the initial list).
    pub fn on_change(&self, f: impl Fn(&Change<K>) + Send + Sync + 'static) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    fn dispatch(&self, change: &Change<K>) {
        for h in self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h(change);
        }
    }

    async fn run(self: Arc<Self>, api: Api<K>) {
        let Some(mut writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut relist: Vec<K> = Vec::new();
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "watch error; retrying");
                    continue;
                }
            };
            match &ev {
                Event::Apply(obj) => {
                    let old = self.store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&ev);
                    self.dispatch(&Change::Applied {
                        old,
                        new: Arc::new(obj.clone()),
                    });
                }
                Event::Delete(obj) => {
                    writer.apply_watcher_event(&ev);
                    self.dispatch(&Change::Deleted(Arc::new(obj.clone())));
                }
                Event::Init => {
                    relist.clear();
                    writer.apply_watcher_event(&ev);
                }
                Event::InitApply(obj) => {
                    relist.push(obj.clone());
                    writer.apply_watcher_event(&ev);
                }
                Event::InitDone => {
                    let before: HashMap<ObjectRef<K>, Arc<K>> = self
                        .store
                        .state()
                        .into_iter()
                        .map(|o| (ObjectRef::from_obj(&*o), o))
                        .collect();
                    writer.apply_watcher_event(&ev);
                    let mut seen = HashSet::new();
                    for obj in relist.drain(..) {
                        let key = ObjectRef::from_obj(&obj);
                        let old = before.get(&key).cloned();
                        seen.insert(key);
                        self.dispatch(&Change::Applied {
                            old,
                            new: Arc::new(obj),
                        });
                    }
                    for (key, obj) in before {
                        if !seen.contains(&key) {
                            self.dispatch(&Change::Deleted(obj));
                        }
                    }
                }
            }
        }
    }
}

type Starter = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The informers of one process, by type.
pub struct Informers {
    client: Client,
    by_type: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    ready: Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl Informers {
    pub fn new(client: Client) -> Arc<Informers> {
        Arc::new(Informers {
            client,
            by_type: Mutex::new(HashMap::new()),
            starters: Mutex::new(Vec::new()),
            ready: Mutex::new(Vec::new()),
        })
    }

    /// The client the informers watch with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of `K` over all namespaces, created on first use.
    pub fn get<K: Informed>(&self) -> Arc<Informer<K>> {
        let mut by_type = self.by_type.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = by_type.get(&TypeId::of::<K>()) {
            if let Ok(i) = i.clone().downcast::<Informer<K>>() {
                return i;
            }
        }
        let informer = Arc::new(Informer::<K>::new());
        by_type.insert(TypeId::of::<K>(), informer.clone());
        let api = Api::<K>::all(self.client.clone());
        let run = informer.clone();
        self.starters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(move || Box::pin(run.run(api))));
        let store = informer.store();
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::pin(async move {
                let _ = store.wait_until_ready().await;
            }));
        informer
    }

    /// Runs every informer created so far, until the future is dropped
    /// (controllers create theirs while they are set up, before this).
    pub fn run(&self) -> BoxFuture<'static, ()> {
        let starters: Vec<Starter> =
            std::mem::take(&mut *self.starters.lock().unwrap_or_else(|e| e.into_inner()));
        Box::pin(async move {
            futures::future::join_all(starters.into_iter().map(|s| s())).await;
            // Informers run forever; with none, there is nothing to end.
            std::future::pending::<()>().await;
        })
    }

    /// Waits until every started informer has its first complete list.
    pub async fn wait_synced(&self) {
        let ready: Vec<BoxFuture<'static, ()>> =
            std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        futures::future::join_all(ready).await;
    }
}

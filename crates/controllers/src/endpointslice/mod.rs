//! The EndpointSlice controller (upstream `endpointslice`,
//! pkg/controller/endpointslice): keeps the `discovery.k8s.io/v1`
//! EndpointSlices of every Service with a selector.
//!
//! Slices carry `kubernetes.io/service-name`, `endpointslice.kubernetes.io/
//! managed-by: endpointslice-controller.k8s.io` and the Service's labels, are
//! named `<service>-<random>` and owned by the Service. Each endpoint is a
//! selected pod with an IPv4 address (terminating pods included, with
//! upstream's ready/serving/terminating conditions), its node, the node's
//! `topology.kubernetes.io/zone` and a reference to the pod; pods are
//! grouped by the port list they serve, and slices hold at most
//! `--max-endpoints-per-slice` (100) endpoints, packed as [`pack`]
//! describes. Services without a selector are left alone (their slices are
//! user-managed); the slices of a deleted Service are deleted (upstream
//! leaves that to the garbage collector).
//!
//! Like upstream's slice tracker, the controller remembers what it wrote
//! and does not act on a Service again until its informer has caught up,
//! so a stale cache never makes it create duplicate slices.

mod desired;
mod pack;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use tokio::time::Instant;

pub use desired::{desired_groups, endpoint_key, pod_endpoint, ports_key, PortGroup};
pub use pack::{plan, slice_labels, Plan};

use crate::endpoints::{has_selector, services_for_pod_change, trigger_time};
use crate::manager::{run_workers, Context, Running};
use crate::util::{key_of, split_key};

/// `kubernetes.io/service-name`.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `endpointslice.kubernetes.io/managed-by`.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of the managed-by label.
pub const MANAGED_BY_VALUE: &str = "endpointslice-controller.k8s.io";
/// The node label giving its zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Upstream's default `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// How long to wait for the informer to show our own writes before acting
/// anyway.
const TRACKER_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EndpointSliceError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// What the store must show of one slice we wrote.
#[derive(Debug, Clone)]
enum Expect {
    /// At least this resourceVersion.
    Present(String),
    Absent,
}

/// When a Service's writes were made, and what the store must show.
type Writes = (Instant, Vec<(String, Expect)>);

/// Our writes per Service not yet seen by the informer.
#[derive(Default)]
struct Tracker {
    pending: Mutex<HashMap<String, Writes>>,
}

fn rv_at_least(have: Option<&str>, want: &str) -> bool {
    match (
        have.and_then(|h| h.parse::<u64>().ok()),
        want.parse::<u64>(),
    ) {
        (Some(h), Ok(w)) => h >= w,
        _ => have == Some(want),
    }
}

impl Tracker {
    fn record(&self, svc: &str, writes: Vec<(String, Expect)>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if writes.is_empty() {
            p.remove(svc);
        } else {
            p.insert(svc.to_string(), (Instant::now(), writes));
        }
    }

    /// Whether the store shows every write recorded for `svc`.
    fn caught_up(&self, svc: &str, ns: &str, store: &Store<EndpointSlice>) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some((at, writes)) = p.get(svc) else {
            return true;
        };
        let ok = at.elapsed() > TRACKER_TTL
            || writes.iter().all(|(name, exp)| {
                let cur = store.get(&ObjectRef::new(name).within(ns));
                match exp {
                    Expect::Absent => cur.is_none(),
                    Expect::Present(rv) => {
                        cur.is_some_and(|s| rv_at_least(s.metadata.resource_version.as_deref(), rv))
                    }
                }
            });
        if ok {
            p.remove(svc);
        }
        ok
    }
}

/// Whether this controller manages `slice`.
pub fn is_managed(slice: &EndpointSlice) -> bool {
    slice.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

struct Controller {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    tracker: Tracker,
    max: usize,
}

impl Controller {
    fn slices_of(&self, ns: &str, name: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .state()
            .into_iter()
            .filter(|s| {
                s.namespace().as_deref() == Some(ns)
                    && is_managed(s)
                    && s.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
            })
            .collect()
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, EndpointSliceError> {
        let (ns, name) = split_key(key);
        if !self.tracker.caught_up(key, ns, &self.slices) {
            // The slice informer's events will queue the Service again.
            return Ok(Some(Duration::from_secs(1)));
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let existing = self.slices_of(ns, name);
        let svc = self.services.get(&ObjectRef::new(name).within(ns));
        let plan = match &svc {
            None => Plan {
                delete: existing,
                ..Default::default()
            },
            Some(svc) if !has_selector(svc) || svc.metadata.deletion_timestamp.is_some() => {
                return Ok(None)
            }
            Some(svc) => {
                let pods = self.pods.state();
                let zone_of = |node: &str| {
                    self.nodes
                        .get(&ObjectRef::new(node))
                        .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
                };
                let groups = desired_groups(svc, &pods, &zone_of);
                let selected = pods
                    .iter()
                    .map(|p| &**p)
                    .filter(|p| crate::endpoints::service_selects(svc, p));
                plan(
                    svc,
                    &groups,
                    &existing,
                    self.max,
                    trigger_time(svc, selected),
                )
            }
        };
        if plan.is_empty() {
            return Ok(None);
        }
        let mut writes = Vec::new();
        let result = self.apply(&api, plan, &mut writes).await;
        self.tracker.record(key, writes);
        result.map(|_| None)
    }

    async fn apply(
        &self,
        api: &Api<EndpointSlice>,
        plan: Plan,
        writes: &mut Vec<(String, Expect)>,
    ) -> Result<(), EndpointSliceError> {
        let pp = PostParams::default();
        for s in plan.update {
            let name = s.name_any();
            let done = api.replace(&name, &pp, &s).await?;
            let rv = done.metadata.resource_version.unwrap_or_default();
            writes.push((name, Expect::Present(rv)));
        }
        for s in plan.create {
            let done = api.create(&pp, &s).await?;
            let rv = done.metadata.resource_version.clone().unwrap_or_default();
            writes.push((done.name_any(), Expect::Present(rv)));
        }
        for s in plan.delete {
            let name = s.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            writes.push((name, Expect::Absent));
        }
        Ok(())
    }
}

/// Sets the controller up: Service, Pod, Node (zone) and EndpointSlice
/// changes queue the Services they concern.
pub fn start(ctx: &Context) -> Running {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let queue = ctx.queue("endpointslice");
    let q = queue.clone();
    services.on_change(move |c| q.add(key_of(&**c.object())));
    let q = queue.clone();
    let svc_store = services.store();
    pods.on_change(move |c| {
        for key in services_for_pod_change(&svc_store, c) {
            q.add(key);
        }
    });
    let q = queue.clone();
    let svc_store = services.store();
    nodes.on_change(move |c| {
        let zone = |n: &Node| n.labels().get(ZONE_LABEL).cloned();
        if let crate::informers::Change::Applied {
            old: Some(old),
            new,
        } = c
        {
            if zone(old) == zone(new) {
                return;
            }
        }
        for s in svc_store.state().iter().filter(|s| has_selector(s)) {
            q.add(key_of(&**s));
        }
    });
    let q = queue.clone();
    slices.on_change(move |c| {
        let s = c.object();
        if let (true, Some(svc)) = (is_managed(s), s.labels().get(SERVICE_NAME_LABEL)) {
            q.add(format!("{}/{svc}", s.namespace().unwrap_or_default()));
        }
    });
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        services: services.store(),
        pods: pods.store(),
        nodes: nodes.store(),
        slices: slices.store(),
        tracker: Tracker::default(),
        max: ctx.config.max_endpoints_per_slice,
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ctrl.services.wait_until_ready().await;
        let _ = ctrl.pods.wait_until_ready().await;
        let _ = ctrl.nodes.wait_until_ready().await;
        let _ = ctrl.slices.wait_until_ready().await;
        run_workers(queue, workers, move |key| {
            let c = ctrl.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

#[cfg(test)]
mod tests;

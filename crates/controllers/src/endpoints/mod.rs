//! The Endpoints controller (upstream `endpoint`, pkg/controller/endpoint):
//! keeps, for every Service with a selector, an Endpoints object of the
//! same name listing the selected pods' addresses.
//!
//! Ready pods (or every pod with `publishNotReadyAddresses`) go to
//! `addresses`, the others to `notReadyAddresses`; pods without an IP,
//! terminal pods and terminating pods are left out. Ports come from the
//! Service's ports, a named `targetPort` resolved on each pod's container
//! ports, and addresses are grouped into subsets by the ports they serve.
//! Like upstream, at most 1000 addresses are kept (annotation
//! `endpoints.kubernetes.io/over-capacity: truncated`), the Endpoints carry
//! the Service's labels and `endpoints.kubernetes.io/last-change-trigger-time`,
//! and a Service without a selector is left to whoever manages its
//! Endpoints (such as the API server for `default/kubernetes`). The
//! Endpoints of a deleted Service are deleted.

mod compute;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

pub use compute::{
    desired_endpoints, endpoints_labels, find_port, has_selector, is_headless, pod_hostname,
    pod_ip, pod_ports, pod_ref, service_selects, should_pod_be_in_endpoints, trigger_time,
    truncate, Desired, HEADLESS_LABEL, MAX_CAPACITY,
};

use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{key_of, split_key};

/// `endpoints.kubernetes.io/last-change-trigger-time`.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// `endpoints.kubernetes.io/over-capacity`.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The keys of the Services a pod change concerns: those selecting the
/// pod before or after the change.
pub fn services_for_pod_change(services: &Store<Service>, change: &Change<Pod>) -> Vec<String> {
    let (old, new) = match change {
        Change::Applied { old, new } => (old.as_deref(), Some(&**new)),
        Change::Deleted(p) => (None, Some(&**p)),
    };
    let ns = new.and_then(|p| p.namespace());
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            old.is_some_and(|p| service_selects(s, p)) || new.is_some_and(|p| service_selects(s, p))
        })
        .map(|s| key_of(&**s))
        .collect()
}

/// The Endpoints object `svc` should have, given the current one (whose
/// unrelated annotations are kept), or `None` when the current one is
/// already right.
pub fn endpoints_update(
    svc: &Service,
    desired: &Desired,
    current: Option<&Endpoints>,
) -> Option<Endpoints> {
    let labels = endpoints_labels(svc);
    let mut annotations: BTreeMap<String, String> =
        current.map(|e| e.annotations().clone()).unwrap_or_default();
    let over = desired.truncated.then(|| "truncated".to_string());
    if let Some(cur) = current {
        let same_subsets = serde_json::to_value(cur.subsets.as_deref().unwrap_or_default()).ok()
            == serde_json::to_value(&desired.subsets).ok();
        if same_subsets
            && cur.labels() == &labels
            && cur.annotations().get(OVER_CAPACITY_ANNOTATION) == over.as_ref()
        {
            return None;
        }
    }
    match over {
        Some(v) => annotations.insert(OVER_CAPACITY_ANNOTATION.into(), v),
        None => annotations.remove(OVER_CAPACITY_ANNOTATION),
    };
    match desired.trigger_time {
        Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.into(), rfc3339(t)),
        None => annotations.remove(TRIGGER_TIME_ANNOTATION),
    };
    Some(Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            resource_version: current.and_then(|c| c.metadata.resource_version.clone()),
            ..Default::default()
        },
        subsets: (!desired.subsets.is_empty()).then(|| desired.subsets.clone()),
    })
}

/// A timestamp as upstream writes annotation times (RFC 3339, seconds).
pub fn rfc3339(t: k8s_openapi::jiff::Timestamp) -> String {
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

struct Controller {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<Option<Duration>, EndpointsError> {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get(&ObjectRef::new(name).within(ns)) else {
            // The Service is gone: so are its Endpoints.
            return match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
                Err(e) => Err(e.into()),
            };
        };
        if !has_selector(&svc) || svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let desired = desired_endpoints(&svc, &self.pods.state());
        let current = self.endpoints.get(&ObjectRef::new(name).within(ns));
        let Some(ep) = endpoints_update(&svc, &desired, current.as_deref()) else {
            return Ok(None);
        };
        if current.is_some() {
            api.replace(name, &PostParams::default(), &ep).await?;
        } else {
            api.create(&PostParams::default(), &ep).await?;
        }
        tracing::debug!(service = key, "endpoints updated");
        Ok(None)
    }
}

/// Sets the controller up: Service, Pod and Endpoints changes queue the
/// Services they concern.
pub fn start(ctx: &Context) -> Running {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let queue = ctx.queue("endpoint");
    let q = queue.clone();
    services.on_change(move |c| q.add(key_of(&**c.object())));
    let q = queue.clone();
    let svc_store = services.store();
    pods.on_change(move |c| {
        for key in services_for_pod_change(&svc_store, c) {
            q.add(key);
        }
    });
    // A deleted or edited Endpoints is put back; one without a Service
    // (perhaps created before it) is not this controller's business.
    let q = queue.clone();
    let svc_store = services.store();
    endpoints.on_change(move |c| {
        let ep = c.object();
        let r = ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default());
        if svc_store.get(&r).is_some() {
            q.add(key_of(&**ep));
        }
    });
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        services: services.store(),
        pods: pods.store(),
        endpoints: endpoints.store(),
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ctrl.services.wait_until_ready().await;
        let _ = ctrl.pods.wait_until_ready().await;
        let _ = ctrl.endpoints.wait_until_ready().await;
        run_workers(queue, workers, move |key| {
            let c = ctrl.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

#[cfg(test)]
pub(crate) mod tests;

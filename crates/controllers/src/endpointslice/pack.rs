//! The slice reconciler (upstream's `reconciler.reconcileByAddressType`):
//! from the desired endpoints and the Service's current slices, the slices
//! to create, update and delete. Existing slices are kept where they still
//! fit (endpoints updated in place, stale ones dropped), new endpoints fill
//! slices already being updated first, then one unchanged slice with room
//! for all of them, then new slices; no slice ever holds more than `max`
//! endpoints and no endpoint appears twice. A Service with no endpoints at
//! all keeps one empty "placeholder" slice, like upstream.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::desired::{endpoint_key, ports_key, PortGroup};
use super::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, SERVICE_NAME_LABEL};
use crate::endpoints::{endpoints_labels, rfc3339, TRIGGER_TIME_ANNOTATION};
use crate::util::controller_ref_to;

/// What to write.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The labels every slice of `svc` carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = endpoints_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels
}

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

struct Ctx<'a> {
    svc: &'a Service,
    labels: BTreeMap<String, String>,
    trigger: Option<Timestamp>,
}

impl Ctx<'_> {
    fn meta_for(&self, base: Option<&EndpointSlice>) -> ObjectMeta {
        let mut meta = match base {
            Some(s) => s.metadata.clone(),
            None => ObjectMeta {
                generate_name: Some(format!("{}-", self.svc.name_any())),
                namespace: self.svc.namespace(),
                owner_references: Some(vec![controller_ref_to(self.svc)]),
                ..Default::default()
            },
        };
        meta.labels = Some(self.labels.clone());
        let ann = meta.annotations.get_or_insert_with(BTreeMap::new);
        match self.trigger {
            Some(t) => ann.insert(TRIGGER_TIME_ANNOTATION.into(), rfc3339(t)),
            None => ann.remove(TRIGGER_TIME_ANNOTATION),
        };
        if ann.is_empty() {
            meta.annotations = None;
        }
        meta
    }

    fn slice(
        &self,
        base: Option<&EndpointSlice>,
        ports: &[EndpointPort],
        endpoints: Vec<Endpoint>,
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: self.meta_for(base),
            address_type: "IPv4".into(),
            endpoints,
            ports: (!ports.is_empty()).then(|| ports.to_vec()),
        }
    }
}

/// Plans the writes that bring `existing` (the Service's slices) to
/// `desired`, with at most `max` endpoints per slice.
pub fn plan(
    svc: &Service,
    desired: &BTreeMap<String, PortGroup>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
    trigger: Option<Timestamp>,
) -> Plan {
    let max = max.max(1);
    let cx = Ctx {
        svc,
        labels: slice_labels(svc),
        trigger,
    };
    let mut existing: Vec<Arc<EndpointSlice>> = existing.to_vec();
    existing.sort_by_key(|s| s.name_any());
    let mut out = Plan::default();
    if desired.values().all(|g| g.endpoints.is_empty()) {
        return placeholder(&cx, existing);
    }
    let mut by_key: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        let key = ports_key(s.ports.as_deref().unwrap_or_default());
        by_key.entry(key).or_default().push(s);
    }
    for (key, group) in desired {
        let slices = by_key.remove(key).unwrap_or_default();
        pack_group(&cx, group, slices, max, &mut out);
    }
    // Port lists nobody serves any more.
    out.delete.extend(by_key.into_values().flatten());
    out
}

/// A Service without endpoints keeps exactly one empty slice.
fn placeholder(cx: &Ctx, existing: Vec<Arc<EndpointSlice>>) -> Plan {
    let mut out = Plan::default();
    let mut it = existing.into_iter();
    match it.next() {
        None => out.create.push(cx.slice(None, &[], vec![])),
        Some(first) => {
            if !first.endpoints.is_empty()
                || first.ports.as_ref().is_some_and(|p| !p.is_empty())
                || first.labels() != &cx.labels
            {
                out.update.push(cx.slice(Some(&first), &[], vec![]));
            }
        }
    }
    out.delete.extend(it);
    out
}

fn pack_group(
    cx: &Ctx,
    group: &PortGroup,
    slices: Vec<Arc<EndpointSlice>>,
    max: usize,
    out: &mut Plan,
) {
    let mut want: BTreeMap<String, &Endpoint> = group
        .endpoints
        .iter()
        .map(|e| (endpoint_key(e), e))
        .collect();
    // Desired endpoints not yet placed, in a stable order.
    let mut placed: HashSet<String> = HashSet::new();
    let mut to_update: Vec<(Arc<EndpointSlice>, Vec<Endpoint>)> = Vec::new();
    let mut unchanged: Vec<Arc<EndpointSlice>> = Vec::new();
    let mut to_delete: Vec<Arc<EndpointSlice>> = Vec::new();
    for s in slices {
        let mut kept = Vec::new();
        let mut changed = s.labels() != &cx.labels;
        for ep in &s.endpoints {
            let k = endpoint_key(ep);
            match want.get(&k) {
                Some(d) if !placed.contains(&k) && kept.len() < max => {
                    if !same(*d, ep) {
                        changed = true;
                    }
                    kept.push((*d).clone());
                    placed.insert(k);
                }
                _ => changed = true,
            }
        }
        if kept.is_empty() {
            to_delete.push(s);
        } else if changed {
            to_update.push((s, kept));
        } else {
            unchanged.push(s);
        }
    }
    want.retain(|k, _| !placed.contains(k));
    let mut remaining: Vec<Endpoint> = want.into_values().cloned().collect();
    // Fill the slices being written anyway, fullest first.
    to_update.sort_by_key(|u| std::cmp::Reverse(u.1.len()));
    for (_, eps) in to_update.iter_mut() {
        while eps.len() < max {
            let Some(e) = remaining.pop() else { break };
            eps.push(e);
        }
    }
    // Then one untouched slice with room for all that is left.
    if !remaining.is_empty() {
        if let Some(i) = unchanged
            .iter()
            .position(|s| s.endpoints.len() + remaining.len() <= max)
        {
            let s = unchanged.remove(i);
            let mut eps = s.endpoints.clone();
            eps.append(&mut remaining);
            to_update.push((s, eps));
        }
    }
    // Then new slices, recycling ones that would be deleted.
    while !remaining.is_empty() {
        let n = remaining.len().min(max);
        let chunk: Vec<Endpoint> = remaining.drain(..n).collect();
        match to_delete.pop() {
            Some(s) => to_update.push((s, chunk)),
            None => out.create.push(cx.slice(None, &group.ports, chunk)),
        }
    }
    for (s, mut eps) in to_update {
        eps.sort_by_key(endpoint_key);
        out.update.push(cx.slice(Some(&s), &group.ports, eps));
    }
    out.delete.extend(to_delete);
}

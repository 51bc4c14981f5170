//! Node IPAM: gives every Node a pod CIDR, like upstream
//! kube-controller-manager's range allocator (`--allocate-node-cidrs
//! --cluster-cidr --node-cidr-mask-size`).
//!
//! The cluster CIDR is cut into `/node_cidr_mask_size` subnets
//! ([`CidrSet`]). The controller watches all Nodes; only once the first
//! complete list is in does it allocate, so the podCIDRs of existing nodes
//! (after a restart, say) are occupied before anything is handed out. Each
//! node without `spec.podCIDR` gets the lowest free subnet through a JSON
//! merge patch of `spec.podCIDR` and `spec.podCIDRs`, conditional on the
//! node's resourceVersion: it lands on the node as last seen or not at all
//! (never on a node recreated under the same name). On a conflict the node
//! is re-read and patched again at once; up to [`MAX_IN_FLIGHT`] patches run
//! at the same time. A deleted node's subnet is freed. When a patch did not
//! land its subnet is freed and the node retried with backoff; when that
//! cannot be told (no answer), the subnet stays reserved for the node and is
//! sent again. Nodes whose podCIDR lies outside the cluster CIDR are left
//! alone; one that overlaps it without being one of its subnets keeps the
//! subnets it overlaps out of allocation.

mod cidrset;
mod state;

pub use cidrset::{CidrSet, CidrSetError, MAX_NODE_MASK, MAX_SUBNETS};

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use state::{pod_cidr_of, NodeView, PatchOutcome, PatchRequest, State};

/// How many node patches may be in flight at once.
pub const MAX_IN_FLIGHT: usize = 32;

/// How many times one reconcile patches a node that keeps changing (or
/// keeps failing) before it backs off.
const PATCH_ATTEMPTS: usize = 4;

/// The node IPAM controller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIpamConfig {
    /// The IPv4 range pod CIDRs are cut from (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// The prefix length of each node's pod CIDR (`--node-cidr-mask-size`).
    pub node_cidr_mask_size: u8,
}

impl Default for NodeIpamConfig {
    /// `10.128.0.0/11` in `/24`s: 8,192 node subnets of 254 pod addresses,
    /// clear of the default service CIDR `10.96.0.0/12`.
    fn default() -> Self {
        NodeIpamConfig {
            cluster_cidr: "10.128.0.0/11".into(),
            node_cidr_mask_size: 24,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeIpamError {
    #[error("invalid node IPAM configuration: {0}")]
    Config(#[from] CidrSetError),
    #[error("the node watch ended")]
    WatchEnded,
}

/// Runs the node IPAM controller until the node watch ends (it retries
/// errors with backoff, so in practice until the future is dropped).
/// Fails at once on an invalid configuration.
pub async fn run(client: Client, cfg: NodeIpamConfig) -> Result<(), NodeIpamError> {
    let set = CidrSet::new(&cfg.cluster_cidr, cfg.node_cidr_mask_size)?;
    tracing::info!(
        cluster_cidr = %set.cluster_cidr(),
        node_cidr_mask_size = set.node_mask(),
        subnets = set.capacity(),
        "node IPAM controller starting"
    );
    let mut state = State::new(set);
    let api: Api<Node> = Api::all(client);
    let mut events = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut patches: JoinSet<PatchOutcome> = JoinSet::new();
    // Which node and attempt each patch task is for (also when it panics).
    let mut running: HashMap<tokio::task::Id, (String, u64)> = HashMap::new();
    loop {
        while patches.len() < MAX_IN_FLIGHT {
            let Some(p) = state.next_patch(Instant::now()) else {
                break;
            };
            let key = (p.node.clone(), p.attempt);
            let span = tracing::info_span!("nodeipam_reconcile", node = %p.node, cidr = %p.cidr);
            let handle = patches.spawn(reconcile(api.clone(), p).instrument(span));
            running.insert(handle.id(), key);
        }
        let wakeup = state.next_wakeup();
        tokio::select! {
            ev = events.next() => match ev {
                None => return Err(NodeIpamError::WatchEnded),
                Some(Err(e)) => tracing::warn!(error = %e, "node watch failed; retrying"),
                Some(Ok(ev)) => on_event(&mut state, ev),
            },
            Some(done) = patches.join_next_with_id(), if !patches.is_empty() => {
                let (id, outcome) = match done {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::warn!(error = %e, "node patch task failed");
                        (e.id(), PatchOutcome::Unknown)
                    }
                };
                if let Some((node, attempt)) = running.remove(&id) {
                    state.on_patch_done(&node, attempt, outcome, Instant::now());
                }
            }
            _ = tokio::time::sleep_until(wakeup.unwrap_or_else(Instant::now)), if wakeup.is_some() => {
                state.pop_due(Instant::now());
            }
        }
    }
}

fn on_event(state: &mut State, ev: Event<Node>) {
    match ev {
        Event::Init => state.on_init(),
        Event::InitApply(n) | Event::Apply(n) => {
            if let Some(v) = NodeView::from_node(&n) {
                state.on_apply(v);
            }
        }
        Event::Delete(n) => {
            if let Some(name) = n.metadata.name.as_deref() {
                state.on_delete(name);
            }
        }
        Event::InitDone => {
            let first = !state.synced();
            state.on_init_done();
            if first {
                tracing::info!(
                    nodes = state.nodes(),
                    subnets_used = state.set().used(),
                    "node list synced; allocating pod CIDRs"
                );
            }
        }
    }
}

/// Patches one node's podCIDR, conditional on the resourceVersion last
/// seen, so the patch lands on that node incarnation or not at all. When it
/// fails, re-reads the node: done if it carries the subnet, given up if it
/// carries another or is a new incarnation, else patched again (up to
/// [`PATCH_ATTEMPTS`] times) with the fresh resourceVersion.
async fn reconcile(api: Api<Node>, p: PatchRequest) -> PatchOutcome {
    let mut rv = p.resource_version.clone();
    let mut uncertain = false;
    for _ in 0..PATCH_ATTEMPTS {
        let body = json!({
            "metadata": {"resourceVersion": rv},
            "spec": {"podCIDR": p.cidr, "podCIDRs": [p.cidr]},
        });
        match api
            .patch(&p.node, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::debug!("pod CIDR assigned");
                return PatchOutcome::Patched;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::debug!("node is gone");
                return PatchOutcome::NotFound;
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
                tracing::debug!(code = s.code, reason = %s.reason, "node changed meanwhile; re-reading it");
            }
            // The server answered: the patch was not applied.
            Err(kube::Error::Api(s)) => {
                tracing::warn!(code = s.code, reason = %s.reason, "patching the node failed; re-reading it");
            }
            // No answer: it may have been applied, or may be yet.
            Err(e) => {
                uncertain = true;
                tracing::warn!(error = %e, "patching the node failed; re-reading it");
            }
        }
        match api.get_opt(&p.node).await {
            Ok(None) => return PatchOutcome::NotFound,
            Ok(Some(n)) if n.metadata.uid.as_deref() != Some(p.uid.as_str()) => {
                return PatchOutcome::Failed
            }
            Ok(Some(n)) => match pod_cidr_of(&n) {
                Some(c) if c == p.cidr => return PatchOutcome::Patched,
                Some(_) => return PatchOutcome::Taken,
                None => rv = n.metadata.resource_version.unwrap_or_default(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the node failed");
                return PatchOutcome::Unknown;
            }
        }
    }
    if uncertain {
        PatchOutcome::Unknown
    } else {
        PatchOutcome::Failed
    }
}

//! The garbage collector's workers: they read the graph, ask the API server
//! what the graph cannot tell, let [`super::decide`] choose, and carry the
//! choice out (upstream's `attemptToDeleteItem` and
//! `attemptToOrphanWorker`).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::Api;
use serde_json::{json, Value};

use super::decide::{
    self, foreground_step, owner_from_graph, owner_from_live, ForegroundStep, ItemFacts, LiveOwner,
    OwnerState, Plan, Policy,
};
use super::graph::{Identity, FOREGROUND, ORPHAN};
use super::{Gc, GcError};

type Outcome = Result<Option<Duration>, GcError>;

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn api_err(what: &Identity, e: kube::Error) -> GcError {
    GcError::Api(format!("{}/{} {}", what.kind, what.name, what.uid), e)
}

/// The API of the object `id` is.
async fn api_of(gc: &Gc, id: &Identity) -> Result<Api<DynamicObject>, GcError> {
    let known = gc.resolver.resolve(&id.api_version, &id.kind).await?;
    Ok(gc.resolver.api(&known, &id.namespace))
}

/// The object's live metadata, if it still exists with the same uid.
async fn latest(
    gc: &Gc,
    id: &Identity,
) -> Result<Option<PartialObjectMeta<DynamicObject>>, GcError> {
    let api = api_of(gc, id).await?;
    let m = api
        .get_metadata_opt(&id.name)
        .await
        .map_err(|e| api_err(id, e))?;
    Ok(m.filter(|m| m.metadata.uid.as_deref() == Some(id.uid.as_str())))
}

/// A merge patch of `metadata` guarded by the resourceVersion we read
/// (a conflict is retried with backoff). 404 means the object went: fine.
async fn patch_meta(gc: &Gc, id: &Identity, rv: Option<String>, mut meta: Value) -> Outcome {
    meta["resourceVersion"] = json!(rv);
    let api = api_of(gc, id).await?;
    match api
        .patch_metadata(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": meta})),
        )
        .await
    {
        Ok(_) => Ok(None),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(api_err(id, e)),
    }
}

/// `ownerReferences` as a merge patch value (an emptied list goes away, as
/// Go's omitempty drops it upstream).
fn refs_value(refs: &[OwnerReference]) -> Value {
    if refs.is_empty() {
        Value::Null
    } else {
        json!(refs)
    }
}

/// Removes `finalizer` from the live object `id`, if it still has it.
async fn remove_finalizer(gc: &Gc, id: &Identity, finalizer: &str) -> Outcome {
    let Some(m) = latest(gc, id).await? else {
        return Ok(None);
    };
    let fins = m.metadata.finalizers.clone().unwrap_or_default();
    let Some(left) = decide::without_finalizer(&fins, finalizer) else {
        return Ok(None);
    };
    tracing::info!(object = %id, finalizer, "removing finalizer");
    patch_meta(
        gc,
        id,
        m.metadata.resource_version,
        json!({"finalizers": left}),
    )
    .await
}

enum Step {
    Skip,
    Foreground(ForegroundStep, Identity),
    Check(Identity),
}

/// Looks at one uid from the attempt-to-delete queue.
pub async fn attempt_to_delete(gc: &Gc, uid: &str) -> Outcome {
    let step = gc.with_graph(|g| {
        let Some(n) = g.node(uid) else {
            return Step::Skip;
        };
        if !n.observed || (n.being_deleted && !n.deleting_dependents) {
            // Being deleted is a one-way trip: its dependents are looked at
            // when it is gone.
            return Step::Skip;
        }
        if n.deleting_dependents {
            return Step::Foreground(
                foreground_step(&g.blocking_dependents(uid)),
                n.identity.clone(),
            );
        }
        // Every owner known and solid: nothing to ask the API server.
        let all_solid = n
            .owners
            .iter()
            .all(|r| owner_from_graph(g, &n.identity, r) == Some(OwnerState::Solid));
        if all_solid {
            Step::Skip
        } else {
            Step::Check(n.identity.clone())
        }
    });
    match step {
        Step::Skip => Ok(None),
        Step::Foreground(ForegroundStep::Wait(blocking), _) => {
            for d in blocking {
                gc.attempt_to_delete.add(d);
            }
            Ok(None)
        }
        Step::Foreground(ForegroundStep::RemoveFinalizer, id) => {
            remove_finalizer(gc, &id, FOREGROUND).await
        }
        Step::Check(id) => check_dependent(gc, &id).await,
    }
}

/// Classifies the live object's owners and acts on the plan.
async fn check_dependent(gc: &Gc, id: &Identity) -> Outcome {
    let Some(m) = latest(gc, id).await? else {
        return Ok(None);
    };
    let refs = m.metadata.owner_references.clone().unwrap_or_default();
    if refs.is_empty() {
        return Ok(None);
    }
    let mut owners = Vec::with_capacity(refs.len());
    for r in &refs {
        let state = match gc.with_graph(|g| owner_from_graph(g, id, r)) {
            Some(s) => s,
            None => {
                let Some(s) = owner_live(gc, id, r).await? else {
                    return Ok(None);
                };
                s
            }
        };
        owners.push((r.clone(), state));
    }
    let facts = gc.with_graph(|g| {
        let deps = g.dependents(&id.uid);
        ItemFacts {
            finalizers: m.metadata.finalizers.clone().unwrap_or_default(),
            has_dependents: !deps.is_empty(),
            dependent_deleting_dependents: deps.iter().any(|d| d.deleting_dependents),
        }
    });
    let rv = m.metadata.resource_version.clone();
    match decide::plan(&owners, &facts) {
        Plan::Nothing => Ok(None),
        Plan::RemoveOwnerRefs(uids) => {
            tracing::info!(object = %id, owners = ?uids, "removing dangling owner references");
            let left = decide::without_owners(&refs, &uids);
            patch_meta(gc, id, rv, json!({"ownerReferences": refs_value(&left)})).await
        }
        Plan::Delete {
            policy,
            unblock_first,
        } => {
            if unblock_first {
                let unblocked = json!({"ownerReferences": decide::unblocked(&refs)});
                patch_meta(gc, id, rv, unblocked).await?;
            }
            tracing::info!(object = %id, ?policy, "deleting object whose owners are gone");
            delete(gc, id, policy).await
        }
    }
}

/// The owner's state from the API server, or `None` when the reference is
/// invalid (a cluster-scoped object naming a namespaced owner): upstream
/// leaves such objects alone rather than retry forever.
async fn owner_live(
    gc: &Gc,
    dep: &Identity,
    r: &OwnerReference,
) -> Result<Option<OwnerState>, GcError> {
    let known = gc.resolver.resolve(&r.api_version, &r.kind).await?;
    if dep.namespace.is_empty() && known.namespaced {
        tracing::info!(object = %dep, owner = %r.name, "cluster-scoped object refers to a namespaced owner; ignored");
        return Ok(None);
    }
    let api = gc.resolver.api(&known, &dep.namespace);
    let live = api
        .get_metadata_opt(&r.name)
        .await
        .map_err(|e| api_err(dep, e))?
        .map(|o| LiveOwner {
            uid: o.metadata.uid.unwrap_or_default(),
            being_deleted: o.metadata.deletion_timestamp.is_some(),
            finalizers: o.metadata.finalizers.unwrap_or_default(),
        });
    Ok(Some(owner_from_live(r, live.as_ref())))
}

/// Deletes `id` (guarded by its uid) with `policy`.
async fn delete(gc: &Gc, id: &Identity, policy: Policy) -> Outcome {
    let api = api_of(gc, id).await?;
    let dp = DeleteParams {
        propagation_policy: Some(match policy {
            Policy::Background => PropagationPolicy::Background,
            Policy::Foreground => PropagationPolicy::Foreground,
            Policy::Orphan => PropagationPolicy::Orphan,
        }),
        preconditions: Some(Preconditions {
            uid: Some(id.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&id.name, &dp).await {
        Ok(_) => Ok(None),
        // Gone already, or replaced by another object of that name.
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(None),
        Err(e) => Err(api_err(id, e)),
    }
}

/// Orphans the dependents of one owner being deleted with `orphan`, then
/// removes the finalizer.
pub async fn attempt_to_orphan(gc: &Gc, uid: &str) -> Outcome {
    let Some((owner, dependents)) = gc.with_graph(|g| {
        let n = g.node(uid).filter(|n| n.observed && n.orphaning)?;
        let deps: Vec<Identity> = g
            .dependents(uid)
            .iter()
            .map(|d| d.identity.clone())
            .collect();
        Some((n.identity.clone(), deps))
    }) else {
        return Ok(None);
    };
    for dep in &dependents {
        let Some(m) = latest(gc, dep).await? else {
            continue;
        };
        let refs = m.metadata.owner_references.clone().unwrap_or_default();
        if !refs.iter().any(|r| r.uid == uid) {
            continue;
        }
        let left = decide::without_owners(&refs, &[uid.to_string()]);
        patch_meta(
            gc,
            dep,
            m.metadata.resource_version.clone(),
            json!({"ownerReferences": refs_value(&left)}),
        )
        .await?;
    }
    tracing::info!(object = %owner, dependents = dependents.len(), "orphaned dependents");
    remove_finalizer(gc, &owner, ORPHAN).await
}

//! The ownership graph (upstream's `GraphBuilder` with its `uidToNode`):
//! every object the monitors see, by uid, with its owner references, its
//! deletion state and the uids of its dependents.
//!
//! [`Graph::apply`] folds one monitor event into the graph and returns what
//! it calls for: uids to look at on the attempt-to-delete or
//! attempt-to-orphan queue, and `OwnerRefInvalidNamespace` warnings. It is
//! pure, so the graph's rules are tested without an API server.
//!
//! An owner that a dependent names but no monitor has shown yet is a
//! *virtual* node: it only carries the dependents' links. Its dependents are
//! queued so a worker checks the owner with the API server; a virtual node
//! goes when its last dependent lets go of it.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The `orphan` finalizer (`propagationPolicy: Orphan`).
pub const ORPHAN: &str = "orphan";
/// The `foregroundDeletion` finalizer (`propagationPolicy: Foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";

/// Who an object is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    /// Empty when cluster-scoped.
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The group of the apiVersion (empty for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }
}

/// upstream's `objectReference.String()`, as events print it.
impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// The group of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// What a monitor reports about one object (metadata only).
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

impl ObjectInfo {
    fn has(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// One monitor event.
#[derive(Debug, Clone)]
pub enum GraphEvent {
    /// Added or updated.
    Upsert(ObjectInfo),
    /// Deleted (the last state seen).
    Delete(ObjectInfo),
}

/// What a graph change calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Look at this uid on the attempt-to-delete queue.
    AttemptToDelete(String),
    /// Orphan this owner's dependents (it is being deleted with `orphan`).
    AttemptToOrphan(String),
    /// The dependent names an owner that lives in another namespace.
    InvalidNamespace {
        dependent: Identity,
        owner: OwnerReference,
    },
}

/// One object in the graph.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects naming this one as an owner.
    pub dependents: BTreeSet<String>,
    /// Seen by a monitor (false: a virtual node, only named by dependents).
    pub observed: bool,
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Being deleted with the `orphan` finalizer.
    pub orphaning: bool,
}

impl Node {
    /// This node's reference to `owner_uid`, if it names it.
    pub fn owner_ref(&self, owner_uid: &str) -> Option<&OwnerReference> {
        self.owners.iter().find(|r| r.uid == owner_uid)
    }
}

/// The ownership graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

/// Whether a reference names the object `id` (same group, kind and name;
/// the version may differ).
pub fn ref_matches(r: &OwnerReference, id: &Identity) -> bool {
    r.uid == id.uid
        && r.kind == id.kind
        && r.name == id.name
        && group_of(&r.api_version) == id.group()
}

impl Graph {
    /// The node of `uid`.
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes (virtual ones included) the graph holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The observed dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The dependents of `uid` whose reference to it has
    /// `blockOwnerDeletion: true` (what foreground deletion waits for).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owner_ref(uid).is_some_and(blocks))
            .collect()
    }

    /// Folds one event into the graph; returns what it calls for.
    pub fn apply(&mut self, event: GraphEvent) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            GraphEvent::Upsert(info) => self.upsert(info, &mut fx),
            GraphEvent::Delete(info) => self.delete(&info, &mut fx),
        }
        fx
    }

    fn upsert(&mut self, info: ObjectInfo, fx: &mut Vec<Effect>) {
        let uid = info.identity.uid.clone();
        let deleting_dependents = info.being_deleted && info.has(FOREGROUND);
        let orphaning = info.being_deleted && info.has(ORPHAN);
        match self.nodes.get_mut(&uid) {
            Some(n) if n.observed => {
                let (was_orphaning, was_deleting_deps) = (n.orphaning, n.deleting_dependents);
                let old_owners = std::mem::replace(&mut n.owners, info.owners.clone());
                n.being_deleted = info.being_deleted;
                n.deleting_dependents = deleting_dependents;
                n.orphaning = orphaning;
                let (added, removed, unblocked) = diff_refs(&old_owners, &info.owners);
                for owner in unblocked {
                    if self.nodes.contains_key(&owner) {
                        fx.push(Effect::AttemptToDelete(owner));
                    }
                }
                self.remove_dependent_from_owners(&uid, &removed);
                self.add_dependent_to_owners(&info.identity, &added, fx);
                self.transitions(&uid, was_orphaning, was_deleting_deps, fx);
            }
            existing => {
                // New, or a virtual node now observed: keep its dependents,
                // and check those that named it by other coordinates.
                let dependents = existing
                    .map(|n| std::mem::take(&mut n.dependents))
                    .unwrap_or_default();
                for d in &dependents {
                    let Some(dep) = self.nodes.get(d) else {
                        continue;
                    };
                    let Some(r) = dep.owner_ref(&uid) else {
                        continue;
                    };
                    let ns = &info.identity.namespace;
                    if !ns.is_empty() && dep.identity.namespace != *ns {
                        fx.push(Effect::InvalidNamespace {
                            dependent: dep.identity.clone(),
                            owner: r.clone(),
                        });
                        fx.push(Effect::AttemptToDelete(d.clone()));
                    } else if !ref_matches(r, &info.identity) {
                        fx.push(Effect::AttemptToDelete(d.clone()));
                    }
                }
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: info.identity.clone(),
                        owners: info.owners.clone(),
                        dependents,
                        observed: true,
                        being_deleted: info.being_deleted,
                        deleting_dependents,
                        orphaning,
                    },
                );
                self.add_dependent_to_owners(&info.identity, &info.owners, fx);
                self.transitions(&uid, false, false, fx);
            }
        }
    }

    /// Orphaning or foreground deletion that starts with this change.
    fn transitions(
        &self,
        uid: &str,
        was_orphaning: bool,
        was_deleting_deps: bool,
        fx: &mut Vec<Effect>,
    ) {
        let Some(n) = self.nodes.get(uid) else { return };
        if n.orphaning && !was_orphaning {
            fx.push(Effect::AttemptToOrphan(uid.to_string()));
            return;
        }
        if n.deleting_dependents && !was_deleting_deps {
            for d in &n.dependents {
                fx.push(Effect::AttemptToDelete(d.clone()));
            }
            fx.push(Effect::AttemptToDelete(uid.to_string()));
        }
    }

    /// Links `dep` under each owner of `owners`, creating virtual owners;
    /// queues `dep` when an owner is unverified or looks wrong.
    fn add_dependent_to_owners(
        &mut self,
        dep: &Identity,
        owners: &[OwnerReference],
        fx: &mut Vec<Effect>,
    ) {
        let mut check = false;
        for r in owners {
            let owner = self.nodes.entry(r.uid.clone()).or_insert_with(|| Node {
                identity: Identity {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    namespace: dep.namespace.clone(),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                },
                ..Default::default()
            });
            owner.dependents.insert(dep.uid.clone());
            if !owner.observed {
                check = true;
            } else if !owner.identity.namespace.is_empty()
                && owner.identity.namespace != dep.namespace
            {
                fx.push(Effect::InvalidNamespace {
                    dependent: dep.clone(),
                    owner: r.clone(),
                });
                check = true;
            } else if !ref_matches(r, &owner.identity) {
                check = true;
            }
        }
        if check {
            fx.push(Effect::AttemptToDelete(dep.uid.clone()));
        }
    }

    fn remove_dependent_from_owners(&mut self, dep: &str, owners: &[OwnerReference]) {
        for r in owners {
            let Some(owner) = self.nodes.get_mut(&r.uid) else {
                continue;
            };
            owner.dependents.remove(dep);
            if !owner.observed && owner.dependents.is_empty() {
                self.nodes.remove(&r.uid);
            }
        }
    }

    fn delete(&mut self, info: &ObjectInfo, fx: &mut Vec<Effect>) {
        let uid = &info.identity.uid;
        let Some(n) = self.nodes.get_mut(uid) else {
            return;
        };
        if !n.observed {
            return;
        }
        let owners = std::mem::take(&mut n.owners);
        let dependents: Vec<String> = n.dependents.iter().cloned().collect();
        if dependents.is_empty() {
            self.nodes.remove(uid);
        } else {
            // Keep the dependents' links on a virtual node until they let go.
            *n = Node {
                identity: n.identity.clone(),
                dependents: std::mem::take(&mut n.dependents),
                ..Default::default()
            };
        }
        for r in &owners {
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                fx.push(Effect::AttemptToDelete(r.uid.clone()));
            }
        }
        self.remove_dependent_from_owners(uid, &owners);
        for d in dependents {
            fx.push(Effect::AttemptToDelete(d));
        }
    }
}

/// Owner references added, removed, and owners whose blocking reference
/// went away or stopped blocking (an owner waiting in foreground deletion
/// may go on).
fn diff_refs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (Vec<OwnerReference>, Vec<OwnerReference>, Vec<String>) {
    let added: Vec<OwnerReference> = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.uid == n.uid))
        .cloned()
        .collect();
    let removed: Vec<OwnerReference> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.uid == o.uid))
        .cloned()
        .collect();
    let mut unblocked: Vec<String> = removed
        .iter()
        .filter(|r| blocks(r))
        .map(|r| r.uid.clone())
        .collect();
    for o in old.iter().filter(|o| blocks(o)) {
        if new.iter().any(|n| n.uid == o.uid && !blocks(n)) {
            unblocked.push(o.uid.clone());
        }
    }
    (added, removed, unblocked)
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;

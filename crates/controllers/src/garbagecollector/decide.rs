//! The garbage collector's decisions, as pure functions of what the graph
//! and the API server said (upstream's `classifyReferences`,
//! `attemptToDeleteItem`, `processDeletingDependentsItem` and
//! `orphanDependents`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::{ref_matches, Graph, Identity, Node, FOREGROUND, ORPHAN};

/// What became of one owner a dependent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not waiting for its dependents.
    Solid,
    /// Gone (not found, or found with another uid).
    Dangling,
    /// Being deleted in the foreground: waiting for its dependents.
    Waiting,
}

/// The owner's state as the graph knows it, if the graph can tell: an
/// observed node with that uid, the coordinates the reference names, in the
/// dependent's namespace or cluster-scoped. Otherwise (not seen, virtual, or
/// named by other coordinates) the API server must be asked.
pub fn owner_from_graph(
    graph: &Graph,
    dependent: &Identity,
    r: &OwnerReference,
) -> Option<OwnerState> {
    let n = graph.node(&r.uid)?;
    let same_ns = n.identity.namespace.is_empty() || n.identity.namespace == dependent.namespace;
    if !n.observed || !same_ns || !ref_matches(r, &n.identity) {
        return None;
    }
    Some(if n.deleting_dependents {
        OwnerState::Waiting
    } else {
        OwnerState::Solid
    })
}

/// What the API server says of an owner: its live uid, deletion and
/// finalizers, or `None` when not found.
#[derive(Debug, Clone, Default)]
pub struct LiveOwner {
    pub uid: String,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

/// The owner's state from a live lookup by name (upstream's `isDangling`).
pub fn owner_from_live(r: &OwnerReference, live: Option<&LiveOwner>) -> OwnerState {
    match live {
        None => OwnerState::Dangling,
        Some(o) if o.uid != r.uid => OwnerState::Dangling,
        Some(o) if o.being_deleted && o.finalizers.iter().any(|f| f == FOREGROUND) => {
            OwnerState::Waiting
        }
        Some(_) => OwnerState::Solid,
    }
}

/// A deletion's propagation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Keep it as it is.
    Nothing,
    /// Some owner exists: only drop the references to these (gone or
    /// foreground-deleting) owners.
    RemoveOwnerRefs(Vec<String>),
    /// No owner holds it: delete it. With `unblock_first`, its own
    /// references stop blocking first (a dependent of it waits on it too,
    /// which could otherwise deadlock).
    Delete { policy: Policy, unblock_first: bool },
}

/// Facts about the dependent itself that the decision needs.
#[derive(Debug, Clone, Default)]
pub struct ItemFacts {
    pub finalizers: Vec<String>,
    /// It has dependents of its own.
    pub has_dependents: bool,
    /// One of those is itself deleting its dependents.
    pub dependent_deleting_dependents: bool,
}

/// upstream's `attemptToDeleteItem` decision over classified owners.
pub fn plan(owners: &[(OwnerReference, OwnerState)], item: &ItemFacts) -> Plan {
    if owners.is_empty() {
        return Plan::Nothing;
    }
    let of = |s: OwnerState| {
        owners
            .iter()
            .filter(move |(_, st)| *st == s)
            .map(|(r, _)| r)
    };
    let solid = of(OwnerState::Solid).count();
    let waiting = of(OwnerState::Waiting).count();
    if solid > 0 {
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if drop.is_empty() {
            Plan::Nothing
        } else {
            Plan::RemoveOwnerRefs(drop)
        };
    }
    if waiting > 0 && item.has_dependents {
        return Plan::Delete {
            policy: Policy::Foreground,
            unblock_first: item.dependent_deleting_dependents,
        };
    }
    let has = |f: &str| item.finalizers.iter().any(|x| x == f);
    let policy = if has(ORPHAN) {
        Policy::Orphan
    } else if has(FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    Plan::Delete {
        policy,
        unblock_first: false,
    }
}

/// The next step of an owner deleting its dependents in the foreground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForegroundStep {
    /// No blocking dependent is left: remove `foregroundDeletion`.
    RemoveFinalizer,
    /// Look at these blocking dependents (those not themselves deleting
    /// their own dependents) again.
    Wait(Vec<String>),
}

/// upstream's `processDeletingDependentsItem`.
pub fn foreground_step(blocking: &[&Node]) -> ForegroundStep {
    if blocking.is_empty() {
        return ForegroundStep::RemoveFinalizer;
    }
    ForegroundStep::Wait(
        blocking
            .iter()
            .filter(|d| !d.deleting_dependents)
            .map(|d| d.identity.uid.clone())
            .collect(),
    )
}

/// The references left once those to `uids` are dropped.
pub fn without_owners(refs: &[OwnerReference], uids: &[String]) -> Vec<OwnerReference> {
    refs.iter()
        .filter(|r| !uids.contains(&r.uid))
        .cloned()
        .collect()
}

/// The references with every `blockOwnerDeletion: true` turned false.
pub fn unblocked(refs: &[OwnerReference]) -> Vec<OwnerReference> {
    refs.iter()
        .cloned()
        .map(|mut r| {
            if r.block_owner_deletion == Some(true) {
                r.block_owner_deletion = Some(false);
            }
            r
        })
        .collect()
}

/// The finalizers left once `f` is removed, or `None` if it is not there.
pub fn without_finalizer(finalizers: &[String], f: &str) -> Option<Vec<String>> {
    finalizers
        .iter()
        .any(|x| x == f)
        .then(|| finalizers.iter().filter(|x| *x != f).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::super::graph::{GraphEvent, ObjectInfo};
    use super::*;

    fn id(kind: &str, ns: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn oref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block.then_some(true),
        }
    }

    fn facts() -> ItemFacts {
        ItemFacts::default()
    }

    #[test]
    fn all_owners_gone_deletes_in_the_background() {
        let owners = [(oref("a", false), OwnerState::Dangling)];
        assert_eq!(
            plan(&owners, &facts()),
            Plan::Delete {
                policy: Policy::Background,
                unblock_first: false
            }
        );
        // The dependent's own finalizers pick the policy, as upstream.
        let f = ItemFacts {
            finalizers: vec![ORPHAN.into()],
            ..facts()
        };
        assert_eq!(
            plan(&owners, &f),
            Plan::Delete {
                policy: Policy::Orphan,
                unblock_first: false
            }
        );
    }

    #[test]
    fn a_solid_owner_keeps_it_and_dangling_references_are_dropped() {
        let owners = [
            (oref("a", false), OwnerState::Solid),
            (oref("b", false), OwnerState::Dangling),
            (oref("c", true), OwnerState::Waiting),
        ];
        assert_eq!(
            plan(&owners, &facts()),
            Plan::RemoveOwnerRefs(vec!["b".into(), "c".into()])
        );
        assert_eq!(plan(&owners[..1], &facts()), Plan::Nothing);
        assert_eq!(plan(&[], &facts()), Plan::Nothing);
        let left = without_owners(
            &owners.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
            &["b".into(), "c".into()],
        );
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].uid, "a");
    }

    #[test]
    fn waiting_owner_deletes_a_dependent_with_dependents_in_the_foreground() {
        let owners = [(oref("a", true), OwnerState::Waiting)];
        // No dependents of its own: background.
        assert_eq!(
            plan(&owners, &facts()),
            Plan::Delete {
                policy: Policy::Background,
                unblock_first: false
            }
        );
        let f = ItemFacts {
            has_dependents: true,
            ..facts()
        };
        assert_eq!(
            plan(&owners, &f),
            Plan::Delete {
                policy: Policy::Foreground,
                unblock_first: false
            }
        );
        let f = ItemFacts {
            has_dependents: true,
            dependent_deleting_dependents: true,
            ..facts()
        };
        assert_eq!(
            plan(&owners, &f),
            Plan::Delete {
                policy: Policy::Foreground,
                unblock_first: true
            }
        );
        let u = unblocked(&[oref("a", true), oref("b", false)]);
        assert_eq!(u[0].block_owner_deletion, Some(false));
        assert_eq!(u[1].block_owner_deletion, None);
    }

    #[test]
    fn live_lookup_classifies_by_uid_and_finalizer() {
        let r = oref("a", false);
        assert_eq!(owner_from_live(&r, None), OwnerState::Dangling);
        let mut live = LiveOwner {
            uid: "other".into(),
            ..Default::default()
        };
        assert_eq!(
            owner_from_live(&r, Some(&live)),
            OwnerState::Dangling,
            "recreated under the same name"
        );
        live.uid = "a".into();
        assert_eq!(owner_from_live(&r, Some(&live)), OwnerState::Solid);
        live.being_deleted = true;
        assert_eq!(
            owner_from_live(&r, Some(&live)),
            OwnerState::Solid,
            "background/orphan deletion in progress"
        );
        live.finalizers = vec![FOREGROUND.into()];
        assert_eq!(owner_from_live(&r, Some(&live)), OwnerState::Waiting);
    }

    #[test]
    fn graph_answers_only_for_observed_matching_owners() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "n-a", "a");
        let dep = id("ConfigMap", "ns", "d", "d");
        // Unknown owner: ask the API server.
        assert_eq!(owner_from_graph(&g, &dep, &oref("a", false)), None);
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: dep.clone(),
            owners: vec![oref("a", false)],
            ..Default::default()
        }));
        // Virtual: still ask.
        assert_eq!(owner_from_graph(&g, &dep, &oref("a", false)), None);
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: owner.clone(),
            ..Default::default()
        }));
        assert_eq!(
            owner_from_graph(&g, &dep, &oref("a", false)),
            Some(OwnerState::Solid)
        );
        // Another namespace, or another name: ask.
        let elsewhere = id("ConfigMap", "other", "d", "d2");
        assert_eq!(owner_from_graph(&g, &elsewhere, &oref("a", false)), None);
        let mut renamed = oref("a", false);
        renamed.name = "x".into();
        assert_eq!(owner_from_graph(&g, &dep, &renamed), None);
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: owner,
            being_deleted: true,
            finalizers: vec![FOREGROUND.into()],
            ..Default::default()
        }));
        assert_eq!(
            owner_from_graph(&g, &dep, &oref("a", false)),
            Some(OwnerState::Waiting)
        );
    }

    #[test]
    fn foreground_waits_for_blocking_dependents_only() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "n-a", "a");
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: owner,
            ..Default::default()
        }));
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: id("ConfigMap", "ns", "free", "f"),
            owners: vec![oref("a", false)],
            ..Default::default()
        }));
        assert_eq!(
            foreground_step(&g.blocking_dependents("a")),
            ForegroundStep::RemoveFinalizer
        );
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: id("ConfigMap", "ns", "held", "h"),
            owners: vec![oref("a", true)],
            ..Default::default()
        }));
        assert_eq!(
            foreground_step(&g.blocking_dependents("a")),
            ForegroundStep::Wait(vec!["h".into()])
        );
        // A blocking dependent that is itself deleting its dependents is
        // waited for, not queued again.
        g.apply(GraphEvent::Upsert(ObjectInfo {
            identity: id("ConfigMap", "ns", "held", "h"),
            owners: vec![oref("a", true)],
            being_deleted: true,
            finalizers: vec![FOREGROUND.into()],
        }));
        assert_eq!(
            foreground_step(&g.blocking_dependents("a")),
            ForegroundStep::Wait(vec![])
        );
    }

    #[test]
    fn finalizer_removal() {
        let f = vec![ORPHAN.to_string(), "example.com/x".to_string()];
        assert_eq!(
            without_finalizer(&f, ORPHAN),
            Some(vec!["example.com/x".to_string()])
        );
        assert_eq!(without_finalizer(&f, FOREGROUND), None);
    }
}

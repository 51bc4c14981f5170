//! Unit tests of the ownership graph.

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

fn oref(owner: &Identity, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

fn obj(identity: Identity, owners: Vec<OwnerReference>) -> ObjectInfo {
    ObjectInfo {
        identity,
        owners,
        ..Default::default()
    }
}

fn deleting(mut o: ObjectInfo, finalizer: &str) -> ObjectInfo {
    o.being_deleted = true;
    o.finalizers = vec![finalizer.into()];
    o
}

#[test]
fn links_owners_and_dependents_in_any_order() {
    let owner = id("ConfigMap", "ns", "owner", "o");
    let dep = id("ConfigMap", "ns", "dep", "d");
    let mut g = Graph::default();
    // Dependent first: the owner is virtual and the dependent is queued
    // so a worker checks the owner with the API server.
    let fx = g.apply(GraphEvent::Upsert(obj(
        dep.clone(),
        vec![oref(&owner, false)],
    )));
    assert_eq!(fx, vec![Effect::AttemptToDelete("d".into())]);
    assert!(!g.node("o").unwrap().observed);
    // The owner shows up: it keeps the link, nothing to do.
    let fx = g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    assert!(fx.is_empty(), "{fx:?}");
    assert!(g.node("o").unwrap().observed);
    assert_eq!(g.dependents("o").len(), 1);
    // A second dependent with the owner observed: not queued.
    let dep2 = id("Pod", "ns", "p", "d2");
    let fx = g.apply(GraphEvent::Upsert(obj(dep2, vec![oref(&owner, true)])));
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(g.blocking_dependents("o").len(), 1);
    assert_eq!(g.dependents("o").len(), 2);
}

#[test]
fn deleting_an_owner_queues_its_dependents() {
    let owner = id("ConfigMap", "ns", "owner", "o");
    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    g.apply(GraphEvent::Upsert(obj(
        id("ConfigMap", "ns", "a", "a"),
        vec![oref(&owner, false)],
    )));
    g.apply(GraphEvent::Upsert(obj(
        id("ConfigMap", "ns", "b", "b"),
        vec![oref(&owner, false)],
    )));
    let mut fx = g.apply(GraphEvent::Delete(obj(owner, vec![])));
    fx.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        fx,
        vec![
            Effect::AttemptToDelete("a".into()),
            Effect::AttemptToDelete("b".into())
        ]
    );
    // The owner stays as a virtual node holding the links.
    assert!(!g.node("o").unwrap().observed);
    // When the dependents go, so does the virtual owner.
    g.apply(GraphEvent::Delete(obj(
        id("ConfigMap", "ns", "a", "a"),
        vec![],
    )));
    assert!(g.node("o").is_some());
    let b = obj(
        id("ConfigMap", "ns", "b", "b"),
        vec![oref(&id("ConfigMap", "ns", "owner", "o"), false)],
    );
    g.apply(GraphEvent::Delete(b));
    assert!(g.node("o").is_none());
    assert!(g.is_empty());
}

#[test]
fn orphan_and_foreground_start_once() {
    let owner = id("ConfigMap", "ns", "owner", "o");
    let dep = id("ConfigMap", "ns", "dep", "d");
    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    g.apply(GraphEvent::Upsert(obj(
        dep.clone(),
        vec![oref(&owner, true)],
    )));
    let orphan = deleting(obj(owner.clone(), vec![]), ORPHAN);
    assert_eq!(
        g.apply(GraphEvent::Upsert(orphan.clone())),
        vec![Effect::AttemptToOrphan("o".into())]
    );
    // The same state again (a resync) does not start it again.
    assert!(g.apply(GraphEvent::Upsert(orphan)).is_empty());

    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    g.apply(GraphEvent::Upsert(obj(
        dep.clone(),
        vec![oref(&owner, true)],
    )));
    let fg = deleting(obj(owner.clone(), vec![]), FOREGROUND);
    assert_eq!(
        g.apply(GraphEvent::Upsert(fg.clone())),
        vec![
            Effect::AttemptToDelete("d".into()),
            Effect::AttemptToDelete("o".into())
        ]
    );
    assert!(g.node("o").unwrap().deleting_dependents);
    assert!(g.apply(GraphEvent::Upsert(fg)).is_empty());
    // The blocking dependent goes: the waiting owner is queued.
    assert_eq!(
        g.apply(GraphEvent::Delete(obj(dep, vec![oref(&owner, true)]))),
        vec![Effect::AttemptToDelete("o".into())]
    );
    assert!(g.blocking_dependents("o").is_empty());
}

#[test]
fn an_object_first_seen_while_being_deleted_starts_its_finalizer_work() {
    let owner = id("ConfigMap", "ns", "owner", "o");
    let mut g = Graph::default();
    assert_eq!(
        g.apply(GraphEvent::Upsert(deleting(obj(owner, vec![]), ORPHAN))),
        vec![Effect::AttemptToOrphan("o".into())]
    );
}

#[test]
fn unblocking_a_reference_queues_the_waiting_owner() {
    let owner = id("ConfigMap", "ns", "owner", "o");
    let dep = id("ConfigMap", "ns", "dep", "d");
    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    g.apply(GraphEvent::Upsert(obj(
        dep.clone(),
        vec![oref(&owner, true)],
    )));
    assert_eq!(
        g.apply(GraphEvent::Upsert(obj(
            dep.clone(),
            vec![oref(&owner, false)]
        ))),
        vec![Effect::AttemptToDelete("o".into())]
    );
    assert!(g.blocking_dependents("o").is_empty());
    // Dropping the reference unlinks it.
    assert!(g.apply(GraphEvent::Upsert(obj(dep, vec![]))).is_empty());
    assert!(g.dependents("o").is_empty());
}

#[test]
fn cross_namespace_owner_is_reported() {
    let owner = id("ConfigMap", "a", "owner", "o");
    let dep = id("ConfigMap", "b", "dep", "d");
    let r = oref(&owner, false);
    // Owner seen first.
    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(owner.clone(), vec![])));
    let fx = g.apply(GraphEvent::Upsert(obj(dep.clone(), vec![r.clone()])));
    assert_eq!(
        fx,
        vec![
            Effect::InvalidNamespace {
                dependent: dep.clone(),
                owner: r.clone()
            },
            Effect::AttemptToDelete("d".into())
        ]
    );
    // Dependent seen first.
    let mut g = Graph::default();
    g.apply(GraphEvent::Upsert(obj(dep.clone(), vec![r.clone()])));
    let fx = g.apply(GraphEvent::Upsert(obj(owner, vec![])));
    assert_eq!(
        fx,
        vec![
            Effect::InvalidNamespace {
                dependent: dep,
                owner: r
            },
            Effect::AttemptToDelete("d".into())
        ]
    );
    // A cluster-scoped owner may own objects in any namespace.
    let mut g = Graph::default();
    let ns_owner = id("Namespace", "", "x", "n");
    g.apply(GraphEvent::Upsert(obj(ns_owner.clone(), vec![])));
    let fx = g.apply(GraphEvent::Upsert(obj(
        id("ConfigMap", "b", "c", "c"),
        vec![oref(&ns_owner, false)],
    )));
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn identity_prints_like_upstream() {
    let mut i = id("ConfigMap", "ns", "owner", "u1");
    assert_eq!(
        i.to_string(),
        "[v1/ConfigMap, namespace: ns, name: owner, uid: u1]"
    );
    i.api_version = "apps/v1".into();
    assert_eq!(i.group(), "apps");
    let mut r = oref(&i, false);
    assert!(ref_matches(&r, &i));
    r.api_version = "apps/v1beta2".into();
    assert!(ref_matches(&r, &i), "versions may differ");
    r.name = "other".into();
    assert!(!ref_matches(&r, &i));
}

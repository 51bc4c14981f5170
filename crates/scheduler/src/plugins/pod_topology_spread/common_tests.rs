//! Unit tests of PodTopologySpread's default selector: Services,
//! ReplicaSets, StatefulSets and ReplicationControllers.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::ObjectMeta;

use super::super::system_default_constraints;
use super::super::test_util::*;
use super::*;
use crate::testing::{info, pod};

#[test]
fn default_selector_merges_services_and_the_controlling_replica_set() {
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-rs".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            selector: LabelSelector {
                match_labels: Some(map(&[("app", "web"), ("hash", "h1")])),
                match_expressions: None,
            },
            ..Default::default()
        }),
        status: None,
    };
    let owned = |controller: Option<bool>, kind: &str| {
        let mut p = pod("p")
            .label("app", "web")
            .label("hash", "h1")
            .label("tier", "fe")
            .build();
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: "web-rs".into(),
            uid: "rs-uid".into(),
            controller,
            ..Default::default()
        }]);
        info(p)
    };
    let tier = service("fe", "default", Some(&[("tier", "fe")]));
    let listers = handle(vec![tier], vec![rs]).listers;
    let sel = default_selector(&owned(Some(true), "ReplicaSet"), &listers);
    let labels = |kv: &[(&str, &str)]| map(kv);
    assert!(sel.matches(&labels(&[("app", "web"), ("hash", "h1"), ("tier", "fe")])));
    assert!(
        !sel.matches(&labels(&[("app", "web"), ("hash", "h1")])),
        "service's tier"
    );
    assert!(
        !sel.matches(&labels(&[("tier", "fe"), ("app", "web")])),
        "rs's hash"
    );
    // Not the controller, or an unknown kind: only the Service.
    for p in [owned(None, "ReplicaSet"), owned(Some(true), "Deployment")] {
        let sel = default_selector(&p, &listers);
        assert!(sel.matches(&labels(&[("tier", "fe")])));
    }
    // A controller missing from the listers adds nothing.
    let empty = handle(vec![], vec![]).listers;
    assert!(default_selector(&owned(Some(true), "ReplicaSet"), &empty).is_empty());
    // The ReplicaSet alone selects the pods of the set.
    let listers = handle(
        vec![],
        vec![ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-rs".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "web")])),
                    match_expressions: None,
                },
                ..Default::default()
            }),
            status: None,
        }],
    )
    .listers;
    let pl = PodTopologySpread {
        default_constraints: system_default_constraints(),
        system_defaulted: true,
        listers,
    };
    let s = defaults_snapshot();
    let mut p = (*owned(Some(true), "ReplicaSet").pod).clone();
    p.metadata.labels = Some(map(&[("app", "web")]));
    assert_eq!(
        run_score(&pl, &p, &s, None).map(|r| r.0),
        Some(vec![13, 9, 9, 4])
    );
}

#[test]
fn default_selector_uses_stateful_sets_and_replication_controllers() {
    use crate::listers::Lists;
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
    use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerSpec};
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let ss = StatefulSet {
        metadata: meta("db"),
        spec: Some(StatefulSetSpec {
            selector: LabelSelector {
                match_labels: Some(map(&[("app", "db")])),
                match_expressions: None,
            },
            ..Default::default()
        }),
        status: None,
    };
    let rc = ReplicationController {
        metadata: meta("legacy"),
        spec: Some(ReplicationControllerSpec {
            selector: Some(map(&[("app", "legacy")])),
            ..Default::default()
        }),
        status: None,
    };
    let listers = Listers::from_lists(Lists {
        stateful_sets: vec![ss],
        replication_controllers: vec![rc],
        ..Default::default()
    });
    let owned = |api_version: &str, kind: &str, name: &str, app: &str| {
        let mut p = pod("p").label("app", app).build();
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "owner".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        info(p)
    };
    let sel = default_selector(&owned("apps/v1", "StatefulSet", "db", "db"), &listers);
    assert!(sel.matches(&map(&[("app", "db")])));
    assert!(!sel.matches(&map(&[("app", "web")])));
    let sel = default_selector(
        &owned("v1", "ReplicationController", "legacy", "legacy"),
        &listers,
    );
    assert!(sel.matches(&map(&[("app", "legacy")])));
    assert!(!sel.matches(&map(&[("app", "db")])));
    // Another API version, or another namespace: not found.
    let other_version = owned("apps/v1beta2", "StatefulSet", "db", "db");
    assert!(default_selector(&other_version, &listers).is_empty());
    let mut elsewhere = (*owned("apps/v1", "StatefulSet", "db", "db").pod).clone();
    elsewhere.metadata.namespace = Some("other".into());
    assert!(default_selector(&info(elsewhere), &listers).is_empty());
}

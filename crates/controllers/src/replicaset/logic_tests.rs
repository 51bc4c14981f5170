use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{
    ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn rs(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("rs-uid".into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(
                        [
                            ("app".to_string(), "web".to_string()),
                            ("tier".to_string(), "fe".to_string()),
                        ]
                        .into(),
                    ),
                    annotations: Some([("a".to_string(), "b".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

struct P {
    name: &'static str,
    node: Option<&'static str>,
    phase: &'static str,
    ready_since: Option<i64>,
    created: i64,
    restarts: i32,
    cost: Option<i32>,
    owner: Option<&'static str>,
    labels: &'static [(&'static str, &'static str)],
}

impl Default for P {
    fn default() -> Self {
        P {
            name: "p",
            node: Some("n1"),
            phase: "Running",
            ready_since: Some(100),
            created: 50,
            restarts: 0,
            cost: None,
            owner: Some("rs-uid"),
            labels: &[("app", "web"), ("tier", "fe")],
        }
    }
}

fn pod(p: P) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(p.name.into()),
            namespace: Some("ns".into()),
            creation_timestamp: Some(Time(at(p.created))),
            labels: Some(
                p.labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: p
                .cost
                .map(|c| [(POD_DELETION_COST.to_string(), c.to_string())].into()),
            owner_references: p.owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    kind: "ReplicaSet".into(),
                    name: "x".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: p.node.map(String::from),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: p.ready_since.map(|t| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(t))),
                    ..Default::default()
                }]
            }),
            container_statuses: Some(vec![ContainerStatus {
                restart_count: p.restarts,
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

#[test]
fn claim_adopts_orphans_and_releases_mismatches() {
    let r = rs(3);
    let owned = pod(P {
        name: "owned",
        ..Default::default()
    });
    let orphan = pod(P {
        name: "orphan",
        owner: None,
        ..Default::default()
    });
    let foreign = pod(P {
        name: "foreign",
        owner: Some("other"),
        ..Default::default()
    });
    let moved = pod(P {
        name: "moved",
        labels: &[("app", "other")],
        ..Default::default()
    });
    let stranger = pod(P {
        name: "stranger",
        owner: None,
        labels: &[("app", "other")],
        ..Default::default()
    });
    let mut dying = pod(P {
        name: "dying",
        owner: None,
        ..Default::default()
    });
    dying.metadata.deletion_timestamp = Some(Time(at(1)));
    let all = [&owned, &orphan, &foreign, &moved, &stranger, &dying];
    let c = claim(&r, r.spec.as_ref().map(|s| &s.selector), all);
    assert_eq!(names(&c.owned), ["owned"]);
    assert_eq!(names(&c.adopt), ["orphan"]);
    assert_eq!(names(&c.release), ["moved"]);
    // A ReplicaSet being deleted adopts nothing.
    let mut gone = rs(3);
    gone.metadata.deletion_timestamp = Some(Time(at(1)));
    let c = claim(&gone, gone.spec.as_ref().map(|s| &s.selector), all);
    assert!(c.adopt.is_empty());
}

#[test]
fn deletion_order_follows_upstream_ranking() {
    let unassigned = pod(P {
        name: "unassigned",
        node: None,
        phase: "Pending",
        ready_since: None,
        ..Default::default()
    });
    let pending = pod(P {
        name: "pending",
        phase: "Pending",
        ready_since: None,
        ..Default::default()
    });
    let unknown = pod(P {
        name: "unknown",
        phase: "Unknown",
        ready_since: None,
        ..Default::default()
    });
    let not_ready = pod(P {
        name: "not-ready",
        ready_since: None,
        ..Default::default()
    });
    let cheap = pod(P {
        name: "cheap",
        cost: Some(-10),
        ..Default::default()
    });
    let crowded = pod(P {
        name: "crowded",
        node: Some("busy"),
        ..Default::default()
    });
    let recently_ready = pod(P {
        name: "recently-ready",
        node: Some("n2"),
        ready_since: Some(200),
        ..Default::default()
    });
    let restarted = pod(P {
        name: "restarted",
        node: Some("n3"),
        restarts: 5,
        ..Default::default()
    });
    let newer = pod(P {
        name: "newer",
        node: Some("n4"),
        created: 60,
        ..Default::default()
    });
    let oldest = pod(P {
        name: "oldest",
        node: Some("n5"),
        ..Default::default()
    });
    let pods = [
        &oldest,
        &newer,
        &restarted,
        &recently_ready,
        &crowded,
        &cheap,
        &not_ready,
        &unknown,
        &pending,
        &unassigned,
    ];
    // "busy" hosts two related pods, every other node one.
    let sibling = pod(P {
        name: "sibling",
        node: Some("busy"),
        ..Default::default()
    });
    let mut related: Vec<&Pod> = pods.to_vec();
    related.push(&sibling);
    let order = pods_to_delete(&pods, &related, pods.len());
    assert_eq!(
        names(&order),
        [
            "unassigned",
            "pending",
            "unknown",
            "not-ready",
            "cheap",
            "crowded",
            "recently-ready",
            "restarted",
            "newer",
            "oldest"
        ]
    );
    assert_eq!(
        names(&pods_to_delete(&pods, &related, 2)),
        ["unassigned", "pending"]
    );
}

#[tokio::test]
async fn slow_start_batches_double_and_stop_at_first_error() {
    let calls = AtomicUsize::new(0);
    let (ok, err) = slow_start_batch(10, 1, || {
        calls.fetch_add(1, AtomicOrdering::SeqCst);
        async { Ok::<(), ()>(()) }
    })
    .await;
    assert_eq!((ok, err), (10, None));
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 10);

    // Batches 1, 2, 4: the 4th call overall fails; that batch completes,
    // nothing after it starts.
    let calls = AtomicUsize::new(0);
    let (ok, err) = slow_start_batch(10, 1, || {
        let n = calls.fetch_add(1, AtomicOrdering::SeqCst);
        async move {
            if n == 3 {
                Err("quota")
            } else {
                Ok(())
            }
        }
    })
    .await;
    assert_eq!((ok, err), (6, Some("quota")));
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 7);
}

#[test]
fn pods_come_from_the_template_with_a_controller_ref() {
    let p = pod_from_template(&rs(1));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(p.labels().get("tier").map(String::as_str), Some("fe"));
    assert_eq!(p.annotations().get("a").map(String::as_str), Some("b"));
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            r.kind.as_str(),
            r.name.as_str(),
            r.uid.as_str(),
            r.controller
        ),
        ("ReplicaSet", "web", "rs-uid", Some(true))
    );
}

#[test]
fn status_counts_and_replica_failure_condition() {
    let mut r = rs(3);
    r.spec.as_mut().unwrap().min_ready_seconds = Some(10);
    let available = pod(P {
        name: "a",
        ready_since: Some(100),
        ..Default::default()
    });
    let waiting = pod(P {
        name: "b",
        ready_since: Some(105),
        labels: &[("app", "web")],
        ..Default::default()
    });
    let pods = [&available, &waiting];
    let s = compute_status(
        &r,
        &pods,
        Some("pods is forbidden: exceeded quota"),
        at(112),
    );
    assert_eq!(s.replicas, 2);
    assert_eq!(s.fully_labeled_replicas, Some(1));
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(s.available_replicas, Some(1));
    let c = &s.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.reason.as_deref(), c.message.as_deref()),
        (
            "ReplicaFailure",
            Some("FailedCreate"),
            Some("pods is forbidden: exceeded quota")
        )
    );
    assert_eq!(next_availability(&pods, 10, at(112)), Some(3));
    // Success clears the condition.
    r.status = Some(s);
    let s = compute_status(&r, &pods, None, at(120));
    assert!(s.conditions.is_none());
    assert_eq!(s.available_replicas, Some(2));
    assert_eq!(next_availability(&pods, 10, at(120)), None);
}

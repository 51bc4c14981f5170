//! Unit tests of the StatefulSet controller's pure decisions.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetOrdinals, StatefulSetSpec,
    StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::plan::*;

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "www".into(),
                    ..Default::default()
                },
                Volume {
                    name: "cache".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
    }
}

fn set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("sts-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            template: template("v2"),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("www".into()),
                    ..Default::default()
                },
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_partition(mut s: StatefulSet, p: i32) -> StatefulSet {
    s.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(p),
            max_unavailable: None,
        }),
    });
    s
}

fn parallel(mut s: StatefulSet) -> StatefulSet {
    s.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
    s
}

struct Fixture {
    old: PodTemplateSpec,
    new: PodTemplateSpec,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            old: template("v1"),
            new: template("v2"),
        }
    }
    fn revs(&self) -> Revisions<'_> {
        Revisions {
            current: "web-old",
            current_template: &self.old,
            update: "web-new",
            update_template: &self.new,
        }
    }
}

/// A pod of `s` at `ordinal` and `revision`, Running and Ready or not.
fn pod(s: &StatefulSet, ordinal: i32, revision: &str, ready: bool) -> Arc<Pod> {
    let mut p = new_pod(s, &template("x"), ordinal, revision);
    p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(Timestamp::from_second(100).unwrap())),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(p)
}

fn run(s: &StatefulSet, pods: &[Arc<Pod>]) -> Plan {
    let f = Fixture::new();
    plan(s, &f.revs(), pods, Timestamp::from_second(1000).unwrap())
}

/// The actions as short strings: `+web-0@rev`, `-web-2`, `~web-1`.
fn acts(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| match a {
            Action::Create(pod) => format!("+{}@{}", pod.name_any(), pod.labels()[REVISION_LABEL]),
            Action::Delete { pod, .. } => format!("-{pod}"),
            Action::Relabel { pod, .. } => format!("~{pod}"),
        })
        .collect()
}

#[test]
fn ordinals_and_names() {
    assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
    assert_eq!(parent_and_ordinal("my-db-0"), Some(("my-db", 0)));
    assert_eq!(parent_and_ordinal("web-"), None);
    assert_eq!(parent_and_ordinal("web-x1"), None);
    assert_eq!(parent_and_ordinal("web"), None);
    assert_eq!(claim_name("www", "web", 3), "www-web-3");
}

#[test]
fn pods_get_their_identity_and_claims() {
    let s = set(3);
    let p = new_pod(&s, &template("v1"), 2, "web-abc");
    assert_eq!(p.name_any(), "web-2");
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    let l = p.labels();
    assert_eq!(l[POD_NAME_LABEL], "web-2");
    assert_eq!(l[POD_INDEX_LABEL], "2");
    assert_eq!(l[REVISION_LABEL], "web-abc");
    assert_eq!(l["app"], "web");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    // The claim's volume replaces the template's volume of the same name
    // and comes first.
    let vols = spec.volumes.as_ref().unwrap();
    assert_eq!(vols.len(), 2);
    assert_eq!(vols[0].name, "www");
    assert_eq!(
        vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-2"
    );
    assert_eq!(vols[1].name, "cache");
    let claims = claims_for(&s, 2);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].1.name_any(), "www-web-2");
    assert_eq!(claims[0].1.labels()["app"], "web");
    assert_eq!(
        controller_ref_kind(&p),
        Some(("StatefulSet".to_string(), "web".to_string()))
    );
}

fn controller_ref_kind(p: &Pod) -> Option<(String, String)> {
    let r = crate::util::controller_of(p)?;
    Some((r.kind.clone(), r.name.clone()))
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_in_order() {
    let s = set(3);
    assert_eq!(acts(&run(&s, &[])), vec!["+web-0@web-new"]);
    // web-0 not ready: nothing more.
    let pods = vec![pod(&s, 0, "web-new", false)];
    assert!(run(&s, &pods).actions.is_empty());
    let pods = vec![pod(&s, 0, "web-new", true)];
    assert_eq!(acts(&run(&s, &pods)), vec!["+web-1@web-new"]);
    // A gap is filled first, then the next.
    let pods = vec![pod(&s, 0, "web-new", true), pod(&s, 2, "web-new", true)];
    assert_eq!(acts(&run(&s, &pods)), vec!["+web-1@web-new"]);
    // ordinals.start shifts the names.
    let mut shifted = set(2);
    shifted.spec.as_mut().unwrap().ordinals = Some(StatefulSetOrdinals { start: Some(5) });
    assert_eq!(acts(&run(&shifted, &[])), vec!["+web-5@web-new"]);
}

#[test]
fn parallel_creates_and_deletes_everything_at_once() {
    let s = parallel(set(3));
    assert_eq!(
        acts(&run(&s, &[])),
        vec!["+web-0@web-new", "+web-1@web-new", "+web-2@web-new"]
    );
    let s = parallel(set(1));
    let pods: Vec<_> = (0..3).map(|i| pod(&s, i, "web-new", false)).collect();
    assert_eq!(acts(&run(&s, &pods)), vec!["-web-2", "-web-1"]);
}

#[test]
fn ordered_scale_down_removes_the_highest_ordinal_first() {
    let s = set(1);
    let pods: Vec<_> = (0..3).map(|i| pod(&s, i, "web-new", true)).collect();
    assert_eq!(acts(&run(&s, &pods)), vec!["-web-2"]);
    // An unhealthy lower replica blocks scaling down.
    let pods = vec![
        pod(&s, 0, "web-new", false),
        pod(&s, 1, "web-new", true),
        pod(&s, 2, "web-new", true),
    ];
    assert!(run(&s, &pods).actions.is_empty());
    // The first unhealthy pod itself may go.
    let pods = vec![
        pod(&s, 0, "web-new", true),
        pod(&s, 1, "web-new", true),
        pod(&s, 2, "web-new", false),
    ];
    assert_eq!(acts(&run(&s, &pods)), vec!["-web-2"]);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let s = with_partition(set(3), 2);
    let old: Vec<_> = (0..3).map(|i| pod(&s, i, "web-old", true)).collect();
    let p = run(&s, &old);
    assert_eq!(acts(&p), vec!["-web-2"]);
    assert_eq!(p.status.current_replicas, Some(2));
    // web-2 recreated at the update revision: done (partition 2).
    let mut pods = old[..2].to_vec();
    pods.push(pod(&s, 2, "web-new", true));
    let p = run(&s, &pods);
    assert!(p.actions.is_empty());
    assert_eq!(p.status.updated_replicas, Some(1));
    assert_eq!(p.status.current_revision.as_deref(), Some("web-old"));
    // Partition 0: next is web-1, only once web-2 is healthy.
    let s0 = with_partition(set(3), 0);
    assert_eq!(acts(&run(&s0, &pods)), vec!["-web-1"]);
    let mut unready = old[..2].to_vec();
    unready.push(pod(&s0, 2, "web-new", false));
    assert!(run(&s0, &unready).actions.is_empty());
    // A missing pod below the partition is recreated at the current
    // revision, above it at the update revision.
    let p = run(&s, &[pod(&s, 0, "web-old", true)]);
    assert_eq!(acts(&p), vec!["+web-1@web-old"]);
    let p = run(&s, &old[..2]);
    assert_eq!(acts(&p), vec!["+web-2@web-new"]);
    // OnDelete never deletes for an update.
    let mut od = set(3);
    od.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    assert!(run(&od, &old).actions.is_empty());
}

#[test]
fn the_update_revision_becomes_current_once_all_pods_are_updated_and_ready() {
    let s = with_partition(set(2), 0);
    let pods: Vec<_> = (0..2).map(|i| pod(&s, i, "web-new", true)).collect();
    let p = run(&s, &pods);
    assert_eq!(p.status.current_revision.as_deref(), Some("web-new"));
    assert_eq!(p.status.update_revision.as_deref(), Some("web-new"));
    assert_eq!(p.status.current_replicas, Some(2));
    assert_eq!(p.status.replicas, 2);
    assert_eq!(p.status.ready_replicas, Some(2));
    assert_eq!(p.status.available_replicas, Some(2));
    assert_eq!(p.status.observed_generation, Some(1));
    assert_eq!(p.status.collision_count, Some(0));
}

#[test]
fn failed_pods_are_recreated_and_labels_restored() {
    let s = set(2);
    let mut failed = (*pod(&s, 0, "web-new", false)).clone();
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let p = run(&s, &[Arc::new(failed)]);
    assert_eq!(
        p.actions,
        vec![Action::Delete {
            pod: "web-0".into(),
            recreate: Some(Recreate::Failed)
        }]
    );
    let mut bare = (*pod(&s, 0, "web-new", true)).clone();
    bare.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(POD_INDEX_LABEL);
    let p = run(&s, &[Arc::new(bare), pod(&s, 1, "web-new", true)]);
    assert_eq!(acts(&p), vec!["~web-0"]);
}

#[test]
fn a_new_pod_below_the_current_replicas_without_rolling_update_params() {
    // RollingUpdate without rollingUpdate: ordinals below
    // status.currentReplicas keep the current revision.
    let mut s = set(2);
    s.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: None,
    });
    s.status = Some(StatefulSetStatus {
        current_replicas: Some(1),
        ..Default::default()
    });
    assert_eq!(acts(&run(&s, &[])), vec!["+web-0@web-old"]);
}

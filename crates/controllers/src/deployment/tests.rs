use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::rolling::*;
use super::status::*;
use super::util::*;
use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            template: template("a"),
            progress_deadline_seconds: Some(600),
            revision_history_limit: Some(10),
            ..Default::default()
        }),
        status: None,
    }
}

fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("{name}-uid")),
            creation_timestamp: Some(Time(at(created))),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            ..Default::default()
        }),
    }
}

fn with_ann(mut r: ReplicaSet, pairs: &[(&str, &str)]) -> ReplicaSet {
    for (k, v) in pairs {
        r.annotations_mut().insert(k.to_string(), v.to_string());
    }
    r
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let f = |s: IntOrString, u: IntOrString, n| resolve_fenceposts(Some(&s), Some(&u), n);
    assert_eq!(f(pct("25%"), pct("25%"), 3), (1, 0));
    assert_eq!(f(pct("25%"), pct("25%"), 10), (3, 2));
    assert_eq!(f(pct("0%"), pct("0%"), 10), (0, 1));
    assert_eq!(f(IntOrString::Int(0), IntOrString::Int(0), 3), (0, 1));
    assert_eq!(f(IntOrString::Int(2), pct("50%"), 5), (2, 2));
    // Deployment-level: unavailability capped at replicas, 0 for Recreate.
    assert_eq!(max_unavailable(&deploy(1, pct("0%"), pct("100%"))), 1);
    assert_eq!(max_surge(&deploy(3, pct("25%"), pct("25%"))), 1);
    let mut rec = deploy(3, pct("25%"), pct("25%"));
    rec.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    assert_eq!((max_surge(&rec), max_unavailable(&rec)), (0, 0));
}

#[test]
fn hash_is_stable_and_salted_by_collision_count() {
    let a = compute_hash(&template("a"), None);
    assert_eq!(a, compute_hash(&template("a"), None));
    assert_ne!(a, compute_hash(&template("b"), None));
    assert_ne!(a, compute_hash(&template("a"), Some(1)));
    assert_ne!(
        compute_hash(&template("a"), Some(1)),
        compute_hash(&template("a"), Some(2))
    );
    let alphabet = "bcdfghjklmnpqrstvwxz2456789";
    assert!(a.chars().all(|c| alphabet.contains(c)), "{a}");
    assert!(!a.is_empty() && a.len() <= 10);
    // The hash label does not make templates differ.
    let mut labelled = template("a");
    labelled
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH.into(), a.clone());
    assert!(equal_ignore_hash(&labelled, &template("a")));
    assert!(!equal_ignore_hash(&labelled, &template("b")));
}

#[test]
fn rolling_update_grows_new_within_surge_and_shrinks_old_within_unavailability() {
    // 10 replicas, surge 3, unavailable 2.
    let d = deploy(10, pct("25%"), pct("25%"));
    let old = rs("old", 1, 10, 10);
    let new = rs("new", 2, 0, 0);
    let all = [&old, &new];
    assert_eq!(new_rs_new_replicas(&d, &all, &new), 3);
    assert_eq!(reconcile_new(&d, &all, &new), Some(3));
    // New at 3 (none available yet): old may drop to 8 available.
    let new = rs("new", 2, 3, 0);
    let all = [&old, &new];
    assert_eq!(reconcile_new(&d, &all, &new), None);
    assert_eq!(
        reconcile_old(&d, &all, &new),
        vec![Scale {
            name: "old".into(),
            replicas: 8
        }]
    );
    // Unhealthy old replicas go first (10 -> 6), then one healthy one
    // while 8 stay available.
    let old = rs("old", 1, 10, 6);
    let new = rs("new", 2, 3, 3);
    let all = [&old, &new];
    assert_eq!(
        reconcile_old(&d, &all, &new),
        vec![Scale {
            name: "old".into(),
            replicas: 5
        }]
    );
    // Oversized new ReplicaSet is trimmed to replicas.
    let new = rs("new", 2, 12, 12);
    assert_eq!(reconcile_new(&d, &[&new], &new), Some(10));
    // maxSurge 0, maxUnavailable 1: delete first, then create.
    let d = deploy(3, IntOrString::Int(0), IntOrString::Int(1));
    let old = rs("old", 1, 3, 3);
    let new = rs("new", 2, 0, 0);
    let all = [&old, &new];
    assert_eq!(reconcile_new(&d, &all, &new), None);
    assert_eq!(
        reconcile_old(&d, &all, &new),
        vec![Scale {
            name: "old".into(),
            replicas: 2
        }]
    );
}

#[test]
fn proportional_scaling_mid_rollout() {
    // Mid-rollout at 10 replicas (surge 3): old 8, new 5 = 13 = 10 + 3.
    let mut d = deploy(10, pct("25%"), pct("25%"));
    let ann = [(DESIRED_REPLICAS, "10"), (MAX_REPLICAS, "13")];
    let old = with_ann(rs("old", 1, 8, 8), &ann);
    let new = with_ann(rs("new", 2, 5, 0), &ann);
    assert!(!is_scaling_event(&d, &[&old, &new]));
    // Scaled to 20: allowed 20 + 5 = 25, 12 more split 8:5 of 13.
    d.spec.as_mut().unwrap().replicas = Some(20);
    assert!(is_scaling_event(&d, &[&old, &new]));
    let plan = proportional_scale(&d, Some(&new), &[&old]);
    assert_eq!(
        plan,
        vec![
            Scale {
                name: "old".into(),
                replicas: 15
            },
            Scale {
                name: "new".into(),
                replicas: 10
            }
        ]
    );
    // Scaled down to 5: allowed 5 + 2 = 7, 6 fewer.
    d.spec.as_mut().unwrap().replicas = Some(5);
    let plan = proportional_scale(&d, Some(&new), &[&old]);
    let total: i32 = plan.iter().map(|s| s.replicas).sum();
    assert_eq!(total, 7);
    assert_eq!(plan[0].name, "old");
    assert_eq!(plan[0].replicas, 4);
    // One active ReplicaSet simply takes the new size.
    let only = with_ann(rs("new", 2, 10, 10), &ann);
    let zero = rs("old", 1, 0, 0);
    assert_eq!(
        proportional_scale(&d, Some(&only), &[&zero]),
        vec![Scale {
            name: "new".into(),
            replicas: 5
        }]
    );
}

#[test]
fn revisions_and_history_on_reuse() {
    let mut d = deploy(3, pct("25%"), pct("25%"));
    d.annotations_mut()
        .insert("kubernetes.io/change-cause".into(), "undo".into());
    d.annotations_mut().insert(REVISION.into(), "2".into());
    d.annotations_mut().insert(LAST_APPLIED.into(), "{}".into());
    // Reusing revision 1 as revision 3.
    let mut old = with_ann(rs("a", 1, 0, 0), &[(REVISION, "1")]);
    assert!(set_new_rs_annotations(&d, &mut old, 3, true));
    assert_eq!(old.annotations().get(REVISION).unwrap(), "3");
    assert_eq!(old.annotations().get(REVISION_HISTORY).unwrap(), "1");
    assert_eq!(
        old.annotations().get("kubernetes.io/change-cause").unwrap(),
        "undo"
    );
    assert!(!old.annotations().contains_key(LAST_APPLIED));
    // Again later as revision 5: history grows.
    assert!(set_new_rs_annotations(&d, &mut old, 5, true));
    assert_eq!(old.annotations().get(REVISION_HISTORY).unwrap(), "1,3");
    // Nothing to change: no update.
    assert!(!set_new_rs_annotations(&d, &mut old, 5, true));
    // A new one gets the replicas annotations too.
    let mut fresh = rs("b", 2, 0, 0);
    assert!(set_new_rs_annotations(&d, &mut fresh, 6, false));
    assert_eq!(desired_annotation(&fresh), Some(3));
    assert_eq!(max_replicas_annotation(&fresh), Some(4));
    assert_eq!(max_revision([&old, &fresh]), 6);
}

#[test]
fn history_cleanup_keeps_the_limit_and_busy_sets() {
    let mut d = deploy(3, pct("25%"), pct("25%"));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let r1 = with_ann(rs("r1", 1, 0, 0), &[(REVISION, "1")]);
    let r2 = with_ann(rs("r2", 2, 1, 1), &[(REVISION, "2")]);
    let r3 = with_ann(rs("r3", 3, 0, 0), &[(REVISION, "3")]);
    let del: Vec<String> = history_to_delete(&d, &[&r3, &r2, &r1])
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(del, ["r1"]);
}

#[test]
fn status_and_progress_conditions() {
    let mut d = deploy(3, pct("25%"), pct("25%"));
    let new = rs("web-abc", 2, 3, 3);
    let st = rollout_status(&d, &[&new], Some(&new), at(1000));
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.available_replicas,
            st.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(0))
    );
    let prog = get_condition(&st, PROGRESSING).unwrap();
    assert_eq!(prog.reason.as_deref(), Some(REASON_NEW_RS_AVAILABLE));
    assert_eq!(
        prog.message.as_deref(),
        Some("ReplicaSet \"web-abc\" has successfully progressed.")
    );
    let avail = get_condition(&st, AVAILABLE).unwrap();
    assert_eq!(avail.reason.as_deref(), Some(REASON_MIN_AVAILABLE));

    // A rollout that stalls: progressing once, then past the deadline.
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(5);
    let stuck = rs("web-new", 3, 3, 0);
    let mut st0 = DeploymentStatus::default();
    set_condition(
        &mut st0,
        new_condition(
            PROGRESSING,
            "True",
            REASON_NEW_RS,
            "Created new replica set \"web-new\"".into(),
            at(1000),
        ),
    );
    d.status = Some(st0);
    let st = rollout_status(&d, &[&stuck], Some(&stuck), at(1001));
    assert_eq!(
        get_condition(&st, PROGRESSING).unwrap().reason.as_deref(),
        Some(REASON_RS_UPDATED),
        "replicas appeared: progress"
    );
    d.status = Some(st);
    let st = rollout_status(&d, &[&stuck], Some(&stuck), at(1003));
    assert_eq!(d.status.as_ref(), Some(&st), "no progress, within deadline");
    assert_eq!(
        requeue_stuck(&d, &st, at(1003)),
        Some(Duration::from_secs(4))
    );
    let st = rollout_status(&d, &[&stuck], Some(&stuck), at(1010));
    let c = get_condition(&st, PROGRESSING).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
        (
            "False",
            Some(REASON_TIMED_OUT),
            Some("ReplicaSet \"web-new\" has timed out progressing.")
        )
    );
    assert_eq!(
        get_condition(&st, AVAILABLE).unwrap().reason.as_deref(),
        Some(REASON_MIN_UNAVAILABLE)
    );
}

#[test]
fn pause_and_resume_conditions() {
    let mut d = deploy(3, pct("25%"), pct("25%"));
    assert!(paused_status(&d, at(1)).is_none());
    d.spec.as_mut().unwrap().paused = Some(true);
    let st = paused_status(&d, at(1)).unwrap();
    let c = get_condition(&st, PROGRESSING).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
        ("Unknown", Some(REASON_PAUSED), Some("Deployment is paused"))
    );
    d.status = Some(st);
    assert!(paused_status(&d, at(2)).is_none());
    d.spec.as_mut().unwrap().paused = Some(false);
    let st = paused_status(&d, at(3)).unwrap();
    let c = get_condition(&st, PROGRESSING).unwrap();
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (Some(REASON_RESUMED), Some("Deployment is resumed"))
    );
}

#[test]
fn recreate_waits_for_old_pods() {
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let old = rs("old", 1, 0, 0);
    let mut old_zeroed = old.clone();
    old_zeroed.status.as_mut().unwrap().replicas = 0;
    let pod = |phase: &str| Pod {
        metadata: ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: "old-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    };
    let running = pod("Running");
    let done = pod("Succeeded");
    assert!(old_pods_running(None, &[&old_zeroed], &[&running]));
    assert!(!old_pods_running(None, &[&old_zeroed], &[&done]));
    assert!(!old_pods_running(None, &[&old_zeroed], &[]));
    let busy = rs("old", 1, 2, 2);
    assert!(old_pods_running(None, &[&busy], &[]));
}

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::*;
use crate::endpoints::tests::{pod, svc};

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i:04}"),
                "web",
                &format!("10.2.{}.{}", i / 200, i % 200 + 1),
                true,
                8080,
            )
        })
        .collect()
}

fn no_zone(_: &str) -> Option<String> {
    None
}

/// Applies a plan to a fake set of slices, naming created ones.
fn apply(existing: &[Arc<EndpointSlice>], plan: Plan, next: &mut usize) -> Vec<Arc<EndpointSlice>> {
    let deleted: HashSet<String> = plan.delete.iter().map(|s| s.name_any()).collect();
    let updated: BTreeMap<String, EndpointSlice> =
        plan.update.into_iter().map(|s| (s.name_any(), s)).collect();
    let mut out: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| !deleted.contains(&s.name_any()))
        .map(|s| match updated.get(&s.name_any()) {
            Some(u) => Arc::new(u.clone()),
            None => s.clone(),
        })
        .collect();
    for mut s in plan.create {
        *next += 1;
        s.metadata.name = Some(format!("web-{next}"));
        out.push(Arc::new(s));
    }
    out
}

fn check_invariants(slices: &[Arc<EndpointSlice>], max: usize, want: usize) {
    let mut seen = HashSet::new();
    for s in slices {
        assert!(s.endpoints.len() <= max, "slice over capacity");
        for e in &s.endpoints {
            assert!(seen.insert(endpoint_key(e)), "duplicate endpoint {e:?}");
        }
    }
    assert_eq!(seen.len(), want);
}

fn sync(
    s: &k8s_openapi::api::core::v1::Service,
    pods: &[Arc<Pod>],
    slices: &[Arc<EndpointSlice>],
    max: usize,
    next: &mut usize,
) -> (Vec<Arc<EndpointSlice>>, usize) {
    let groups = desired_groups(s, pods, &no_zone);
    let p = plan(s, &groups, slices, max, None);
    let writes = p.create.len() + p.update.len() + p.delete.len();
    (apply(slices, p, next), writes)
}

#[test]
fn endpoints_carry_upstream_conditions_zone_and_labels() {
    let s = svc("web", IntOrString::String("http".into()));
    let mut terminating = (*pod("t", "web", "10.0.0.3", true, 8080)).clone();
    terminating.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
    let all = vec![
        pod("a", "web", "10.0.0.1", true, 8080),
        pod("b", "web", "10.0.0.2", false, 8080),
        Arc::new(terminating),
    ];
    let zone = |n: &str| (n == "n1").then(|| "z1".to_string());
    let groups = desired_groups(&s, &all, &zone);
    assert_eq!(groups.len(), 1);
    let g = groups.values().next().unwrap();
    assert_eq!(g.ports[0].port, Some(8080));
    assert_eq!(g.ports[0].name.as_deref(), Some("http"));
    let cond = |ip: &str| {
        let e = g.endpoints.iter().find(|e| e.addresses == [ip]).unwrap();
        let c = e.conditions.clone().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    };
    assert_eq!(cond("10.0.0.1"), (true, true, false));
    assert_eq!(cond("10.0.0.2"), (false, false, false));
    assert_eq!(cond("10.0.0.3"), (false, true, true));
    let e = &g.endpoints[0];
    assert_eq!(e.zone.as_deref(), Some("z1"));
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));

    let p = plan(&s, &groups, &[], 100, None);
    assert_eq!(p.create.len(), 1);
    let created = &p.create[0];
    assert_eq!(created.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(created.address_type, "IPv4");
    assert_eq!(created.labels().get(SERVICE_NAME_LABEL).unwrap(), "web");
    assert_eq!(
        created.labels().get(MANAGED_BY_LABEL).unwrap(),
        MANAGED_BY_VALUE
    );
    assert_eq!(created.labels().get("team").unwrap(), "a");
    let owner = &created.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Service", Some(true))
    );
}

#[test]
fn packing_never_exceeds_the_limit_nor_duplicates() {
    let s = svc("web", IntOrString::Int(80));
    let mut next = 0;
    // 250 pods at 100 per slice: three slices.
    let (slices, _) = sync(&s, &pods(250), &[], 100, &mut next);
    assert_eq!(slices.len(), 3);
    check_invariants(&slices, 100, 250);
    // Nothing changed: no writes.
    let (same, writes) = sync(&s, &pods(250), &slices, 100, &mut next);
    assert_eq!(writes, 0);
    // Remove 30 pods, add 60 others: existing slices are reused and filled.
    let mut changed: Vec<Arc<Pod>> = pods(280).into_iter().skip(30).collect();
    changed.rotate_left(7);
    let (after, _) = sync(&s, &changed, &same, 100, &mut next);
    check_invariants(&after, 100, 250);
    assert_eq!(after.len(), 3, "the freed room is reused");
    // Shrinking to nothing leaves one empty placeholder slice.
    let (empty, _) = sync(&s, &[], &after, 100, &mut next);
    assert_eq!(empty.len(), 1);
    assert!(empty[0].endpoints.is_empty());
    // And growing again reuses it.
    let (grown, _) = sync(&s, &pods(5), &empty, 100, &mut next);
    check_invariants(&grown, 100, 5);
    assert_eq!(grown.len(), 1);
}

#[test]
fn duplicated_endpoints_in_existing_slices_are_dropped() {
    let s = svc("web", IntOrString::Int(80));
    let mut next = 0;
    let (slices, _) = sync(&s, &pods(3), &[], 100, &mut next);
    let mut dup = (*slices[0]).clone();
    dup.metadata.name = Some("web-dup".into());
    let with_dup = vec![slices[0].clone(), Arc::new(dup)];
    let (fixed, _) = sync(&s, &pods(3), &with_dup, 100, &mut next);
    check_invariants(&fixed, 100, 3);
    assert_eq!(fixed.len(), 1);
}

#[test]
fn a_smaller_limit_splits_slices_and_selector_changes_empty_them() {
    let mut s = svc("web", IntOrString::Int(80));
    let mut next = 0;
    let (slices, _) = sync(&s, &pods(10), &[], 100, &mut next);
    let (split, _) = sync(&s, &pods(10), &slices, 3, &mut next);
    check_invariants(&split, 3, 10);
    assert_eq!(split.len(), 4);
    // The selector now matches no pod: the stale endpoints go.
    s.spec.as_mut().unwrap().selector = Some([("app".to_string(), "other".to_string())].into());
    let (gone, _) = sync(&s, &pods(10), &split, 3, &mut next);
    assert_eq!(gone.len(), 1);
    assert!(gone[0].endpoints.is_empty());
}

#[test]
fn pods_serving_different_ports_get_different_slices() {
    let s = svc("web", IntOrString::String("http".into()));
    let all = vec![
        pod("a", "web", "10.0.0.1", true, 8080),
        pod("b", "web", "10.0.0.2", true, 9090),
    ];
    let mut next = 0;
    let (slices, _) = sync(&s, &all, &[], 100, &mut next);
    assert_eq!(slices.len(), 2);
    let mut ports: Vec<i32> = slices
        .iter()
        .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, [8080, 9090]);
}

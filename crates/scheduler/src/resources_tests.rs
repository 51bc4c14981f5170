//! Unit tests of [`pod_requests`] against upstream's
//! `k8s.io/component-helpers/resource.PodRequests` rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::pod_requests;
use crate::framework::types::{DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST};

const MI: i64 = 1024 * 1024;

fn list(r: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    r.iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn container(r: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        resources: (!r.is_empty()).then(|| ResourceRequirements {
            requests: Some(list(r)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sidecar(r: &[(&str, &str)]) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(r)
    }
}

fn pod_of(containers: Vec<Container>, init: Vec<Container>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (milli cpu, memory) of the effective requests.
fn cpu_mem(p: &Pod, non_zero: bool) -> (i64, i64) {
    let r = pod_requests(p, non_zero);
    (r.milli_cpu, r.memory)
}

#[test]
fn containers_are_summed() {
    let p = pod_of(
        vec![
            container(&[
                ("cpu", "500m"),
                ("memory", "100Mi"),
                ("example.com/gpu", "1"),
            ]),
            container(&[("cpu", "1"), ("memory", "1Gi"), ("example.com/gpu", "2")]),
        ],
        vec![],
    );
    let r = pod_requests(&p, false);
    assert_eq!((r.milli_cpu, r.memory), (1500, 1124 * MI));
    assert_eq!(r.scalar.get("example.com/gpu"), Some(&3));
}

#[test]
fn init_containers_take_the_max_per_resource() {
    // Upstream's example: init 2/1G and 2/3G, containers 2/1G and 1/1G
    // ⇒ cpu 3, memory 3G.
    let p = pod_of(
        vec![
            container(&[("cpu", "2"), ("memory", "1G")]),
            container(&[("cpu", "1"), ("memory", "1G")]),
        ],
        vec![
            container(&[("cpu", "2"), ("memory", "1G")]),
            container(&[("cpu", "2"), ("memory", "3G")]),
        ],
    );
    assert_eq!(cpu_mem(&p, false), (3000, 3_000_000_000));
}

#[test]
fn sidecars_add_up_and_run_beside_later_init_containers() {
    // Sidecar 1 cpu, then an init container of 2 cpu (runs beside the
    // sidecar: 3), containers 1 cpu (+ sidecar: 2) ⇒ 3.
    let p = pod_of(
        vec![container(&[("cpu", "1")])],
        vec![sidecar(&[("cpu", "1")]), container(&[("cpu", "2")])],
    );
    assert_eq!(cpu_mem(&p, false).0, 3000);
    // An init container before the sidecar does not overlap it: max(2, 1+1).
    let p = pod_of(
        vec![container(&[("cpu", "1")])],
        vec![container(&[("cpu", "2")]), sidecar(&[("cpu", "1")])],
    );
    assert_eq!(cpu_mem(&p, false).0, 2000);
    // Sidecars alone add to the containers' sum.
    let p = pod_of(
        vec![container(&[("cpu", "1"), ("memory", "1Gi")])],
        vec![sidecar(&[("cpu", "500m")]), sidecar(&[("memory", "1Gi")])],
    );
    assert_eq!(cpu_mem(&p, false), (1500, 2048 * MI));
}

#[test]
fn overhead_is_added() {
    // The worked example.
    let mut p = pod_of(
        vec![
            container(&[("cpu", "500m"), ("memory", "100Mi")]),
            container(&[("cpu", "1500m"), ("memory", "100Mi")]),
        ],
        vec![],
    );
    p.spec.as_mut().unwrap().overhead = Some(list(&[("cpu", "250m"), ("memory", "120Mi")]));
    assert_eq!(cpu_mem(&p, false), (2250, 320 * MI));
    assert_eq!(cpu_mem(&p, true), (2250, 320 * MI));
    // Overhead also adds on top of the init-container maximum.
    p.spec.as_mut().unwrap().init_containers =
        Some(vec![container(&[("cpu", "3"), ("memory", "1Mi")])]);
    assert_eq!(cpu_mem(&p, false), (3250, 320 * MI));
}

#[test]
fn non_zero_defaults_for_containers_without_requests() {
    let p = pod_of(vec![container(&[]), container(&[])], vec![]);
    assert_eq!(cpu_mem(&p, false), (0, 0));
    assert_eq!(
        cpu_mem(&p, true),
        (2 * DEFAULT_MILLI_CPU_REQUEST, 2 * DEFAULT_MEMORY_REQUEST)
    );
    assert_eq!(
        (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST),
        (100, 200 * MI)
    );
    // Only the missing resource is defaulted; an explicit zero stays zero.
    let p = pod_of(
        vec![container(&[("cpu", "300m")]), container(&[("memory", "0")])],
        vec![],
    );
    assert_eq!(cpu_mem(&p, true), (400, DEFAULT_MEMORY_REQUEST));
    // Init containers get the defaults as well.
    let p = pod_of(vec![container(&[("cpu", "50m")])], vec![container(&[])]);
    assert_eq!(cpu_mem(&p, true), (100, DEFAULT_MEMORY_REQUEST));
    // Other resources are never defaulted.
    let p = pod_of(vec![container(&[])], vec![]);
    let r = pod_requests(&p, true);
    assert_eq!(r.ephemeral_storage, 0);
    assert!(r.scalar.is_empty());
}

#[test]
fn pod_without_spec_requests_nothing() {
    assert_eq!(pod_requests(&Pod::default(), true), Default::default());
}

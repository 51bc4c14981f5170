use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::*;

pub(crate) fn svc(name: &str, target: IntOrString) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("team".to_string(), "a".to_string())].into()),
            creation_timestamp: Some(Time(Timestamp::from_second(100).unwrap())),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), name.to_string())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(target),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod of app `app` with IP `ip` and a container port named `http`.
pub(crate) fn pod(name: &str, app: &str, ip: &str, ready: bool, http_port: i32) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some([("app".to_string(), app.to_string())].into()),
            creation_timestamp: Some(Time(Timestamp::from_second(50).unwrap())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: http_port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(Timestamp::from_second(200).unwrap())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

fn ips(a: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    a.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[test]
fn ready_and_not_ready_addresses_with_resolved_ports() {
    let s = svc("web", IntOrString::String("http".into()));
    let mut terminal = (*pod("done", "web", "10.0.0.9", false, 8080)).clone();
    terminal.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut deleting = (*pod("gone", "web", "10.0.0.8", true, 8080)).clone();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(300).unwrap()));
    let pods = vec![
        pod("b", "web", "10.0.0.2", true, 8080),
        pod("a", "web", "10.0.0.1", true, 8080),
        pod("c", "web", "10.0.0.3", false, 8080),
        pod("noip", "web", "", true, 8080),
        pod("other", "db", "10.0.0.4", true, 8080),
        Arc::new(terminal),
        Arc::new(deleting),
    ];
    let d = desired_endpoints(&s, &pods);
    assert!(!d.truncated);
    assert_eq!(d.subsets.len(), 1);
    let sub = &d.subsets[0];
    assert_eq!(ips(&sub.addresses), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&sub.not_ready_addresses), ["10.0.0.3"]);
    let ports = sub.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 8080);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    let a = &sub.addresses.as_ref().unwrap()[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_deref(), r.name.as_deref()),
        (Some("Pod"), Some("a"))
    );
    // The trigger time is the latest pod Ready transition.
    assert_eq!(d.trigger_time, Some(Timestamp::from_second(200).unwrap()));
}

#[test]
fn publish_not_ready_addresses_makes_every_pod_ready() {
    let mut s = svc("web", IntOrString::Int(9000));
    s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let d = desired_endpoints(&s, &[pod("c", "web", "10.0.0.3", false, 8080)]);
    assert_eq!(ips(&d.subsets[0].addresses), ["10.0.0.3"]);
    assert!(d.subsets[0].not_ready_addresses.is_none());
    assert_eq!(d.subsets[0].ports.as_ref().unwrap()[0].port, 9000);
}

#[test]
fn pods_with_different_named_ports_form_separate_subsets() {
    let s = svc("web", IntOrString::String("http".into()));
    let mut no_port = (*pod("x", "web", "10.0.0.5", true, 1)).clone();
    no_port.spec.as_mut().unwrap().containers[0].ports = None;
    let pods = vec![
        pod("a", "web", "10.0.0.1", true, 8080),
        pod("b", "web", "10.0.0.2", true, 9090),
        Arc::new(no_port),
    ];
    let d = desired_endpoints(&s, &pods);
    let mut got: Vec<(i32, Vec<String>)> = d
        .subsets
        .iter()
        .map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (8080, vec!["10.0.0.1".to_string()]),
            (9090, vec!["10.0.0.2".to_string()])
        ]
    );
}

#[test]
fn more_than_1000_addresses_are_truncated_ready_first() {
    let s = svc("web", IntOrString::Int(80));
    let pods: Vec<Arc<Pod>> = (0..1100)
        .map(|i| {
            pod(
                &format!("p{i}"),
                "web",
                &format!("10.1.{}.{}", i / 250, i % 250),
                i % 2 == 0,
                80,
            )
        })
        .collect();
    let d = desired_endpoints(&s, &pods);
    assert!(d.truncated);
    let sub = &d.subsets[0];
    assert_eq!(ips(&sub.addresses).len(), 550);
    assert_eq!(ips(&sub.not_ready_addresses).len(), 450);
    let ep = endpoints_update(&s, &d, None).unwrap();
    assert_eq!(
        ep.annotations()
            .get(OVER_CAPACITY_ANNOTATION)
            .map(String::as_str),
        Some("truncated")
    );
}

#[test]
fn truncation_splits_ready_addresses_across_subsets() {
    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset};
    let addrs = |n: usize| {
        Some(
            (0..n)
                .map(|i| EndpointAddress {
                    ip: format!("10.0.0.{i}"),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut subsets = vec![
        EndpointSubset {
            addresses: addrs(30),
            not_ready_addresses: addrs(10),
            ports: None,
        },
        EndpointSubset {
            addresses: addrs(10),
            ..Default::default()
        },
    ];
    assert!(truncate(&mut subsets, 20));
    assert_eq!(ips(&subsets[0].addresses).len(), 15);
    assert!(subsets[0].not_ready_addresses.is_none());
    assert_eq!(ips(&subsets[1].addresses).len(), 5);
}

#[test]
fn update_only_when_something_changed() {
    let mut s = svc("web", IntOrString::Int(80));
    s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let d = desired_endpoints(&s, &[pod("a", "web", "10.0.0.1", true, 80)]);
    let ep = endpoints_update(&s, &d, None).unwrap();
    assert_eq!(ep.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(
        ep.labels().get(HEADLESS_LABEL).map(String::as_str),
        Some("")
    );
    assert!(ep.annotations().contains_key(TRIGGER_TIME_ANNOTATION));
    assert_eq!(endpoints_update(&s, &d, Some(&ep)), None);
    // A pod going away changes the subsets.
    let d2 = desired_endpoints(&s, &[]);
    let ep2 = endpoints_update(&s, &d2, Some(&ep)).unwrap();
    assert!(ep2.subsets.is_none());
}

#[test]
fn services_without_selector_select_nothing() {
    let mut s = svc("web", IntOrString::Int(80));
    s.spec.as_mut().unwrap().selector = None;
    assert!(!has_selector(&s));
    assert!(!service_selects(&s, &pod("a", "web", "10.0.0.1", true, 80)));
}

//! Cross-check of `rkube_api::protobuf::decode` against an independent
//! encoder: objects built with the k8s-pb crate's prost messages, encoded by
//! prost into the Kubernetes envelope, must decode to their JSON form.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

fn envelope(api_version: &str, kind: &str, obj: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn map<V>(pairs: &[(&str, V)]) -> BTreeMap<String, V>
where
    V: Clone,
{
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn meta(name: &str, labels: &[(&str, String)]) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        namespace: s("default"),
        labels: map(labels),
        creation_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        ..Default::default()
    })
}

fn q(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

#[test]
fn config_map_and_secret() {
    let cm = core::ConfigMap {
        metadata: meta("c", &[]),
        data: map(&[("a", "b".to_string())]),
        binary_data: map(&[("bin", vec![0u8, 1, 2])]),
        immutable: Some(true),
    };
    let v = rkube_api::protobuf::decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": "c",
                "namespace": "default",
                "creationTimestamp": "2023-11-14T22:13:20Z"
            },
            "data": {"a": "b"},
            "binaryData": {"bin": "AAEC"},
            "immutable": true
        })
    );

    let secret = core::Secret {
        metadata: meta("s", &[]),
        data: map(&[("password", b"hunter2".to_vec())]),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let v = rkube_api::protobuf::decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(v["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(v["type"], json!("Opaque"));
}

fn container() -> core::Container {
    core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        args: vec!["-g".into(), "daemon off;".into()],
        ports: vec![core::ContainerPort {
            name: s("http"),
            container_port: Some(80),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![core::EnvVar {
            name: s("MODE"),
            value_from: Some(core::EnvVarSource {
                config_map_key_ref: Some(core::ConfigMapKeySelector {
                    local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                    key: s("mode"),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: map(&[("cpu", q("500m")), ("memory", q("128Mi"))]),
            requests: map(&[("cpu", q("250m"))]),
            ..Default::default()
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn deployment() {
    let labels = [("app", "web".to_string())];
    let d = apps::Deployment {
        metadata: meta("web", &labels),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: map(&labels),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&labels),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container()],
                    volumes: vec![core::Volume {
                        name: s("data"),
                        volume_source: Some(core::VolumeSource {
                            empty_dir: Some(core::EmptyDirVolumeSource {
                                size_limit: Some(q("1Gi")),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    security_context: Some(core::PodSecurityContext {
                        run_as_user: Some(0),
                        supplemental_groups: vec![1000, 2000],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: None,
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("50%"),
                    }),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let v = rkube_api::protobuf::decode(&envelope("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "labels": {"app": "web"}
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "args": ["-g", "daemon off;"],
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [{
                                "name": "MODE",
                                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode", "optional": false}}
                            }],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"}
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 5
                            }
                        }],
                        "securityContext": {"runAsUser": 0, "supplementalGroups": [1000, 2000]}
                    }
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}
                }
            }
        })
    );
    // The decoded object passes the kind's typed schema with no unknown field.
    let typed = rkube_api::decode::decode_typed("apps", "Deployment", v).unwrap();
    assert!(
        typed.unknown_fields.is_empty(),
        "{:?}",
        typed.unknown_fields
    );
}

#[test]
fn pod_with_status_times() {
    let pod = core::Pod {
        metadata: meta("p", &[]),
        spec: Some(core::PodSpec {
            containers: vec![container()],
            node_name: s("node-1"),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            pod_ip: s("10.0.0.5"),
            pod_ips: vec![core::PodIp { ip: s("10.0.0.5") }],
            start_time: Some(meta::Time {
                seconds: Some(1_700_000_060),
                nanos: Some(0),
            }),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_transition_time: Some(meta::Time {
                    seconds: Some(1_700_000_061),
                    nanos: Some(0),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let v = rkube_api::protobuf::decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(v["spec"]["nodeName"], json!("node-1"));
    assert_eq!(
        v["status"],
        json!({
            "phase": "Running",
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": "2023-11-14T22:14:21Z"
            }],
            "podIP": "10.0.0.5",
            "startTime": "2023-11-14T22:14:20Z",
            "podIPs": [{"ip": "10.0.0.5"}]
        })
    );
    let typed = rkube_api::decode::decode_typed("", "Pod", v).unwrap();
    assert!(
        typed.unknown_fields.is_empty(),
        "{:?}",
        typed.unknown_fields
    );
}

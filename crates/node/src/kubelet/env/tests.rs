use super::*;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVarSource, ObjectFieldSelector,
    PodSpec, ResourceFieldSelector, ResourceRequirements, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

fn lookup_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |n: &str| m.get(n).cloned()
}

#[test]
fn expansion_follows_upstream() {
    let l = lookup_from(&[("A", "1"), ("B", "two")]);
    assert_eq!(expand("$(A)-$(B)", &l), "1-two");
    assert_eq!(expand("$$(A)", &l), "$(A)");
    assert_eq!(expand("$(C)", &l), "$(C)");
    assert_eq!(expand("x$(A", &l), "x$(A");
    assert_eq!(expand("$A $", &l), "$A $");
    assert_eq!(expand("plain", &l), "plain");
    assert_eq!(expand("é$(A)ü", &l), "é1ü");
}

#[test]
fn env_var_names() {
    assert!(is_env_var_name("FOO_bar.1-x"));
    assert!(is_env_var_name("_x"));
    assert!(!is_env_var_name("1abc"));
    assert!(!is_env_var_name("a b"));
    assert!(!is_env_var_name(""));
}

fn pod() -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("ns1".into());
    p.metadata.uid = Some("u-1".into());
    p.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    p.spec = Some(PodSpec {
        node_name: Some("n1".into()),
        ..Default::default()
    });
    p
}

fn sources() -> EnvSources {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([
            ("color".into(), "blue".into()),
            ("bad key".into(), "x".into()),
        ])),
        ..Default::default()
    };
    let s = Secret {
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Default::default()
    };
    EnvSources {
        config_maps: HashMap::from([("cfg".into(), cm)]),
        secrets: HashMap::from([("sec".into(), s)]),
        pod_ip: "10.0.0.5".into(),
        host_ip: "192.168.1.2".into(),
        node_allocatable: HashMap::from([
            ("cpu".into(), Quantity::parse("4").unwrap()),
            ("memory".into(), Quantity::parse("8Gi").unwrap()),
        ]),
        ..Default::default()
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn from(name: &str, src: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(src),
        ..Default::default()
    }
}

#[test]
fn builds_env_in_upstream_order() {
    let c = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            prefix: Some("CFG_".into()),
            config_map_ref: Some(ConfigMapEnvSource {
                name: "cfg".into(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(vec![
            var("CFG_color", "overridden"),
            var("GREETING", "hi $(CFG_color) $(MISSING)"),
            from(
                "PW",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "sec".into(),
                        key: "password".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "POD_IP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "APP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels['app']".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "MEM_MI",
                EnvVarSource {
                    resource_field_ref: Some(ResourceFieldSelector {
                        resource: "limits.memory".into(),
                        divisor: Some(K8sQuantity("1Mi".into())),
                        container_name: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "CPU",
                EnvVarSource {
                    resource_field_ref: Some(ResourceFieldSelector {
                        resource: "requests.cpu".into(),
                        divisor: None,
                        container_name: None,
                    }),
                    ..Default::default()
                },
            ),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".into(), K8sQuantity("250m".into()))])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let env = build(&pod(), &c, &sources()).unwrap();
    let get = |n: &str| env.get(n).map(str::to_string);
    assert_eq!(get("CFG_color").as_deref(), Some("overridden"));
    assert_eq!(get("GREETING").as_deref(), Some("hi overridden $(MISSING)"));
    assert_eq!(get("PW").as_deref(), Some("hunter2"));
    assert_eq!(get("POD_IP").as_deref(), Some("10.0.0.5"));
    assert_eq!(get("APP").as_deref(), Some("web"));
    assert_eq!(get("MEM_MI").as_deref(), Some("8192"), "node allocatable");
    assert_eq!(get("CPU").as_deref(), Some("1"), "250m rounds up to 1");
    assert_eq!(env.invalid_names, vec!["CFG_bad key".to_string()]);
    assert_eq!(env.invalid_sources, vec!["configMap ns1/cfg".to_string()]);
    assert_eq!(env.vars[0].0, "CFG_color");
}

#[test]
fn missing_sources_are_errors_unless_optional() {
    let key_ref = |name: &str, key: &str, optional| {
        from(
            "X",
            EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: name.into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            },
        )
    };
    let c = |v: EnvVar| Container {
        name: "c".into(),
        env: Some(vec![v]),
        ..Default::default()
    };
    let src = sources();
    assert_eq!(
        build(&pod(), &c(key_ref("nope", "k", None)), &src).unwrap_err(),
        EnvError::ConfigMapNotFound("nope".into())
    );
    assert_eq!(
        build(&pod(), &c(key_ref("cfg", "k", None)), &src)
            .unwrap_err()
            .to_string(),
        "couldn't find key k in ConfigMap ns1/cfg"
    );
    let env = build(&pod(), &c(key_ref("nope", "k", Some(true))), &src).unwrap();
    assert!(env.vars.is_empty(), "optional and missing: not set");
}

#[test]
fn command_and_args_follow_upstream_rules() {
    let env = Environment {
        vars: vec![("WHO".into(), "world".into())],
        invalid_names: vec![],
        invalid_sources: vec![],
    };
    let ep = vec!["/entry".to_string()];
    let cmd = vec!["default".to_string()];
    let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
        name: "c".into(),
        command: command.map(|v| v.into_iter().map(String::from).collect()),
        args: args.map(|v| v.into_iter().map(String::from).collect()),
        ..Default::default()
    };
    assert_eq!(
        process_args(&c(None, None), &ep, &cmd, &env),
        ["/entry", "default"]
    );
    assert_eq!(
        process_args(&c(None, Some(vec!["hello $(WHO)"])), &ep, &cmd, &env),
        ["/entry", "hello world"]
    );
    assert_eq!(
        process_args(&c(Some(vec!["echo"]), None), &ep, &cmd, &env),
        ["echo"]
    );
    assert_eq!(
        process_args(
            &c(Some(vec!["echo"]), Some(vec!["$$(WHO)"])),
            &ep,
            &cmd,
            &env
        ),
        ["echo", "$(WHO)"]
    );
}

#[test]
fn service_variables_come_last_and_can_be_referenced() {
    let mut src = sources();
    src.service_env = BTreeMap::from([
        ("MY_SVC_SERVICE_HOST".to_string(), "10.0.0.9".to_string()),
        ("MY_SVC_SERVICE_PORT".to_string(), "80".to_string()),
    ]);
    let c = Container {
        name: "c".into(),
        env: Some(vec![
            var(
                "URL",
                "http://$(MY_SVC_SERVICE_HOST):$(MY_SVC_SERVICE_PORT)",
            ),
            var("MY_SVC_SERVICE_PORT", "8080"),
        ]),
        args: Some(vec!["$(MY_SVC_SERVICE_HOST)".into()]),
        ..Default::default()
    };
    let env = build(&pod(), &c, &src).unwrap();
    assert_eq!(
        env.vars,
        [
            ("URL", "http://10.0.0.9:80"),
            ("MY_SVC_SERVICE_PORT", "8080"),
            ("MY_SVC_SERVICE_HOST", "10.0.0.9"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec(),
        "the container's own definition wins; the service's comes after"
    );
    assert_eq!(process_args(&c, &[], &[], &env), ["10.0.0.9"]);
}

//! Unit tests of bundle generation.
use super::*;
use crate::spec::{Resources, User};

fn base() -> ContainerSpec {
    ContainerSpec {
        id: "c1".into(),
        args: vec!["/bin/sh".into()],
        ..Default::default()
    }
}

fn json(spec: &ContainerSpec) -> serde_json::Value {
    serde_json::to_value(build(spec, Path::new("/r")).unwrap()).unwrap()
}

#[test]
fn capability_names() {
    assert_eq!(parse_capability("NET_ADMIN").unwrap(), Capability::NetAdmin);
    assert_eq!(
        parse_capability("CAP_NET_ADMIN").unwrap(),
        Capability::NetAdmin
    );
    assert_eq!(
        parse_capability("cap_sys_admin").unwrap(),
        Capability::SysAdmin
    );
    assert!(parse_capability("NOPE").is_err());
}

#[test]
fn capability_sets() {
    let mut s = base();
    assert_eq!(capabilities(&s).unwrap().len(), DEFAULT_CAPABILITIES.len());
    s.cap_add = vec!["NET_ADMIN".into()];
    s.cap_drop = vec!["CAP_CHOWN".into()];
    let caps = capabilities(&s).unwrap();
    assert!(caps.contains(&Capability::NetAdmin) && !caps.contains(&Capability::Chown));
    s.cap_drop = vec!["ALL".into()];
    assert_eq!(
        capabilities(&s).unwrap(),
        [Capability::NetAdmin].into_iter().collect()
    );
    s.privileged = true;
    assert!(capabilities(&s).unwrap().contains(&Capability::SysAdmin));
}

#[test]
fn namespaces_and_defaults() {
    let mut s = base();
    let v = json(&s);
    let types: Vec<_> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["pid", "ipc", "uts", "mount"]);
    assert_eq!(v["process"]["cwd"], "/");
    assert_eq!(v["linux"]["cgroupsPath"], "/rkube/c1");
    assert!(v["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/kcore"));
    assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert!(v["process"]["rlimits"][0]["hard"].as_u64().unwrap() <= 1_048_576);
    assert!(v["linux"].get("seccomp").is_none());
    s.netns = Some("/var/run/netns/x".into());
    let v = json(&s);
    assert_eq!(v["linux"]["namespaces"][4]["path"], "/var/run/netns/x");
    assert_eq!(v["linux"]["namespaces"][4]["type"], "network");
}

#[test]
fn privileged_has_no_masked_paths() {
    let mut s = base();
    s.privileged = true;
    let v = json(&s);
    assert_eq!(v["linux"]["maskedPaths"], serde_json::json!([]));
    assert_eq!(v["linux"]["readonlyPaths"], serde_json::json!([]));
    assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    let sys = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "rw"));
}

#[test]
fn process_user_resources_and_mounts() {
    let mut s = base();
    s.user = User {
        uid: 1000,
        gid: 1001,
        additional_gids: vec![5],
    };
    s.env = vec!["A=1".into()];
    s.cwd = Some("/work".into());
    s.readonly_rootfs = true;
    s.no_new_privileges = true;
    s.hostname = Some("pod".into());
    s.resources = Resources {
        memory_limit: Some(8 << 20),
        cpu_quota: Some(50000),
        cpu_period: Some(100000),
        cpu_shares: Some(512),
        pids_limit: Some(100),
    };
    s.cgroup_parent = Some("/rkube/podX/".into());
    s.mounts = vec![
        Mount::Bind {
            source: "/host/a".into(),
            destination: "/data/sub".into(),
            readonly: true,
        },
        Mount::Tmpfs {
            destination: "/dev/shm".into(),
            size: Some(1 << 20),
            readonly: false,
        },
        Mount::Bind {
            source: "/host/b".into(),
            destination: "/data".into(),
            readonly: false,
        },
    ];
    let v = json(&s);
    assert_eq!(v["process"]["user"]["uid"], 1000);
    assert_eq!(v["process"]["user"]["additionalGids"][0], 5);
    assert_eq!(v["process"]["cwd"], "/work");
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"]["readonly"], true);
    assert_eq!(v["hostname"], "pod");
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 8 << 20);
    assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50000);
    assert_eq!(v["linux"]["resources"]["cpu"]["shares"], 512);
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 100);
    assert_eq!(v["linux"]["cgroupsPath"], "/rkube/podX/c1");
    let dests: Vec<_> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dests.iter().filter(|d| *d == "/dev/shm").count(), 1);
    let data = dests.iter().position(|d| d == "/data").unwrap();
    let sub = dests.iter().position(|d| d == "/data/sub").unwrap();
    assert!(data < sub);
    let shm = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/shm")
        .unwrap();
    assert!(shm["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "size=1048576"));
}

#[test]
fn no_builder_defaults_leak() {
    let v = json(&base());
    assert!(
        v.get("hostname").is_none() && v.get("annotations").is_none(),
        "{v}"
    );
    assert_eq!(v["process"]["env"], serde_json::json!([]));
}

#[test]
fn errors() {
    let mut s = base();
    s.args.clear();
    assert!(matches!(
        build(&s, Path::new("/r")),
        Err(BundleError::NoArgs(_))
    ));
    let mut s = base();
    s.mounts = vec![Mount::Tmpfs {
        destination: "tmp".into(),
        size: None,
        readonly: false,
    }];
    assert!(matches!(
        build(&s, Path::new("/r")),
        Err(BundleError::RelativeDestination(_))
    ));
}

//! Unit tests for [`Cni`] with a fake plugin executor.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::exec::plugin_failure;

/// One recorded plugin call.
#[derive(Debug, Clone)]
struct Call {
    plugin: String,
    inv: Invocation,
    stdin: Value,
}

/// A fake executor: bridge allocates 10.88.0.<n>, portmap and loopback echo,
/// DEL/CHECK succeed; `fail` makes a plugin+command return an error JSON.
#[derive(Default)]
struct FakeExec {
    calls: Mutex<Vec<Call>>,
    fail: Mutex<HashMap<(String, CniCommand), Vec<u8>>>,
}

impl FakeExec {
    fn fail(&self, plugin: &str, command: CniCommand, stdout: &str) {
        self.fail
            .lock()
            .unwrap()
            .insert((plugin.into(), command), stdout.as_bytes().to_vec());
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn chain_calls(&self, command: CniCommand) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.inv.command == command && c.plugin != "loopback")
            .collect()
    }
}

impl PluginExec for FakeExec {
    fn exec(&self, plugin: &str, inv: &Invocation, stdin: &[u8]) -> Result<Vec<u8>, ExecError> {
        let stdin: Value = serde_json::from_slice(stdin).unwrap();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                plugin: plugin.into(),
                inv: inv.clone(),
                stdin: stdin.clone(),
            });
            calls.len()
        };
        if let Some(out) = self
            .fail
            .lock()
            .unwrap()
            .get(&(plugin.to_string(), inv.command))
        {
            return Err(plugin_failure(
                plugin,
                inv.command,
                "exit status: 1",
                out,
                b"",
            ));
        }
        let out = match (plugin, inv.command) {
            (_, CniCommand::Del | CniCommand::Check) => json!(null),
            ("bridge", CniCommand::Add) => json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "cni0", "mac": "02:00:00:00:00:01"},
                    {"name": "veth0", "mac": "02:00:00:00:00:02"},
                    {"name": inv.ifname, "mac": "02:00:00:00:00:03", "sandbox": inv.netns}
                ],
                "ips": [{"address": format!("10.88.0.{n}/24"), "gateway": "10.88.0.1", "interface": 2}],
                "routes": [{"dst": "0.0.0.0/0"}]
            }),
            ("loopback", CniCommand::Add) => json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "lo", "sandbox": inv.netns}],
                "ips": [{"address": "127.0.0.1/8", "interface": 0}]
            }),
            (_, CniCommand::Add) => stdin.get("prevResult").cloned().unwrap_or(json!({})),
            (_, CniCommand::Version) => {
                json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
            }
        };
        Ok(if out.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&out).unwrap()
        })
    }
}

fn setup_cni(cache: &std::path::Path) -> (Cni, Arc<FakeExec>) {
    let fake = Arc::new(FakeExec::default());
    let config = CniConfig::generated("10.88.0.0/24", cache);
    (Cni::with_executor(config, fake.clone()).unwrap(), fake)
}

fn sandbox(id: &str) -> SandboxNetwork {
    SandboxNetwork {
        id: id.into(),
        netns_path: format!("/run/netns/test-{id}").into(),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: "web".into(),
        pod_uid: "uid-1".into(),
        port_mappings: vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: Some("192.0.2.2".parse().unwrap()),
        }],
    }
}

#[test]
fn setup_runs_loopback_and_the_chain_and_parses_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, fake) = setup_cni(dir.path());
    let status = cni.setup(&sandbox("a")).unwrap();
    assert_eq!(status.interface, "eth0");
    assert_eq!(status.ips.len(), 1);
    assert!(status.ips[0].to_string().starts_with("10.88.0."));
    assert_eq!(status.gateway, Some("10.88.0.1".parse().unwrap()));
    assert_eq!(status.mac.as_deref(), Some("02:00:00:00:00:03"));

    let calls = fake.calls();
    let lo = calls.iter().find(|c| c.plugin == "loopback").unwrap();
    assert_eq!(lo.stdin["name"], "cni-loopback");
    assert_eq!(lo.inv.ifname, "eth0");

    let chain = fake.chain_calls(CniCommand::Add);
    assert_eq!(
        chain.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(),
        ["bridge", "portmap"]
    );
    let bridge = &chain[0];
    assert_eq!(bridge.inv.container_id, "a");
    assert_eq!(bridge.inv.netns, "/run/netns/test-a");
    assert_eq!(
        bridge.inv.args,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=a;K8S_POD_UID=uid-1"
    );
    assert!(bridge.stdin.get("prevResult").is_none());
    assert!(bridge.stdin.get("runtimeConfig").is_none());
    let portmap = &chain[1];
    assert_eq!(
        portmap.stdin["prevResult"]["ips"][0]["address"],
        format!("{}/24", status.ips[0])
    );
    assert_eq!(
        portmap.stdin["runtimeConfig"]["portMappings"],
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.2"}])
    );
    assert_eq!(cni.cached_status(&sandbox("a")), Some(status));
}

#[test]
fn teardown_uses_the_cached_result_after_a_restart_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, _) = setup_cni(dir.path());
    let status = cni.setup(&sandbox("a")).unwrap();
    drop(cni);

    // "Agent restart": a new Cni; the netns path does not exist here, so
    // CNI_NETNS is empty and loopback DEL is skipped.
    let (cni, fake) = setup_cni(dir.path());
    let mut sb = sandbox("a");
    sb.port_mappings.clear();
    cni.teardown(&sb).unwrap();
    let dels = fake.chain_calls(CniCommand::Del);
    assert_eq!(
        dels.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(),
        ["portmap", "bridge"]
    );
    for del in &dels {
        assert_eq!(del.inv.netns, "");
        assert_eq!(
            del.stdin["prevResult"]["ips"][0]["address"],
            format!("{}/24", status.ips[0])
        );
    }
    // The mappings come from the cache, not from the (changed) request.
    assert_eq!(
        dels[0].stdin["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(fake.calls().iter().all(|c| c.plugin != "loopback"));
    assert!(cni.cached_status(&sb).is_none());

    // Second DEL, and DEL of a sandbox never set up: no cache, no prevResult.
    cni.teardown(&sb).unwrap();
    cni.teardown(&sandbox("never")).unwrap();
    let last = fake.chain_calls(CniCommand::Del).pop().unwrap();
    assert!(last.stdin.get("prevResult").is_none());
    assert_eq!(last.inv.container_id, "never");
}

#[test]
fn teardown_uses_the_cached_config_when_the_network_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, _) = setup_cni(dir.path());
    cni.setup(&sandbox("a")).unwrap();

    let fake = Arc::new(FakeExec::default());
    let mut net = DefaultNetwork::new("10.99.0.0/24");
    net.name = "other".into();
    net.port_map = false;
    let config = CniConfig {
        plugin_dirs: vec![],
        network: NetworkSource::Generated(net),
        cache_dir: dir.path().into(),
        enable_ip_forward: false,
    };
    let cni = Cni::with_executor(config, fake.clone()).unwrap();
    cni.teardown(&sandbox("a")).unwrap();
    let dels = fake.chain_calls(CniCommand::Del);
    assert_eq!(dels.len(), 2, "the cached chain (bridge + portmap) ran");
    assert_eq!(dels[1].stdin["name"], "rkube");
    assert_eq!(
        dels[1].stdin["ipam"]["ranges"][0][0]["subnet"],
        "10.88.0.0/24"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "cache entry removed"
    );
}

#[test]
fn a_failed_add_is_a_clear_error_and_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, fake) = setup_cni(dir.path());
    fake.fail(
        "portmap",
        CniCommand::Add,
        r#"{"cniVersion":"1.0.0","code":999,"msg":"failed to set up hostport","details":"iptables: not found"}"#,
    );
    let err = cni.setup(&sandbox("a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CNI plugin portmap ADD failed (code 999): failed to set up hostport (iptables: not found)"
    );
    assert!(matches!(
        err,
        CniError::Exec(ExecError::Plugin { code: 999, .. })
    ));
    let dels = fake.chain_calls(CniCommand::Del);
    assert_eq!(dels.len(), 2, "the whole chain was deleted again");
    assert!(cni.cached_status(&sandbox("a")).is_none());
}

#[test]
fn a_failed_del_keeps_going_and_keeps_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, fake) = setup_cni(dir.path());
    cni.setup(&sandbox("a")).unwrap();
    fake.fail("portmap", CniCommand::Del, r#"{"code":11,"msg":"busy"}"#);
    let err = cni.teardown(&sandbox("a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CNI plugin portmap DEL failed (code 11): busy"
    );
    let dels = fake.chain_calls(CniCommand::Del);
    assert_eq!(
        dels.last().unwrap().plugin,
        "bridge",
        "bridge DEL still ran"
    );
    assert!(
        cni.cached_status(&sandbox("a")).is_some(),
        "kept for a retry"
    );
}

#[test]
fn garbage_output_is_a_bad_result() {
    struct Garbage;
    impl PluginExec for Garbage {
        fn exec(&self, _: &str, _: &Invocation, _: &[u8]) -> Result<Vec<u8>, ExecError> {
            Ok(b"not json".to_vec())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = CniConfig::generated("10.88.0.0/24", dir.path());
    let cni = Cni::with_executor(config, Arc::new(Garbage)).unwrap();
    let err = cni.setup(&sandbox("a")).unwrap_err();
    assert!(
        matches!(
            err,
            CniError::BadResult {
                command: CniCommand::Add,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn check_runs_in_order_with_the_cached_result() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, fake) = setup_cni(dir.path());
    assert!(matches!(
        cni.check(&sandbox("a")),
        Err(CniError::NotSetUp(_))
    ));
    cni.setup(&sandbox("a")).unwrap();
    cni.check(&sandbox("a")).unwrap();
    let checks = fake.chain_calls(CniCommand::Check);
    assert_eq!(
        checks.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(),
        ["bridge", "portmap"]
    );
    assert!(checks[0].stdin["prevResult"]["ips"].is_array());
    fake.fail(
        "bridge",
        CniCommand::Check,
        r#"{"code":100,"msg":"veth gone"}"#,
    );
    assert!(cni.check(&sandbox("a")).is_err());
}

#[test]
fn cni_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cni>();
}

#[test]
fn plugin_versions_reads_the_version_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (cni, fake) = setup_cni(dir.path());
    let v = cni.plugin_versions("bridge").unwrap();
    assert_eq!(v.supported_versions, ["0.4.0", "1.0.0"]);
    assert_eq!(fake.calls()[0].stdin["cniVersion"], "1.0.0");
}

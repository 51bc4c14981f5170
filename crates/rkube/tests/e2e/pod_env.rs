//! Service environment variables in real containers: a pod sees the
//! Services of its namespace (`{SVC}_SERVICE_HOST`, named ports, Docker
//! links) and always the master `kubernetes` Service; with
//! `enableServiceLinks: false` only the latter.

use crate::common::jsonpath;
use crate::containers::{real_server, registry, wait_phase};

#[test]
fn pods_see_service_variables_unless_links_are_disabled() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: my-svc}
spec:
  selector: {app: nothing}
  ports:
  - {name: web-port, port: 8080, targetPort: 80}
"#,
    );
    let ip = jsonpath(&s, &["get", "service", "my-svc"], "{.spec.clusterIP}");
    assert!(!ip.is_empty() && ip != "None", "cluster IP: {ip:?}");
    let pod = |name: &str, links: bool| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  enableServiceLinks: {links}
  containers:
  - name: c
    image: "{image}"
    command: [env]
"#
        )
    };
    s.apply(&pod("with-links", true));
    s.apply(&pod("no-links", false));
    wait_phase(&s, "with-links", "Succeeded", 90);
    wait_phase(&s, "no-links", "Succeeded", 90);
    let logs = s.ok(&["logs", "with-links"]);
    let lines: Vec<&str> = logs.lines().collect();
    for want in [
        format!("MY_SVC_SERVICE_HOST={ip}"),
        "MY_SVC_SERVICE_PORT=8080".to_string(),
        "MY_SVC_SERVICE_PORT_WEB_PORT=8080".to_string(),
        format!("MY_SVC_PORT=tcp://{ip}:8080"),
        format!("MY_SVC_PORT_8080_TCP=tcp://{ip}:8080"),
        "MY_SVC_PORT_8080_TCP_PROTO=tcp".to_string(),
        "MY_SVC_PORT_8080_TCP_PORT=8080".to_string(),
        format!("MY_SVC_PORT_8080_TCP_ADDR={ip}"),
        "KUBERNETES_SERVICE_HOST=10.96.0.1".to_string(),
        "KUBERNETES_SERVICE_PORT_HTTPS=443".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "missing {want}: {logs}");
    }
    let logs = s.ok(&["logs", "no-links"]);
    assert!(!logs.contains("MY_SVC_"), "links disabled: {logs}");
    assert!(
        logs.lines()
            .any(|l| l == "KUBERNETES_SERVICE_HOST=10.96.0.1"),
        "the master service always: {logs}"
    );
}

//! End-to-end: `kind: List` manifests (e.g. `kubectl get … -o yaml`
//! re-applied). kubectl cannot ask the server to validate a List, so it
//! validates it client-side against `/openapi/v2`, which client-go fetches
//! as gnostic protobuf: create/apply must pass with default validation, and
//! unknown fields must be reported by name.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{run_stdin, Server};

const LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: NAME-cm
  data:
    a: "1"
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: NAME-deploy
  spec:
    replicas: 2
    selector:
      matchLabels: {app: NAME}
    template:
      metadata:
        labels: {app: NAME}
      spec:
        containers:
        - name: web
          image: nginx:1.25
          ports:
          - containerPort: 80
          resources:
            limits: {cpu: 100m, memory: 64Mi}
"#;

const BAD_LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: bad-cm
  datta:
    a: "1"
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: bad-deploy
  spec:
    replicas: true
    selector:
      matchLabels: {app: bad}
    template:
      metadata:
        labels: {app: bad}
      spec:
        containers:
        - image: nginx:1.25
"#;

fn list(name: &str) -> String {
    LIST.replace("NAME", name)
}

fn text(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn list_manifests_are_validated_against_openapi_v2() {
    let s = Server::start();

    let out = s.ok_stdin(&["create", "-f", "-"], &list("created"));
    assert!(out.contains("configmap/created-cm created"), "{out}");
    assert!(
        out.contains("deployment.apps/created-deploy created"),
        "{out}"
    );

    let out = s.ok_stdin(&["apply", "-f", "-"], &list("applied"));
    assert!(out.contains("configmap/applied-cm created"), "{out}");
    assert!(
        out.contains("deployment.apps/applied-deploy created"),
        "{out}"
    );
    let out = s.ok_stdin(&["apply", "-f", "-"], &list("applied"));
    assert!(out.contains("configmap/applied-cm unchanged"), "{out}");

    // What `get -o yaml` prints (a List with server-set fields and status)
    // validates too, as YAML and as JSON.
    let yaml = s.ok(&[
        "get",
        "cm/applied-cm",
        "deploy/applied-deploy",
        "-o",
        "yaml",
    ]);
    assert!(yaml.contains("kind: List"), "{yaml}");
    let out = s.ok_stdin(&["apply", "-f", "-"], &yaml);
    assert!(out.contains("configmap/applied-cm"), "{out}");
    let json = s.ok(&["get", "cm/created-cm", "-o", "json"]);
    let json = json.replace("\"created-cm\"", "\"json-cm\"");
    let json = format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{json}]}}"#);
    let out = s.ok_stdin(&["create", "-f", "-"], &json);
    assert!(out.contains("configmap/json-cm created"), "{out}");

    // Unknown fields, wrong types and missing required fields are named,
    // and nothing is created.
    for verb in ["create", "apply"] {
        let mut cmd = s.kubectl_cmd();
        cmd.args([verb, "-f", "-"]);
        let o = run_stdin(cmd, BAD_LIST);
        assert!(!o.status.success(), "{verb} succeeded: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for want in [
            r#"unknown field "datta" in io.k8s.api.core.v1.ConfigMap"#,
            r#"invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got "boolean", expected "integer""#,
            r#"missing required field "name" in io.k8s.api.core.v1.Container"#,
        ] {
            assert!(err.contains(want), "{verb}: no {want:?} in {err}");
        }
    }
    let o = s.kubectl(&["get", "cm/bad-cm"]);
    assert!(!o.status.success(), "bad-cm was created: {}", text(&o));

    // The JSON document is still served to clients asking for JSON.
    let raw = s.ok(&["get", "--raw", "/openapi/v2"]);
    assert!(
        raw.starts_with(r#"{"swagger":"2.0""#),
        "{}",
        &raw[..raw.len().min(200)]
    );
}

fn versioned(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig").arg(kubeconfig).args(args);
    c.env_remove("KUBECONFIG");
    c
}

#[test]
fn kubectl_1_32_and_1_33_validate_lists() {
    let bins = crate::common::versioned_kubectls();
    if bins.is_empty() {
        eprintln!("no versioned kubectl binaries beside kubectl; the default one is tested above");
        return;
    }
    let s = Server::start();
    for (i, bin) in bins.iter().enumerate() {
        let name = format!("v{i}");
        let o = run_stdin(
            versioned(bin, &s.kubeconfig, &["create", "-f", "-"]),
            &list(&name),
        );
        assert!(o.status.success(), "{}: {}", bin.display(), text(&o));
        let o = run_stdin(
            versioned(bin, &s.kubeconfig, &["apply", "-f", "-"]),
            BAD_LIST,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(r#"unknown field "datta""#),
            "{}: {}",
            bin.display(),
            text(&o)
        );
    }
}

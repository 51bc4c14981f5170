//! End-to-end: the garbage collector and the ServiceAccount controller
//! inside `rkube server`, driven with the real kubectl: background, orphan
//! and foreground cascading deletion, several owners, cluster-scoped owners,
//! cross-namespace owner references, and the `default` ServiceAccount.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

const WAIT: Duration = Duration::from_secs(60);

fn uid(s: &Server, args: &[&str]) -> String {
    jsonpath(s, args, "{.metadata.uid}")
}

fn exists(s: &Server, args: &[&str]) -> bool {
    s.kubectl(args).status.success()
}

fn gone(s: &Server, args: &[&str]) {
    eventually(WAIT, || (!exists(s, args)).then_some(()));
}

/// An ownerReference line for a manifest.
fn oref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> String {
    let block = if block {
        ", blockOwnerDeletion: true"
    } else {
        ""
    };
    format!("  - {{apiVersion: {api_version}, kind: {kind}, name: {name}, uid: {uid}{block}}}\n")
}

fn cm(name: &str, ns: &str, refs: &[String], finalizers: &[&str]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  ownerReferences:\n"
    );
    y.extend(refs.iter().map(String::as_str));
    if !finalizers.is_empty() {
        y.push_str("  finalizers:\n");
        for f in finalizers {
            y.push_str(&format!("  - {f}\n"));
        }
    }
    y
}

fn pod(name: &str, refs: &[String]) -> String {
    let mut y =
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  ownerReferences:\n");
    y.extend(refs.iter().map(String::as_str));
    y.push_str("spec:\n  containers:\n  - name: app\n    image: nginx\n");
    y
}

/// A ConfigMap `name` in default and an owner reference to it.
fn owner_cm(s: &Server, name: &str, block: bool) -> String {
    s.ok(&["create", "configmap", name]);
    let u = uid(s, &["get", "cm", name]);
    oref("v1", "ConfigMap", name, &u, block)
}

#[test]
fn background_deletion_removes_dependents() {
    let s = Server::start();
    let r = owner_cm(&s, "owner", false);
    s.apply(&cm("dep", "default", std::slice::from_ref(&r), &[]));
    s.apply(&pod("dep-pod", std::slice::from_ref(&r)));
    // Dependents whose owner exists are left alone.
    std::thread::sleep(Duration::from_secs(2));
    assert!(exists(&s, &["get", "cm", "dep"]));
    assert!(exists(&s, &["get", "pod", "dep-pod"]));
    // kubectl's default: Background; the owner goes at once, the GC takes
    // the dependents after.
    s.ok(&["delete", "cm", "owner"]);
    gone(&s, &["get", "cm", "dep"]);
    gone(&s, &["get", "pod", "dep-pod"]);

    // A dependent created after its owner is gone is collected too.
    let stale = oref(
        "v1",
        "ConfigMap",
        "never",
        "00000000-0000-0000-0000-000000000001",
        false,
    );
    s.apply(&cm("late", "default", &[stale], &[]));
    gone(&s, &["get", "cm", "late"]);
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let s = Server::start();
    let r = owner_cm(&s, "owner", false);
    let other = owner_cm(&s, "other", false);
    s.apply(&cm("dep", "default", std::slice::from_ref(&r), &[]));
    s.apply(&cm("dep2", "default", &[r.clone(), other], &[]));
    s.ok(&["delete", "cm", "owner", "--cascade=orphan", "--timeout=60s"]);
    assert!(s.fails(&["get", "cm", "owner"]).contains("NotFound"));
    assert_eq!(
        jsonpath(&s, &["get", "cm", "dep"], "{.metadata.ownerReferences}"),
        ""
    );
    assert_eq!(
        jsonpath(
            &s,
            &["get", "cm", "dep2"],
            "{.metadata.ownerReferences[*].name}"
        ),
        "other"
    );
    // And they stay: nothing collects them later.
    std::thread::sleep(Duration::from_secs(3));
    assert!(exists(&s, &["get", "cm", "dep"]));
    assert!(exists(&s, &["get", "cm", "dep2"]));
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let s = Server::start();
    let r = owner_cm(&s, "owner", true);
    s.apply(&cm(
        "held",
        "default",
        std::slice::from_ref(&r),
        &["example.com/hold"],
    ));
    s.apply(&pod("free-pod", std::slice::from_ref(&r)));
    s.ok(&[
        "delete",
        "cm",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ]);
    // The GC deletes the dependents; the held one waits on its finalizer.
    eventually(WAIT, || {
        (!jsonpath(&s, &["get", "cm", "held"], "{.metadata.deletionTimestamp}").is_empty())
            .then_some(())
    });
    gone(&s, &["get", "pod", "free-pod"]);
    // The owner stays, being deleted, while the blocking dependent exists.
    std::thread::sleep(Duration::from_secs(2));
    let owner = jsonpath(
        &s,
        &["get", "cm", "owner"],
        "{.metadata.deletionTimestamp}|{.metadata.finalizers}",
    );
    assert!(
        !owner.starts_with('|') && owner.contains("foregroundDeletion"),
        "{owner}"
    );
    // Release the dependent: both go.
    s.ok(&[
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    gone(&s, &["get", "cm", "held"]);
    gone(&s, &["get", "cm", "owner"]);
}

#[test]
fn foreground_deletion_of_a_chain() {
    let s = Server::start();
    let r = owner_cm(&s, "top", true);
    s.apply(&cm("middle", "default", std::slice::from_ref(&r), &[]));
    let mid = uid(&s, &["get", "cm", "middle"]);
    s.apply(&cm(
        "bottom",
        "default",
        &[oref("v1", "ConfigMap", "middle", &mid, true)],
        &[],
    ));
    s.ok(&[
        "delete",
        "cm",
        "top",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    gone(&s, &["get", "cm", "bottom"]);
    gone(&s, &["get", "cm", "middle"]);
    gone(&s, &["get", "cm", "top"]);
}

#[test]
fn a_dependent_with_two_owners_survives_one() {
    let s = Server::start();
    let a = owner_cm(&s, "a", false);
    let b = owner_cm(&s, "b", false);
    s.apply(&cm("shared", "default", &[a, b], &[]));
    s.ok(&["delete", "cm", "a"]);
    eventually(WAIT, || {
        (jsonpath(
            &s,
            &["get", "cm", "shared"],
            "{.metadata.ownerReferences[*].name}",
        ) == "b")
            .then_some(())
    });
    // Once the last owner goes, so does the dependent.
    s.ok(&["delete", "cm", "b"]);
    gone(&s, &["get", "cm", "shared"]);
}

#[test]
fn cluster_scoped_owner_of_namespaced_objects() {
    let s = Server::start();
    s.ok(&[
        "create",
        "clusterrole",
        "owner-role",
        "--verb=get",
        "--resource=pods",
    ]);
    let u = uid(&s, &["get", "clusterrole", "owner-role"]);
    s.ok(&["create", "ns", "team"]);
    let r = oref(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "owner-role",
        &u,
        false,
    );
    s.apply(&cm("dep", "default", std::slice::from_ref(&r), &[]));
    s.apply(&cm("dep", "team", std::slice::from_ref(&r), &[]));
    std::thread::sleep(Duration::from_secs(2));
    assert!(exists(&s, &["get", "cm", "dep", "-n", "team"]));
    s.ok(&["delete", "clusterrole", "owner-role"]);
    gone(&s, &["get", "cm", "dep"]);
    gone(&s, &["get", "cm", "dep", "-n", "team"]);
}

#[test]
fn owner_in_another_namespace_is_invalid() {
    let s = Server::start();
    s.ok(&["create", "ns", "a"]);
    s.ok(&["create", "ns", "b"]);
    s.ok(&["create", "configmap", "owner", "-n", "a"]);
    let u = uid(&s, &["get", "cm", "owner", "-n", "a"]);
    s.apply(&cm(
        "dep",
        "b",
        &[oref("v1", "ConfigMap", "owner", &u, false)],
        &[],
    ));
    // Upstream: a Warning event on the dependent, and the owner counts as
    // absent in the dependent's namespace, so the dependent is collected.
    eventually(WAIT, || {
        let ev = s.ok(&[
            "get",
            "events",
            "-n",
            "b",
            "--field-selector",
            "reason=OwnerRefInvalidNamespace",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        ev.contains(&format!(
            "ownerRef [v1/ConfigMap, namespace: b, name: owner, uid: {u}] does not exist in namespace \"b\""
        ))
        .then_some(())
    });
    gone(&s, &["get", "cm", "dep", "-n", "b"]);
    assert!(exists(&s, &["get", "cm", "owner", "-n", "a"]));
}

#[test]
fn every_namespace_gets_a_default_service_account() {
    let s = Server::start();
    s.ok(&["create", "ns", "x"]);
    eventually(WAIT, || {
        exists(&s, &["get", "sa", "default", "-n", "x"]).then_some(())
    });
    let first = uid(&s, &["get", "sa", "default", "-n", "x"]);
    s.ok(&["delete", "sa", "default", "-n", "x"]);
    eventually(WAIT, || {
        let o = s.kubectl(&[
            "get",
            "sa",
            "default",
            "-n",
            "x",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let now = String::from_utf8_lossy(&o.stdout).to_string();
        (o.status.success() && !now.is_empty() && now != first).then_some(())
    });
    // The built-in namespaces have one too.
    eventually(WAIT, || {
        exists(&s, &["get", "sa", "default", "-n", "default"]).then_some(())
    });
    eventually(WAIT, || {
        exists(&s, &["get", "sa", "default", "-n", "kube-system"]).then_some(())
    });
}

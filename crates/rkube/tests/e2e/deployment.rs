//! End-to-end: the ReplicaSet and Deployment controllers inside `rkube
//! server`, driven with the real kubectl (`rollout status/history/undo/
//! pause/resume/restart`, `set image`, `scale`) over simulated nodes.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

const WAIT: Duration = Duration::from_secs(60);

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n\
         status:\n  capacity:\n    cpu: \"8\"\n    memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

fn setup() -> Server {
    let s = Server::start();
    let manifests: String = ["n1", "n2", "n3"].iter().map(|n| node(n)).collect();
    s.apply(&manifests);
    eventually(WAIT, || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 3).then_some(())
    });
    s
}

/// A Deployment `name` of `replicas` pods running `image`, with extra
/// spec lines (indented two spaces) and pod template annotations.
fn deployment(name: &str, image: &str, replicas: u32, spec_extra: &str, pod_ann: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  annotations:\n    \
         kubernetes.io/change-cause: first\nspec:\n  replicas: {replicas}\n{spec_extra}  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      \
         labels:\n        app: {name}\n      annotations:\n        note: x\n{pod_ann}    spec:\n      \
         containers:\n      - name: app\n        image: {image}\n"
    )
}

fn get(s: &Server, args: &[&str], path: &str) -> String {
    jsonpath(s, args, path)
}

/// The images of the Deployment's pods that are not being deleted.
fn pod_images(s: &Server, app: &str) -> Vec<String> {
    let sel = format!("app={app}");
    let out = get(
        s,
        &["get", "pods", "-l", &sel],
        "{range .items[?(@.metadata.deletionTimestamp)]}DEL {end}|{range .items[*]}{.spec.containers[0].image} {end}",
    );
    let (del, imgs) = out.split_once('|').unwrap_or(("", ""));
    if !del.trim().is_empty() {
        return vec!["<terminating>".into()];
    }
    let mut v: Vec<String> = imgs.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

fn wait_images(s: &Server, app: &str, image: &str, n: usize) {
    eventually(WAIT, || {
        let imgs = pod_images(s, app);
        (imgs.len() == n && imgs.iter().all(|i| i == image)).then_some(())
    });
}

fn rollout_status(s: &Server, name: &str) -> String {
    let d = format!("deployment/{name}");
    s.ok(&["rollout", "status", &d, "--timeout=90s"])
}

#[test]
fn rolling_update_history_and_undo() {
    let s = setup();
    s.apply(&deployment("web", "nginx:1.0", 3, "", ""));
    let out = rollout_status(&s, "web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let row = s.ok(&["get", "deploy", "web", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], &["web", "3/3", "3", "3"], "{row}");
    wait_images(&s, "web", "nginx:1.0", 3);
    // The ReplicaSet: name <deploy>-<hash>, hash label, revision 1.
    let rs = get(
        &s,
        &["get", "rs", "-l", "app=web"],
        "{.items[0].metadata.name}",
    );
    let hash = get(
        &s,
        &["get", "rs", &rs],
        "{.metadata.labels.pod-template-hash}",
    );
    assert_eq!(rs, format!("web-{hash}"));
    assert_eq!(
        get(
            &s,
            &["get", "rs", &rs],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "1"
    );
    assert_eq!(
        get(
            &s,
            &["get", "rs", &rs],
            "{.spec.selector.matchLabels.pod-template-hash}"
        ),
        hash
    );
    let owner = get(
        &s,
        &["get", "pod", "-l", "app=web"],
        "{.items[0].metadata.ownerReferences[0].name}",
    );
    assert_eq!(owner, rs);

    // Scale to 5 and back to 3.
    s.ok(&["scale", "deploy/web", "--replicas=5"]);
    eventually(WAIT, || {
        (get(&s, &["get", "deploy", "web"], "{.status.availableReplicas}") == "5").then_some(())
    });
    wait_images(&s, "web", "nginx:1.0", 5);
    s.ok(&["scale", "deploy/web", "--replicas=3"]);
    eventually(WAIT, || {
        let r = get(
            &s,
            &["get", "deploy", "web"],
            "{.status.replicas}/{.status.availableReplicas}",
        );
        (r == "3/3").then_some(())
    });
    wait_images(&s, "web", "nginx:1.0", 3);

    // Roll out image B.
    s.ok(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=to B",
        "--overwrite",
    ]);
    s.ok(&["set", "image", "deploy/web", "app=nginx:2.0"]);
    rollout_status(&s, "web");
    wait_images(&s, "web", "nginx:2.0", 3);
    let row = s.ok(&["get", "deploy", "web", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], &["web", "3/3", "3", "3"], "{row}");
    let hist = s.ok(&["rollout", "history", "deploy/web"]);
    let revs: Vec<&str> = hist
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(revs.len(), 2, "{hist}");
    assert!(
        revs[1].starts_with('2') && revs[1].contains("to B"),
        "{hist}"
    );
    assert_eq!(
        get(
            &s,
            &["get", "deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "2"
    );
    let events = s.ok(&["describe", "deploy", "web"]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");
    assert!(
        events.contains(&format!("Scaled up replica set {rs} from 3 to 5")),
        "{events}"
    );
    assert!(
        events.contains("from 0 to 1") || events.contains("from 0 to "),
        "{events}"
    );

    // Undo: back to A, reusing the first ReplicaSet as revision 3.
    s.ok(&["rollout", "undo", "deploy/web"]);
    rollout_status(&s, "web");
    wait_images(&s, "web", "nginx:1.0", 3);
    eventually(WAIT, || {
        let r = get(
            &s,
            &["get", "rs", &rs],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}|{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}",
        );
        (r == "3|1").then_some(())
    });
    assert_eq!(
        get(
            &s,
            &["get", "rs", "-l", "app=web"],
            "{.items[*].metadata.name}"
        )
        .split_whitespace()
        .count(),
        2
    );
    let hist = s.ok(&["rollout", "history", "deploy/web"]);
    assert!(hist.lines().any(|l| l.starts_with('3')), "{hist}");
    assert!(!hist.lines().any(|l| l.starts_with("1 ")), "{hist}");

    // Undo to revision 2: B again, as revision 4.
    s.ok(&["rollout", "undo", "deploy/web", "--to-revision=2"]);
    rollout_status(&s, "web");
    wait_images(&s, "web", "nginx:2.0", 3);
    eventually(WAIT, || {
        (get(
            &s,
            &["get", "deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ) == "4")
            .then_some(())
    });
    let st = get(
        &s,
        &["get", "deploy", "web"],
        "{.status.conditions[?(@.type==\"Progressing\")].reason}|{.status.conditions[?(@.type==\"Available\")].reason}",
    );
    assert_eq!(st, "NewReplicaSetAvailable|MinimumReplicasAvailable");
}

#[test]
fn pause_resume_and_restart() {
    let s = setup();
    s.apply(&deployment("pr", "nginx:1.0", 2, "", ""));
    rollout_status(&s, "pr");
    s.ok(&["rollout", "pause", "deploy/pr"]);
    s.ok(&["set", "image", "deploy/pr", "app=nginx:2.0"]);
    // The change is observed but rolls nothing out.
    eventually(WAIT, || {
        let g = get(
            &s,
            &["get", "deploy", "pr"],
            "{.metadata.generation}/{.status.observedGeneration}/{.status.conditions[?(@.type==\"Progressing\")].reason}",
        );
        let p: Vec<&str> = g.split('/').collect();
        (p.len() == 3 && p[0] == p[1] && p[2] == "DeploymentPaused").then_some(())
    });
    assert_eq!(
        get(
            &s,
            &["get", "rs", "-l", "app=pr"],
            "{.items[*].metadata.name}"
        )
        .split_whitespace()
        .count(),
        1
    );
    // Scaling still applies while paused.
    s.ok(&["scale", "deploy/pr", "--replicas=3"]);
    wait_images(&s, "pr", "nginx:1.0", 3);
    s.ok(&["rollout", "resume", "deploy/pr"]);
    rollout_status(&s, "pr");
    wait_images(&s, "pr", "nginx:2.0", 3);
    // Restart: a template annotation change makes a new revision.
    s.ok(&["rollout", "restart", "deploy/pr"]);
    eventually(WAIT, || {
        (get(
            &s,
            &["get", "deploy", "pr"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ) == "3")
            .then_some(())
    });
    rollout_status(&s, "pr");
    let hist = s.ok(&["rollout", "history", "deploy/pr"]);
    assert_eq!(
        hist.lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count(),
        3,
        "{hist}"
    );
    let restarted = get(
        &s,
        &["get", "pods", "-l", "app=pr"],
        "{.items[*].metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    );
    assert_eq!(restarted.split_whitespace().count(), 3, "{restarted}");
}

#[test]
fn progress_deadline_exceeded() {
    let s = setup();
    s.apply(&deployment(
        "slow",
        "nginx:1.0",
        2,
        "  progressDeadlineSeconds: 5\n",
        "        rkube.io/simulate-ready: \"false\"\n",
    ));
    eventually(WAIT, || {
        let c = get(
            &s,
            &["get", "deploy", "slow"],
            "{.status.conditions[?(@.type==\"Progressing\")].status}|{.status.conditions[?(@.type==\"Progressing\")].reason}|{.status.conditions[?(@.type==\"Progressing\")].message}",
        );
        let rs = get(
            &s,
            &["get", "rs", "-l", "app=slow"],
            "{.items[0].metadata.name}",
        );
        (c == format!(
            "False|ProgressDeadlineExceeded|ReplicaSet \"{rs}\" has timed out progressing."
        ))
        .then_some(())
    });
    let err = s.fails(&["rollout", "status", "deploy/slow", "--timeout=30s"]);
    assert!(
        err.contains("error: deployment \"slow\" exceeded its progress deadline"),
        "{err}"
    );
    let avail = get(
        &s,
        &["get", "deploy", "slow"],
        "{.status.conditions[?(@.type==\"Available\")].reason}|{.status.unavailableReplicas}",
    );
    assert_eq!(avail, "MinimumReplicasUnavailable|2");
}

#[test]
fn recreate_strategy() {
    let s = setup();
    s.apply(&deployment(
        "rc",
        "nginx:1.0",
        3,
        "  strategy:\n    type: Recreate\n",
        "",
    ));
    rollout_status(&s, "rc");
    let first = get(
        &s,
        &["get", "rs", "-l", "app=rc"],
        "{.items[0].metadata.name}",
    );
    s.ok(&["set", "image", "deploy/rc", "app=nginx:2.0"]);
    rollout_status(&s, "rc");
    wait_images(&s, "rc", "nginx:2.0", 3);
    assert_eq!(get(&s, &["get", "rs", &first], "{.spec.replicas}"), "0");
    let d = s.ok(&["describe", "deploy", "rc"]);
    assert!(
        d.contains(&format!("Scaled down replica set {first} from 3 to 0")),
        "{d}"
    );
    assert!(d.contains("from 0 to 3"), "{d}");
}

#[test]
fn replicaset_adopts_and_releases_pods() {
    let s = setup();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: orph\n\
             spec:\n  containers:\n  - name: app\n    image: nginx\n---\n"
        )
    };
    s.apply(&(pod("o1") + &pod("o2")));
    s.apply(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: orph\nspec:\n  replicas: 3\n  \
         selector:\n    matchLabels:\n      app: orph\n  template:\n    metadata:\n      labels:\n        \
         app: orph\n    spec:\n      containers:\n      - name: app\n        image: nginx\n",
    );
    // Both orphans adopted, one pod created.
    eventually(WAIT, || {
        let owners = get(
            &s,
            &["get", "pods", "-l", "app=orph"],
            "{range .items[*]}{.metadata.ownerReferences[0].name} {end}",
        );
        let ready = get(&s, &["get", "rs", "orph"], "{.status.readyReplicas}");
        (owners.split_whitespace().filter(|o| *o == "orph").count() == 3 && ready == "3")
            .then_some(())
    });
    assert_eq!(
        get(
            &s,
            &["get", "pod", "o1"],
            "{.metadata.ownerReferences[0].controller}"
        ),
        "true"
    );
    // Relabelled: released, and replaced.
    s.ok(&["label", "pod", "o1", "app=gone", "--overwrite"]);
    eventually(WAIT, || {
        let refs = get(&s, &["get", "pod", "o1"], "{.metadata.ownerReferences}");
        let n = get(
            &s,
            &["get", "pods", "-l", "app=orph"],
            "{.items[*].metadata.name}",
        );
        (refs.is_empty() && n.split_whitespace().count() == 3).then_some(())
    });
    let st = get(
        &s,
        &["get", "rs", "orph"],
        "{.status.replicas}/{.status.fullyLabeledReplicas}/{.status.availableReplicas}/{.status.observedGeneration}",
    );
    assert_eq!(st, "3/3/3/1");
    // Scale down: the SuccessfulDelete events name the pods.
    s.ok(&["scale", "rs/orph", "--replicas=1"]);
    eventually(WAIT, || {
        let n = get(
            &s,
            &["get", "pods", "-l", "app=orph"],
            "{.items[*].metadata.name}",
        );
        (n.split_whitespace().count() == 1).then_some(())
    });
    let d = s.ok(&["describe", "rs", "orph"]);
    assert!(
        d.contains("SuccessfulCreate") && d.contains("Created pod: orph-"),
        "{d}"
    );
    assert!(
        d.contains("SuccessfulDelete") && d.contains("Deleted pod: "),
        "{d}"
    );
}

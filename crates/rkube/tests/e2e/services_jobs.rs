//! End-to-end: the Endpoints, EndpointSlice, Job, TTL-after-finished and
//! CronJob controllers inside `rkube server`, driven with the real kubectl
//! over a simulated node.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

const WAIT: Duration = Duration::from_secs(60);

fn setup() -> Server {
    let s = Server::start();
    s.apply(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: n1\n    \
         topology.kubernetes.io/zone: zone-a\nstatus:\n  capacity:\n    cpu: \"8\"\n    \
         memory: 16Gi\n    pods: \"110\"\n",
    );
    eventually(WAIT, || {
        s.ok(&["get", "nodes"]).contains(" Ready ").then_some(())
    });
    s
}

fn web_pod(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\n\
         spec:\n  containers:\n  - name: app\n    image: nginx\n    ports:\n    \
         - name: http\n      containerPort: {port}\n---\n"
    )
}

fn pod_ip(s: &Server, name: &str) -> String {
    eventually(WAIT, || {
        let ip = jsonpath(s, &["get", "pod", name], "{.status.podIP}");
        (!ip.is_empty()).then_some(ip)
    })
}

fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn services_get_endpoints_and_slices() {
    let s = setup();
    let pods: String = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|n| web_pod(n, 8080))
        .collect();
    s.apply(&pods);
    s.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    \
         app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n",
    );
    let mut ips: Vec<String> = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|n| pod_ip(&s, n))
        .collect();
    ips.sort();
    // Endpoints: three ready addresses on the named container port.
    eventually(WAIT, || {
        let got = jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[*].addresses[*].ip}",
        );
        (sorted(&got) == ips).then_some(())
    });
    assert_eq!(
        jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[0].ports[0].port}"
        ),
        "8080"
    );
    let table = s.ok(&["get", "endpoints", "web"]);
    assert!(table.contains(":8080"), "{table}");
    // EndpointSlices, found by the service-name label.
    let sel = [
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ];
    eventually(WAIT, || {
        let got = jsonpath(&s, &sel, "{.items[*].endpoints[*].addresses[0]}");
        (sorted(&got) == ips).then_some(())
    });
    assert_eq!(jsonpath(&s, &sel, "{.items[0].ports[0].port}"), "8080");
    assert_eq!(jsonpath(&s, &sel, "{.items[0].addressType}"), "IPv4");
    assert_eq!(
        jsonpath(
            &s,
            &sel,
            "{.items[0].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}"
        ),
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        jsonpath(&s, &sel, "{.items[0].metadata.ownerReferences[0].kind}"),
        "Service"
    );
    assert_eq!(
        jsonpath(&s, &sel, "{.items[0].endpoints[0].zone}"),
        "zone-a"
    );
    assert_eq!(
        jsonpath(&s, &sel, "{.items[0].endpoints[0].nodeName}"),
        "n1"
    );
    let table = s.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(table.contains("IPv4") && table.contains("8080"), "{table}");

    // web-1 turns not ready: notReadyAddresses, and ready=false in its slice.
    let ip1 = pod_ip(&s, "web-1");
    s.ok(&[
        "annotate",
        "pod",
        "web-1",
        "rkube.io/simulate-ready=false",
        "--overwrite",
    ]);
    eventually(WAIT, || {
        let nr = jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[*].notReadyAddresses[*].ip}",
        );
        (nr == ip1).then_some(())
    });
    assert_eq!(
        sorted(&jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[*].addresses[*].ip}"
        ))
        .len(),
        2
    );
    eventually(WAIT, || {
        let path =
            format!("{{.items[*].endpoints[?(@.addresses[0]==\"{ip1}\")].conditions.ready}}");
        (jsonpath(&s, &sel, &path) == "false").then_some(())
    });

    // A deleted pod leaves both.
    s.ok(&["delete", "pod", "web-2", "--wait=false"]);
    let ip0 = pod_ip(&s, "web-0");
    eventually(WAIT, || {
        let got = jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[*].addresses[*].ip}",
        );
        let slices = jsonpath(&s, &sel, "{.items[*].endpoints[*].addresses[0]}");
        (got == ip0 && sorted(&slices).len() == 2).then_some(())
    });

    // A numeric targetPort, and a selector change that drops every pod.
    s.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    \
         app: other\n  ports:\n  - name: http\n    port: 80\n    targetPort: 9090\n",
    );
    eventually(WAIT, || {
        let eps = jsonpath(&s, &["get", "endpoints", "web"], "{.subsets}");
        let slices = jsonpath(&s, &sel, "{.items[*].endpoints[*].addresses[0]}");
        let count = jsonpath(&s, &sel, "{.items[*].metadata.name}");
        (eps.is_empty() && slices.is_empty() && count.split_whitespace().count() == 1).then_some(())
    });
    s.ok(&["label", "pod", "web-0", "app=other", "--overwrite"]);
    eventually(WAIT, || {
        let port = jsonpath(
            &s,
            &["get", "endpoints", "web"],
            "{.subsets[0].ports[0].port}",
        );
        (port == "9090").then_some(())
    });

    // A Service without a selector keeps the Endpoints its user wrote.
    s.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: manual\nspec:\n  ports:\n  \
         - port: 80\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: manual\n\
         subsets:\n- addresses:\n  - ip: 192.0.2.10\n  ports:\n  - port: 80\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        jsonpath(
            &s,
            &["get", "endpoints", "manual"],
            "{.subsets[0].addresses[0].ip}"
        ),
        "192.0.2.10"
    );
    let manual = jsonpath(
        &s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=manual",
        ],
        "{.items}",
    );
    assert!(manual.is_empty() || manual == "[]", "{manual}");
    // Deleting the Service deletes its Endpoints and slices.
    s.ok(&["delete", "service", "web"]);
    eventually(WAIT, || {
        let gone = !s.kubectl(&["get", "endpoints", "web"]).status.success();
        let slices = jsonpath(&s, &sel, "{.items}");
        (gone && (slices.is_empty() || slices == "[]")).then_some(())
    });
}

fn job(name: &str, spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    \
         metadata:\n      annotations:\n{annotations}    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: c\n        image: busybox\n---\n"
    )
}

const EXIT_OK: &str = "        rkube.io/simulate-exit-after: \"1s\"\n";
const EXIT_FAIL: &str =
    "        rkube.io/simulate-exit-after: \"1s\"\n        rkube.io/simulate-exit-code: \"1\"\n";
const RUN: &str = "        rkube.io/forever: \"true\"\n";

fn cond_reason(s: &Server, job: &str, ty: &str) -> String {
    jsonpath(
        s,
        &["get", "job", job],
        &format!("{{.status.conditions[?(@.type==\"{ty}\")].reason}}"),
    )
}

#[test]
fn jobs_complete_fail_and_expire() {
    let s = setup();
    let manifests = [
        job("ok", "  completions: 3\n  parallelism: 2\n", EXIT_OK),
        job("bad", "  backoffLimit: 1\n", EXIT_FAIL),
        job("slow", "  activeDeadlineSeconds: 3\n", RUN),
        job(
            "idx",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
            EXIT_OK,
        ),
        job("ttl", "  ttlSecondsAfterFinished: 1\n", EXIT_OK),
    ]
    .concat();
    s.apply(&manifests);

    // completions 3, parallelism 2: never more than two at once, then Complete.
    let out = s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    assert_eq!(
        jsonpath(&s, &["get", "job", "ok"], "{.status.succeeded}"),
        "3"
    );
    assert_eq!(cond_reason(&s, "ok", "Complete"), "CompletionsReached");
    assert_eq!(
        cond_reason(&s, "ok", "SuccessCriteriaMet"),
        "CompletionsReached"
    );
    assert!(!jsonpath(&s, &["get", "job", "ok"], "{.status.completionTime}").is_empty());
    let table = s.ok(&["get", "jobs", "ok"]);
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(row.contains("Complete") && row.contains("3/3"), "{table}");
    let pods = s.ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=ok",
        "-o",
        "name",
    ]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=ok",
    ]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Completed"),
        "{events}"
    );

    // Indexed: every index completes once.
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=60s",
    ]);
    assert_eq!(
        jsonpath(&s, &["get", "job", "idx"], "{.status.completedIndexes}"),
        "0-2"
    );
    let idx = jsonpath(
        &s,
        &["get", "pods", "-l", "batch.kubernetes.io/job-name=idx"],
        "{.items[*].metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}",
    );
    assert_eq!(sorted(&idx), ["0", "1", "2"]);

    // The active deadline fails the Job and removes its pod.
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/slow",
        "--timeout=60s",
    ]);
    assert_eq!(cond_reason(&s, "slow", "Failed"), "DeadlineExceeded");
    assert!(s.ok(&["get", "jobs", "slow"]).contains("Failed"));

    // Two failures with backoffLimit 1 (the second after the 10 s back-off).
    s.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=90s"]);
    assert_eq!(cond_reason(&s, "bad", "Failed"), "BackoffLimitExceeded");
    assert_eq!(
        cond_reason(&s, "bad", "FailureTarget"),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        jsonpath(&s, &["get", "job", "bad"], "{.status.failed}"),
        "2"
    );

    // ttlSecondsAfterFinished: 1 — the Job goes soon after finishing.
    eventually(WAIT, || {
        let o = s.kubectl(&["get", "job", "ttl"]);
        (!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("NotFound"))
            .then_some(())
    });
}

#[test]
fn cronjobs_start_jobs() {
    let s = setup();
    s.apply(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  \
         schedule: \"*/1 * * * *\"\n  concurrencyPolicy: Forbid\n  jobTemplate:\n    spec:\n      \
         template:\n        metadata:\n          annotations:\n            \
         rkube.io/simulate-exit-after: \"1s\"\n        spec:\n          restartPolicy: OnFailure\n          \
         containers:\n          - name: c\n            image: busybox\n",
    );
    // A Job made by hand from the CronJob runs like any other.
    s.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);
    assert_eq!(
        jsonpath(
            &s,
            &["get", "job", "manual"],
            "{.metadata.ownerReferences[0].kind}"
        ),
        "CronJob"
    );
    // The schedule fires within a minute: a Job named by the minute.
    let name = eventually(Duration::from_secs(90), || {
        let names = jsonpath(&s, &["get", "jobs"], "{.items[*].metadata.name}");
        names
            .split_whitespace()
            .find(|n| n.starts_with("tick-"))
            .map(str::to_string)
    });
    let minutes: i64 = name.trim_start_matches("tick-").parse().expect("minutes");
    let ts = jsonpath(
        &s,
        &["get", "job", &name],
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    assert!(ts.ends_with(":00Z"), "{ts}");
    assert!(minutes > 28_000_000, "{minutes}");
    s.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{name}"),
        "--timeout=60s",
    ]);
    eventually(WAIT, || {
        let last = jsonpath(
            &s,
            &["get", "cronjob", "tick"],
            "{.status.lastScheduleTime}",
        );
        let ok = jsonpath(
            &s,
            &["get", "cronjob", "tick"],
            "{.status.lastSuccessfulTime}",
        );
        (!last.is_empty() && !ok.is_empty()).then_some(())
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tick",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("SawCompletedJob"), "{events}");
}

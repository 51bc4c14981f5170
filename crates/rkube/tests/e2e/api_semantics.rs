//! End-to-end API semantics through the `kube` crate and raw requests:
//! finalizers, graceful pod deletion, dry-run, field validation modes,
//! selectors, watch resumption (410 Gone as an ERROR event), initial events,
//! body limits and malformed input.

use std::time::Duration;

use crate::common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body)
        .unwrap();
    match client.request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(s)) => (s.code, json!({"reason": s.reason, "message": s.message})),
        Err(e) => panic!("transport error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_get_4xx() {
    let s = Server::start();
    let c = s.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, st) = raw(&c, "POST", path, "application/json", b"{not json".to_vec()).await;
    assert_eq!(code, 400, "{st}");
    let (code, _) = raw(&c, "POST", path, "application/json", b"[1,2,3]".to_vec()).await;
    assert_eq!(code, 400);
    let (code, st) = raw(
        &c,
        "POST",
        path,
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":5}}"#
            .to_vec(),
    )
    .await;
    assert_eq!(code, 400, "a number where a string belongs: {st}");
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let (code, _) = raw(&c, "POST", path, "application/json", big.into_bytes()).await;
    assert_eq!(code, 413);
    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n".to_vec();
    let (code, obj) = raw(&c, "POST", path, "application/yaml", yaml).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["metadata"]["name"], "from-yaml");
    let (code, st) = raw(
        &c,
        "POST",
        path,
        "application/json",
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 400, "kind mismatch: {st}");
    let (code, _) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 400);
    let (code, st) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=spec.nope%3Dx",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 400, "{st}");
    let (code, _) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/nothings",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_field_validation() {
    let s = Server::start();
    let c = s.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"},"data":{"a":"b"},"bogus":1}"#.to_vec();
    let (code, st) = raw(
        &c,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"bogus\""),
        "{st}"
    );
    let (code, obj) = raw(
        &c,
        "POST",
        &format!("{path}?dryRun=All&fieldValidation=Ignore"),
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert!(obj.get("bogus").is_none());
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    assert!(
        api.get_opt("dry").await.unwrap().is_none(),
        "dry run stored nothing"
    );
    // Warn (the default) stores the object without the unknown field.
    let (code, obj) = raw(&c, "POST", path, "application/json", body).await;
    assert_eq!(code, 200, "{obj}");
    assert!(api
        .get("dry")
        .await
        .unwrap()
        .data
        .unwrap()
        .contains_key("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_and_pods_delete_gracefully() {
    let s = Server::start();
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mut cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "marked for deletion"
    );
    cm = held;
    cm.metadata.finalizers = None;
    cms.replace("held", &PostParams::default(), &cm)
        .await
        .unwrap();
    assert!(
        cms.get_opt("held").await.unwrap().is_none(),
        "removing the last finalizer deletes it"
    );

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let p = pods.get("p").await.unwrap();
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    assert!(p.metadata.deletion_timestamp.is_some());
    pods.delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
    // An unscheduled pod goes at once.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        created.spec.unwrap().service_account_name.as_deref(),
        Some("default")
    );
    pods.delete("q", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("q").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_filter_lists_and_watches() {
    let s = Server::start();
    let c = s.client().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    for (name, node) in [("a", "n1"), ("b", "n2"), ("c", "n1")] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": if name == "b" {"db"} else {"web"}}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(on_n1.items.len(), 2);
    let web_not_n1 = pods
        .list(
            &ListParams::default()
                .labels("tier=web")
                .fields("spec.nodeName!=n1"),
        )
        .await
        .unwrap();
    assert_eq!(web_not_n1.items.len(), 0);
    let in_set = pods
        .list(&ListParams::default().labels("tier in (db,cache)"))
        .await
        .unwrap();
    assert_eq!(in_set.items.len(), 1);
    let all = pods
        .list(&ListParams::default().fields("metadata.namespace=default,status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);

    // A watch with a label selector sees an object leave the selector as DELETED.
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut w = pods
        .watch(&WatchParams::default().labels("tier=web"), &rv)
        .await
        .unwrap()
        .boxed();
    pods.patch(
        "a",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Deleted(p) => assert_eq!(p.metadata.name.as_deref(), Some("a")),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_too_old_revision_gets_410_and_streaming_lists_work() {
    let mut s = Server::start();
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let first = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "w0"}})).unwrap(),
        )
        .await
        .unwrap();
    let old_rv = first.metadata.resource_version.unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "w1"}})).unwrap(),
    )
    .await
    .unwrap();
    // After a restart the cache starts at the current revision: older ones are gone.
    s.kill9();
    s.restart();
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mut w = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 ERROR event, got {other:?}"),
    }
    // sendInitialEvents (kube's streaming lists): initial objects, then live.
    let stream =
        watcher(cms.clone(), watcher::Config::default().streaming_lists()).applied_objects();
    let mut stream = stream.boxed();
    let mut names = std::collections::BTreeSet::new();
    while names.len() < 2 {
        let o = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        names.insert(o.metadata.name.unwrap());
    }
    assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["w0", "w1"]);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "w2"}})).unwrap(),
    )
    .await
    .unwrap();
    let o = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(o.metadata.name.as_deref(), Some("w2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_and_status_subresources() {
    let s = Server::start();
    let c = s.client().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    // Not for the in-server scheduler: this test binds by hand.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": {"schedulerName": "manual", "containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "node-1"}});
    let (code, st) = raw(
        &c,
        "POST",
        "/api/v1/namespaces/default/pods/b/binding",
        "application/json",
        serde_json::to_vec(&binding).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{st}");
    let bound = pods.get("b").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    let conds = bound.status.as_ref().unwrap().conditions.clone().unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    let (code, _) = raw(
        &c,
        "POST",
        "/api/v1/namespaces/default/pods/b/binding",
        "application/json",
        serde_json::to_vec(&binding).unwrap(),
    )
    .await;
    assert_eq!(code, 409, "a bound pod cannot be bound again");

    // The status subresource changes only status; the main resource keeps it.
    let patched = pods
        .patch_status(
            "b",
            &Default::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"phase": "Running"}, "spec": {"activeDeadlineSeconds": 5}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(patched.spec.unwrap().active_deadline_seconds, None);
    let after = pods
        .patch(
            "b",
            &Default::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_resource_version_semantics() {
    use kube::api::VersionMatch;
    let s = Server::start();
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let a = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
        )
        .await
        .unwrap();
    let rv_a = a.metadata.resource_version.unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap(),
    )
    .await
    .unwrap();
    // Exact: the list as it was at that revision.
    let exact = cms
        .list(
            &ListParams::default()
                .at(&rv_a)
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap();
    let names: Vec<_> = exact
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["a"]);
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(rv_a.as_str())
    );
    // NotOlderThan an old revision: at least as new, so both.
    let newer = cms
        .list(
            &ListParams::default()
                .at(&rv_a)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(newer.items.len(), 2);
    // "0": any cached state; consistent (unset): everything.
    assert_eq!(
        cms.list(&ListParams::default().at("0"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    // A revision from the future is refused (504), not waited on forever.
    // (kubectl here: the kube client retries 504s with backoff.)
    let future = rv_a.parse::<i64>().unwrap() + 1_000_000;
    let url = format!(
        "/api/v1/namespaces/default/configmaps?resourceVersion={future}&resourceVersionMatch=Exact"
    );
    let o = s.kubectl(&["get", "--raw", &url]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Too large resource version"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_get_periodic_bookmarks_when_asked() {
    let s = Server::start_with(&["--bookmark-interval-seconds", "1"]);
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bm"}})).unwrap(),
        )
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let mut w = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<i64>().unwrap() >= rv.parse::<i64>().unwrap()
        ),
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
    // Without allowWatchBookmarks, none is sent.
    let mut w = cms
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), w.try_next())
            .await
            .is_err(),
        "no event without a change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_requests_are_checked_like_upstream() {
    let s = Server::start();
    let base = "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true";
    // Without resourceVersionMatch=NotOlderThan, or without bookmarks: 422.
    for q in ["", "&resourceVersionMatch=NotOlderThan"] {
        let o = s.kubectl(&["get", "--raw", &format!("{base}{q}")]);
        assert!(!o.status.success(), "{q} accepted");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Forbidden"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // With both and no resourceVersion: initial events from a consistent read, then the bookmark.
    let o = s
        .kubectl_cmd()
        .args(["get", "--raw", &format!("{base}&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2")])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("\"type\":\"BOOKMARK\"") && out.contains("k8s.io/initial-events-end"),
        "{out}"
    );
}

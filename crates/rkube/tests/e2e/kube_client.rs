//! End-to-end with the `kube` crate: typed CRUD, a watcher that survives a
//! compaction and restart (it relists on 410 Gone), and a kube-runtime
//! Controller that reconciles.

use std::sync::Arc;
use std::time::Duration;

use crate::common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{controller::Action, watcher, Controller};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_and_conflicts() {
    let s = Server::start();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("x", "1")]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");
    let mut upd = api.get("a").await.unwrap();
    upd.data = Some([("k".to_string(), "w".to_string())].into());
    let after = api
        .replace("a", &PostParams::default(), &upd)
        .await
        .unwrap();
    assert_ne!(after.metadata.resource_version.unwrap(), rv);
    // A stale resourceVersion is a 409 Conflict.
    let mut stale = upd.clone();
    stale.metadata.resource_version = Some(rv);
    match api.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict")),
        other => panic!("expected conflict, got {other:?}"),
    }
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"y": "2"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["y"], "2");
    let list = api
        .list(&ListParams::default().labels("y=2"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    api.delete("a", &DeleteParams::default()).await.unwrap();
    match api.get("a").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_returns_every_item_once() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..25 {
        api.create(&PostParams::default(), &cm(&format!("p{i:02}"), &[]))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(7);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 4);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 25);
    assert_eq!(names, sorted);
}

type Events = tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<ConfigMap>, String>>;

/// The next Init (true, None) or applied object (false, name) of a watcher.
async fn next_event(rx: &mut Events) -> (bool, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("watch event in time")
            .expect("stream open");
        match ev {
            Ok(watcher::Event::Init) => return (true, None),
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => {
                return (false, o.metadata.name)
            }
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_compaction_and_restart() {
    let mut s = Server::start_with(&["--compaction-interval-seconds", "1"]);
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let w = watcher(
        api.clone(),
        watcher::Config::default().labels("app=watched"),
    );
    let task = tokio::spawn(async move {
        let mut w = w.boxed();
        while let Some(ev) = w.next().await {
            let _ = tx.send(ev.map_err(|e| e.to_string()));
        }
    });
    api.create(&PostParams::default(), &cm("first", &[("app", "watched")]))
        .await
        .unwrap();
    let mut inits = 0;
    let mut seen = Vec::new();
    // Drain until "first" is seen.
    loop {
        let (init, name) = next_event(&mut rx).await;
        inits += init as usize;
        if let Some(n) = name {
            seen.push(n.clone());
            if n == "first" {
                break;
            }
        }
    }
    // Unrelated writes move the revision past the watcher's, then history is
    // compacted and the server restarts, so the watcher's resourceVersion is gone.
    for i in 0..30 {
        api.create(&PostParams::default(), &cm(&format!("noise{i}"), &[]))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.kill9();
    s.restart();
    api.create(&PostParams::default(), &cm("second", &[("app", "watched")]))
        .await
        .ok();
    let before = inits;
    loop {
        let (init, name) = next_event(&mut rx).await;
        inits += init as usize;
        if name.as_deref() == Some("second") {
            break;
        }
    }
    assert!(
        inits > before,
        "the watcher re-listed after its resourceVersion expired"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_reconciles() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    struct Ctx {
        api: Api<ConfigMap>,
    }
    async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let done = obj
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("reconciled"));
        if !done {
            ctx.api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        serde_json::json!({"metadata": {"annotations": {"reconciled": "yes"}}}),
                    ),
                )
                .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_o: Arc<ConfigMap>, _e: &kube::Error, _c: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctx = Arc::new(Ctx { api: api.clone() });
    let ctrl = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let handle = tokio::spawn(ctrl);
    api.create(&PostParams::default(), &cm("r1", &[]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = api.get("r1").await.unwrap();
        if c.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get("reconciled").map(String::as_str) == Some("yes"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "controller never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let api = api.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("crash-{w}-{i}");
                match api.create(&PostParams::default(), &cm(&name, &[])).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "some writes were acknowledged before the crash ({})",
        acked.len()
    );
    s.restart();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let names: std::collections::HashSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}

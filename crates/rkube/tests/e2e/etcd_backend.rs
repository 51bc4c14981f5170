//! End-to-end on the etcd backend: `rkube server --store etcd` against a
//! real etcd on loopback, driven by the real kubectl and the kube crate.

use std::time::Duration;

use crate::common::Server;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_store::testing::EtcdProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_and_kube_work_on_etcd_and_data_survives_restart() {
    if std::env::var("RKUBE_SKIP_ETCD").is_ok_and(|v| v == "1") {
        return;
    }
    let etcd = EtcdProcess::start().await;
    let mut s = Server::start_with(&["--store", "etcd", "--etcd-endpoints", &etcd.endpoint]);
    let out = s.ok(&["get", "ns", "-o", "name"]);
    assert!(out.contains("namespace/kube-system"), "{out}");
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: on-etcd}\ndata: {k: v}\n");
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut w = Box::pin(api.watch(&WatchParams::default(), &rv).await.unwrap());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "second"}})).unwrap(),
    )
    .await
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("second")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    s.kill9();
    s.restart();
    assert_eq!(
        s.ok(&["get", "cm", "on-etcd", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    // Keys follow the upstream layout in etcd.
    let store = rkube_store::etcd::EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    use rkube_store::Store;
    assert!(store
        .get("/registry/core/configmaps/default/on-etcd")
        .await
        .unwrap()
        .is_some());
}

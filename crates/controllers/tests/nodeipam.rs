//! The node IPAM controller against a real in-process API server.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{eventually, ApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use rkube_controllers::nodeipam::{self, CidrSet, NodeIpamConfig};
use tokio::task::JoinHandle;

fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: pod_cidr.map(|c| NodeSpec {
            pod_cidr: Some(c.into()),
            pod_cidrs: Some(vec![c.into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(api: &Api<Node>, nodes: Vec<Node>) {
    futures::stream::iter(nodes)
        .map(|n| async move { api.create(&PostParams::default(), &n).await })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create nodes");
}

/// Every node's (podCIDR, resourceVersion); asserts podCIDRs == [podCIDR].
async fn snapshot(api: &Api<Node>) -> BTreeMap<String, (Option<String>, String)> {
    let list = api.list(&ListParams::default()).await.expect("list nodes");
    list.items
        .into_iter()
        .map(|n| {
            let spec = n.spec.unwrap_or_default();
            if let Some(c) = &spec.pod_cidr {
                assert_eq!(spec.pod_cidrs.as_deref(), Some(&[c.clone()][..]));
            }
            (
                n.metadata.name.unwrap(),
                (spec.pod_cidr, n.metadata.resource_version.unwrap()),
            )
        })
        .collect()
}

/// Waits until every node except `foreign` has a podCIDR; returns the
/// snapshot after checking the CIDRs are distinct cluster subnets.
async fn all_allocated(
    api: &Api<Node>,
    want_nodes: usize,
    foreign: &[&str],
    timeout: Duration,
) -> BTreeMap<String, (Option<String>, String)> {
    let snap = eventually(timeout, "every node to get a podCIDR", || async {
        let s = snapshot(api).await;
        let done = s.len() == want_nodes
            && s.iter()
                .all(|(n, (c, _))| c.is_some() || foreign.contains(&n.as_str()));
        done.then_some(s)
    })
    .await;
    let cfg = NodeIpamConfig::default();
    let set = CidrSet::new(&cfg.cluster_cidr, cfg.node_cidr_mask_size).unwrap();
    let mut seen = HashSet::new();
    for (name, (cidr, _)) in &snap {
        if foreign.contains(&name.as_str()) {
            continue;
        }
        let cidr = cidr.as_deref().unwrap();
        set.index_of(cidr)
            .unwrap_or_else(|e| panic!("{name}: {cidr}: {e}"));
        assert!(seen.insert(cidr.to_string()), "{cidr} handed out twice");
    }
    snap
}

fn start(client: kube::Client) -> JoinHandle<Result<(), nodeipam::NodeIpamError>> {
    tokio::spawn(nodeipam::run(client, NodeIpamConfig::default()))
}

async fn stop(task: JoinHandle<Result<(), nodeipam::NodeIpamError>>) {
    task.abort();
    let res = task.await;
    assert!(
        res.as_ref().is_err_and(|e| e.is_cancelled()),
        "controller exited on its own: {res:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocates_reuses_and_survives_restart() {
    let server = ApiServer::start().await;
    let client = server.client().await;
    let api: Api<Node> = Api::all(client.clone());

    // Nodes that exist before the controller starts: two with a podCIDR
    // inside the cluster CIDR, one outside it, ten without.
    let mut before = vec![
        node("pre-a", Some("10.128.3.0/24")),
        node("pre-b", Some("10.128.7.0/24")),
        node("foreign", Some("192.168.50.0/24")),
    ];
    before.extend((0..10).map(|i| node(&format!("n-{i:02}"), None)));
    create(&api, before).await;

    let task = start(client.clone());
    // More nodes while it runs.
    create(
        &api,
        (10..30).map(|i| node(&format!("n-{i:02}"), None)).collect(),
    )
    .await;
    let snap = all_allocated(&api, 33, &["foreign"], Duration::from_secs(10)).await;
    assert_eq!(snap["pre-a"].0.as_deref(), Some("10.128.3.0/24"));
    assert_eq!(snap["pre-b"].0.as_deref(), Some("10.128.7.0/24"));
    assert_eq!(snap["foreign"].0.as_deref(), Some("192.168.50.0/24"));
    // Lowest first: 30 new nodes fill subnets 0..=31 around 3 and 7.
    let mut used: Vec<u32> = {
        let set = CidrSet::new("10.128.0.0/11", 24).unwrap();
        snap.iter()
            .filter(|(n, _)| *n != "foreign")
            .map(|(_, (c, _))| set.index_of(c.as_deref().unwrap()).unwrap())
            .collect()
    };
    used.sort();
    assert_eq!(used, (0..32).collect::<Vec<_>>());

    // A deleted node's subnet goes to the next new node.
    let freed = snap["n-05"].0.clone().unwrap();
    api.delete("n-05", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(Duration::from_secs(10), "n-05 to be gone", || async {
        api.get_opt("n-05").await.unwrap().is_none().then_some(())
    })
    .await;
    create(&api, vec![node("n-new", None)]).await;
    let snap = all_allocated(&api, 33, &["foreign"], Duration::from_secs(10)).await;
    assert_eq!(snap["n-new"].0.as_deref(), Some(freed.as_str()));

    // Restart: stop the controller, add nodes while it is down, start it
    // again. Nothing is handed out twice and allocated nodes are untouched.
    stop(task).await;
    create(
        &api,
        (0..10).map(|i| node(&format!("r-{i}"), None)).collect(),
    )
    .await;
    let task = start(client.clone());
    let after = all_allocated(&api, 43, &["foreign"], Duration::from_secs(10)).await;
    for (name, (cidr, rv)) in &snap {
        assert_eq!(&after[name], &(cidr.clone(), rv.clone()), "{name} changed");
    }
    stop(task).await;
}

/// Nodes whose other fields keep changing (so the controller's
/// resourceVersion-conditional patches conflict) still all get CIDRs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_keep_changing_still_get_cidrs() {
    let server = ApiServer::start().await;
    let client = server.client().await;
    let api: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = (0..20).map(|i| format!("busy-{i:02}")).collect();
    create(&api, names.iter().map(|n| node(n, None)).collect()).await;
    // Four writers relabel every node, over and over.
    let churn: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            let names = names.clone();
            tokio::spawn(async move {
                for round in 0u64.. {
                    let body = serde_json::json!({"metadata": {"labels": {
                        format!("writer-{w}"): round.to_string(),
                    }}});
                    for n in &names {
                        let _ = api
                            .patch(n, &PatchParams::default(), &Patch::Merge(&body))
                            .await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let task = start(client.clone());
    all_allocated(&api, names.len(), &[], Duration::from_secs(20)).await;
    for c in churn {
        c.abort();
    }
    stop(task).await;
}

/// Many nodes created at once all get CIDRs quickly (patches run
/// concurrently). `RKUBE_NODEIPAM_SCALE_NODES` sets the count (default 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_nodes_get_cidrs_quickly() {
    let count: usize = std::env::var("RKUBE_NODEIPAM_SCALE_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let server = ApiServer::start().await;
    let client = server.client().await;
    let api: Api<Node> = Api::all(client.clone());
    let task = start(client.clone());
    let t0 = Instant::now();
    create(
        &api,
        (0..count)
            .map(|i| node(&format!("node-{i:05}"), None))
            .collect(),
    )
    .await;
    let created = t0.elapsed();
    all_allocated(&api, count, &[], Duration::from_secs(60)).await;
    eprintln!(
        "{count} nodes: created in {created:?}, all with pod CIDRs after {:?}",
        t0.elapsed()
    );
    stop(task).await;
}

//! Scenario `writes`: N concurrent clients creating 1 KiB ConfigMaps in
//! namespace default for a fixed time, on the embedded store or on etcd
//! (an etcd of our own unless `--etcd-endpoints` is given).

use std::time::Duration;

use crate::load::{configmap_body, create_loop, CreateLoad, CreateResult};
use crate::procs::{start_etcd, stat_path, CpuMeter, EtcdServer, RkubeServer};
use crate::stats::thousands;
use crate::{Env, Row, StoreKind, Verdict};

/// At most this many creates per run, whatever the duration.
const MAX_WRITES: u64 = 2_000_000;

/// Target throughput on the embedded store, writes/s.
const TARGET_RATE: f64 = 2000.0;
/// Target p99 on the embedded store.
const TARGET_P99_NS: u64 = 20_000_000;

/// Arguments of `writes`.
#[derive(Clone, Debug)]
pub struct WritesArgs {
    pub clients: usize,
    pub seconds: u64,
    pub store: StoreKind,
    pub etcd_endpoints: Vec<String>,
}

/// The ConfigMap write load shared by `writes` and `etcd-ratio`.
pub async fn write_load(
    client: &kube::Client,
    clients: usize,
    seconds: u64,
    prefix: &str,
) -> CreateResult {
    eprintln!("rkube-bench: {clients} clients creating 1 KiB ConfigMaps for {seconds} s");
    create_loop(
        client,
        CreateLoad {
            path: "/api/v1/namespaces/default/configmaps".into(),
            concurrency: clients,
            max_count: MAX_WRITES,
            max_time: Duration::from_secs(seconds),
            body: configmap_body(prefix),
        },
    )
    .await
}

/// "2,345 writes/s (46,900 in 20.0 s); p50 …; 0 errors".
pub fn describe(r: &CreateResult, unit: &str) -> String {
    format!(
        "{} {unit}/s ({} in {:.1} s); {}; {}",
        thousands(r.rate().round() as u64),
        thousands(r.ok),
        r.elapsed.as_secs_f64(),
        r.latency.describe(),
        r.describe_errors()
    )
}

/// Starts rkube on `store`; for etcd without endpoints, starts an etcd too
/// (returned so that it lives as long as the server).
pub async fn start_server(
    env: &Env,
    store: StoreKind,
    etcd_endpoints: &[String],
) -> anyhow::Result<(RkubeServer, Option<EtcdServer>)> {
    let mut etcd = None;
    let mut extra = Vec::new();
    if store == StoreKind::Etcd {
        let endpoints = if etcd_endpoints.is_empty() {
            let e = start_etcd(&env.etcd_bin()?).await?;
            let ep = e.endpoint.clone();
            etcd = Some(e);
            vec![ep]
        } else {
            etcd_endpoints.to_vec()
        };
        extra = vec![
            "--store".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            endpoints.join(","),
        ];
    }
    Ok((RkubeServer::start(&env.server(extra)).await?, etcd))
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &WritesArgs) -> anyhow::Result<Row> {
    let (mut server, etcd) = start_server(env, a.store, &a.etcd_endpoints).await?;
    let client = server.client_of(env.http.unwrap_or(1)).await?;
    let mut procs = vec![
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".to_string()),
    ];
    if let Some(e) = &etcd {
        procs.push(("etcd", stat_path(e.pid())));
    }
    let meter = CpuMeter::start(&procs);
    let r = write_load(&client, a.clients, a.seconds, "w").await;
    let cpu = meter.report();
    let alive = server.check_alive();
    let store = match a.store {
        StoreKind::Embedded => "embedded",
        StoreKind::Etcd => "etcd",
    };
    let mut result = format!("{}; {cpu}", describe(&r, "writes"));
    if let Err(e) = &alive {
        result.push_str(&format!("; {e}"));
    }
    let (target, verdict) = match a.store {
        StoreKind::Embedded => {
            let met = r.rate() >= TARGET_RATE
                && r.latency.p99 <= TARGET_P99_NS
                && r.errors == 0
                && alive.is_ok();
            (
                "≥ 2,000 writes/s, p99 ≤ 20 ms".to_string(),
                Verdict::from_bool(met),
            )
        }
        StoreKind::Etcd => ("— (see etcd-ratio)".to_string(), Verdict::NoTarget),
    };
    Ok(Row {
        scenario: format!("writes ({store})"),
        setup: format!(
            "{} clients × {} s, 1 KiB ConfigMaps, {}",
            a.clients,
            a.seconds,
            crate::http_name(env.http.unwrap_or(1))
        ),
        result,
        target,
        verdict: if r.errors > 0 || alive.is_err() {
            Verdict::Failed
        } else {
            verdict
        },
    })
}

//! Micro-benchmark: concurrent `create`s (then CAS `update`s) against a store,
//! the API server's write pattern.
//!
//! ```text
//! cargo run --release -p rkube-store --example store_bench -- [CLIENTS] [SECONDS] [VALUE_BYTES] [etcd-endpoint]
//! ```
//!
//! Without an endpoint it benchmarks a fresh embedded store in a temp dir.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_store::embedded::EmbeddedStore;
use rkube_store::etcd::EtcdStore;
use rkube_store::Store;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clients: usize = arg(&args, 0, 64);
    let seconds: u64 = arg(&args, 1, 5);
    let value_bytes: usize = arg(&args, 2, 2048);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = match args.get(3) {
        Some(endpoint) => Arc::new(EtcdStore::connect(std::slice::from_ref(endpoint)).await?),
        None => Arc::new(EmbeddedStore::open(&dir.path().join("bench.redb"))?),
    };
    for phase in ["create", "update"] {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let key = format!("/bench/{c}/counter");
                let mut rev = match phase {
                    "update" => store
                        .get(&key)
                        .await
                        .ok()
                        .flatten()
                        .map_or(0, |kv| kv.mod_revision),
                    _ => 0,
                };
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let value = vec![b'x'; value_bytes];
                    if phase == "create" {
                        let k = if i == 0 {
                            key.clone()
                        } else {
                            format!("/bench/{c}/{i}")
                        };
                        store.create(&k, value).await.expect("create");
                    } else {
                        rev = store
                            .update(&key, value, rev)
                            .await
                            .expect("update")
                            .mod_revision;
                    }
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "{phase}: {} ops in {:.2?} = {:.0} ops/s; latency p50 {:.2?} p99 {:.2?} max {:.2?}",
            all.len(),
            elapsed,
            all.len() as f64 / elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            all[all.len() - 1]
        );
    }
    let started = Instant::now();
    let res = store
        .range(rkube_store::RangeRequest {
            prefix: "/bench/".into(),
            limit: 500,
            ..Default::default()
        })
        .await?;
    println!(
        "range limit 500 of {} keys: {:.2?}",
        res.count,
        started.elapsed()
    );
    Ok(())
}

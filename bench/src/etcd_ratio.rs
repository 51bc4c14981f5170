//! Scenario `etcd-ratio`: one etcd of our own; (a) rkube on `--store etcd`
//! under the `writes` load, then, with rkube stopped, (b) the same number of
//! concurrent clients putting 1 KiB values under distinct keys straight into
//! the same etcd with `etcd-client`. Reports both rates and their ratio,
//! plus two diagnostic loops that replay rkube's per-create etcd access
//! without rkube: the create transaction alone, the same with a prefix
//! watch open (as rkube's watch cache keeps one), and a linearizable GET
//! followed by the create transaction (the namespace check of older builds). Before each raw
//! phase the etcd is emptied, compacted and defragmented, so that every phase
//! starts from a database as small as (a)'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{CompactionOptions, Compare, CompareOp, DeleteOptions, Txn, TxnOp, WatchOptions};

use crate::load::CreateResult;
use crate::procs::{start_etcd, stat_path, CpuMeter, RkubeServer};
use crate::stats::{nanos, Summary};
use crate::writes::{describe, write_load};
use crate::{Env, Row, Verdict};

/// At most this many raw puts per run.
const MAX_PUTS: u64 = 5_000_000;
/// Target: rkube-on-etcd writes/s ÷ raw etcd puts/s.
const TARGET_RATIO: f64 = 0.5;

/// Arguments of `etcd-ratio`.
#[derive(Clone, Debug)]
pub struct RatioArgs {
    pub clients: usize,
    pub seconds: u64,
}

/// What each raw operation against etcd is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawOp {
    /// One plain put.
    Put,
    /// A create-if-absent transaction alone (rkube's store `create`).
    CreateTxn,
    /// The same with a prefix watch open on the written keys, as rkube's
    /// watch cache keeps one on `/registry/`.
    CreateTxnWatched,
    /// What rkube's create does on etcd: a linearizable GET (the namespace
    /// check) followed by a create-if-absent transaction.
    GetThenCreateTxn,
}

/// `clients` tasks sharing one etcd client (one HTTP/2 channel, as rkube's
/// etcd store uses) write 1 KiB values under distinct keys for `seconds`.
pub async fn raw_loop(
    endpoint: &str,
    clients: usize,
    seconds: u64,
    op: RawOp,
) -> anyhow::Result<CreateResult> {
    eprintln!(
        "rkube-bench: {clients} clients writing 1 KiB values into etcd ({op:?}) for {seconds} s"
    );
    let client = etcd_client::Client::connect([endpoint], None).await?;
    let drain = if op == RawOp::CreateTxnWatched {
        let mut stream = client
            .clone()
            .watch("/bench/", Some(WatchOptions::new().with_prefix()))
            .await?;
        Some(tokio::spawn(async move {
            while let Ok(Some(_)) = stream.message().await {}
        }))
    } else {
        None
    };
    let value = Arc::new(vec![b'x'; 1024]);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut kv = client.kv_client();
        let (value, next, errors, first_errors) = (
            value.clone(),
            next.clone(),
            errors.clone(),
            first_errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= MAX_PUTS {
                    break;
                }
                let t0 = Instant::now();
                let one = async {
                    match op {
                        RawOp::Put => kv
                            .put(format!("/bench/raw/{n:08}"), value.as_slice(), None)
                            .await
                            .map(|_| ()),
                        RawOp::CreateTxn | RawOp::CreateTxnWatched | RawOp::GetThenCreateTxn => {
                            if op == RawOp::GetThenCreateTxn {
                                kv.get("/bench/namespace", None).await?;
                            }
                            let key = format!("/bench/txn/{op:?}/{n:08}");
                            let txn = Txn::new()
                                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                                .and_then([TxnOp::put(key.as_str(), value.as_slice(), None)])
                                .or_else([TxnOp::get(key.as_str(), None)]);
                            kv.txn(txn).await.map(|_| ())
                        }
                    }
                };
                let res = tokio::time::timeout(Duration::from_secs(60), one).await;
                let took = t0.elapsed();
                let err = match res {
                    Ok(Ok(_)) => {
                        lat.push(nanos(took));
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "put timed out after 60 s".to_string(),
                };
                errors.fetch_add(1, Ordering::Relaxed);
                let mut fe = first_errors.lock().expect("lock");
                if fe.len() < 5 {
                    fe.push(err);
                }
            }
            lat
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await?);
    }
    let elapsed = start.elapsed();
    if let Some(d) = drain {
        d.abort();
    }
    let first_errors = std::mem::take(&mut *first_errors.lock().expect("lock"));
    Ok(CreateResult {
        ok: samples.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        first_errors,
        elapsed,
        latency: Summary::of(&mut samples),
    })
}

/// Deletes every key, compacts physically and defragments, so that each
/// phase starts from an (almost) empty database, as phase (a) does.
async fn reset_etcd(endpoint: &str) -> anyhow::Result<()> {
    let reset = async {
        let mut c = etcd_client::Client::connect([endpoint], None).await?;
        let resp = c
            .delete("", Some(DeleteOptions::new().with_all_keys()))
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        c.compact(rev, Some(CompactionOptions::new().with_physical()))
            .await?;
        c.maintenance_client().defragment().await?;
        Ok::<_, etcd_client::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(120), reset)
        .await
        .map_err(|_| anyhow::anyhow!("resetting etcd timed out"))??;
    Ok(())
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &RatioArgs) -> anyhow::Result<Row> {
    let etcd = start_etcd(&env.etcd_bin()?).await?;
    let extra = vec![
        "--store".to_string(),
        "etcd".into(),
        "--etcd-endpoints".into(),
        etcd.endpoint.clone(),
    ];
    let (rk, rk_cpu, alive) = {
        let mut server = RkubeServer::start(&env.server(extra)).await?;
        let client = server.client_of(env.http.unwrap_or(1)).await?;
        let meter = CpuMeter::start(&[
            ("server", stat_path(server.pid())),
            ("etcd", stat_path(etcd.pid())),
            ("bench", "/proc/self/stat".into()),
        ]);
        let r = write_load(&client, a.clients, a.seconds, "r").await;
        let cpu = meter.report();
        (r, cpu, server.check_alive())
        // The server stops here so that it does not compete for CPU with (b).
    };
    let meter = CpuMeter::start(&[
        ("etcd", stat_path(etcd.pid())),
        ("bench", "/proc/self/stat".into()),
    ]);
    reset_etcd(&etcd.endpoint).await?;
    let raw = raw_loop(&etcd.endpoint, a.clients, a.seconds, RawOp::Put).await?;
    let raw_cpu = meter.report();
    // Diagnostics: rkube's access pattern without rkube, and its parts.
    let mut diagnostics = Vec::new();
    let mut diag_errors = 0;
    for (op, label) in [
        (RawOp::CreateTxn, "raw create txn alone"),
        (
            RawOp::CreateTxnWatched,
            "raw create txn with a prefix watch open",
        ),
        (
            RawOp::GetThenCreateTxn,
            "raw GET + create txn per write (rkube's pattern)",
        ),
    ] {
        let meter = CpuMeter::start(&[
            ("etcd", stat_path(etcd.pid())),
            ("bench", "/proc/self/stat".into()),
        ]);
        reset_etcd(&etcd.endpoint).await?;
        let r = raw_loop(&etcd.endpoint, a.clients, a.seconds, op).await?;
        diag_errors += r.errors;
        diagnostics.push(format!(
            "{label}: {} ({})",
            describe(&r, "writes"),
            meter.report()
        ));
    }
    let ratio = rk.rate() / raw.rate().max(1e-9);
    let mut result = format!(
        "rkube on etcd: {} ({rk_cpu}) — raw etcd put: {} ({raw_cpu}) — ratio {ratio:.2} — diagnostics: {}",
        describe(&rk, "writes"),
        describe(&raw, "puts"),
        diagnostics.join(" — "),
    );
    if let Err(e) = &alive {
        result.push_str(&format!("; {e}"));
    }
    let verdict = if rk.errors > 0 || raw.errors > 0 || diag_errors > 0 || alive.is_err() {
        Verdict::Failed
    } else {
        Verdict::from_bool(ratio >= TARGET_RATIO)
    };
    Ok(Row {
        scenario: "etcd-ratio".into(),
        setup: format!(
            "{} clients × {} s each, 1 KiB values, one local etcd; rkube over {}",
            a.clients,
            a.seconds,
            crate::http_name(env.http.unwrap_or(1))
        ),
        result,
        target: "ratio ≥ 0.5".into(),
        verdict,
    })
}

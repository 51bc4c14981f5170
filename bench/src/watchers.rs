//! Scenario `watchers`: W concurrent watches on ConfigMaps in namespace
//! default (raw `GET …/configmaps?watch=1&resourceVersion=RV`, newline-
//! delimited JSON events) spread over several `kube::Client`s, while a paced
//! writer creates ConfigMaps at a fixed rate with the send time (ns since the
//! epoch) in `data.ts`. Every watcher must see every created object exactly
//! once; delivery latency is receive time minus send time, over all
//! (watcher, event) pairs.
//!
//! A watch stream that ends early (the server closes lagging watchers) is
//! resumed from the last resourceVersion seen, as client-go's reflector
//! does; such resumptions are counted and reported.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::AsyncBufReadExt;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use crate::load::one_line;
use crate::procs::{stat_path, CpuMeter, RkubeServer};
use crate::stats::{nanos, thousands, Summary};
use crate::{Env, Row, Verdict};

/// Target p99 delivery latency.
const TARGET_P99_NS: u64 = 100_000_000;
/// How long watchers may keep receiving after the writer is done: this
/// plus twice the writing time.
const GRACE: Duration = Duration::from_secs(30);
/// Watches being opened at once (TLS handshakes are the costly part).
const CONNECT_CONCURRENCY: usize = 50;
/// Creates in flight at once in the paced writer.
const WRITER_INFLIGHT: usize = 256;
/// Resumptions per watcher before giving up.
const MAX_RESUMES: u32 = 20;

/// Arguments of `watchers`.
#[derive(Clone, Debug)]
pub struct WatchArgs {
    pub watchers: usize,
    pub rate: u64,
    pub seconds: u64,
    pub watch_clients: usize,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: Object<'a>,
}

#[derive(Deserialize)]
struct Object<'a> {
    #[serde(borrow, default)]
    metadata: Meta<'a>,
    #[serde(borrow, default)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "resourceVersion", borrow, default)]
    resource_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    ts: Option<Cow<'a, str>>,
}

/// What one watcher saw.
struct WatcherOut {
    /// seen[i]: object wt-i arrived.
    seen: Vec<bool>,
    duplicates: u64,
    /// Events that were not ADDED wt-i with a timestamp (or out of range).
    unexpected: u64,
    /// Watch streams that ended before every event arrived.
    resumes: u32,
    errors: Vec<String>,
    /// Delivery latencies, ns.
    latency: Vec<u64>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(nanos)
        .unwrap_or(0)
}

/// One watcher: opens the watch (counting itself in `opened`), then reads
/// events until it has all `total` objects or `stop` turns true.
async fn watcher(
    client: kube::Client,
    start_rv: String,
    total: usize,
    mut stop: watch::Receiver<bool>,
    opened: Arc<AtomicUsize>,
    connect_limit: Arc<Semaphore>,
) -> WatcherOut {
    let mut out = WatcherOut {
        seen: vec![false; total],
        duplicates: 0,
        unexpected: 0,
        resumes: 0,
        errors: Vec::new(),
        latency: Vec::with_capacity(total),
    };
    let mut received = 0usize;
    let mut rv = start_rv;
    let mut first = true;
    let mut attempts = 0u32;
    'outer: while received < total && !*stop.borrow() && attempts <= MAX_RESUMES {
        attempts += 1;
        let req = http::Request::get(format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1800"
        ))
        .body(Vec::new())
        .expect("valid request");
        let permit = if first {
            connect_limit.acquire().await.ok()
        } else {
            None
        };
        let opened_stream = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(60), client.request_stream(req)) => r,
            _ = stop.wait_for(|s| *s) => break 'outer,
        };
        drop(permit);
        if first {
            first = false;
            opened.fetch_add(1, Ordering::SeqCst);
        }
        let stream = match opened_stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                out.errors.push(format!("opening the watch: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                out.errors
                    .push("opening the watch timed out after 60 s".into());
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            let read = tokio::select! {
                r = stream.read_until(b'\n', &mut line) => r,
                _ = stop.wait_for(|s| *s) => break 'outer,
            };
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    out.errors.push(format!("reading the watch: {e}"));
                    break;
                }
            }
            let now = now_nanos();
            let ev: Event = match serde_json::from_slice(&line) {
                Ok(ev) => ev,
                Err(e) => {
                    let text = String::from_utf8_lossy(&line);
                    out.errors
                        .push(format!("bad event ({e}): {}", one_line(&text, 200)));
                    out.unexpected += 1;
                    continue;
                }
            };
            if let Some(r) = &ev.object.metadata.resource_version {
                rv.clear();
                rv.push_str(r);
            }
            match &*ev.kind {
                "ADDED" => {}
                "BOOKMARK" => continue,
                "ERROR" => {
                    let text = String::from_utf8_lossy(&line);
                    out.errors
                        .push(format!("ERROR event: {}", one_line(&text, 300)));
                    break 'outer;
                }
                _ => {
                    out.unexpected += 1;
                    continue;
                }
            }
            let idx = ev
                .object
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix("wt-"))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&i| i < total);
            let ts = ev
                .object
                .data
                .as_ref()
                .and_then(|d| d.ts.as_deref())
                .and_then(|t| t.parse::<u64>().ok());
            match (idx, ts) {
                (Some(i), Some(ts)) => {
                    if out.seen[i] {
                        out.duplicates += 1;
                    } else {
                        out.seen[i] = true;
                        received += 1;
                        out.latency.push(now.saturating_sub(ts));
                        if received == total {
                            break 'outer;
                        }
                    }
                }
                _ => out.unexpected += 1,
            }
        }
        out.resumes += 1;
    }
    if first {
        opened.fetch_add(1, Ordering::SeqCst);
    }
    out
}

/// What the paced writer did.
struct WriterOut {
    created: Vec<bool>,
    errors: Vec<String>,
    error_count: u64,
    latency: Summary,
    elapsed: Duration,
}

/// Creates `total` ConfigMaps wt-0… at `rate`/s (open loop: a slow create
/// does not delay the next one), each with its send time in `data.ts`.
async fn paced_writer(
    client: kube::Client,
    rate: u64,
    total: usize,
    max_time: Duration,
) -> WriterOut {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let inflight = Arc::new(Semaphore::new(WRITER_INFLIGHT));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        if start.elapsed() > max_time {
            break;
        }
        tokio::time::sleep_until(start + period * i as u32).await;
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let ts = now_nanos();
            let body = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"wt-{i}"}},"data":{{"ts":"{ts}"}}}}"#
            );
            let req = http::Request::post("/api/v1/namespaces/default/configmaps")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.into_bytes())
                .expect("valid request");
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(60), client.request_text(req)).await;
            drop(permit);
            match r {
                Ok(Ok(_)) => Ok((i, nanos(t0.elapsed()))),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("create timed out after 60 s".to_string()),
            }
        }));
    }
    let mut out = WriterOut {
        created: vec![false; total],
        errors: Vec::new(),
        error_count: 0,
        latency: Summary::default(),
        elapsed: Duration::ZERO,
    };
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        match t.await {
            Ok(Ok((i, ns))) => {
                out.created[i] = true;
                lat.push(ns);
            }
            Ok(Err(e)) => {
                out.error_count += 1;
                if out.errors.len() < 5 {
                    out.errors.push(e);
                }
            }
            Err(e) => {
                out.error_count += 1;
                out.errors.push(format!("writer task panicked: {e}"));
            }
        }
    }
    out.elapsed = start.elapsed();
    out.latency = Summary::of(&mut lat);
    out
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &WatchArgs) -> anyhow::Result<Row> {
    let total = usize::try_from(a.rate * a.seconds)?;
    let mut server = RkubeServer::start(&env.server(Vec::new())).await?;
    let http = env.http.unwrap_or(1);
    let writer_client = server.client_of(http).await?;
    let mut clients = Vec::with_capacity(a.watch_clients);
    for _ in 0..a.watch_clients.max(1) {
        clients.push(server.client_of(http).await?);
    }
    #[derive(Deserialize)]
    struct ListMeta {
        metadata: ListMetaInner,
    }
    #[derive(Deserialize)]
    struct ListMetaInner {
        #[serde(rename = "resourceVersion")]
        resource_version: String,
    }
    let list: ListMeta = writer_client
        .request(
            http::Request::get("/api/v1/namespaces/default/configmaps?limit=1").body(Vec::new())?,
        )
        .await
        .context("listing configmaps for the start resourceVersion")?;
    let start_rv = list.metadata.resource_version;

    eprintln!(
        "rkube-bench: opening {} watches over {} clients from resourceVersion {start_rv}",
        a.watchers,
        clients.len()
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let connect_limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let open_start = Instant::now();
    let handles: Vec<_> = (0..a.watchers)
        .map(|i| {
            tokio::spawn(watcher(
                clients[i % clients.len()].clone(),
                start_rv.clone(),
                total,
                stop_rx.clone(),
                opened.clone(),
                connect_limit.clone(),
            ))
        })
        .collect();
    while opened.load(Ordering::SeqCst) < a.watchers {
        if open_start.elapsed() > Duration::from_secs(180) {
            let _ = stop_tx.send(true);
            bail!(
                "only {} of {} watches opened within 180 s",
                opened.load(Ordering::SeqCst),
                a.watchers
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_time = open_start.elapsed();
    eprintln!(
        "rkube-bench: {} watches open in {:.1} s; writing {total} ConfigMaps at {}/s",
        a.watchers,
        open_time.as_secs_f64(),
        a.rate
    );
    let rss_open = server.memory()?;
    let meter = CpuMeter::start(&[
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".into()),
    ]);
    let w = paced_writer(
        writer_client,
        a.rate,
        total,
        Duration::from_secs(a.seconds * 2 + 10),
    )
    .await;
    eprintln!(
        "rkube-bench: writer done in {:.1} s ({} errors); waiting up to {} s for watchers",
        w.elapsed.as_secs_f64(),
        w.error_count,
        (GRACE + Duration::from_secs(2 * a.seconds)).as_secs()
    );
    let all = futures::future::join_all(handles);
    tokio::pin!(all);
    let grace = GRACE + Duration::from_secs(2 * a.seconds);
    let mut gave_up = false;
    let outs = match tokio::time::timeout(grace, &mut all).await {
        Ok(outs) => outs,
        Err(_) => {
            gave_up = true;
            let _ = stop_tx.send(true);
            all.await
        }
    };
    let cpu = meter.report();
    let (server_cpu, bench_cpu) = (meter.used("server"), meter.used("bench"));
    let rss_end = server.memory()?;
    let alive = server.check_alive();

    let created = w.created.iter().filter(|c| **c).count();
    let mut latency = Vec::with_capacity(created * a.watchers);
    let (mut missing, mut incomplete, mut dups, mut unexpected, mut resumes) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    let mut error_count = 0u64;
    for o in outs {
        let o = match o {
            Ok(o) => o,
            Err(e) => {
                error_count += 1;
                errors.push(format!("watcher task panicked: {e}"));
                continue;
            }
        };
        let m = w
            .created
            .iter()
            .zip(&o.seen)
            .filter(|(c, s)| **c && !**s)
            .count() as u64;
        missing += m;
        incomplete += u64::from(m > 0);
        dups += o.duplicates;
        unexpected += o.unexpected;
        resumes += u64::from(o.resumes);
        error_count += o.errors.len() as u64;
        for e in o.errors {
            if errors.len() < 3 && !errors.contains(&e) {
                errors.push(e);
            }
        }
        latency.extend(o.latency);
    }
    let lat = Summary::of(&mut latency);
    // CPU per delivered event (server: fan-out, encryption, writes; bench:
    // receiving and parsing), to tell what the machine could sustain.
    let per_event = |d: Option<Duration>| {
        d.map(|d| format!("{:.2}", d.as_secs_f64() * 1e6 / (lat.n.max(1) as f64)))
            .unwrap_or_else(|| "?".into())
    };
    let expected = created as u64 * a.watchers as u64;
    let mut result = format!(
        "{}/{} events delivered ({} missing, in {} watchers; {} duplicates; {} unexpected); \
         delivery {}; {} watch resumes; {} watcher errors{}; writer {:.0}/s achieved, create {}, {} create errors{}; \
         watches opened in {:.1} s; RSS with watches open {}, at end {}; {cpu}; \
         CPU per delivered event: server {} µs, bench {} µs",
        thousands(lat.n as u64),
        thousands(expected),
        thousands(missing),
        incomplete,
        dups,
        unexpected,
        lat.describe(),
        resumes,
        error_count,
        errors
            .first()
            .map(|e| format!(" (first: {})", one_line(e, 200)))
            .unwrap_or_default(),
        created as f64 / w.elapsed.as_secs_f64().max(1e-9),
        w.latency.describe(),
        w.error_count,
        w.errors
            .first()
            .map(|e| format!(" (first: {})", one_line(e, 160)))
            .unwrap_or_default(),
        open_time.as_secs_f64(),
        crate::procs::mib(rss_open.rss_kib),
        crate::procs::mib(rss_end.rss_kib),
        per_event(server_cpu),
        per_event(bench_cpu),
    );
    if gave_up {
        result.push_str(&format!(
            "; the harness stopped waiting {} s after the writer finished (missing events may be late, not lost)",
            grace.as_secs()
        ));
    }
    if let Err(e) = &alive {
        result.push_str(&format!("; {e}"));
    }
    let complete = missing == 0 && created == total && w.error_count == 0;
    let verdict = if alive.is_err() || !complete {
        Verdict::Failed
    } else {
        Verdict::from_bool(lat.p99 <= TARGET_P99_NS)
    };
    Ok(Row {
        scenario: "watchers".into(),
        setup: format!(
            "{} watches ({} clients, {}), {} creates/s × {} s",
            a.watchers,
            clients.len(),
            crate::http_name(http),
            a.rate,
            a.seconds
        ),
        result,
        target: "every event to every watcher; p99 ≤ 100 ms".into(),
        verdict,
    })
}

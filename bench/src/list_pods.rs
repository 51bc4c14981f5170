//! Scenario `list-pods`: create many minimal Pods (one container c, image
//! x) in namespace default, then time a full paginated list (`limit` +
//! `continue`) and a full unpaginated list, recording the server's VmRSS
//! before and after, and its peak (VmHWM).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::load::{create_loop, one_line, pod_body, CreateLoad};
use crate::procs::{mib, stat_path, CpuMeter, Memory};
use crate::stats::{nanos, thousands, Summary};
use crate::{Env, Row, StoreKind, Verdict};

/// Creating the pods may take at most this long.
const MAX_CREATE_TIME: Duration = Duration::from_secs(1800);
/// One list request may take at most this long.
const LIST_TIMEOUT: Duration = Duration::from_secs(300);

/// Arguments of `list-pods`.
#[derive(Clone, Debug)]
pub struct PodsArgs {
    pub pods: u64,
    pub page: u64,
    pub concurrency: usize,
    pub store: StoreKind,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

pub(crate) async fn get(client: &kube::Client, path: &str) -> anyhow::Result<String> {
    let req = http::Request::get(path).body(Vec::new())?;
    tokio::time::timeout(LIST_TIMEOUT, client.request_text(req))
        .await
        .with_context(|| format!("GET {path} timed out"))?
        .with_context(|| format!("GET {path}"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn mem_line(label: &str, m: Memory) -> String {
    format!("{label} {}", mib(m.rss_kib))
}

/// What a paginated list did; `error` is set when a page failed.
pub(crate) struct Paginated {
    pub items: u64,
    pub pages: u64,
    pub elapsed: Duration,
    pub page_latency: Summary,
    pub error: Option<String>,
}

/// Lists every pod with `limit=page` and `continue`, at most `pods / page + 10` pages.
pub(crate) async fn paginated_list(client: &kube::Client, pods: u64, page: u64) -> Paginated {
    let base = "/api/v1/namespaces/default/pods";
    let max_pages = pods / page.max(1) + 10;
    let mut page_lat = Vec::new();
    let (mut items, mut pages) = (0u64, 0u64);
    let mut token: Option<String> = None;
    let mut error = None;
    let t0 = Instant::now();
    loop {
        let path = match &token {
            None => format!("{base}?limit={page}"),
            Some(c) => format!("{base}?limit={page}&continue={}", query_escape(c)),
        };
        let p0 = Instant::now();
        let parsed = match get(client, &path).await {
            Ok(text) => serde_json::from_str::<ListPage>(&text).context("parsing a list page"),
            Err(e) => Err(e),
        };
        let list = match parsed {
            Ok(l) => l,
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        };
        page_lat.push(nanos(p0.elapsed()));
        items += list.items.len() as u64;
        pages += 1;
        token = list.metadata.continue_token.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
        if pages >= max_pages {
            error = Some(format!("pagination did not end after {pages} pages"));
            break;
        }
    }
    Paginated {
        items,
        pages,
        elapsed: t0.elapsed(),
        page_latency: Summary::of(&mut page_lat),
        error,
    }
}

/// Runs the scenario.
pub async fn run(env: &Env, a: &PodsArgs) -> anyhow::Result<Row> {
    let (mut server, etcd) = crate::writes::start_server(env, a.store, &[]).await?;
    let client = server.client_of(env.http.unwrap_or(1)).await?;
    let mem_start = server.memory()?;

    eprintln!(
        "rkube-bench: creating {} pods with {} clients",
        a.pods, a.concurrency
    );
    let mut procs = vec![
        ("server", stat_path(server.pid())),
        ("bench", "/proc/self/stat".to_string()),
    ];
    if let Some(e) = &etcd {
        procs.push(("etcd", stat_path(e.pid())));
    }
    let meter = CpuMeter::start(&procs);
    let created = create_loop(
        &client,
        CreateLoad {
            path: "/api/v1/namespaces/default/pods".into(),
            concurrency: a.concurrency,
            max_count: a.pods,
            max_time: MAX_CREATE_TIME,
            body: pod_body("p"),
        },
    )
    .await;
    let create_cpu = meter.report();
    server.check_alive()?;
    if created.ok != a.pods {
        bail!(
            "created only {} of {} pods; {}",
            created.ok,
            a.pods,
            created.describe_errors()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mem_before = server.memory()?;

    eprintln!("rkube-bench: paginated list, limit={}", a.page);
    let pag = paginated_list(&client, a.pods, a.page).await;
    let mem_after_pages = server.memory()?;

    eprintln!("rkube-bench: unpaginated list");
    let base = "/api/v1/namespaces/default/pods";
    let t0 = Instant::now();
    let text = get(&client, base).await?;
    let received = t0.elapsed();
    let full: ListPage = serde_json::from_str(&text).context("parsing the full list")?;
    let parsed = t0.elapsed();
    let full_bytes = text.len() as u64;
    drop(text);
    let full_items = full.items.len() as u64;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_after = server.memory()?;
    let alive = server.check_alive();

    let mut result = format!(
        "created {} pods in {:.1} s ({}/s, create {}, {}; {create_cpu}); \
         paginated: {}; \
         unpaginated: {} items, {:.1} MiB, {:.2} s received, {:.2} s parsed; \
         server RSS: {}, {}, {}, {} (peak {})",
        thousands(created.ok),
        created.elapsed.as_secs_f64(),
        thousands(created.rate().round() as u64),
        created.latency.describe(),
        created.describe_errors(),
        match &pag.error {
            None => format!(
                "{} items in {} pages, {:.2} s (page {})",
                thousands(pag.items),
                pag.pages,
                pag.elapsed.as_secs_f64(),
                pag.page_latency.describe()
            ),
            Some(e) => format!(
                "SERVER BUG: failed after {} pages ({} items, {:.2} s): {}",
                pag.pages,
                thousands(pag.items),
                pag.elapsed.as_secs_f64(),
                one_line(e, 300)
            ),
        },
        thousands(full_items),
        full_bytes as f64 / 1048576.0,
        received.as_secs_f64(),
        parsed.as_secs_f64(),
        mem_line("empty", mem_start),
        mem_line("before lists", mem_before),
        mem_line("after paginated", mem_after_pages),
        mem_line("after unpaginated", mem_after),
        mib(mem_after.hwm_kib),
    );
    let mut ok = alive.is_ok() && created.errors == 0;
    if pag.error.is_some() {
        ok = false;
    } else if pag.items != a.pods {
        result.push_str(&format!(
            "; SERVER BUG: the paginated list returned {} of {} pods",
            pag.items, a.pods
        ));
        ok = false;
    }
    if full_items != a.pods {
        result.push_str(&format!(
            "; SERVER BUG: the unpaginated list returned {full_items} of {} pods",
            a.pods
        ));
        ok = false;
    }
    if let Err(e) = &alive {
        result.push_str(&format!("; {e}"));
    }
    Ok(Row {
        scenario: match a.store {
            StoreKind::Embedded => "list-pods (embedded)".into(),
            StoreKind::Etcd => "list-pods (etcd)".into(),
        },
        setup: format!(
            "{} pods (concurrency {}), page {}, {}",
            thousands(a.pods),
            a.concurrency,
            a.page,
            crate::http_name(env.http.unwrap_or(1))
        ),
        result,
        target: "— (record)".into(),
        verdict: if ok {
            Verdict::NoTarget
        } else {
            Verdict::Failed
        },
    })
}

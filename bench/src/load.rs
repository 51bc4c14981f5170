//! Closed-loop create load: N concurrent tasks share one `kube::Client`
//! (its connection pool; the kube client speaks HTTP/1.1, so that is one
//! keep-alive TLS connection per in-flight request) and each POSTs objects
//! back to back, timing every request with `Instant`. Bounded by a total
//! count and a deadline, whichever comes first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{nanos, Summary};

/// Builds the JSON body of the n-th object.
pub type BodyFn = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// What to create and how hard.
pub struct CreateLoad {
    /// Collection path, e.g. `/api/v1/namespaces/default/configmaps`.
    pub path: String,
    /// Concurrent requests.
    pub concurrency: usize,
    /// Create at most this many objects.
    pub max_count: u64,
    /// Stop starting requests after this long.
    pub max_time: Duration,
    /// The body of object number n (names must be unique per n).
    pub body: BodyFn,
}

/// The outcome of a create loop.
#[derive(Debug)]
pub struct CreateResult {
    /// 201s.
    pub ok: u64,
    /// Everything else (HTTP errors, transport errors).
    pub errors: u64,
    /// The first few error messages.
    pub first_errors: Vec<String>,
    /// From the first request to the end of the last one.
    pub elapsed: Duration,
    /// Latency of successful requests.
    pub latency: Summary,
}

impl CreateResult {
    /// Successful creates per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// "0 errors" or "12 errors (first: ...)".
    pub fn describe_errors(&self) -> String {
        match self.first_errors.first() {
            None => format!("{} errors", self.errors),
            Some(e) => format!("{} errors (first: {})", self.errors, one_line(e, 160)),
        }
    }
}

/// Shortens a message to one line of at most `max` characters (for tables).
pub fn one_line(s: &str, max: usize) -> String {
    let s: String = s.replace(['\n', '|'], " ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// Runs the load and waits for every in-flight request to finish.
pub async fn create_loop(client: &kube::Client, load: CreateLoad) -> CreateResult {
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let path: Arc<str> = load.path.into();
    let start = Instant::now();
    let deadline = start + load.max_time;
    let mut tasks = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        let (client, next, errors, first_errors, path, body) = (
            client.clone(),
            next.clone(),
            errors.clone(),
            first_errors.clone(),
            path.clone(),
            load.body.clone(),
        );
        let max_count = load.max_count;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_count {
                    break;
                }
                let req = http::Request::post(&*path)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body(n))
                    .expect("valid request");
                let t0 = Instant::now();
                // Bound each request so that a stuck server cannot hang the run.
                let res =
                    tokio::time::timeout(Duration::from_secs(60), client.request_text(req)).await;
                let took = t0.elapsed();
                let err = match res {
                    Ok(Ok(_)) => {
                        lat.push(nanos(took));
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "request timed out after 60 s".to_string(),
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
        match t.await {
            Ok(lat) => samples.extend(lat),
            Err(e) => first_errors
                .lock()
                .expect("lock")
                .push(format!("task panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let first_errors = std::mem::take(&mut *first_errors.lock().expect("lock"));
    CreateResult {
        ok: samples.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        first_errors,
        elapsed,
        latency: Summary::of(&mut samples),
    }
}

/// A ConfigMap in namespace default with one 1 KiB data value.
pub fn configmap_body(prefix: &str) -> BodyFn {
    let prefix = prefix.to_string();
    let value = "x".repeat(1024);
    Arc::new(move |n| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{prefix}-{n}"}},"data":{{"v":"{value}"}}}}"#
        )
        .into_bytes()
    })
}

/// A minimal Pod: one container named c with image x.
pub fn pod_body(prefix: &str) -> BodyFn {
    let prefix = prefix.to_string();
    Arc::new(move |n| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{prefix}-{n}"}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}"#
        )
        .into_bytes()
    })
}

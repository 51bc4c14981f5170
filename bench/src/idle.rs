//! Scenario `idle-rss`: start the server on the embedded store, wait, and
//! read its resident set size (VmRSS) from `/proc/PID/status`.

use std::time::Duration;

use crate::procs::{mib, RkubeServer};
use crate::{Env, Row, Verdict};

/// Target VmRSS: 50 MB (decimal; 47.7 MiB).
const TARGET_BYTES: u64 = 50_000_000;

/// Runs the scenario.
pub async fn run(env: &Env, wait_seconds: u64) -> anyhow::Result<Row> {
    let mut server = RkubeServer::start(&env.server(Vec::new())).await?;
    eprintln!("rkube-bench: server idle for {wait_seconds} s");
    tokio::time::sleep(Duration::from_secs(wait_seconds)).await;
    let m = server.memory()?;
    server.check_alive()?;
    let bytes = m.rss_kib * 1024;
    Ok(Row {
        scenario: "idle-rss".into(),
        setup: format!("embedded store, empty, {wait_seconds} s after ready"),
        result: format!(
            "VmRSS {} ({:.1} MB); peak (VmHWM) {}",
            mib(m.rss_kib),
            bytes as f64 / 1e6,
            mib(m.hwm_kib)
        ),
        target: "≤ 50 MB".into(),
        verdict: Verdict::from_bool(bytes <= TARGET_BYTES),
    })
}

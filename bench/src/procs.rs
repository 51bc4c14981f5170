//! The processes under test: the real `rkube server` (HTTPS on a free
//! loopback port, temporary data dir, admin kubeconfig) and a throwaway
//! `etcd` on random loopback ports. Both are killed when dropped, and an
//! orphan reaper kills them if the harness itself dies without unwinding.
//! Also reads a process's memory (VmRSS/VmHWM) and CPU time from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How to start `rkube server`.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// The `rkube` binary.
    pub bin: PathBuf,
    /// `RKUBE_LOG` for the server (request logs are at info; keep it quiet).
    pub log: String,
    /// Extra arguments, e.g. `--store etcd --etcd-endpoints URL`.
    pub extra: Vec<String>,
}

/// A running `rkube server`; killed on drop.
pub struct RkubeServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// `DATA_DIR/kubeconfig` (admin client certificate).
    pub kubeconfig: PathBuf,
}

impl RkubeServer {
    /// Starts the server, waits for "listening on https://ADDR" on its
    /// stderr, then for `/readyz`.
    pub async fn start(opts: &ServerOpts) -> anyhow::Result<RkubeServer> {
        let dir = tempfile::Builder::new()
            .prefix("rkube-bench-")
            .tempdir()
            .context("creating a temporary data dir")?;
        let mut child = Command::new(&opts.bin)
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0", "--no-agent"])
            .args(&opts.extra)
            .env("RKUBE_LOG", &opts.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", opts.bin.display()))?;
        spawn_orphan_reaper(child.id());
        let stderr = child.stderr.take().context("rkube stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let _ = tx.send(rest.trim().to_string());
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[rkube] {line}");
            }
        });
        let mut server = RkubeServer {
            child,
            kubeconfig: dir.path().join("kubeconfig"),
            _dir: dir,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    server.url = url;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    server.check_alive()?;
                }
                Err(_) => {
                    server.check_alive()?;
                    bail!("rkube did not print its listen address within 60 s");
                }
            }
        }
        server.wait_ready().await?;
        eprintln!(
            "rkube-bench: server pid {} at {} ready",
            server.pid(),
            server.url
        );
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the server has exited (crashed).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("SERVER BUG: rkube server exited ({status})"),
            None => Ok(()),
        }
    }

    /// A `kube::Client` with the admin credentials over HTTP/1.1 (the kube
    /// crate's own stack: a pool of keep-alive TLS connections). Its retry
    /// layer is off so that every 429/503 shows up as an error instead of
    /// hidden latency.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let cfg = self.kube_config().await?;
        kube::Client::try_from(cfg).context("building the kube client")
    }

    /// A `kube::Client` over one multiplexed HTTP/2 connection (as client-go
    /// uses): hyper's client with rustls from the kubeconfig, ALPN h2, and
    /// the kube crate's base-URI layer; no retry, tracing or timeout layers.
    pub async fn client_h2(&self) -> anyhow::Result<kube::Client> {
        use kube::client::ConfigExt;
        let cfg = self.kube_config().await?;
        let tls = cfg.rustls_client_config().context("TLS client config")?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http2()
            .build();
        let hyper_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build(https);
        let service = tower::ServiceBuilder::new()
            .layer(cfg.base_uri_layer())
            .service(hyper_client);
        Ok(kube::Client::new(service, cfg.default_namespace))
    }

    /// A client of `http` version (1 or 2).
    pub async fn client_of(&self, http: u8) -> anyhow::Result<kube::Client> {
        if http == 2 {
            self.client_h2().await
        } else {
            self.client().await
        }
    }

    async fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("kube config from the kubeconfig")?;
        cfg.default_retry = false;
        Ok(cfg)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            self.check_alive()?;
            let req = http::Request::get("/readyz").body(Vec::new())?;
            match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("rkube never became ready: {last}")
    }

    /// Resident set size and its peak, from `/proc/PID/status`.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid())
    }
}

impl Drop for RkubeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory of a process in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// VmRSS.
    pub rss_kib: u64,
    /// VmHWM: the peak resident set size so far.
    pub hwm_kib: u64,
}

impl Memory {
    /// Reads `/proc/PID/status`.
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("parsing {line:?}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }
}

/// Formats KiB as MiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of a process from a `/proc/.../stat` file.
pub fn cpu_time(stat_path: &str) -> anyhow::Result<Duration> {
    let stat =
        std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // Fields after the command name (which may contain spaces) start at
    // field 3 (state); utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("malformed {stat_path}"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        f.get(i - 3)
            .ok_or_else(|| anyhow!("short {stat_path}"))?
            .parse::<u64>()
            .with_context(|| format!("parsing {stat_path}"))
    };
    let total = ticks(14)? + ticks(15)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// Busy CPU time of the whole machine (all cores) from `/proc/stat`.
pub fn machine_busy() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum();
    Ok(Duration::from_millis(busy * 1000 / TICKS_PER_SECOND))
}

/// Waits (at most `max`) until the rest of the machine is quiet: less than
/// `threshold` cores busy over a 2 s window. Other work on the machine
/// (builds, tests) would distort the numbers. Returns the last reading.
pub async fn wait_quiet(max: Duration, threshold: f64) -> f64 {
    let deadline = Instant::now() + max;
    loop {
        let before = machine_busy().unwrap_or_default();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let busy = machine_busy()
            .unwrap_or_default()
            .saturating_sub(before)
            .as_secs_f64()
            / t0.elapsed().as_secs_f64();
        if busy < threshold || Instant::now() >= deadline {
            if busy >= threshold {
                eprintln!("rkube-bench: machine still busy ({busy:.2} cores); running anyway");
            }
            return busy;
        }
        eprintln!("rkube-bench: waiting for the machine to be quiet ({busy:.2} cores busy)");
    }
}

/// Measures the CPU use of several processes over a phase, in cores, and
/// of everything else on the machine ("others").
pub struct CpuMeter {
    start: Instant,
    machine: Duration,
    readings: Vec<(String, String, Duration)>,
}

impl CpuMeter {
    /// Starts measuring `(label, /proc/.../stat path)` pairs.
    pub fn start(procs: &[(&str, String)]) -> CpuMeter {
        let readings = procs
            .iter()
            .map(|(label, path)| {
                (
                    label.to_string(),
                    path.clone(),
                    cpu_time(path).unwrap_or_default(),
                )
            })
            .collect();
        CpuMeter {
            start: Instant::now(),
            machine: machine_busy().unwrap_or_default(),
            readings,
        }
    }

    /// CPU time used by the process labelled `label` since `start`.
    pub fn used(&self, label: &str) -> Option<Duration> {
        let (_, path, before) = self.readings.iter().find(|(l, _, _)| l == label)?;
        Some(cpu_time(path).ok()?.saturating_sub(*before))
    }

    /// "CPU: server 1.62, bench 0.31, others 0.02 cores" over the time since `start`.
    pub fn report(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let mut ours = 0.0;
        let mut parts: Vec<String> = self
            .readings
            .iter()
            .map(|(label, path, before)| match cpu_time(path) {
                Ok(now) => {
                    let cores = (now.saturating_sub(*before)).as_secs_f64() / secs;
                    ours += cores;
                    format!("{label} {cores:.2}")
                }
                Err(_) => format!("{label} ?"),
            })
            .collect();
        if let Ok(m) = machine_busy() {
            let all = m.saturating_sub(self.machine).as_secs_f64() / secs;
            parts.push(format!("others {:.2}", (all - ours).max(0.0)));
        }
        format!("CPU: {} cores", parts.join(", "))
    }
}

/// The `/proc` stat path of a pid.
pub fn stat_path(pid: u32) -> String {
    format!("/proc/{pid}/stat")
}

use rkube_store::testing::spawn_orphan_reaper;
/// A throwaway etcd on random loopback ports (the store crate's test
/// support, shared with the conformance suite and the end-to-end tests).
pub use rkube_store::testing::EtcdProcess as EtcdServer;

/// Finds etcd: `bin` if given, else `etcd` on PATH (Debian's `etcd-server`).
pub fn find_etcd_binary(bin: Option<&Path>) -> anyhow::Result<PathBuf> {
    bin.map(Path::to_path_buf)
        .or_else(rkube_store::testing::etcd_binary)
        .ok_or_else(|| anyhow!("etcd not found: install Debian's etcd-server or pass --etcd-bin"))
}

/// Starts etcd and waits until it answers.
pub async fn start_etcd(bin: &Path) -> anyhow::Result<EtcdServer> {
    let etcd = EtcdServer::try_start(Some(bin.to_path_buf()))
        .await
        .map_err(|e| anyhow!(e))?;
    eprintln!(
        "rkube-bench: etcd pid {} at {} ready",
        etcd.pid(),
        etcd.endpoint
    );
    Ok(etcd)
}

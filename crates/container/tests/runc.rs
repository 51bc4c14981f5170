//! Integration tests with the real runc (as root), a busybox-static rootfs
//! and real monitors. `harness = false`: this binary is also the monitor
//! (`runc-TEST container-monitor ...`), and it speaks enough of libtest's
//! command line (`--list --format terse`, `--exact NAME`, filters) for
//! cargo test and nextest.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use rkube_container::{
    logfmt, ContainerError, ContainerSpec, Containers, ContainersConfig, LogConfig, LogOptions,
    Mount, Resources, Rootfs, Runc, Status, User,
};

#[path = "runc/attach.rs"]
mod attach;
#[path = "runc/more.rs"]
mod more;
use attach::*;
use more::*;

type TestFn = fn(Fixture) -> Pin<Box<dyn Future<Output = Result<()>>>>;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        const TESTS: &[(&str, TestFn)] = &[$((stringify!($name), |f| Box::pin($name(f)))),*];
    };
}

tests!(
    echo_and_exit,
    exit_code_3,
    start_error,
    oom_killed,
    sigterm_trap_then_kill,
    process_settings,
    capabilities,
    mounts,
    exec_pipes,
    exec_tty,
    tty_container,
    log_rotation,
    readoption,
    network_namespace,
    stats_of_running_container,
    start_latency,
    attach_pipes_stdin_once,
    attach_tty,
    attach_without_container_stdin,
);

/// Per-test directories and a `Containers` over them.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    rootfs: PathBuf,
    cfg: ContainersConfig,
    containers: Containers,
}

/// A failed test still leaves no container, mount or cgroup behind.
impl Drop for Fixture {
    fn drop(&mut self) {
        use rkube_container::rootfs::Mounter;
        for entry in std::fs::read_dir(&self.cfg.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::process::Command::new(&self.cfg.runtime.binary)
                .arg("--root")
                .arg(&self.cfg.runtime.root)
                .args(["delete", "-f"])
                .arg(entry.file_name())
                .output();
            let _ = rkube_container::rootfs::SysMounter.unmount(&entry.path().join("rootfs"));
        }
    }
}

impl Fixture {
    fn new() -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let base = tmp.path().to_path_buf();
        let rootfs = base.join("layer");
        for d in ["bin", "tmp", "work", "etc", "proc", "dev", "sys"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))?;
        let list = std::process::Command::new("/usr/bin/busybox")
            .arg("--list")
            .output()?;
        for applet in String::from_utf8(list.stdout)?.lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
            }
        }
        let cfg = ContainersConfig {
            root: base.join("state"),
            runtime: Runc {
                binary: "/usr/sbin/runc".into(),
                root: base.join("runc"),
            },
            monitor_command: vec![std::env::current_exe()?.into(), "container-monitor".into()],
            cgroup_root: "/sys/fs/cgroup".into(),
        };
        let containers = Containers::new(cfg.clone())?;
        Ok(Fixture {
            _tmp: tmp,
            base,
            rootfs,
            cfg,
            containers,
        })
    }

    fn spec(&self, id: &str, script: &str) -> ContainerSpec {
        let id = format!("{id}-{}", std::process::id());
        ContainerSpec {
            labels: BTreeMap::from([("name".to_string(), id.clone())]),
            log: LogConfig {
                path: self.base.join("logs").join(&id).join("0.log"),
                ..Default::default()
            },
            id,
            rootfs: Rootfs::Layers(vec![self.rootfs.clone()]),
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into()],
            cgroup_parent: Some("/rkube-test".into()),
            ..Default::default()
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<rkube_container::Exited> {
        self.containers.create_and_start(spec).await?;
        let exited =
            tokio::time::timeout(Duration::from_secs(60), self.containers.wait(&spec.id)).await??;
        Ok(exited)
    }

    async fn logs(&self, id: &str, opts: LogOptions) -> Result<String> {
        let mut s = Box::pin(self.containers.logs(id, opts)?);
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(String::from_utf8(out)?)
    }
}

async fn echo_and_exit(f: Fixture) -> Result<()> {
    let spec = f.spec("echo", "echo hello; echo oops >&2; echo world");
    let exited = f.run(&spec).await?;
    ensure!(
        exited.exit_code == 0 && exited.reason == "Completed" && !exited.oom_killed,
        "{exited:?}"
    );
    ensure!(exited.started_at.is_some_and(|s| s <= exited.finished_at));
    let raw = std::fs::read_to_string(&spec.log.path)?;
    let lines: Vec<_> = raw.lines().collect();
    ensure!(lines.len() == 3, "{raw}");
    for l in &lines {
        let rec = logfmt::parse(l.as_bytes()).with_context(|| format!("not CRI: {l}"))?;
        ensure!(!rec.partial);
    }
    ensure!(lines.iter().any(|l| l.contains(" stderr F oops")), "{raw}");
    ensure!(
        lines.iter().any(|l| l.ends_with(" stdout F hello")),
        "{raw}"
    );
    let all = f.logs(&spec.id, LogOptions::default()).await?;
    // stdout and stderr are separate pipes: their relative order may vary.
    let mut sorted: Vec<_> = all.lines().collect();
    sorted.sort();
    ensure!(sorted == ["hello", "oops", "world"], "{all}");
    let tail = f
        .logs(
            &spec.id,
            LogOptions {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await?;
    ensure!(tail.lines().count() == 1 && all.ends_with(&tail), "{tail}");
    let ts = f
        .logs(
            &spec.id,
            LogOptions {
                timestamps: true,
                ..Default::default()
            },
        )
        .await?;
    for l in ts.lines() {
        let (t, rest) = l.split_once(' ').context("no timestamp")?;
        t.parse::<jiff::Timestamp>()?;
        ensure!(["hello", "oops", "world"].contains(&rest), "{l}");
    }
    // A follow on an exited container drains and ends.
    let followed = f
        .logs(
            &spec.id,
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .await?;
    ensure!(followed.lines().count() == 3);
    ensure!(matches!(f.containers.status(&spec.id)?, Status::Exited(_)));
    f.containers.remove(&spec.id).await?;
    ensure!(matches!(
        f.containers.status(&spec.id),
        Err(ContainerError::NotFound(_))
    ));
    ensure!(!f.cfg.root.join(&spec.id).exists());
    Ok(())
}

async fn exit_code_3(f: Fixture) -> Result<()> {
    let spec = f.spec("exit3", "exit 3");
    let exited = f.run(&spec).await?;
    ensure!(
        exited.exit_code == 3 && exited.reason == "Error",
        "{exited:?}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn start_error(f: Fixture) -> Result<()> {
    let mut spec = f.spec("nosuch", "");
    spec.args = vec!["/bin/does-not-exist".into()];
    match f.containers.create_and_start(&spec).await {
        Err(ContainerError::StartFailed(msg)) => ensure!(
            msg.contains("does-not-exist") && msg.contains("no such file"),
            "{msg}"
        ),
        other => bail!("expected a start error, got {other:?}"),
    }
    let Status::Exited(e) = f.containers.status(&spec.id)? else {
        bail!("not exited")
    };
    ensure!(
        e.reason == "StartError" && e.exit_code == 128 && e.message.is_some(),
        "{e:?}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn oom_killed(f: Fixture) -> Result<()> {
    let mut spec = f.spec("oom", "");
    spec.args = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        .map(String::from)
        .to_vec();
    spec.resources = Resources {
        memory_limit: Some(8 << 20),
        ..Default::default()
    };
    let exited = f.run(&spec).await?;
    ensure!(
        exited.oom_killed && exited.exit_code == 137 && exited.reason == "OOMKilled",
        "{exited:?}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn sigterm_trap_then_kill(f: Fixture) -> Result<()> {
    let spec = f.spec(
        "trap",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
    );
    f.containers.create_and_start(&spec).await?;
    wait_for_log(&f, &spec, "ready").await?;
    let exited = f.containers.stop(&spec.id, Duration::from_secs(30)).await?;
    ensure!(exited.exit_code == 0, "{exited:?}");
    ensure!(std::fs::read_to_string(&spec.log.path)?.contains("got-term"));
    f.containers.remove(&spec.id).await?;

    let spec = f.spec(
        "ignore",
        "trap '' TERM; echo ready; while true; do sleep 0.05; done",
    );
    f.containers.create_and_start(&spec).await?;
    wait_for_log(&f, &spec, "ready").await?;
    let exited = f
        .containers
        .stop(&spec.id, Duration::from_millis(300))
        .await?;
    ensure!(
        exited.exit_code == 137 && exited.reason == "Error",
        "{exited:?}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn wait_for_log(f: &Fixture, spec: &ContainerSpec, needle: &str) -> Result<()> {
    let mut s = Box::pin(f.containers.logs(
        &spec.id,
        LogOptions {
            follow: true,
            ..Default::default()
        },
    )?);
    let mut seen = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), s.next()).await? {
        seen.push_str(&String::from_utf8_lossy(&chunk?));
        if seen.contains(needle) {
            return Ok(());
        }
    }
    bail!("log ended without {needle:?}: {seen}")
}

async fn process_settings(f: Fixture) -> Result<()> {
    let mut spec = f.spec("proc", "echo $FOO; pwd; id -u; id -g; id -G; hostname; touch /x 2>/dev/null && echo writable || echo readonly");
    spec.env.push("FOO=bar baz".into());
    spec.cwd = Some("/work".into());
    spec.user = User {
        uid: 1000,
        gid: 1001,
        additional_gids: vec![5],
    };
    spec.readonly_rootfs = true;
    spec.hostname = Some("podhost".into());
    let exited = f.run(&spec).await?;
    ensure!(exited.exit_code == 0, "{exited:?}");
    let out = f.logs(&spec.id, LogOptions::default()).await?;
    let lines: Vec<_> = out.lines().collect();
    ensure!(
        lines[0] == "bar baz" && lines[1] == "/work" && lines[2] == "1000" && lines[3] == "1001",
        "{out}"
    );
    ensure!(lines[4].split(' ').any(|g| g == "5"), "{out}");
    ensure!(lines[5] == "podhost" && lines[6] == "readonly", "{out}");
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn capabilities(f: Fixture) -> Result<()> {
    let mut spec = f.spec("caps", "grep CapBnd /proc/self/status");
    spec.cap_add = vec!["NET_ADMIN".into()];
    spec.cap_drop = vec!["CAP_CHOWN".into()];
    spec.no_new_privileges = true;
    f.run(&spec).await?;
    let out = f.logs(&spec.id, LogOptions::default()).await?;
    let hex = out.split_whitespace().nth(1).context("no CapBnd")?;
    let caps = u64::from_str_radix(hex, 16)?;
    ensure!(caps & (1 << 12) != 0, "NET_ADMIN missing: {out}");
    ensure!(caps & 1 == 0, "CHOWN present: {out}");
    ensure!(caps & (1 << 21) == 0, "SYS_ADMIN present: {out}");
    ensure!(caps & (1 << 5) != 0, "KILL missing: {out}");
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn mounts(f: Fixture) -> Result<()> {
    let host = f.base.join("vol");
    std::fs::create_dir_all(&host)?;
    std::fs::write(host.join("hello"), "from-host")?;
    let rw = f.base.join("rw");
    std::fs::create_dir_all(&rw)?;
    let mut spec = f.spec(
        "mounts",
        "cat /data/hello; echo; touch /data/x 2>/dev/null && echo ro-broken || echo ro-ok; echo hi > /out/file; echo t > /scratch/t && echo tmpfs-ok",
    );
    spec.mounts = vec![
        Mount::Bind {
            source: host.clone(),
            destination: "/data".into(),
            readonly: true,
        },
        Mount::Bind {
            source: rw.clone(),
            destination: "/out".into(),
            readonly: false,
        },
        Mount::Tmpfs {
            destination: "/scratch".into(),
            size: Some(1 << 20),
            readonly: false,
        },
    ];
    f.run(&spec).await?;
    let out = f.logs(&spec.id, LogOptions::default()).await?;
    ensure!(out == "from-host\nro-ok\ntmpfs-ok\n", "{out}");
    ensure!(std::fs::read_to_string(rw.join("file"))? == "hi\n");
    f.containers.remove(&spec.id).await?;
    Ok(())
}

async fn log_rotation(f: Fixture) -> Result<()> {
    let mut spec = f.spec(
        "rotate",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    );
    spec.log.max_size = 2000;
    spec.log.max_files = 3;
    f.run(&spec).await?;
    let rotated = logfmt::rotated_files(&spec.log.path);
    ensure!(rotated.len() == 2, "{rotated:?}");
    for p in logfmt::all_files(&spec.log.path) {
        ensure!(std::fs::metadata(&p)?.len() <= 2000);
    }
    let out = f.logs(&spec.id, LogOptions::default()).await?;
    let nums: Vec<u32> = out
        .lines()
        .map(|l| l.trim_start_matches("line-").parse())
        .collect::<Result<_, _>>()?;
    ensure!(
        *nums.last().unwrap() == 299 && nums.windows(2).all(|w| w[1] == w[0] + 1),
        "{out}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "container-monitor") {
        std::process::exit(rkube_container::monitor_main(args[2..].to_vec()));
    }
    let args: Vec<String> = args
        .into_iter()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in TESTS {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    let usable = rustix::process::geteuid().is_root()
        && Path::new("/usr/sbin/runc").exists()
        && Path::new("/usr/bin/busybox").exists();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, test) in selected {
        if !usable {
            println!("test {name} ... skipped (needs root, /usr/sbin/runc and /usr/bin/busybox)");
            skipped += 1;
            continue;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(async { test(Fixture::new()?).await });
        match result {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED: {e:#}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        std::process::exit(101);
    }
}

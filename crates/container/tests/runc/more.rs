//! More runc integration cases: exec (pipes and terminal), a terminal
//! container, re-adoption by a new `Containers`, network namespaces, stats.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use rkube_container::{Containers, ExecSpec, LogOptions, Mount, Resources, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Fixture;

pub async fn exec_pipes(f: Fixture) -> Result<()> {
    let spec = f.spec("execp", "exec sleep 1000");
    f.containers.create_and_start(&spec).await?;
    let exec = ExecSpec {
        args: vec!["sh".into(), "-c".into(), "cat; echo err >&2; exit 5".into()],
        env: vec![],
        tty: false,
        stdin: true,
    };
    let mut s = f.containers.exec(&spec.id, &exec).await?;
    let mut stdin = s.stdin.take().context("stdin")?;
    stdin.write_all(b"ping\n").await?;
    drop(stdin);
    let mut out = String::new();
    s.stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut out)
        .await?;
    let mut err = String::new();
    s.stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut err)
        .await?;
    ensure!(out == "ping\n" && err == "err\n", "{out:?} {err:?}");
    ensure!(s.wait().await? == 5);
    let bad = ExecSpec {
        args: vec!["/nope".into()],
        ..Default::default()
    };
    let mut s = f.containers.exec(&spec.id, &bad).await?;
    match s.wait().await {
        Err(rkube_container::ExecError::StartFailed(m)) => ensure!(m.contains("/nope"), "{m}"),
        other => bail!("expected start failure, got {other:?}"),
    }
    f.containers.remove(&spec.id).await?;
    Ok(())
}

pub async fn exec_tty(f: Fixture) -> Result<()> {
    let spec = f.spec("exect", "exec sleep 1000");
    f.containers.create_and_start(&spec).await?;
    let exec = ExecSpec {
        args: vec!["sh".into()],
        env: vec!["X=tty".into()],
        tty: true,
        stdin: true,
    };
    let mut s = f.containers.exec(&spec.id, &exec).await?;
    s.resize(100, 40)?;
    let mut stdin = s.stdin.take().context("stdin")?;
    stdin
        .write_all(b"echo got-$X; tty; stty size; exit 4\n")
        .await?;
    let mut out = String::new();
    s.stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut out)
        .await?;
    ensure!(
        out.contains("got-tty") && out.contains("/dev/pts/") && out.contains("40 100"),
        "{out:?}"
    );
    ensure!(s.wait().await? == 4);
    f.containers.remove(&spec.id).await?;
    Ok(())
}

pub async fn tty_container(f: Fixture) -> Result<()> {
    let mut spec = f.spec("ttyc", "tty; echo done >&2; exit 2");
    spec.tty = true;
    spec.stdin = true;
    let exited = f.run(&spec).await?;
    ensure!(exited.exit_code == 2, "{exited:?}");
    let raw = std::fs::read_to_string(&spec.log.path)?;
    ensure!(raw.lines().all(|l| l.contains(" stdout F ")), "{raw}");
    let out = f.logs(&spec.id, LogOptions::default()).await?;
    ensure!(
        out.starts_with("/dev/pts/") && out.ends_with("\ndone\n"),
        "{out:?}"
    );
    f.containers.remove(&spec.id).await?;
    Ok(())
}

pub async fn readoption(mut f: Fixture) -> Result<()> {
    let ctl = f.base.join("ctl");
    std::fs::create_dir_all(&ctl)?;
    let mut spec = f.spec(
        "adopt",
        "echo up; while [ ! -e /ctl/go ]; do sleep 0.02; done; echo bye; exit 7",
    );
    spec.mounts = vec![Mount::Bind {
        source: ctl.clone(),
        destination: "/ctl".into(),
        readonly: true,
    }];
    let started = f.containers.create_and_start(&spec).await?;
    // The agent "restarts": the old value is dropped, a new one opened.
    let again = Containers::new(f.cfg.clone())?;
    drop(std::mem::replace(&mut f.containers, again.clone()));
    let list = again.list()?;
    let me = list
        .iter()
        .find(|c| c.id == spec.id)
        .context("not listed")?;
    ensure!(me.labels.get("name") == Some(&spec.id));
    ensure!(
        me.status
            == Status::Running {
                pid: started.pid,
                started_at: started.started_at
            },
        "{:?}",
        me.status
    );
    std::fs::write(ctl.join("go"), "")?;
    let exited = tokio::time::timeout(Duration::from_secs(60), again.wait(&spec.id)).await??;
    ensure!(
        exited.exit_code == 7 && exited.started_at == Some(started.started_at),
        "{exited:?}"
    );
    let mut s = Box::pin(again.logs(&spec.id, LogOptions::default())?);
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    ensure!(out == b"up\nbye\n");
    again.remove(&spec.id).await?;
    Ok(())
}

pub async fn network_namespace(f: Fixture) -> Result<()> {
    let name = format!("rkube-ctest-{}", std::process::id());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()?;
    ensure!(st.success(), "ip netns add failed");
    let path = PathBuf::from("/var/run/netns").join(&name);
    let result = async {
        let mut spec = f.spec(
            "netns",
            "readlink /proc/self/ns/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
        );
        spec.netns = Some(path.clone());
        f.run(&spec).await?;
        let out = f.logs(&spec.id, LogOptions::default()).await?;
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path)?);
        ensure!(
            out.lines().next() == Some(format!("net:[{ino}]").as_str()),
            "{out}"
        );
        ensure!(
            out.lines().skip(1).map(str::trim).collect::<Vec<_>>() == ["lo"],
            "{out}"
        );
        f.containers
            .remove(&spec.id)
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    let _ = std::process::Command::new("ip")
        .args(["netns", "delete", &name])
        .status();
    result
}

pub async fn stats_of_running_container(f: Fixture) -> Result<()> {
    let mut spec = f.spec("stats", "exec sleep 1000");
    spec.resources = Resources {
        memory_limit: Some(64 << 20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpu_shares: Some(256),
        pids_limit: Some(50),
    };
    f.containers.create_and_start(&spec).await?;
    let usage = f.containers.stats(&spec.id)?;
    ensure!(usage.memory_usage_bytes > 0, "{usage:?}");
    let cg = Path::new("/sys/fs/cgroup/memory/rkube-test").join(&spec.id);
    if cg.exists() {
        ensure!(
            std::fs::read_to_string(cg.join("memory.limit_in_bytes"))?.trim()
                == (64u64 << 20).to_string()
        );
        let cpu = Path::new("/sys/fs/cgroup/cpu/rkube-test").join(&spec.id);
        ensure!(std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))?.trim() == "50000");
        ensure!(std::fs::read_to_string(cpu.join("cpu.shares"))?.trim() == "256");
    }
    let exited = f.containers.stop(&spec.id, Duration::from_secs(0)).await?;
    ensure!(exited.exit_code == 137, "{exited:?}");
    f.containers.remove(&spec.id).await?;
    ensure!(!cg.exists(), "cgroup left behind");
    Ok(())
}

/// Not a timed assertion: prints how long `create_and_start` takes (start
/// latency matters for pod startup) and checks that 10 containers start.
pub async fn start_latency(f: Fixture) -> Result<()> {
    let mut times = Vec::new();
    for i in 0..10 {
        let spec = f.spec(&format!("lat{i}"), "exec sleep 1000");
        let t = std::time::Instant::now();
        f.containers.create_and_start(&spec).await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "create_and_start: p50 {:?}, max {:?}",
        times[times.len() / 2],
        times.last().unwrap()
    );
    for c in f.containers.list()? {
        f.containers.remove(&c.id).await?;
    }
    ensure!(f.containers.list()?.is_empty());
    Ok(())
}

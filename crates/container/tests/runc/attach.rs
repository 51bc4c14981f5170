//! Attach cases: clients of a container's monitor with and without a
//! terminal, stdinOnce, detaching and re-attaching.

use anyhow::{bail, ensure, Context, Result};
use rkube_container::{AttachSession, AttachStreams, ContainerError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Fixture;

const ALL: AttachStreams = AttachStreams {
    stdin: true,
    stdout: true,
    stderr: true,
};

/// Reads from `r` until the text read so far contains `want`; all of it.
async fn read_until(r: &mut (impl AsyncRead + Unpin), want: &str) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            bail!("EOF before {want:?}: {:?}", String::from_utf8_lossy(&got));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

async fn read_to_end(r: &mut (impl AsyncRead + Unpin)) -> Result<String> {
    let mut s = String::new();
    r.read_to_string(&mut s).await?;
    Ok(s)
}

fn streams(
    s: &mut AttachSession,
) -> Result<(
    rkube_container::exec::Reader,
    Option<rkube_container::exec::Reader>,
)> {
    Ok((s.stdout.take().context("stdout")?, s.stderr.take()))
}

/// A `cat`-like container without a terminal: two clients see its output,
/// the first one's input reaches it, and with stdinOnce the end of that
/// input closes the container's stdin while the session goes on to the exit.
pub async fn attach_pipes_stdin_once(f: Fixture) -> Result<()> {
    let mut spec = f.spec(
        "attachp",
        "while read l; do echo cat:$l; done; echo stdin-ended; echo err >&2",
    );
    spec.stdin = true;
    spec.stdin_once = true;
    f.containers.create_and_start(&spec).await?;
    let mut watcher = f
        .containers
        .attach(
            &spec.id,
            AttachStreams {
                stdout: true,
                ..Default::default()
            },
        )
        .await?;
    ensure!(watcher.stdin.is_none() && watcher.stderr.is_none());
    let mut s = f.containers.attach(&spec.id, ALL).await?;
    ensure!(!s.tty && s.resize.is_none());
    let mut stdin = s.stdin.take().context("stdin")?;
    let (mut out, err) = streams(&mut s)?;
    let mut err = err.context("stderr")?;
    stdin.write_all(b"one\n").await?;
    read_until(&mut out, "cat:one\n").await?;
    let (mut wout, _) = streams(&mut watcher)?;
    read_until(&mut wout, "cat:one\n").await?;
    stdin.shutdown().await?;
    // The session outlives the input: the rest of the output, then EOF.
    ensure!(read_to_end(&mut out).await? == "stdin-ended\n");
    ensure!(read_to_end(&mut err).await? == "err\n");
    s.ended.await;
    ensure!(read_to_end(&mut wout).await? == "stdin-ended\n");
    watcher.ended.await;
    let exited = f.containers.wait(&spec.id).await?;
    ensure!(exited.exit_code == 0, "{exited:?}");
    // Still logged as before.
    let raw = std::fs::read_to_string(&spec.log.path)?;
    ensure!(
        raw.contains(" stdout F cat:one") && raw.contains(" stderr F err"),
        "{raw}"
    );
    match f.containers.attach(&spec.id, ALL).await {
        Err(ContainerError::NotRunning(_)) => {}
        other => bail!("attach to an exited container: {other:?}"),
    }
    f.containers.remove(&spec.id).await?;
    Ok(())
}

/// A terminal container: resizes reach the pty, closing stdin detaches the
/// session (no stdinOnce) and a new session can drive the same shell.
pub async fn attach_tty(f: Fixture) -> Result<()> {
    let mut spec = f.spec(
        "attacht",
        "while read l; do echo tty:$l; [ $l = quit ] && exit 4; stty size; done",
    );
    spec.tty = true;
    spec.stdin = true;
    f.containers.create_and_start(&spec).await?;
    let mut s = f.containers.attach(&spec.id, ALL).await?;
    ensure!(s.tty && s.stderr.is_none(), "no stderr with a terminal");
    let mut stdin = s.stdin.take().context("stdin")?;
    let (mut out, _) = streams(&mut s)?;
    s.resize.as_ref().context("resize")?.resize(100, 30).await?;
    stdin.write_all(b"a\n").await?;
    let text = read_until(&mut out, "30 100").await?;
    ensure!(text.contains("tty:a"), "{text:?}");
    stdin.shutdown().await?;
    // Detached: the output ends, the container goes on.
    read_to_end(&mut out).await?;
    s.ended.await;
    ensure!(matches!(
        f.containers.status(&spec.id)?,
        rkube_container::Status::Running { .. }
    ));
    let mut s2 = f.containers.attach(&spec.id, ALL).await?;
    let mut stdin2 = s2.stdin.take().context("stdin")?;
    let (mut out2, _) = streams(&mut s2)?;
    stdin2.write_all(b"quit\n").await?;
    let rest = read_to_end(&mut out2).await?;
    ensure!(rest.contains("tty:quit"), "{rest:?}");
    s2.ended.await;
    let exited = f.containers.wait(&spec.id).await?;
    ensure!(exited.exit_code == 4, "{exited:?}");
    f.containers.remove(&spec.id).await?;
    Ok(())
}

/// Without stdin in the spec, a client's input is dropped (as containerd
/// does), and output still flows.
pub async fn attach_without_container_stdin(f: Fixture) -> Result<()> {
    let ctl = f.base.join("ctl-nostdin");
    std::fs::create_dir_all(&ctl)?;
    let mut spec = f.spec(
        "attachn",
        "echo ready; while [ ! -e /ctl/go ]; do sleep 0.02; done; echo bye",
    );
    spec.mounts = vec![rkube_container::Mount::Bind {
        source: ctl.clone(),
        destination: "/ctl".into(),
        readonly: true,
    }];
    f.containers.create_and_start(&spec).await?;
    let mut s = f.containers.attach(&spec.id, ALL).await?;
    ensure!(s.stdin.is_none(), "the container has no stdin");
    let (mut out, _) = streams(&mut s)?;
    std::fs::write(ctl.join("go"), "")?;
    let text = read_to_end(&mut out).await?;
    ensure!(text.ends_with("bye\n"), "{text:?}");
    s.ended.await;
    f.containers.wait(&spec.id).await?;
    f.containers.remove(&spec.id).await?;
    Ok(())
}

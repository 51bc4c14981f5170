//! Reading CRI log files back the way `kubectl logs` shows them: records
//! decoded to raw output (`P` records joined), optional timestamps, `--tail`,
//! `--since-time`, `--limit-bytes`, and `-f` (follows rotation; ends once
//! the container has exited and the file is drained).
//!
//! As upstream's kubelet (`pkg/kubelet/kuberuntime/logs`): `--timestamps`
//! prefixes only a record that starts a line (the first, or one after an
//! `F` record), so a line split into `P` records keeps one timestamp, that
//! of its first record; `--since-time` drops every older record, and a
//! record kept after a dropped `P` record continues that line (no prefix).

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::logfmt;

/// Errors reading logs.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// I/O on a log file.
    #[error("reading log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// `kubectl logs` options.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Keep streaming new output until the container exits.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since_time: Option<Timestamp>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// Resolves when the container has exited (for `follow`).
pub type ExitFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
const CHUNK: usize = 64 * 1024;

/// Streams the logs in `files` (oldest first; the last is the current file,
/// the only one followed). `exited` ends a follow; without it a follow runs
/// until the stream is dropped.
pub fn read_logs(
    files: Vec<PathBuf>,
    opts: LogOptions,
    exited: Option<ExitFuture>,
) -> impl Stream<Item = Result<Bytes, LogsError>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut r = Reader {
            tx,
            opts,
            sent: 0,
            line_start: true,
        };
        if let Err(e) = r.run(files, exited).await {
            let _ = r.tx.send(Err(e)).await;
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct Reader {
    tx: mpsc::Sender<Result<Bytes, LogsError>>,
    opts: LogOptions,
    sent: u64,
    /// The next record starts a line (the last one read, shown or not,
    /// was not partial): it gets the timestamp prefix.
    line_start: bool,
}

/// Where to start reading: (file index, byte offset).
fn tail_start(files: &[PathBuf], n: usize) -> Result<(usize, u64), LogsError> {
    let mut remaining = n;
    for (i, path) in files.iter().enumerate().rev() {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(LogsError::Io {
                    path: path.clone(),
                    source,
                })
            }
        };
        // Walk the records backwards counting complete (F) lines.
        let mut end = data.len();
        while end > 0 {
            let body_end = if data[end - 1] == b'\n' { end - 1 } else { end };
            let start = data[..body_end]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            let full = logfmt::parse(&data[start..body_end]).is_some_and(|r| !r.partial);
            if full {
                if remaining == 0 {
                    return Ok((i, end as u64));
                }
                remaining -= 1;
            }
            end = start;
        }
    }
    Ok((0, 0))
}

impl Reader {
    async fn run(
        &mut self,
        files: Vec<PathBuf>,
        mut exited: Option<ExitFuture>,
    ) -> Result<(), LogsError> {
        let (first, mut offset) = match self.opts.tail_lines {
            Some(n) => tail_start(&files, n)?,
            None => (0, 0),
        };
        let last = files.len().saturating_sub(1);
        for (i, path) in files.iter().enumerate().skip(first) {
            let follow = self.opts.follow && i == last;
            if !self.read_file(path, offset, follow, &mut exited).await? {
                return Ok(());
            }
            offset = 0;
        }
        Ok(())
    }

    /// Reads one file from `offset`; returns false when the output is done
    /// (limit reached or the receiver went away).
    async fn read_file(
        &mut self,
        path: &PathBuf,
        offset: u64,
        follow: bool,
        exited: &mut Option<ExitFuture>,
    ) -> Result<bool, LogsError> {
        let io = |source| LogsError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(true),
            Err(e) => return Err(io(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut exited_seen = false;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n > 0 {
                pending.extend_from_slice(&buf[..n]);
                let mut start = 0;
                while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
                    let keep_going = self.emit(&pending[start..start + nl]).await;
                    start += nl + 1;
                    if !keep_going {
                        return Ok(false);
                    }
                }
                pending.drain(..start);
                continue;
            }
            // At EOF.
            if !follow {
                return Ok(true);
            }
            // Rotated? Drain the old file (done: we are at its EOF), then switch.
            if let (Ok(now), Ok(cur)) = (std::fs::metadata(path), file.metadata()) {
                if now.ino() != cur.ino() || now.dev() != cur.dev() {
                    file = File::open(path).map_err(io)?;
                    pending.clear();
                    continue;
                }
            }
            if exited_seen {
                return Ok(true);
            }
            match exited.as_mut() {
                Some(fut) => {
                    tokio::select! {
                        _ = fut.as_mut() => { exited_seen = true; *exited = Some(Box::pin(async {})); }
                        _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        _ = self.tx.closed() => return Ok(false),
                    }
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        _ = self.tx.closed() => return Ok(false),
                    }
                }
            }
        }
    }

    /// Decodes and sends one record; false to stop.
    async fn emit(&mut self, line: &[u8]) -> bool {
        let Some(rec) = logfmt::parse(line) else {
            return true;
        };
        let starts_line = std::mem::replace(&mut self.line_start, !rec.partial);
        if self
            .opts
            .since_time
            .is_some_and(|since| rec.timestamp < since)
        {
            return true;
        }
        let mut out = Vec::with_capacity(rec.content.len() + 40);
        if self.opts.timestamps && starts_line {
            out.extend_from_slice(rec.timestamp.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(rec.content);
        if !rec.partial {
            out.push(b'\n');
        }
        if let Some(limit) = self.opts.limit_bytes {
            let left = limit.saturating_sub(self.sent) as usize;
            if out.len() >= left {
                out.truncate(left);
                if !out.is_empty() {
                    let _ = self.tx.send(Ok(Bytes::from(out))).await;
                }
                return false;
            }
        }
        self.sent += out.len() as u64;
        self.tx.send(Ok(Bytes::from(out))).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfmt::{format, Stream as S};
    use futures::StreamExt;
    use std::io::Write;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn write(path: &std::path::Path, recs: &[(&str, bool, &str)]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for (t, partial, c) in recs {
            f.write_all(&format(ts(t), S::Stdout, *partial, c.as_bytes()))
                .unwrap();
        }
    }

    async fn collect(files: Vec<PathBuf>, opts: LogOptions) -> String {
        let chunks: Vec<_> = read_logs(files, opts, None).collect().await;
        String::from_utf8(
            chunks
                .into_iter()
                .flat_map(|c| c.unwrap().to_vec())
                .collect(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn decode_tail_since_timestamps_limit() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("0.log.20240101-000000.000000000");
        let cur = dir.path().join("0.log");
        write(
            &old,
            &[
                ("2024-01-01T00:00:01Z", false, "one"),
                ("2024-01-01T00:00:02Z", true, "tw"),
            ],
        );
        write(
            &cur,
            &[
                ("2024-01-01T00:00:03Z", false, "o"),
                ("2024-01-01T00:00:04Z", false, "three"),
                ("2024-01-01T00:00:05Z", false, "four"),
            ],
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&cur)
            .unwrap()
            .write_all(b"not a record\n")
            .unwrap();
        let files = vec![old.clone(), cur.clone()];
        assert_eq!(
            collect(files.clone(), LogOptions::default()).await,
            "one\ntwo\nthree\nfour\n"
        );
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(collect(files.clone(), tail(2)).await, "three\nfour\n");
        assert_eq!(collect(files.clone(), tail(3)).await, "two\nthree\nfour\n");
        assert_eq!(collect(files.clone(), tail(0)).await, "");
        assert_eq!(
            collect(files.clone(), tail(10)).await,
            "one\ntwo\nthree\nfour\n"
        );
        let opts = LogOptions {
            timestamps: true,
            since_time: Some(ts("2024-01-01T00:00:02Z")),
            ..Default::default()
        };
        assert_eq!(
            collect(files.clone(), opts).await,
            "2024-01-01T00:00:02Z two\n2024-01-01T00:00:04Z three\n2024-01-01T00:00:05Z four\n"
        );
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(collect(files.clone(), opts).await, "one\ntw");
        // A missing rotated file is skipped.
        assert_eq!(
            collect(vec![dir.path().join("gone"), cur], LogOptions::default()).await,
            "o\nthree\nfour\n"
        );
    }

    #[tokio::test]
    async fn follow_until_exit_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("0.log");
        write(&cur, &[("2024-01-01T00:00:01Z", false, "a")]);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let exited: ExitFuture = Box::pin(async move {
            let _ = done_rx.await;
        });
        let mut s = Box::pin(read_logs(
            vec![cur.clone()],
            LogOptions {
                follow: true,
                ..Default::default()
            },
            Some(exited),
        ));
        assert_eq!(s.next().await.unwrap().unwrap(), "a\n");
        write(&cur, &[("2024-01-01T00:00:02Z", false, "b")]);
        assert_eq!(s.next().await.unwrap().unwrap(), "b\n");
        std::fs::rename(&cur, dir.path().join("0.log.1")).unwrap();
        write(&cur, &[("2024-01-01T00:00:03Z", false, "c")]);
        assert_eq!(s.next().await.unwrap().unwrap(), "c\n");
        write(&cur, &[("2024-01-01T00:00:04Z", false, "d")]);
        done_tx.send(()).unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), "d\n");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn partial_lines_keep_one_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("0.log");
        write(
            &cur,
            &[
                ("2024-01-01T00:00:01Z", false, "one"),
                ("2024-01-01T00:00:02.250Z", true, "tw"),
                ("2024-01-01T00:00:03Z", true, "o "),
                ("2024-01-01T00:00:04Z", false, "parts"),
                ("2024-01-01T00:00:05Z", false, "three"),
            ],
        );
        let opts = |since: Option<&str>| LogOptions {
            timestamps: true,
            since_time: since.map(ts),
            ..Default::default()
        };
        assert_eq!(
            collect(vec![cur.clone()], opts(None)).await,
            "2024-01-01T00:00:01Z one\n2024-01-01T00:00:02.25Z two parts\n2024-01-01T00:00:05Z three\n"
        );
        // Since in the middle of a line: the older parts are dropped and the
        // rest continues that line, without a timestamp.
        assert_eq!(
            collect(vec![cur], opts(Some("2024-01-01T00:00:03Z"))).await,
            "o parts\n2024-01-01T00:00:05Z three\n"
        );
    }
}

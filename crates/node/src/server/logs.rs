//! Container logs: kubelet's `containerLogs` query options, and a reader of
//! CRI-format log files (`<RFC 3339 time> <stream> <F|P> <text>` per line)
//! that applies them (tail, since, timestamps, byte limit, follow).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::backend::LogOptions;

/// A query option that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct LogQueryError(pub String);

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn number(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, LogQueryError> {
    q.get(k)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| LogQueryError(format!("invalid {k}: {v:?}")))
        })
        .transpose()
}

/// Parses `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
/// `timestamps` and `limitBytes` as kubelet does; `now` anchors sinceSeconds.
pub fn parse_log_query(
    q: &HashMap<String, String>,
    now: jiff::Timestamp,
) -> Result<LogOptions, LogQueryError> {
    let tail = number(q, "tailLines")?;
    let limit = number(q, "limitBytes")?;
    let since_seconds = number(q, "sinceSeconds")?;
    let since_time = q
        .get("sinceTime")
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<jiff::Timestamp>()
                .map_err(|_| LogQueryError(format!("invalid sinceTime: {v:?}")))
        })
        .transpose()?;
    if since_seconds.is_some() && since_time.is_some() {
        return Err(LogQueryError(
            "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
        ));
    }
    if tail.is_some_and(|t| t < 0) {
        return Err(LogQueryError(
            "tailLines: must be greater than or equal to 0".into(),
        ));
    }
    if limit.is_some_and(|l| l < 1) {
        return Err(LogQueryError("limitBytes: must be greater than 0".into()));
    }
    if since_seconds.is_some_and(|s| s < 1) {
        return Err(LogQueryError("sinceSeconds: must be greater than 0".into()));
    }
    let since = match (since_seconds, since_time) {
        (Some(s), _) => Some(now - jiff::SignedDuration::from_secs(s)),
        (_, t) => t,
    };
    Ok(LogOptions {
        follow: flag(q, "follow"),
        previous: flag(q, "previous"),
        tail_lines: tail.map(|t| t as u64),
        since,
        timestamps: flag(q, "timestamps"),
        limit_bytes: limit.map(|l| l as u64),
    })
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: jiff::Timestamp,
    pub stream: &'a str,
    pub partial: bool,
    pub text: &'a str,
}

/// Parses one line (without its newline) of a CRI log file.
pub fn parse_cri_line(line: &str) -> Option<CriLine<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?.parse().ok()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    Some(CriLine {
        time,
        stream,
        partial: tag.split(':').next() == Some("P"),
        text,
    })
}

/// Formats the complete lines of `chunk` per `opts`, appending to `out`.
fn render(chunk: &str, opts: &LogOptions, tail: bool, out: &mut Vec<u8>) {
    let lines: Vec<CriLine<'_>> = chunk
        .lines()
        .filter_map(parse_cri_line)
        .filter(|l| opts.since.is_none_or(|s| l.time >= s))
        .collect();
    let skip = match (tail, opts.tail_lines) {
        (true, Some(n)) => lines.len().saturating_sub(n as usize),
        _ => 0,
    };
    for l in &lines[skip..] {
        if opts.timestamps {
            // Go's RFC3339Nano, as kubelet: trailing zeros trimmed.
            out.extend_from_slice(l.time.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.text.as_bytes());
        if !l.partial {
            out.push(b'\n');
        }
    }
}

/// Streams a CRI-format log file per `opts`. With `follow`, new lines are
/// sent as they are written until `finished()` says the container ended
/// and everything written before was sent.
pub fn cri_log_stream(
    path: PathBuf,
    opts: LogOptions,
    finished: impl Fn() -> bool + Send + 'static,
) -> BoxStream<'static, io::Result<Bytes>> {
    let (mut tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::spawn(async move {
        let mut left = opts.limit_bytes.unwrap_or(u64::MAX);
        let mut pos = 0u64;
        let mut first = true;
        loop {
            let done = finished();
            let mut data = Vec::new();
            match tokio::fs::File::open(&path).await {
                Ok(mut f) => {
                    let read = async {
                        f.seek(io::SeekFrom::Start(pos)).await?;
                        f.read_to_end(&mut data).await
                    };
                    if let Err(e) = read.await {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !first => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            // Only whole lines; a line being written waits for its newline.
            let whole = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            pos += whole as u64;
            let mut out = Vec::new();
            render(
                &String::from_utf8_lossy(&data[..whole]),
                &opts,
                first,
                &mut out,
            );
            first = false;
            if out.len() as u64 > left {
                out.truncate(left as usize);
            }
            left -= out.len() as u64;
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
            if !opts.follow || left == 0 || (done && whole == 0) {
                return;
            }
            if whole == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Box::pin(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_options() {
        let now: jiff::Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let o = parse_log_query(
            &q(&[
                ("follow", "true"),
                ("tailLines", "2"),
                ("sinceSeconds", "60"),
                ("timestamps", "1"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(2));
        assert_eq!(o.since, Some("2025-01-01T00:00:00Z".parse().unwrap()));
        assert!(parse_log_query(&q(&[("tailLines", "-1")]), now).is_err());
        assert!(parse_log_query(&q(&[("limitBytes", "0")]), now).is_err());
        assert!(parse_log_query(&q(&[("sinceTime", "yesterday")]), now).is_err());
        assert!(parse_log_query(
            &q(&[("sinceSeconds", "1"), ("sinceTime", "2025-01-01T00:00:00Z")]),
            now
        )
        .is_err());
    }

    #[test]
    fn cri_lines() {
        let l = parse_cri_line("2025-01-01T00:00:00.5Z stdout F hello world").unwrap();
        assert_eq!(
            (l.stream, l.partial, l.text),
            ("stdout", false, "hello world")
        );
        assert!(
            parse_cri_line("2025-01-01T00:00:00Z stderr P ")
                .unwrap()
                .partial
        );
        assert!(parse_cri_line("garbage").is_none());
    }

    #[tokio::test]
    async fn file_with_tail_since_timestamps_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(
            &path,
            "2025-01-01T00:00:01Z stdout F one\n2025-01-01T00:00:02Z stderr F two\n2025-01-01T00:00:03.250Z stdout P thr\n2025-01-01T00:00:03.25Z stdout F ee\n2025-01-01T00:00:04Z stdout F partial-no-newline",
        )
        .unwrap();
        let all = |opts: LogOptions| {
            let p = path.clone();
            async move {
                let chunks: Vec<_> = cri_log_stream(p, opts, || true).collect().await;
                let v: Vec<u8> = chunks
                    .into_iter()
                    .flat_map(|c| c.unwrap().to_vec())
                    .collect();
                String::from_utf8(v).unwrap()
            }
        };
        assert_eq!(all(LogOptions::default()).await, "one\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(all(tail).await, "ee\n");
        let since = LogOptions {
            since: Some("2025-01-01T00:00:02Z".parse().unwrap()),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            all(since).await,
            "2025-01-01T00:00:02Z two\n2025-01-01T00:00:03.25Z thr2025-01-01T00:00:03.25Z ee\n"
        );
        let limit = LogOptions {
            limit_bytes: Some(5),
            follow: true,
            ..Default::default()
        };
        assert_eq!(all(limit).await, "one\nt");
    }
}

//! Container logs: kubelet's `containerLogs` query options. The CRI log
//! files themselves are read by `rkube_container::read_logs`.

use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

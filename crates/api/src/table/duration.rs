//! Human-readable durations as upstream prints them
//! (`k8s.io/apimachinery/pkg/util/duration`), and the "time since a
//! timestamp" helper the printers use for Age-like cells.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * NANOS_PER_SEC;
const HOUR: i64 = 60 * MINUTE;

/// A Go `time.Duration`: nanoseconds, saturating at the i64 range.
fn go_nanos(d: SignedDuration) -> i64 {
    let n = d.as_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// Upstream's `duration.HumanDuration`: about 2–3 significant figures,
/// e.g. "45s", "119s", "2m", "5m30s", "125m", "3h5m", "20h", "2d3h", "30d",
/// "2y10d", "9y". Slightly negative durations (clock skew under 2s) print
/// "0s"; more negative ones "<invalid>".
pub fn human_duration(d: SignedDuration) -> String {
    let d = go_nanos(d);
    let seconds = d / NANOS_PER_SEC;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// Upstream's `duration.ShortHumanDuration`: one unit only ("59s", "59m",
/// "23h", "364d", "3y").
pub fn short_human_duration(d: SignedDuration) -> String {
    let d = go_nanos(d);
    let seconds = d / NANOS_PER_SEC;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z), which `metav1.Time`
/// treats as unset.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

/// Parses a stored RFC 3339 timestamp (`metav1.Time` / `metav1.MicroTime`).
/// Absent, null, empty, unparsable and Go-zero timestamps read as `None`.
pub(crate) fn parse_time(v: Option<&Value>) -> Option<Timestamp> {
    let ts: Timestamp = v?.as_str()?.parse().ok()?;
    if ts.as_second() == GO_ZERO_TIME_SECS && ts.subsec_nanosecond() == 0 {
        return None;
    }
    Some(ts)
}

/// Upstream's `translateTimestampSince`: "<unknown>" for an unset
/// timestamp, else the human duration since it.
pub(crate) fn translate_timestamp_since(v: Option<&Value>, now: Timestamp) -> String {
    match parse_time(v) {
        Some(ts) => since(ts, now),
        None => "<unknown>".to_string(),
    }
}

/// Human duration from `ts` to `now`.
pub(crate) fn since(ts: Timestamp, now: Timestamp) -> String {
    human_duration(now.duration_since(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(secs: i64) -> String {
        human_duration(SignedDuration::from_secs(secs))
    }

    #[test]
    fn human_duration_boundaries() {
        let cases: &[(i64, &str)] = &[
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (9 * 60 + 59, "9m59s"),
            (10 * 60, "10m"),
            (10 * 60 + 30, "10m"),
            (125 * 60, "125m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (740 * 86400, "2y10d"),
            (8 * 365 * 86400, "8y"),
            (9 * 365 * 86400 + 40 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(h(*secs), *want, "{secs}s");
        }
    }

    #[test]
    fn sub_second_negative_skew_is_zero() {
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(
            human_duration(SignedDuration::from_millis(-2500)),
            "<invalid>"
        );
    }

    #[test]
    fn short_human_duration_units() {
        let s = |secs: i64| short_human_duration(SignedDuration::from_secs(secs));
        assert_eq!(s(59), "59s");
        assert_eq!(s(60), "1m");
        assert_eq!(s(3599), "59m");
        assert_eq!(s(3600), "1h");
        assert_eq!(s(86400 * 364), "364d");
        assert_eq!(s(86400 * 365 * 3), "3y");
        assert_eq!(s(-5), "<invalid>");
    }

    #[test]
    fn timestamps_unset_or_odd_are_unknown() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let t = |v: Value| translate_timestamp_since(Some(&v), now);
        assert_eq!(translate_timestamp_since(None, now), "<unknown>");
        assert_eq!(t(Value::Null), "<unknown>");
        assert_eq!(t(Value::from("")), "<unknown>");
        assert_eq!(t(Value::from(42)), "<unknown>");
        assert_eq!(t(Value::from("yesterday")), "<unknown>");
        assert_eq!(t(Value::from("0001-01-01T00:00:00Z")), "<unknown>");
        assert_eq!(t(Value::from("2024-05-01T11:55:00Z")), "5m");
        assert_eq!(t(Value::from("2024-05-01T11:59:59.500000Z")), "0s");
        assert_eq!(t(Value::from("2024-05-01T13:55:00+02:00")), "5m");
    }
}

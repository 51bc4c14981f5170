//! CronJob schedules with the grammar, error messages and matching rules of
//! `robfig/cron/v3`'s standard parser (five fields or an `@descriptor`),
//! which upstream uses: a validator for the API server and [`Schedule`],
//! the evaluator the CronJob controller asks for the next run.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan};

/// Set in a field's mask when it was written `*` or `?` (robfig's
/// `starBit`): day-of-month and day-of-week then combine with AND, else OR.
const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Validates a schedule; `Err` carries robfig/cron's message.
pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
    parse(spec).map(|_| ())
}

/// What a schedule fires on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Bit masks of minute, hour, day of month, month, day of week.
    Fields([u64; 5]),
    /// `@every <duration>`, in whole seconds (at least one).
    Every(i64),
}

/// A parsed CronJob schedule, with the time zone it is evaluated in.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

impl Schedule {
    /// Parses `spec` (with an optional `TZ=`/`CRON_TZ=` prefix); `tz` is
    /// the CronJob's `spec.timeZone`, used when the spec names none. Times
    /// are UTC when neither does.
    pub fn parse(spec: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let (kind, spec_tz) = parse(spec)?;
        let zone = match spec_tz.or(tz) {
            None => TimeZone::UTC,
            Some(name) => jiff::tz::db()
                .get(name)
                .map_err(|_| format!("provided bad location {name}: unknown time zone"))?,
        };
        Ok(Schedule { kind, tz: zone })
    }

    /// The time zone the schedule is evaluated in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first time the schedule fires strictly after `after`, if any
    /// within five years (robfig's search horizon).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self.kind {
            Kind::Every(secs) => {
                // robfig rounds the start down to the second.
                Timestamp::from_second(after.as_second().checked_add(secs)?).ok()
            }
            Kind::Fields(masks) => self.next_matching(&masks, after),
        }
    }

    fn next_matching(&self, m: &[u64; 5], after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.tz.clone()).datetime();
        let mut dt: DateTime = start
            .date()
            .at(start.hour(), start.minute(), 0, 0)
            .checked_add(1.minute())
            .ok()?;
        let limit = start.year() + 5;
        let has = |mask: u64, v: i64| (0..63).contains(&v) && mask & (1 << v) != 0;
        while dt.year() <= limit {
            if !has(m[3], i64::from(dt.month())) {
                dt = dt
                    .date()
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .at(0, 0, 0, 0);
                continue;
            }
            let dom = has(m[2], i64::from(dt.day()));
            let dow = has(m[4], i64::from(dt.weekday().to_sunday_zero_offset()));
            let day_ok = if m[2] & STAR != 0 || m[4] & STAR != 0 {
                dom && dow
            } else {
                dom || dow
            };
            if !day_ok {
                dt = dt.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if !has(m[1], i64::from(dt.hour())) {
                dt = dt
                    .date()
                    .at(dt.hour(), 0, 0, 0)
                    .checked_add(Span::new().hours(1))
                    .ok()?;
                continue;
            }
            if has(m[0], i64::from(dt.minute())) {
                // A time skipped by a DST change does not exist; a repeated
                // one fires the first time.
                let amb = self.tz.to_ambiguous_timestamp(dt);
                if !matches!(amb.offset(), jiff::tz::AmbiguousOffset::Gap { .. }) {
                    if let Ok(ts) = amb.earlier() {
                        if ts > after {
                            return Some(ts);
                        }
                    }
                }
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }
}

/// Parses a schedule into what it fires on and the time zone it names.
fn parse(spec: &str) -> Result<(Kind, Option<&str>), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut tz = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(i) = spec.find(' ') else {
            return Err(format!(
                "provided bad location {}: unknown time zone",
                &spec[spec.find('=').map_or(0, |x| x + 1)..]
            ));
        };
        tz = Some(&spec[spec.find('=').map_or(0, |x| x + 1)..i]);
        spec = spec[i..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec).map(|k| (k, tz));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let mut masks = [0u64; 5];
    for (i, (field, bounds)) in fields
        .iter()
        .zip([&MINUTES, &HOURS, &DOM, &MONTHS, &DOW])
        .enumerate()
    {
        for expr in field.split(',') {
            masks[i] |= get_range(expr, bounds)?;
        }
    }
    Ok((Kind::Fields(masks), tz))
}

/// The mask of every value from `lo` to `hi`, plus the star bit.
fn all(lo: u32, hi: u32) -> u64 {
    (lo..=hi).fold(STAR, |m, v| m | (1 << v))
}

fn bit(v: u32) -> u64 {
    1 << v
}

fn parse_descriptor(spec: &str) -> Result<Kind, String> {
    // Minute, hour, day of month, month, day of week.
    let fields =
        |m: u64, h: u64, dom: u64, mon: u64, dow: u64| Ok(Kind::Fields([m, h, dom, mon, dow]));
    match spec {
        "@yearly" | "@annually" => fields(bit(0), bit(0), bit(1), bit(1), all(0, 6)),
        "@monthly" => fields(bit(0), bit(0), bit(1), all(1, 12), all(0, 6)),
        "@weekly" => fields(bit(0), bit(0), all(1, 31), all(1, 12), bit(0)),
        "@daily" | "@midnight" => fields(bit(0), bit(0), all(1, 31), all(1, 12), all(0, 6)),
        "@hourly" => fields(bit(0), all(0, 23), all(1, 31), all(1, 12), all(0, 6)),
        _ => match spec.strip_prefix("@every ") {
            Some(d) if is_go_duration(d) => Ok(Kind::Every(go_duration_seconds(d).max(1))),
            Some(d) => Err(format!(
                "failed to parse duration {spec}: time: invalid duration \"{d}\""
            )),
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
    }
}

/// The whole seconds of a duration [`is_go_duration`] accepted (robfig
/// rounds `@every` below a second up to one).
fn go_duration_seconds(s: &str) -> i64 {
    let neg = s.starts_with('-');
    let mut rest = s.trim_start_matches(['-', '+']);
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let value: f64 = rest[..n].parse().unwrap_or(0.0);
        rest = &rest[n..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len())
            .copied()
            .unwrap_or("s");
        rest = &rest[unit.len()..];
        total += value
            * match unit {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "ns" => 1e-9,
                _ => 1e-6,
            };
    }
    if neg {
        0
    } else {
        total as i64
    }
}

/// Go's `time.ParseDuration` grammar: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if num_len == 0 {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

/// The mask of one comma-separated element of a field.
fn get_range(expr: &str, r: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end);
    let mut extra = 0;
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = r.min;
        end = r.max;
        extra = STAR;
    } else {
        start = parse_int_or_name(low_and_high[0], r)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], r)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            if low_and_high.len() == 1 {
                end = r.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok((start..=end)
        .step_by(step as usize)
        .fold(extra, |m, v| m | (1 << v)))
}

fn parse_int_or_name(expr: &str, r: &Bounds) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    if let Some((_, n)) = r.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*n);
    }
    must_parse_int(expr)
}

fn must_parse_int(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| format!("end of range ({n}) above maximum: {expr}"))
}

#[cfg(test)]
mod tests {
    use super::{parse_standard, Schedule};
    use jiff::Timestamp;

    fn next(spec: &str, tz: Option<&str>, after: &str) -> String {
        let s = Schedule::parse(spec, tz).unwrap();
        let t: Timestamp = after.parse().unwrap();
        s.next_after(t).map(|t| t.to_string()).unwrap_or_default()
    }

    #[test]
    fn next_times_follow_robfig_cron() {
        assert_eq!(
            next("*/1 * * * *", None, "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", None, "2024-01-01T00:15:00Z"),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(
            next("0 3 * * *", None, "2024-01-01T04:00:00Z"),
            "2024-01-02T03:00:00Z"
        );
        assert_eq!(
            next("@hourly", None, "2024-01-01T04:00:00Z"),
            "2024-01-01T05:00:00Z"
        );
        assert_eq!(
            next("@monthly", None, "2024-01-15T00:00:00Z"),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", None, "2024-01-15T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        // 2024-01-01 is a Monday; @weekly means Sundays.
        assert_eq!(
            next("@weekly", None, "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00Z"
        );
        // Day of month OR day of week when both are restricted...
        assert_eq!(
            next("0 0 15 * 1", None, "2024-01-02T00:00:00Z"),
            "2024-01-08T00:00:00Z"
        );
        // ...AND when either is a star.
        assert_eq!(
            next("0 0 * * 1", None, "2024-01-02T00:00:00Z"),
            "2024-01-08T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", None, "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("30 9 * jan-mar mon-fri", None, "2024-03-29T10:00:00Z"),
            "2025-01-01T09:30:00Z"
        );
        assert_eq!(
            next("@every 90s", None, "2024-01-01T00:00:00Z"),
            "2024-01-01T00:01:30Z"
        );
        // Time zones: 09:00 in New York is 14:00 UTC in winter.
        assert_eq!(
            next(
                "0 9 * * *",
                Some("America/New_York"),
                "2024-01-01T00:00:00Z"
            ),
            "2024-01-01T14:00:00Z"
        );
        assert_eq!(
            next("CRON_TZ=Asia/Tokyo 0 9 * * *", None, "2024-01-01T00:00:00Z"),
            "2024-01-02T00:00:00Z"
        );
        // 02:30 does not exist on the spring-forward day.
        assert_eq!(
            next(
                "30 2 * * *",
                Some("America/New_York"),
                "2024-03-10T00:00:00Z"
            ),
            "2024-03-11T06:30:00Z"
        );
        assert!(Schedule::parse("0 * * * *", Some("Mars/Base")).is_err());
    }

    #[test]
    fn accepts_standard_schedules() {
        for s in [
            "*/5 * * * *",
            "0 0 * * 0",
            "15 10 1-15/2 JAN-mar mon,fri",
            "@hourly",
            "@every 1h30m",
            "TZ=UTC 0 * * * *",
            "0 0 ? * *",
        ] {
            assert_eq!(parse_standard(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn errors_match_robfig_cron() {
        assert_eq!(
            parse_standard("* * *"),
            Err("expected exactly 5 fields, found 3: [* * *]".into())
        );
        assert_eq!(
            parse_standard("61 * * * *"),
            Err("end of range (61) above maximum (59): 61".into())
        );
        assert_eq!(
            parse_standard("x * * * *"),
            Err("failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_standard("5-2 * * * *"),
            Err("beginning of range (5) beyond end of range (2): 5-2".into())
        );
        assert_eq!(
            parse_standard("* * 0 * *"),
            Err("beginning of range (0) below minimum (1): 0".into())
        );
        assert_eq!(
            parse_standard("@fortnightly"),
            Err("unrecognized descriptor: @fortnightly".into())
        );
        assert_eq!(parse_standard(""), Err("empty spec string".into()));
        assert_eq!(
            parse_standard("*/0 * * * *"),
            Err("step of range should be a positive number: */0".into())
        );
    }
}

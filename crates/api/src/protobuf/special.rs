//! The apimachinery messages whose JSON form is not an object of their
//! fields: `resource.Quantity`, `intstr.IntOrString`, `meta.v1.Time`,
//! `MicroTime`, `Duration`, `FieldsV1` and `runtime.RawExtension`.

use serde_json::Value;

use super::wire::{malformed, Reader};
use super::ProtobufError;

/// Seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range Go's
/// JSON encoding of a time accepts.
const MIN_SECONDS: i64 = -62_167_219_200;
const MAX_SECONDS: i64 = 253_402_300_799;
/// Seconds of Go's zero time, 0001-01-01T00:00:00Z (JSON `null`).
const GO_ZERO_SECONDS: i64 = -62_135_596_800;

/// `Quantity` {1: string} → the string ("0" when absent, as Go's zero).
pub(crate) fn quantity(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut r = Reader::new(buf);
    let mut s = "0";
    while let Some((n, v)) = r.field()? {
        if n == 1 {
            s = v.str()?;
        }
    }
    Ok(Value::String(s.to_string()))
}

/// `IntOrString` {1: type (0 int, 1 string), 2: intVal, 3: strVal}.
pub(crate) fn int_or_string(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut r = Reader::new(buf);
    let (mut ty, mut int_val, mut str_val) = (0u64, 0i32, "");
    while let Some((n, v)) = r.field()? {
        match n {
            1 => ty = v.varint()?,
            // int32 on the wire: sign-extended, truncation intended.
            2 => int_val = v.varint()? as i64 as i32,
            3 => str_val = v.str()?,
            _ => {}
        }
    }
    match ty {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val.to_string())),
        t => Err(malformed(format!(
            "IntOrString type {t} is neither 0 (int) nor 1 (string)"
        ))),
    }
}

/// {1: seconds int64, 2: nanos int32} of `Time` and `MicroTime`.
fn seconds_nanos(buf: &[u8]) -> Result<(i64, i32), ProtobufError> {
    let mut r = Reader::new(buf);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while let Some((n, v)) = r.field()? {
        match n {
            1 => seconds = v.varint()? as i64,
            2 => nanos = v.varint()? as i64 as i32,
            _ => {}
        }
    }
    Ok((seconds, nanos))
}

fn timestamp(seconds: i64, nanos: i32) -> Result<jiff::Timestamp, ProtobufError> {
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let ts = jiff::Timestamp::from_nanosecond(total)
        .map_err(|_| malformed(format!("time {seconds}s {nanos}ns out of range")))?;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.as_second()) {
        return Err(malformed(format!(
            "time {seconds}s is outside years 0-9999"
        )));
    }
    Ok(ts)
}

/// `Time` → "2006-01-02T15:04:05Z" (UTC; upstream drops the nanoseconds).
/// `None` for an empty message or Go's zero time (JSON `null`).
pub(crate) fn time(buf: &[u8]) -> Result<Option<Value>, ProtobufError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (seconds, _) = seconds_nanos(buf)?;
    if seconds == GO_ZERO_SECONDS {
        return Ok(None);
    }
    let ts = timestamp(seconds, 0)?;
    Ok(Some(Value::String(
        ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )))
}

/// `MicroTime` → "2006-01-02T15:04:05.000000Z" (UTC, microseconds).
pub(crate) fn micro_time(buf: &[u8]) -> Result<Option<Value>, ProtobufError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (seconds, nanos) = seconds_nanos(buf)?;
    if seconds == GO_ZERO_SECONDS && nanos == 0 {
        return Ok(None);
    }
    let ts = timestamp(seconds, nanos)?;
    Ok(Some(Value::String(
        ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    )))
}

/// `Duration` {1: nanoseconds int64} → Go's `time.Duration.String()`.
pub(crate) fn duration(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut r = Reader::new(buf);
    let mut nanos = 0i64;
    while let Some((n, v)) = r.field()? {
        if n == 1 {
            nanos = v.varint()? as i64;
        }
    }
    Ok(Value::String(go_duration(nanos)))
}

/// Appends the fraction `v / 10^prec` without trailing zeros (and without the
/// dot when it is zero); returns `v / 10^prec`. Go's `fmtFrac`.
fn push_frac(out: &mut String, v: u64, prec: u32) -> u64 {
    let scale = 10u64.pow(prec);
    let frac = v % scale;
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = prec as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    v / scale
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "2µs", "0s".
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut u = nanos.unsigned_abs();
    // Built back to front, like Go's buffer, then reversed at the end.
    let mut parts: Vec<String> = Vec::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let mut frac = String::new();
        let whole = push_frac(&mut frac, u, prec);
        parts.push(format!("{whole}{frac}{unit}"));
    } else {
        let mut frac = String::new();
        u = push_frac(&mut frac, u, 9);
        parts.push(format!("{}{frac}s", u % 60));
        u /= 60;
        if u > 0 {
            parts.push(format!("{}m", u % 60));
            u /= 60;
            if u > 0 {
                parts.push(format!("{u}h"));
            }
        }
    }
    let mut s = String::from(if nanos < 0 { "-" } else { "" });
    for p in parts.iter().rev() {
        s.push_str(p);
    }
    s
}

/// `FieldsV1` / `RawExtension` {1: raw JSON bytes} → the JSON value;
/// `None` when there are no bytes.
pub(crate) fn raw_json(buf: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let mut r = Reader::new(buf);
    let mut raw: &[u8] = &[];
    while let Some((n, v)) = r.field()? {
        if n == 1 {
            raw = v.bytes()?;
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| malformed(format!("embedded raw JSON is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn sn(seconds: i64, nanos: i32) -> Vec<u8> {
        let mut b = vec![0x08];
        varint(seconds as u64, &mut b);
        b.push(0x10);
        varint(nanos as i64 as u64, &mut b);
        b
    }

    #[test]
    fn times() {
        assert_eq!(time(&[]).unwrap(), None);
        assert_eq!(time(&sn(GO_ZERO_SECONDS, 0)).unwrap(), None);
        assert_eq!(
            time(&sn(1_700_000_000, 999_999_999)).unwrap(),
            Some(json!("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            time(&sn(0, 0)).unwrap(),
            Some(json!("1970-01-01T00:00:00Z"))
        );
        assert_eq!(
            time(&sn(-1, 0)).unwrap(),
            Some(json!("1969-12-31T23:59:59Z"))
        );
        assert_eq!(
            micro_time(&sn(1_700_000_000, 123_456_789)).unwrap(),
            Some(json!("2023-11-14T22:13:20.123456Z"))
        );
        assert_eq!(
            micro_time(&sn(1_700_000_000, 0)).unwrap(),
            Some(json!("2023-11-14T22:13:20.000000Z"))
        );
        assert!(time(&sn(MAX_SECONDS + 1, 0)).is_err());
        assert!(time(&sn(i64::MIN, 0)).is_err());
        assert!(micro_time(&sn(i64::MAX, i32::MAX)).is_err());
        assert!(time(&[0x08]).is_err());
    }

    #[test]
    fn int_or_strings() {
        assert_eq!(int_or_string(&[]).unwrap(), json!(0));
        let mut b = vec![0x08, 0x00, 0x10];
        varint(-5i64 as u64, &mut b);
        assert_eq!(int_or_string(&b).unwrap(), json!(-5));
        let b = [0x08, 0x01, 0x1a, 0x03, b'2', b'5', b'%'];
        assert_eq!(int_or_string(&b).unwrap(), json!("25%"));
        assert!(int_or_string(&[0x08, 0x02]).is_err());
        assert!(int_or_string(&[0x1a, 0x01, 0xff, 0x08, 0x01]).is_err());
    }

    #[test]
    fn quantities_and_raw() {
        assert_eq!(quantity(&[]).unwrap(), json!("0"));
        assert_eq!(
            quantity(&[0x0a, 0x03, b'1', b'0', b'0']).unwrap(),
            json!("100")
        );
        assert!(quantity(&[0x08, 0x01]).is_err());
        let raw = br#"{"f:data":{}}"#;
        let mut b = vec![0x0a, raw.len() as u8];
        b.extend_from_slice(raw);
        assert_eq!(raw_json(&b).unwrap(), Some(json!({"f:data": {}})));
        assert_eq!(raw_json(&[]).unwrap(), None);
        assert!(raw_json(&[0x0a, 0x01, b'{']).is_err());
    }

    #[test]
    fn durations_format_like_go() {
        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanos), want);
        }
        assert_eq!(duration(&sn(60_000_000_000, 0)[..]).unwrap(), json!("1m0s"));
    }
}

//! Resource quantities (`resource.Quantity`): upstream's grammar (signed
//! decimal, binary suffixes Ki…Ei, SI suffixes n…E, exponents e/E),
//! upstream's rounding (up to 1n) and cap (2^63-1) on the exact path,
//! upstream's printed form, scaled values rounded away from zero, and a
//! total order. Exact integer arithmetic only.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde_json::Value;

/// How a quantity prints (upstream's `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `5Gi`
    BinarySI,
    /// `5G`, `500m`
    DecimalSI,
}

/// Why a string is not a quantity; messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A quantity: the exact value `unscaled × 10^scale` (normalised: no
/// trailing zeros in `unscaled`), its format, and the input text when
/// upstream keeps it for printing. Equality, hashing and ordering are by
/// value only.
#[derive(Debug, Clone)]
pub struct Quantity {
    unscaled: i128,
    scale: i64,
    format: Format,
    original: Option<String>,
}

/// 2^63-1 in nano units: the largest magnitude the inexact path keeps.
const CAP_NANOS: u128 = (i64::MAX as u128) * 1_000_000_000;

const DEC_SUFFIXES: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BIN_SUFFIXES: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// The pieces of `parseQuantityString`.
struct Pieces<'a> {
    positive: bool,
    /// The numeric text (sign, digits, point) contains a digit.
    has_digit: bool,
    /// Integer digits without leading zeros ("0" when none).
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn split(s: &str) -> Result<Pieces<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    let whole = |num, denom, value_end: usize, suffix| Pieces {
        positive,
        has_digit: b[..value_end].iter().any(u8::is_ascii_digit),
        num,
        denom,
        suffix,
    };
    while b.get(pos) == Some(&b'0') {
        pos += 1;
    }
    if pos >= end {
        // Only a sign and zeros: upstream reads this as 0.
        return Ok(Pieces {
            positive,
            has_digit: true,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while b.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    if pos >= end {
        return Ok(whole(num, "", end, ""));
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        denom = &s[start..pos];
        if pos >= end {
            return Ok(whole(num, denom, end, ""));
        }
    }
    let value_end = pos;
    let suffix_start = pos;
    while b.get(pos).is_some_and(|c| b"eEinumkKMGTP".contains(c)) {
        pos += 1;
    }
    if matches!(b.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    while b.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(whole(num, denom, value_end, &s[suffix_start..]))
}

/// (base, exponent, format) of a suffix, as upstream's `interpret`.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    if let Some((_, e)) = DEC_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some((10, *e, Format::DecimalSI));
    }
    if let Some(i) = BIN_SUFFIXES.iter().skip(1).position(|s| *s == suffix) {
        return Some((2, 10 * (i as i32 + 1), Format::BinarySI));
    }
    let mut chars = suffix.chars();
    if suffix.len() > 1 && matches!(chars.next(), Some('e' | 'E')) {
        let parsed: i64 = chars.as_str().parse().ok()?;
        // Upstream narrows the parsed int64 to int32.
        return Some((10, parsed as i32, Format::DecimalExponent));
    }
    None
}

/// Doubles a little-endian decimal digit vector in place.
fn double(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut() {
        let v = *d * 2 + carry;
        *d = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.push(carry);
    }
}

/// `digits × 10^scale` rounded up to a whole number of nanos and capped at
/// 2^63-1 (upstream's inexact path), as a nano count.
fn round_to_nanos(digits: &str, scale: i64) -> u128 {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return 0;
    }
    let len = digits.len() as i64;
    if len.saturating_add(scale) > 19 {
        return CAP_NANOS;
    }
    let t = scale + 9;
    let nanos = if t >= 0 {
        // len + t <= 28 digits: fits.
        let base: u128 = digits.parse().unwrap_or(u128::MAX);
        base.saturating_mul(10u128.pow(t as u32))
    } else {
        let keep = (len + t).max(0) as usize;
        let (head, tail) = digits.split_at(keep.min(digits.len()));
        let base: u128 = if head.is_empty() {
            0
        } else {
            head.parse().unwrap_or(u128::MAX)
        };
        base.saturating_add(u128::from(tail.bytes().any(|c| c != b'0')))
    };
    nanos.min(CAP_NANOS)
}

fn strip_zeros(mut unscaled: i128, mut scale: i64) -> (i128, i64) {
    if unscaled == 0 {
        return (0, 0);
    }
    while unscaled % 10 == 0 {
        unscaled /= 10;
        scale = scale.saturating_add(1);
    }
    (unscaled, scale)
}

fn digit_count(v: u128) -> i64 {
    if v == 0 {
        0
    } else {
        v.ilog10() as i64 + 1
    }
}

impl Quantity {
    fn new(unscaled: i128, scale: i64, format: Format, original: Option<String>) -> Self {
        let (unscaled, scale) = strip_zeros(unscaled, scale);
        Quantity {
            unscaled,
            scale,
            format,
            original,
        }
    }

    /// Parses upstream's quantity grammar (`resource.ParseQuantity`).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity::new(
                0,
                0,
                Format::DecimalSI,
                Some("0".to_string()),
            ));
        }
        let p = split(s)?;
        let (base, exponent, format) = interpret(p.suffix).ok_or(QuantityError::Suffix)?;
        let digits = p.num.len() + p.denom.len();

        // Upstream's exact int64 path.
        let (mut scale, mantissa, precision): (i64, i64, i64) = match format {
            Format::BinarySI if exponent >= 0 && p.denom.is_empty() => (
                0,
                1i64 << exponent.min(62),
                14 - p.num.len() as i64 - i64::from(exponent) * 3 / 10,
            ),
            Format::BinarySI => (0, 1, -1),
            _ => (i64::from(exponent), 1, 18 - digits as i64),
        };
        if precision >= 0 {
            scale -= p.denom.len() as i64;
            if scale >= -9 {
                let shifted = format!("{}{}", p.num, p.denom);
                let value: i64 = shifted.parse().map_err(|_| QuantityError::Numeric)?;
                if let Some(mut result) = value.checked_mul(mantissa) {
                    if !p.positive {
                        result = -result;
                    }
                    let keep = match format {
                        Format::BinarySI => exponent % 10 == 0 && value & 0x07 != 0,
                        _ => {
                            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
                        }
                    };
                    return Ok(Quantity::new(
                        i128::from(result),
                        scale,
                        format,
                        keep.then(|| s.to_string()),
                    ));
                }
            }
        }

        // Upstream's inexact path: exact decimal, rounded up to 1n, capped.
        if !p.has_digit {
            return Err(QuantityError::Numeric);
        }
        let all = format!("{}{}", p.num, p.denom);
        let nanos = if base == 10 {
            round_to_nanos(&all, i64::from(exponent) - p.denom.len() as i64)
        } else if (all.trim_start_matches('0').len() as i64) - (p.denom.len() as i64) > 19 {
            CAP_NANOS
        } else {
            let mut le: Vec<u8> = all.bytes().rev().map(|c| c - b'0').collect();
            for _ in 0..exponent.max(0) {
                double(&mut le);
            }
            let product: String = le.iter().rev().map(|d| char::from(b'0' + d)).collect();
            round_to_nanos(&product, -(p.denom.len() as i64))
        };
        let format = if format == Format::BinarySI && nanos > 0 && nanos < 1_000_000_000 {
            Format::DecimalSI
        } else {
            format
        };
        let magnitude = i128::try_from(nanos).unwrap_or(i128::MAX);
        let signed = if p.positive { magnitude } else { -magnitude };
        Ok(Quantity::new(signed, -9, format, None))
    }

    /// Decodes a quantity from its JSON form: a string (trimmed, as
    /// upstream's `UnmarshalJSON`), a number, or `null` (zero).
    pub fn from_json(v: &Value) -> Result<Quantity, QuantityError> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            Value::Null => Ok(Quantity::new(0, 0, Format::DecimalSI, None)),
            _ => Err(QuantityError::FormatWrong),
        }
    }

    /// `value × 10^3` millis, as a DecimalSI quantity.
    pub fn from_milli(millis: i64) -> Quantity {
        Quantity::new(i128::from(millis), -3, Format::DecimalSI, None)
    }

    /// An integer quantity in the given format.
    pub fn from_int(value: i64, format: Format) -> Quantity {
        Quantity::new(i128::from(value), 0, format, None)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.unscaled == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        self.unscaled.signum() as i32
    }

    /// The value in units of 10^`target` (e.g. -3 for millis), rounded
    /// away from zero; `None` when it does not fit an i128.
    fn scaled(&self, target: i64) -> Option<i128> {
        if self.unscaled == 0 {
            return Some(0);
        }
        let d = self.scale.checked_sub(target)?;
        if d >= 0 {
            let p = 10i128.checked_pow(u32::try_from(d).ok()?)?;
            self.unscaled.checked_mul(p)
        } else {
            let away = self.unscaled.signum();
            let Some(p) = u32::try_from(-d).ok().and_then(|e| 10i128.checked_pow(e)) else {
                return Some(away);
            };
            let (q, r) = (self.unscaled / p, self.unscaled % p);
            Some(if r == 0 { q } else { q + away })
        }
    }

    fn saturate(&self, v: Option<i128>) -> i128 {
        v.unwrap_or(if self.unscaled < 0 {
            i128::MIN
        } else {
            i128::MAX
        })
    }

    /// The value in whole units, rounded away from zero (upstream's
    /// `Value`); saturates at the i128 range.
    pub fn value(&self) -> i128 {
        self.saturate(self.scaled(0))
    }

    /// The value in thousandths, rounded away from zero (upstream's
    /// `MilliValue`); saturates at the i128 range.
    pub fn milli_value(&self) -> i128 {
        self.saturate(self.scaled(-3))
    }

    /// `value()` when it fits, else `None`.
    pub fn try_value(&self) -> Option<i128> {
        self.scaled(0)
    }

    /// `milli_value()` when it fits, else `None`.
    pub fn try_milli_value(&self) -> Option<i128> {
        self.scaled(-3)
    }

    /// Upstream's canonical form (`CanonicalizeBytes`), ignoring any kept
    /// input text: "1000m" → "1", "0.5" → "500m", "1.5Gi" → "1536Mi".
    pub fn canonical(&self) -> String {
        if self.unscaled == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self.scaled(0).is_some_and(|v| v > -1024 && v < 1024);
            if small || self.scale < 0 {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            if let Some(mut v) = self.scaled(0) {
                let mut times = 0;
                while times < BIN_SUFFIXES.len() - 1 && v.unsigned_abs() >= 1024 && v % 1024 == 0 {
                    v /= 1024;
                    times += 1;
                }
                return format!("{v}{}", BIN_SUFFIXES[times]);
            }
            format = Format::DecimalSI;
        }
        // Lower the exponent to a multiple of three.
        let r = self.scale.rem_euclid(3);
        let exponent = self.scale - r;
        let mut number = self.unscaled.to_string();
        number.extend(std::iter::repeat_n('0', r as usize));
        let si = DEC_SUFFIXES.iter().find(|(_, e)| i64::from(*e) == exponent);
        match (format, si) {
            (Format::DecimalSI, Some((suffix, _))) => format!("{number}{suffix}"),
            (_, _) if exponent == 0 => number,
            _ => format!("{number}e{exponent}"),
        }
    }

    /// Compares magnitudes of two non-zero values.
    fn cmp_abs(a: (u128, i64), b: (u128, i64)) -> Ordering {
        let (oa, ob) = (
            digit_count(a.0).saturating_add(a.1),
            digit_count(b.0).saturating_add(b.1),
        );
        if oa != ob {
            return oa.cmp(&ob);
        }
        // Same order of magnitude: align the one with the larger scale.
        let (big, small, flip) = if a.1 >= b.1 {
            (a, b, false)
        } else {
            (b, a, true)
        };
        let shift = u32::try_from(big.1.saturating_sub(small.1)).unwrap_or(u32::MAX);
        let ord = match 10u128.checked_pow(shift).and_then(|p| big.0.checked_mul(p)) {
            Some(aligned) => aligned.cmp(&small.0),
            None => Ordering::Greater,
        };
        if flip {
            ord.reverse()
        } else {
            ord
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.unscaled == other.unscaled && self.scale == other.scale
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.unscaled.hash(state);
        self.scale.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (sa, sb) = (self.unscaled.signum(), other.unscaled.signum());
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let ord = Quantity::cmp_abs(
            (self.unscaled.unsigned_abs(), self.scale),
            (other.unscaled.unsigned_abs(), other.scale),
        );
        if sa < 0 {
            ord.reverse()
        } else {
            ord
        }
    }
}

/// Upstream's `String()`: the input text when upstream keeps it (already
/// canonical-looking, e.g. "100m", "10Mi", "1e3"), else `canonical()`.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.original {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical()),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests;

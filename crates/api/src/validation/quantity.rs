//! A minimal resource quantity for validation: parse (upstream's grammar),
//! compare, and print in upstream's canonical form (`1500m`, `2Gi`, `1k`),
//! which is what upstream's messages show (`must be less than or equal to
//! cpu limit of 500m`). Values are exact decimals `mantissa * 10^exp`.

use std::cmp::Ordering;

/// How the quantity was written, which decides its canonical suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    /// Signed mantissa.
    mantissa: i128,
    /// Power of ten.
    exp: i32,
    format: Format,
}

/// Upstream's message for a string that is not a quantity.
pub(crate) const QUANTITY_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const MAX_DIGITS: usize = 30;

impl Quantity {
    pub(crate) fn parse(s: &str) -> Option<Quantity> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = b.first() {
            if c == b'+' || c == b'-' {
                negative = c == b'-';
                i = 1;
            }
        }
        let num_start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let number = &s[num_start..i];
        let suffix = &s[i..];
        if number.is_empty()
            || number.matches('.').count() > 1
            || !number.bytes().any(|c| c.is_ascii_digit())
        {
            return None;
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let mut digits: String = format!("{int_part}{frac_part}");
        let mut exp: i32 = -(frac_part.len() as i32);
        // Keep the mantissa within i128: drop excess low-order digits (they
        // are far below any precision upstream keeps).
        let trimmed = digits.trim_start_matches('0').to_string();
        digits = if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed
        };
        if digits.len() > MAX_DIGITS {
            let extra = digits.len() - MAX_DIGITS;
            digits.truncate(MAX_DIGITS);
            exp += extra as i32;
        }
        let mut mantissa: i128 = digits.parse().ok()?;
        let format;
        match suffix {
            "" => format = Format::DecimalSi,
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                format = Format::BinarySi;
                let power = match suffix {
                    "Ki" => 1,
                    "Mi" => 2,
                    "Gi" => 3,
                    "Ti" => 4,
                    "Pi" => 5,
                    _ => 6,
                };
                for _ in 0..power {
                    mantissa = mantissa.checked_mul(1024)?;
                }
            }
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                format = Format::DecimalSi;
                exp += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
            }
            _ => {
                let rest = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))?;
                let digits = rest
                    .strip_prefix('+')
                    .or_else(|| rest.strip_prefix('-'))
                    .unwrap_or(rest);
                if digits.is_empty()
                    || digits.len() > 6
                    || !digits.bytes().all(|c| c.is_ascii_digit())
                {
                    return None;
                }
                format = Format::DecimalExponent;
                exp += rest.parse::<i32>().ok()?;
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        Some(
            Quantity {
                mantissa,
                exp,
                format,
            }
            .normalized(),
        )
    }

    /// Strips trailing zeros of the mantissa into the exponent.
    fn normalized(mut self) -> Quantity {
        if self.mantissa == 0 {
            self.exp = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
        self
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// True when the value has no fractional part.
    pub(crate) fn is_integer(&self) -> bool {
        self.exp >= 0 || self.mantissa == 0
    }

    /// The value as f64 (for comparisons that would overflow exact math).
    fn approx(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp)
    }

    pub(crate) fn cmp(&self, other: &Quantity) -> Ordering {
        let min = self.exp.min(other.exp);
        let scale = |q: &Quantity| -> Option<i128> {
            let mut m = q.mantissa;
            for _ in 0..(q.exp - min) {
                m = m.checked_mul(10)?;
            }
            Some(m)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self
                .approx()
                .partial_cmp(&other.approx())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// Upstream's canonical `String()`.
    pub(crate) fn canonical(&self) -> String {
        let mut q = *self;
        if q.mantissa == 0 {
            return "0".to_string();
        }
        // Upstream keeps at most nano precision, rounding up.
        if q.exp < -9 {
            let mut div: i128 = 1;
            for _ in 0..(-9 - q.exp) {
                div = div.saturating_mul(10);
            }
            let (m, r) = (q.mantissa / div, q.mantissa % div);
            q.mantissa = if r > 0 { m + 1 } else { m };
            q.exp = -9;
            q = q.normalized();
        }
        let format = match q.format {
            Format::BinarySi
                if q.exp < 0
                    || q.cmp(&Quantity::int(1024)).is_lt()
                        && q.cmp(&Quantity::int(-1024)).is_gt() =>
            {
                Format::DecimalSi
            }
            f => f,
        };
        match format {
            Format::BinarySi => {
                let Some(mut n) = q.integer_value() else {
                    return q.decimal(false);
                };
                let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
                let mut idx = 0;
                while idx < 6 && n != 0 && n % 1024 == 0 {
                    n /= 1024;
                    idx += 1;
                }
                format!("{n}{}", suffixes[idx])
            }
            Format::DecimalExponent => q.decimal(true),
            Format::DecimalSi => q.decimal(false),
        }
    }

    fn int(n: i64) -> Quantity {
        Quantity {
            mantissa: n as i128,
            exp: 0,
            format: Format::DecimalSi,
        }
        .normalized()
    }

    fn integer_value(&self) -> Option<i128> {
        let mut m = self.mantissa;
        for _ in 0..self.exp.max(0) {
            m = m.checked_mul(10)?;
        }
        Some(m)
    }

    /// Mantissa with the largest multiple-of-three exponent that keeps it
    /// an integer (clamped to the SI range), plus the suffix.
    fn decimal(&self, exponent_form: bool) -> String {
        let mut e3 = self.exp.div_euclid(3) * 3;
        e3 = e3.clamp(-9, 18);
        let mut m = self.mantissa;
        for _ in 0..(self.exp - e3).max(0) {
            match m.checked_mul(10) {
                Some(x) => m = x,
                None => return format!("{}e{}", self.mantissa, self.exp),
            }
        }
        let suffix = if exponent_form {
            if e3 == 0 {
                String::new()
            } else {
                format!("e{e3}")
            }
        } else {
            match e3 {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string()
        };
        format!("{m}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s)
            .map(|q| q.canonical())
            .unwrap_or_else(|| "ERR".into())
    }

    #[test]
    fn parses_and_canonicalizes_like_upstream() {
        assert_eq!(canon("500m"), "500m");
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("2000"), "2k");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("512"), "512");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("0.1m"), "100u");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("0"), "0");
        for bad in ["", "abc", "1.2.3", "1Zi", "--1", "1e", "m"] {
            assert_eq!(canon(bad), "ERR", "{bad}");
        }
    }

    #[test]
    fn compares_across_suffixes() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("1").cmp(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Gi").cmp(&q("1G")), Ordering::Greater);
        assert_eq!(q("200m").cmp(&q("0.1")), Ordering::Greater);
        assert!(q("-1").is_negative());
        assert!(!q("1.5").is_integer());
        assert!(q("2k").is_integer());
    }
}

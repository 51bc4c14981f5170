//! Node allocatable as upstream's kubelet computes it: capacity minus
//! `--system-reserved`, `--kube-reserved` and the hard eviction thresholds
//! of memory (`memory.available`) and ephemeral storage
//! (`nodefs.available`), clamped at zero; and the parsers of those flags
//! (`cpu=100m,memory=256Mi,ephemeral-storage=1Gi`,
//! `memory.available<100Mi,nodefs.available<10%`).

use std::collections::BTreeMap;

use rkube_api::quantity::{Format, Quantity};

/// A flag value that does not parse; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservedError {
    #[error("{0:?}: want name=quantity")]
    NotAPair(String),
    #[error("{name}: unsupported resource (want cpu, memory, ephemeral-storage or pid)")]
    Resource { name: String },
    #[error("{name}={value}: {message}")]
    Quantity {
        name: String,
        value: String,
        message: String,
    },
    #[error("{0:?}: want signal<quantity or signal<percent%")]
    NotAThreshold(String),
    #[error("{signal}: unsupported eviction signal (want memory.available, nodefs.available, nodefs.inodesFree, imagefs.available or imagefs.inodesFree)")]
    Signal { signal: String },
    #[error("{signal}: percentage {value:?} must be between 0% and 100%")]
    Percent { signal: String, value: String },
}

/// Resources set aside from allocatable (`--system-reserved`,
/// `--kube-reserved`): `cpu` in millicores, the others in units
/// (bytes, pids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved(pub BTreeMap<String, i128>);

const RESERVABLE: &[&str] = &["cpu", "memory", "ephemeral-storage", "pid"];

fn amount(name: &str, q: &Quantity) -> i128 {
    if name == "cpu" {
        q.milli_value()
    } else {
        q.value()
    }
}

/// Parses `cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000` (empty:
/// nothing reserved).
pub fn parse_reserved(s: &str) -> Result<Reserved, ReservedError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| ReservedError::NotAPair(part.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        if !RESERVABLE.contains(&name) {
            return Err(ReservedError::Resource { name: name.into() });
        }
        let bad = |message: String| ReservedError::Quantity {
            name: name.into(),
            value: value.into(),
            message,
        };
        let q = Quantity::parse(value).map_err(|e| bad(e.to_string()))?;
        if q.signum() < 0 {
            return Err(bad("must not be negative".into()));
        }
        out.insert(name.to_string(), amount(name, &q));
    }
    Ok(Reserved(out))
}

/// An eviction signal the agent observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    ImageFsInodesFree,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
        }
    }

    fn parse(s: &str) -> Option<Signal> {
        [
            Signal::MemoryAvailable,
            Signal::NodeFsAvailable,
            Signal::NodeFsInodesFree,
            Signal::ImageFsAvailable,
            Signal::ImageFsInodesFree,
        ]
        .into_iter()
        .find(|x| x.name() == s)
    }
}

/// A threshold's value: an absolute amount or a share of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    Amount(u64),
    /// 0.0–1.0 of the signal's capacity.
    Percent(f64),
}

impl ThresholdValue {
    /// The amount for a signal whose capacity is `capacity`.
    pub fn amount(self, capacity: u64) -> u64 {
        match self {
            ThresholdValue::Amount(a) => a,
            ThresholdValue::Percent(p) => (capacity as f64 * p) as u64,
        }
    }
}

/// `signal < value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: ThresholdValue,
}

/// Upstream's default `--eviction-hard` on Linux.
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

/// Parses `--eviction-hard`. As upstream, a given value replaces the
/// defaults entirely (signals left out have no threshold).
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, ReservedError> {
    let mut out: Vec<Threshold> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (sig, value) = part
            .split_once('<')
            .ok_or_else(|| ReservedError::NotAThreshold(part.to_string()))?;
        let (sig, value) = (sig.trim(), value.trim());
        let signal = Signal::parse(sig).ok_or_else(|| ReservedError::Signal {
            signal: sig.to_string(),
        })?;
        let value = if let Some(p) = value.strip_suffix('%') {
            let bad = || ReservedError::Percent {
                signal: sig.into(),
                value: value.into(),
            };
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            ThresholdValue::Percent(p / 100.0)
        } else {
            let bad = |message: String| ReservedError::Quantity {
                name: sig.into(),
                value: value.into(),
                message,
            };
            let q = Quantity::parse(value).map_err(|e| bad(e.to_string()))?;
            if q.signum() < 0 {
                return Err(bad("must not be negative".into()));
            }
            ThresholdValue::Amount(u64::try_from(q.value()).unwrap_or(u64::MAX))
        };
        out.retain(|t| t.signal != signal);
        out.push(Threshold { signal, value });
    }
    Ok(out)
}

/// The node's capacity: `cpu` in millicores, `memory` and
/// `ephemeral-storage` in bytes, `pods` and `pid` as counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity(pub BTreeMap<String, i128>);

/// How a resource prints in the Node status.
fn quantity(name: &str, v: i128) -> String {
    let v = i64::try_from(v.max(0)).unwrap_or(i64::MAX);
    match name {
        "cpu" => Quantity::from_milli(v).canonical(),
        "memory" | "ephemeral-storage" => Quantity::from_int(v, Format::BinarySI).canonical(),
        _ => Quantity::from_int(v, Format::DecimalSI).canonical(),
    }
}

impl Capacity {
    /// Reads `name → quantity string` (cpu into millicores).
    pub fn from_strings<'a>(
        items: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Capacity, ReservedError> {
        let mut out = BTreeMap::new();
        for (name, value) in items {
            let q = Quantity::parse(value).map_err(|e| ReservedError::Quantity {
                name: name.into(),
                value: value.into(),
                message: e.to_string(),
            })?;
            out.insert(name.to_string(), amount(name, &q));
        }
        Ok(Capacity(out))
    }

    /// The quantities as the Node status shows them.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), quantity(k, *v)))
            .collect()
    }

    /// Upstream's allocatable: capacity − system-reserved − kube-reserved −
    /// hard eviction (memory.available → memory, nodefs.available →
    /// ephemeral-storage), at least zero.
    pub fn allocatable(
        &self,
        system: &Reserved,
        kube: &Reserved,
        eviction_hard: &[Threshold],
    ) -> Capacity {
        let mut out = self.0.clone();
        for (name, cap) in out.iter_mut() {
            let mut minus =
                system.0.get(name).copied().unwrap_or(0) + kube.0.get(name).copied().unwrap_or(0);
            let evict = match name.as_str() {
                "memory" => Some(Signal::MemoryAvailable),
                "ephemeral-storage" => Some(Signal::NodeFsAvailable),
                _ => None,
            };
            if let Some(t) = eviction_hard.iter().find(|t| Some(t.signal) == evict) {
                let c = u64::try_from((*cap).max(0)).unwrap_or(u64::MAX);
                minus += i128::from(t.value.amount(c));
            }
            *cap = (*cap - minus).max(0);
        }
        Capacity(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: i128 = 1 << 30;
    const MI: i128 = 1 << 20;

    #[test]
    fn reserved_flags_parse_with_upstream_syntax() {
        let r = parse_reserved("cpu=100m, memory=256Mi,ephemeral-storage=1Gi,pid=1000").unwrap();
        assert_eq!(r.0["cpu"], 100);
        assert_eq!(r.0["memory"], 256 * MI);
        assert_eq!(r.0["ephemeral-storage"], GI);
        assert_eq!(r.0["pid"], 1000);
        assert_eq!(parse_reserved("").unwrap(), Reserved::default());
        assert!(matches!(
            parse_reserved("gpu=1"),
            Err(ReservedError::Resource { .. })
        ));
        assert!(matches!(
            parse_reserved("memory"),
            Err(ReservedError::NotAPair(_))
        ));
        let e = parse_reserved("memory=lots").unwrap_err().to_string();
        assert!(e.starts_with("memory=lots: "), "{e}");
        assert!(parse_reserved("cpu=-1").is_err());
    }

    #[test]
    fn thresholds_parse_amounts_and_percentages() {
        let t = parse_thresholds(DEFAULT_EVICTION_HARD).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(
            t[0],
            Threshold {
                signal: Signal::MemoryAvailable,
                value: ThresholdValue::Amount(100 << 20)
            }
        );
        assert_eq!(t[1].value, ThresholdValue::Percent(0.10));
        assert_eq!(t[1].value.amount(1000), 100);
        let t = parse_thresholds("memory.available<5%,memory.available<1Gi").unwrap();
        assert_eq!(t.len(), 1, "a repeated signal keeps the last value");
        assert_eq!(t[0].value, ThresholdValue::Amount(1 << 30));
        assert!(matches!(
            parse_thresholds("memory.free<1Gi"),
            Err(ReservedError::Signal { .. })
        ));
        assert!(matches!(
            parse_thresholds("memory.available>1Gi"),
            Err(ReservedError::NotAThreshold(_))
        ));
        assert!(matches!(
            parse_thresholds("nodefs.available<150%"),
            Err(ReservedError::Percent { .. })
        ));
        assert!(parse_thresholds("nodefs.available<x%").is_err());
        assert!(parse_thresholds("memory.available<1Zi").is_err());
        assert!(parse_thresholds("").unwrap().is_empty());
    }

    #[test]
    fn allocatable_is_capacity_minus_reserved_and_hard_eviction() {
        let cap = Capacity::from_strings([
            ("cpu", "4"),
            ("memory", "16Gi"),
            ("ephemeral-storage", "100Gi"),
            ("pods", "110"),
        ])
        .unwrap();
        let sys = parse_reserved("cpu=100m,memory=256Mi,ephemeral-storage=1Gi").unwrap();
        let kube = parse_reserved("cpu=200m,memory=512Mi").unwrap();
        let hard = parse_thresholds("memory.available<100Mi,nodefs.available<10%").unwrap();
        let a = cap.allocatable(&sys, &kube, &hard);
        assert_eq!(a.0["cpu"], 3700);
        assert_eq!(a.0["memory"], 16 * GI - 256 * MI - 512 * MI - 100 * MI);
        assert_eq!(a.0["ephemeral-storage"], 100 * GI - GI - 10 * GI);
        assert_eq!(a.0["pods"], 110);
        let s = a.to_strings();
        assert_eq!(s["cpu"], "3700m");
        assert_eq!(s["memory"], "15516Mi");
        assert_eq!(s["ephemeral-storage"], "89Gi");
        assert_eq!(s["pods"], "110");
        // Percent thresholds on memory, and nothing below zero.
        let hard = parse_thresholds("memory.available<50%").unwrap();
        assert_eq!(
            cap.allocatable(&Reserved::default(), &Reserved::default(), &hard)
                .0["memory"],
            8 * GI
        );
        let huge = parse_reserved("memory=1Ti").unwrap();
        assert_eq!(
            cap.allocatable(&huge, &Reserved::default(), &[]).0["memory"],
            0
        );
        // No reservations: allocatable is capacity.
        assert_eq!(
            cap.allocatable(&Reserved::default(), &Reserved::default(), &[]),
            cap
        );
        assert_eq!(cap.to_strings()["memory"], "16Gi");
    }
}

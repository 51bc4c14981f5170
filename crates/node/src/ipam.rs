//! Pod IP address management: hands out addresses from a node's IPv4 pod
//! CIDR (`10.244.N.0/24` style), lowest free first, never the network
//! address, the gateway (`.1`) or the broadcast address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Errors of the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid IPv4 CIDR {0:?}")]
    InvalidCidr(String),
    #[error("CIDR {0} has no usable pod addresses")]
    TooSmall(String),
    #[error("no free pod addresses left in {0}")]
    Exhausted(String),
    #[error("address {0} is not a pod address of {1}")]
    OutOfRange(Ipv4Addr, String),
}

/// An allocator over one IPv4 CIDR.
#[derive(Debug, Clone)]
pub struct Ipam {
    cidr: String,
    first: u32,
    last: u32,
    used: BTreeSet<u32>,
}

impl Ipam {
    /// Parses `a.b.c.d/len`; host bits are masked off.
    pub fn new(cidr: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::InvalidCidr(cidr.to_string());
        let (addr, len) = cidr.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let network = u32::from(addr) & mask;
        let broadcast = network | !mask;
        let canonical = format!("{}/{len}", Ipv4Addr::from(network));
        // network, gateway (.1) and broadcast are reserved.
        if len > 30 {
            return Err(IpamError::TooSmall(canonical));
        }
        Ok(Ipam {
            cidr: canonical,
            first: network + 2,
            last: broadcast - 1,
            used: BTreeSet::new(),
        })
    }

    /// The canonical CIDR.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// Number of addresses pods may use.
    pub fn capacity(&self) -> usize {
        (self.last - self.first + 1) as usize
    }

    /// Number of addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Whether `ip` is a pod address of this CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// Allocates the lowest free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let mut candidate = self.first;
        for &u in self.used.iter() {
            if u != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate > self.last {
            return Err(IpamError::Exhausted(self.cidr.clone()));
        }
        self.used.insert(candidate);
        Ok(Ipv4Addr::from(candidate))
    }

    /// Marks `ip` used (e.g. a pod adopted after a restart). Idempotent.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.contains(ip) {
            return Err(IpamError::OutOfRange(ip, self.cidr.clone()));
        }
        self.used.insert(u32::from(ip));
        Ok(())
    }

    /// Returns `ip` to the pool; returns whether it was in use.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.used.remove(&u32::from(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn allocates_lowest_free_skipping_reserved() {
        let mut ipam = Ipam::new("10.244.1.0/24").unwrap();
        assert_eq!(ipam.capacity(), 253);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 4));
        assert!(ipam.release(Ipv4Addr::new(10, 244, 1, 3)));
        assert!(!ipam.release(Ipv4Addr::new(10, 244, 1, 3)));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 5));
    }

    #[test]
    fn exhaustion_and_reuse() {
        let mut ipam = Ipam::new("10.244.7.0/24").unwrap();
        let all: Vec<_> = (0..253).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 244, 7, 254)));
        assert_eq!(
            ipam.allocate(),
            Err(IpamError::Exhausted("10.244.7.0/24".into()))
        );
        ipam.release(Ipv4Addr::new(10, 244, 7, 100));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 7, 100));
    }

    #[test]
    fn parse_errors_and_masking() {
        assert!(matches!(
            Ipam::new("10.0.0.0"),
            Err(IpamError::InvalidCidr(_))
        ));
        assert!(matches!(
            Ipam::new("10.0.0/24"),
            Err(IpamError::InvalidCidr(_))
        ));
        assert!(matches!(
            Ipam::new("10.0.0.0/33"),
            Err(IpamError::InvalidCidr(_))
        ));
        assert!(matches!(
            Ipam::new("10.0.0.0/31"),
            Err(IpamError::TooSmall(_))
        ));
        let mut small = Ipam::new("10.0.0.0/30").unwrap();
        assert_eq!(small.allocate().unwrap(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(small.allocate().is_err());
        assert_eq!(Ipam::new("10.244.3.77/24").unwrap().cidr(), "10.244.3.0/24");
    }

    #[test]
    fn reserve_checks_range() {
        let mut ipam = Ipam::new("10.244.1.0/24").unwrap();
        ipam.reserve(Ipv4Addr::new(10, 244, 1, 2)).unwrap();
        assert!(ipam.reserve(Ipv4Addr::new(10, 244, 1, 1)).is_err());
        assert!(ipam.reserve(Ipv4Addr::new(10, 244, 1, 255)).is_err());
        assert!(ipam.reserve(Ipv4Addr::new(10, 244, 2, 5)).is_err());
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 1, 3));
    }

    #[test]
    fn churn_never_duplicates() {
        let mut ipam = Ipam::new("10.244.1.0/24").unwrap();
        let mut live: Vec<Ipv4Addr> = Vec::new();
        let mut seen: HashSet<Ipv4Addr> = HashSet::new();
        // Deterministic pseudo-random churn (xorshift).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if live.is_empty() || (!x.is_multiple_of(3) && live.len() < ipam.capacity()) {
                let ip = ipam.allocate().unwrap();
                assert!(ipam.contains(ip));
                assert!(seen.insert(ip), "duplicate allocation {ip}");
                live.push(ip);
            } else {
                let ip = live.swap_remove((x as usize / 3) % live.len());
                assert!(seen.remove(&ip));
                assert!(ipam.release(ip));
            }
            assert_eq!(ipam.in_use(), live.len());
        }
    }
}

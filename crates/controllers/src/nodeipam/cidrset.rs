//! `CidrSet`: an IPv4 cluster CIDR cut into equal node subnets, with a bit
//! per subnet (like upstream's `cidrset` package). Pure: no I/O.
//!
//! Allocation hands out the lowest free subnet. A hint remembers the lowest
//! index that may be free, so a run of allocations scans each 64-subnet word
//! about once: amortized O(1) per allocation.

use std::net::Ipv4Addr;
use std::ops::Range;

/// The most subnets one set may hold (2^20: a 128 KiB bit vector).
pub const MAX_SUBNETS: u64 = 1 << 20;

/// The longest node mask accepted (/30: two usable pod addresses).
pub const MAX_NODE_MASK: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrSetError {
    #[error("invalid IPv4 CIDR {0:?}")]
    Parse(String),
    #[error("cluster CIDR {cidr} is not a network address (did you mean {network}?)")]
    NotNetworkAddress { cidr: String, network: String },
    #[error("node CIDR mask size /{mask} must be between the cluster prefix length /{prefix} and /{max}", max = MAX_NODE_MASK)]
    BadMaskSize { mask: u8, prefix: u8 },
    #[error("cluster CIDR {cidr} with node mask /{mask} gives {count} subnets, more than {max}", max = MAX_SUBNETS)]
    TooManySubnets { cidr: String, mask: u8, count: u64 },
    #[error("{cidr} is not a /{expected} subnet")]
    WrongMask { cidr: String, expected: u8 },
    #[error("{cidr} is outside the cluster CIDR {cluster}")]
    OutOfRange { cidr: String, cluster: String },
    #[error("{cidr} is not aligned to a /{mask} boundary")]
    Misaligned { cidr: String, mask: u8 },
    #[error("no free /{mask} subnet left in {cluster}")]
    Exhausted { cluster: String, mask: u8 },
}

type Result<T> = std::result::Result<T, CidrSetError>;

/// Parses `a.b.c.d/len` (IPv4 only).
fn parse_cidr(s: &str) -> Result<(u32, u8)> {
    let err = || CidrSetError::Parse(s.to_string());
    let (addr, len) = s.split_once('/').ok_or_else(err)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let len: u8 = len.parse().map_err(|_| err())?;
    if len > 32 {
        return Err(err());
    }
    Ok((u32::from(addr), len))
}

/// The netmask of a prefix length, as a u32 (`/0` is 0).
fn netmask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn fmt_cidr(addr: u32, len: u8) -> String {
    format!("{}/{len}", Ipv4Addr::from(addr))
}

/// An IPv4 cluster CIDR split into `/node_mask` subnets, each free or used.
#[derive(Debug, Clone)]
pub struct CidrSet {
    network: u32,
    prefix: u8,
    node_mask: u8,
    capacity: u32,
    used: u32,
    /// One bit per subnet, set when used.
    bits: Vec<u64>,
    /// No subnet below this index is free.
    hint: u32,
}

impl CidrSet {
    /// A set over `cluster_cidr` (e.g. `10.128.0.0/11`) with subnets of
    /// `/node_mask` (e.g. 24), all free.
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<CidrSet> {
        let (addr, prefix) = parse_cidr(cluster_cidr)?;
        let network = addr & netmask(prefix);
        if network != addr {
            return Err(CidrSetError::NotNetworkAddress {
                cidr: cluster_cidr.to_string(),
                network: fmt_cidr(network, prefix),
            });
        }
        if node_mask < prefix || node_mask > MAX_NODE_MASK {
            return Err(CidrSetError::BadMaskSize {
                mask: node_mask,
                prefix,
            });
        }
        let count = 1u64 << (node_mask - prefix);
        if count > MAX_SUBNETS {
            return Err(CidrSetError::TooManySubnets {
                cidr: cluster_cidr.to_string(),
                mask: node_mask,
                count,
            });
        }
        let capacity = count as u32;
        Ok(CidrSet {
            network,
            prefix,
            node_mask,
            capacity,
            used: 0,
            bits: vec![0; capacity.div_ceil(64) as usize],
            hint: 0,
        })
    }

    /// The cluster CIDR, normalized (`10.128.0.0/11`).
    pub fn cluster_cidr(&self) -> String {
        fmt_cidr(self.network, self.prefix)
    }

    /// The node subnet prefix length.
    pub fn node_mask(&self) -> u8 {
        self.node_mask
    }

    /// How many subnets the set holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How many subnets are used.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Hands out the lowest free subnet, e.g. `10.128.5.0/24`.
    pub fn allocate(&mut self) -> Result<String> {
        self.allocate_index().map(|i| self.subnet(i))
    }

    /// Marks `cidr`, one of this set's subnets, as used (idempotent).
    pub fn occupy(&mut self, cidr: &str) -> Result<()> {
        let i = self.index_of(cidr)?;
        self.occupy_index(i);
        Ok(())
    }

    /// Marks `cidr`, one of this set's subnets, as free (idempotent).
    pub fn release(&mut self, cidr: &str) -> Result<()> {
        let i = self.index_of(cidr)?;
        self.release_index(i);
        Ok(())
    }

    /// Whether `cidr`, one of this set's subnets, is used.
    pub fn is_used(&self, cidr: &str) -> Result<bool> {
        Ok(self.is_used_index(self.index_of(cidr)?))
    }

    /// The index of `cidr` if it is exactly one of this set's subnets.
    pub fn index_of(&self, cidr: &str) -> Result<u32> {
        let (addr, len) = parse_cidr(cidr)?;
        if len != self.node_mask {
            return Err(CidrSetError::WrongMask {
                cidr: cidr.to_string(),
                expected: self.node_mask,
            });
        }
        if addr & netmask(self.prefix) != self.network {
            return Err(CidrSetError::OutOfRange {
                cidr: cidr.to_string(),
                cluster: self.cluster_cidr(),
            });
        }
        if addr & !netmask(len) != 0 {
            return Err(CidrSetError::Misaligned {
                cidr: cidr.to_string(),
                mask: self.node_mask,
            });
        }
        Ok((addr - self.network) >> (32 - self.node_mask))
    }

    /// The indexes of the subnets that overlap any IPv4 CIDR `cidr`
    /// (whatever its length or alignment); `OutOfRange` when none does.
    pub fn overlapping(&self, cidr: &str) -> Result<Range<u32>> {
        let (addr, len) = parse_cidr(cidr)?;
        let lo = u64::from(addr & netmask(len));
        let hi = lo | u64::from(!netmask(len));
        let c_lo = u64::from(self.network);
        let c_hi = c_lo | u64::from(!netmask(self.prefix));
        if hi < c_lo || lo > c_hi {
            return Err(CidrSetError::OutOfRange {
                cidr: cidr.to_string(),
                cluster: self.cluster_cidr(),
            });
        }
        let shift = 32 - u32::from(self.node_mask);
        let first = (lo.max(c_lo) - c_lo) >> shift;
        let last = (hi.min(c_hi) - c_lo) >> shift;
        Ok(first as u32..last as u32 + 1)
    }

    /// The subnet at `index` as a string. Panics when out of range.
    pub fn subnet(&self, index: u32) -> String {
        assert!(index < self.capacity, "subnet index out of range");
        fmt_cidr(
            self.network + (index << (32 - self.node_mask)),
            self.node_mask,
        )
    }

    /// Takes the lowest free index.
    pub(crate) fn allocate_index(&mut self) -> Result<u32> {
        if self.used == self.capacity {
            return Err(CidrSetError::Exhausted {
                cluster: self.cluster_cidr(),
                mask: self.node_mask,
            });
        }
        let mut w = (self.hint / 64) as usize;
        while self.bits[w] == u64::MAX {
            w += 1;
        }
        // Every bit below the hint is set, so the lowest clear bit of the
        // first non-full word is the lowest free subnet.
        let i = w as u32 * 64 + self.bits[w].trailing_ones();
        debug_assert!(i < self.capacity);
        self.occupy_index(i);
        self.hint = i + 1;
        Ok(i)
    }

    pub(crate) fn occupy_index(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.bits[w] & (1 << b) == 0 {
            self.bits[w] |= 1 << b;
            self.used += 1;
        }
    }

    pub(crate) fn release_index(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.bits[w] & (1 << b) != 0 {
            self.bits[w] &= !(1 << b);
            self.used -= 1;
            self.hint = self.hint.min(i);
        }
    }

    pub(crate) fn is_used_index(&self, i: u32) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn set(cidr: &str, mask: u8) -> CidrSet {
        CidrSet::new(cidr, mask).unwrap()
    }

    #[test]
    fn allocates_in_order() {
        let mut s = set("10.128.0.0/11", 24);
        assert_eq!(s.capacity(), 8192);
        assert_eq!(s.allocate().unwrap(), "10.128.0.0/24");
        assert_eq!(s.allocate().unwrap(), "10.128.1.0/24");
        assert_eq!(s.allocate().unwrap(), "10.128.2.0/24");
        assert_eq!(s.used(), 3);
        assert_eq!(s.subnet(8191), "10.159.255.0/24");
        assert_eq!(s.cluster_cidr(), "10.128.0.0/11");
    }

    #[test]
    fn occupy_release_reuse() {
        let mut s = set("10.128.0.0/11", 24);
        s.occupy("10.128.0.0/24").unwrap();
        s.occupy("10.128.2.0/24").unwrap();
        s.occupy("10.128.2.0/24").unwrap(); // idempotent
        assert_eq!(s.used(), 2);
        assert_eq!(s.allocate().unwrap(), "10.128.1.0/24");
        assert_eq!(s.allocate().unwrap(), "10.128.3.0/24");
        s.release("10.128.1.0/24").unwrap();
        s.release("10.128.1.0/24").unwrap(); // idempotent
        assert!(!s.is_used("10.128.1.0/24").unwrap());
        assert!(s.is_used("10.128.2.0/24").unwrap());
        // The lowest free subnet is reused first.
        assert_eq!(s.allocate().unwrap(), "10.128.1.0/24");
        assert_eq!(s.allocate().unwrap(), "10.128.4.0/24");
        assert_eq!(s.used(), 5);
    }

    #[test]
    fn exhaustion_and_recovery() {
        let mut s = set("192.168.0.0/22", 24);
        let got: Vec<String> = (0..4).map(|_| s.allocate().unwrap()).collect();
        assert_eq!(
            got,
            [
                "192.168.0.0/24",
                "192.168.1.0/24",
                "192.168.2.0/24",
                "192.168.3.0/24"
            ]
        );
        let e = s.allocate().unwrap_err();
        assert!(matches!(e, CidrSetError::Exhausted { .. }), "{e}");
        assert_eq!(e.to_string(), "no free /24 subnet left in 192.168.0.0/22");
        s.release("192.168.2.0/24").unwrap();
        assert_eq!(s.allocate().unwrap(), "192.168.2.0/24");
        assert!(s.allocate().is_err());
        // A single-subnet set (mask == prefix).
        let mut one = set("10.0.0.0/24", 24);
        assert_eq!(one.allocate().unwrap(), "10.0.0.0/24");
        assert!(one.allocate().is_err());
    }

    #[test]
    fn rejects_foreign_subnets() {
        let mut s = set("10.128.0.0/11", 24);
        let cases = [
            ("10.0.0.0/24", "OutOfRange"),
            ("10.160.0.0/24", "OutOfRange"),
            ("10.127.255.0/24", "OutOfRange"),
            ("10.128.5.7/24", "Misaligned"),
            ("10.128.5.0/25", "WrongMask"),
            ("10.128.0.0/16", "WrongMask"),
            ("10.128.0.0", "Parse"),
            ("10.128.0.0/", "Parse"),
            ("10.128.0.0/33", "Parse"),
            ("10.128.0.0/+8", "Parse"),
            ("fd00::/64", "Parse"),
            ("", "Parse"),
        ];
        for (cidr, want) in cases {
            let e = s.occupy(cidr).unwrap_err();
            let got = format!("{e:?}");
            assert!(got.starts_with(want), "{cidr}: {got}");
            assert!(s.release(cidr).is_err(), "{cidr}");
        }
        assert_eq!(s.used(), 0);
    }

    #[test]
    fn bad_configs() {
        let cases: [(&str, u8, &str); 8] = [
            ("10.128.0.1/11", 24, "NotNetworkAddress"),
            ("10.128.0.0/11", 10, "BadMaskSize"),
            ("10.128.0.0/11", 31, "BadMaskSize"),
            ("10.128.0.0/11", 32, "BadMaskSize"),
            ("10.0.0.0/8", 29, "TooManySubnets"),
            ("0.0.0.0/0", 24, "TooManySubnets"),
            ("10.0.0.0/8x", 24, "Parse"),
            ("fd00::/48", 64, "Parse"),
        ];
        for (cidr, mask, want) in cases {
            let e = CidrSet::new(cidr, mask).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{cidr} /{mask}: {e:?}");
        }
        let e = CidrSet::new("10.128.0.1/11", 24).unwrap_err();
        assert!(e.to_string().contains("10.128.0.0/11"), "{e}");
        // The bounds themselves are fine.
        assert_eq!(set("10.0.0.0/8", 28).capacity(), 1 << 20);
        assert_eq!(set("10.0.0.0/28", 30).capacity(), 4);
    }

    #[test]
    fn overlapping_ranges() {
        let s = set("10.128.0.0/11", 24);
        assert_eq!(s.overlapping("10.128.5.0/24").unwrap(), 5..6);
        assert_eq!(s.overlapping("10.128.5.128/25").unwrap(), 5..6);
        assert_eq!(s.overlapping("10.128.5.7/24").unwrap(), 5..6);
        assert_eq!(s.overlapping("10.128.4.0/22").unwrap(), 4..8);
        assert_eq!(s.overlapping("10.0.0.0/8").unwrap(), 0..8192);
        assert_eq!(s.overlapping("0.0.0.0/0").unwrap(), 0..8192);
        assert!(matches!(
            s.overlapping("10.96.0.0/12"),
            Err(CidrSetError::OutOfRange { .. })
        ));
    }

    #[test]
    fn five_thousand_allocations_are_distinct() {
        let mut s = CidrSet::new("10.128.0.0/11", 24).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            assert!(seen.insert(s.allocate().unwrap()));
        }
        assert_eq!(s.used(), 5000);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Allocate,
            /// Release the n-th (mod len) currently held subnet.
            Release(usize),
            /// Occupy subnet index n (mod capacity).
            Occupy(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => Just(Op::Allocate),
                2 => any::<usize>().prop_map(Op::Release),
                1 => any::<u32>().prop_map(Op::Occupy),
            ]
        }

        proptest! {
            #[test]
            fn never_hands_out_a_subnet_twice(
                prefix in 16u8..=26,
                extra in 0u8..=4,
                ops in proptest::collection::vec(op(), 1..300),
            ) {
                let mask = (prefix + extra).min(MAX_NODE_MASK);
                let cluster = fmt_cidr(0x0a80_0000 & netmask(prefix), prefix);
                let mut s = CidrSet::new(&cluster, mask).unwrap();
                let mut held: Vec<String> = Vec::new();
                let mut held_set: HashSet<String> = HashSet::new();
                for op in ops {
                    match op {
                        Op::Allocate => match s.allocate() {
                            Ok(c) => {
                                prop_assert!(held_set.insert(c.clone()), "{} handed out twice", c);
                                // Inside the cluster CIDR, with the node mask.
                                let i = s.index_of(&c).unwrap();
                                prop_assert_eq!(s.subnet(i), c.clone());
                                let (a, l) = parse_cidr(&c).unwrap();
                                prop_assert_eq!(l, mask);
                                prop_assert_eq!(a & netmask(prefix), 0x0a80_0000 & netmask(prefix));
                                held.push(c);
                            }
                            Err(CidrSetError::Exhausted { .. }) => {
                                prop_assert_eq!(held.len() as u32, s.capacity());
                            }
                            Err(e) => prop_assert!(false, "unexpected {}", e),
                        },
                        Op::Release(n) if !held.is_empty() => {
                            let c = held.swap_remove(n % held.len());
                            held_set.remove(&c);
                            s.release(&c).unwrap();
                        }
                        Op::Release(_) => {}
                        Op::Occupy(n) => {
                            let c = s.subnet(n % s.capacity());
                            s.occupy(&c).unwrap();
                            if held_set.insert(c.clone()) {
                                held.push(c);
                            }
                        }
                    }
                    prop_assert_eq!(s.used() as usize, held.len());
                }
            }
        }
    }
}

//! MemoryPressure and DiskPressure from measurements, as upstream's
//! eviction manager decides them: a condition holds while one of its hard
//! eviction thresholds is met, and for `--eviction-pressure-transition-period`
//! after it was last met (so it does not flap); its lastTransitionTime
//! changes only when its status does.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::hostfacts::FsInfo;
use super::reserved::{Signal, Threshold};
use crate::facts::{Conditions, Pressure};

/// One round of measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Upstream's memory.available (capacity − working set).
    pub memory_available: u64,
    pub memory_capacity: u64,
    /// The file system of the agent's root dir.
    pub nodefs: FsInfo,
    /// The file system of the image store.
    pub imagefs: FsInfo,
}

impl Observed {
    /// `(available, capacity)` of a signal; `None` when the file system
    /// reports no inodes (some do not count them).
    fn of(&self, s: Signal) -> Option<(u64, u64)> {
        let inodes = |f: &FsInfo| (f.inodes > 0).then_some((f.inodes_free, f.inodes));
        match s {
            Signal::MemoryAvailable => Some((self.memory_available, self.memory_capacity)),
            Signal::NodeFsAvailable => Some((self.nodefs.available, self.nodefs.capacity)),
            Signal::ImageFsAvailable => Some((self.imagefs.available, self.imagefs.capacity)),
            Signal::NodeFsInodesFree => inodes(&self.nodefs),
            Signal::ImageFsInodesFree => inodes(&self.imagefs),
        }
    }
}

/// The thresholds met by `o`.
pub fn met(thresholds: &[Threshold], o: &Observed) -> Vec<Signal> {
    thresholds
        .iter()
        .filter(|t| {
            o.of(t.signal)
                .is_some_and(|(avail, cap)| avail < t.value.amount(cap))
        })
        .map(|t| t.signal)
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    state: Pressure,
    last_met: Option<Timestamp>,
}

impl Tracked {
    fn observe(&mut self, met_now: bool, now: Timestamp, period: Duration) -> bool {
        if met_now {
            self.last_met = Some(now);
        }
        let recent = self.last_met.is_some_and(|t| {
            now.duration_since(t)
                .try_into()
                .is_ok_and(|d: Duration| d < period)
        });
        let pressure = met_now || recent;
        if pressure == self.state.pressure {
            return false;
        }
        self.state = Pressure {
            pressure,
            since: now,
        };
        true
    }
}

/// Decides the two conditions round after round.
#[derive(Debug, Clone)]
pub struct PressureTracker {
    period: Duration,
    memory: Tracked,
    disk: Tracked,
}

fn is_memory(s: &Signal) -> bool {
    *s == Signal::MemoryAvailable
}

impl PressureTracker {
    /// Both conditions False since `now`.
    pub fn new(transition_period: Duration, now: Timestamp) -> Self {
        let off = Tracked {
            state: Pressure {
                pressure: false,
                since: now,
            },
            last_met: None,
        };
        PressureTracker {
            period: transition_period,
            memory: off,
            disk: off,
        }
    }

    /// Takes the signals met at `now`; true if a condition changed.
    pub fn observe(&mut self, met: &[Signal], now: Timestamp) -> bool {
        let m = self
            .memory
            .observe(met.iter().any(is_memory), now, self.period);
        let d = self
            .disk
            .observe(met.iter().any(|s| !is_memory(s)), now, self.period);
        m || d
    }

    /// The conditions to report.
    pub fn conditions(&self) -> Conditions {
        Conditions {
            memory: Some(self.memory.state),
            disk: Some(self.disk.state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::reserved::parse_thresholds;

    const GI: u64 = 1 << 30;

    fn fs(capacity: u64, available: u64) -> FsInfo {
        FsInfo {
            capacity,
            available,
            used: capacity - available,
            inodes: 1000,
            inodes_free: 900,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn thresholds_are_met_below_the_amount_or_share() {
        let t = parse_thresholds(
            "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%",
        )
        .unwrap();
        let mut o = Observed {
            memory_available: 8 * GI,
            memory_capacity: 16 * GI,
            nodefs: fs(100 * GI, 50 * GI),
            imagefs: fs(100 * GI, 50 * GI),
        };
        assert!(met(&t, &o).is_empty());
        o.memory_available = 99 << 20;
        assert_eq!(met(&t, &o), vec![Signal::MemoryAvailable]);
        o.memory_available = 100 << 20;
        assert!(
            met(&t, &o).is_empty(),
            "exactly the threshold is not below it"
        );
        o.imagefs.available = 14 * GI;
        assert_eq!(met(&t, &o), vec![Signal::ImageFsAvailable]);
        o.imagefs.available = 50 * GI;
        o.nodefs.inodes_free = 10;
        assert_eq!(met(&t, &o), vec![Signal::NodeFsInodesFree]);
        o.nodefs.inodes = 0;
        assert!(met(&t, &o).is_empty(), "no inode counts: not judged");
    }

    #[test]
    fn conditions_hold_through_the_transition_period_and_keep_their_time() {
        let period = Duration::from_secs(300);
        let mut p = PressureTracker::new(period, at(0));
        assert!(!p.observe(&[], at(10)));
        let c = p.conditions();
        assert_eq!(c.memory.unwrap().since, at(0), "unchanged: time kept");
        assert!(p.observe(&[Signal::MemoryAvailable], at(20)));
        let c = p.conditions();
        assert_eq!(
            c.memory,
            Some(Pressure {
                pressure: true,
                since: at(20)
            })
        );
        assert!(!c.disk.unwrap().pressure);
        // Still met: no change, same transition time.
        assert!(!p.observe(&[Signal::MemoryAvailable], at(30)));
        assert_eq!(p.conditions().memory.unwrap().since, at(20));
        // No longer met, but within the period since last met: stays True.
        assert!(!p.observe(&[], at(40)));
        assert!(!p.observe(&[], at(329)));
        assert!(p.conditions().memory.unwrap().pressure);
        // The period has passed: False from now on.
        assert!(p.observe(&[], at(330)));
        assert_eq!(
            p.conditions().memory,
            Some(Pressure {
                pressure: false,
                since: at(330)
            })
        );
        // Any disk signal is DiskPressure.
        assert!(p.observe(&[Signal::ImageFsInodesFree], at(400)));
        assert!(p.conditions().disk.unwrap().pressure);
        assert!(!p.conditions().memory.unwrap().pressure);
    }

    #[test]
    fn zero_period_follows_the_measurement() {
        let mut p = PressureTracker::new(Duration::ZERO, at(0));
        assert!(p.observe(&[Signal::NodeFsAvailable], at(1)));
        assert!(p.observe(&[], at(2)));
        assert!(!p.conditions().disk.unwrap().pressure);
    }
}

//! Zones and their tainting rate (upstream `ComputeZoneState`,
//! `handleDisruption`, `setLimiterInZone` and the per-zone token-bucket
//! limiters of the NoExecute tainter).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

/// The zone label.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// The region label.
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";

/// A zone's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Few or no unhealthy nodes.
    Normal,
    /// More than 2 nodes and at least the unhealthy threshold not Ready.
    PartialDisruption,
    /// No node Ready.
    FullDisruption,
}

impl ZoneState {
    /// Upstream's names, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Normal => "Normal",
            ZoneState::PartialDisruption => "PartialDisruption",
            ZoneState::FullDisruption => "FullDisruption",
        }
    }
}

/// The zone a node belongs to (upstream `GetZoneKey`): region and zone
/// labels, empty for a node with neither.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .map(String::as_str)
            .unwrap_or("")
    };
    let (region, zone) = (get(LABEL_REGION), get(LABEL_ZONE));
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\u{0}:{zone}")
    }
}

/// A zone's state from its nodes' readiness (`true` = Ready).
pub fn zone_state(ready: impl IntoIterator<Item = bool>, unhealthy_threshold: f64) -> ZoneState {
    let (mut ok, mut bad) = (0usize, 0usize);
    for r in ready {
        if r {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    if ok == 0 && bad > 0 {
        ZoneState::FullDisruption
    } else if bad > 2 && bad as f64 / (ok + bad) as f64 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The tainting rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// `--node-eviction-rate` (nodes per second).
    pub normal: f64,
    /// `--secondary-node-eviction-rate`.
    pub secondary: f64,
    /// `--large-cluster-size-threshold`: zones at most this big stop
    /// tainting when partially disrupted.
    pub large_cluster_threshold: usize,
}

/// Nodes per second a zone may have tainted. When every zone is fully
/// disrupted, the problem is most likely the control plane's own
/// connectivity: nothing is tainted at all.
pub fn zone_qps(state: ZoneState, zone_size: usize, all_fully_disrupted: bool, r: &Rates) -> f64 {
    if all_fully_disrupted {
        return 0.0;
    }
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => r.normal,
        ZoneState::PartialDisruption if zone_size > r.large_cluster_threshold => r.secondary,
        ZoneState::PartialDisruption => 0.0,
    }
}

/// Whether every zone is fully disrupted (and there is at least one).
pub fn all_fully_disrupted(states: &BTreeMap<String, ZoneState>) -> bool {
    !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption)
}

/// A token bucket (client-go's `NewTokenBucketRateLimiter` with `TryAccept`):
/// `qps` tokens a second up to `burst`, starting full. A rate of 0 accepts
/// nothing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(qps: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            qps,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.qps).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token (None at rate 0).
    pub fn next_token_in(&self, now: Instant) -> Option<Duration> {
        if self.qps <= 0.0 {
            return None;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + dt * self.qps).min(self.burst);
        Some(Duration::from_secs_f64(
            ((1.0 - tokens) / self.qps).max(0.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const R: Rates = Rates {
        normal: 0.1,
        secondary: 0.01,
        large_cluster_threshold: 50,
    };

    #[test]
    fn zone_states_like_upstream() {
        let s = |ok: usize, bad: usize| {
            zone_state(
                std::iter::repeat_n(true, ok).chain(std::iter::repeat_n(false, bad)),
                0.55,
            )
        };
        assert_eq!(s(3, 0), ZoneState::Normal);
        assert_eq!(s(0, 1), ZoneState::FullDisruption);
        assert_eq!(s(0, 0), ZoneState::Normal);
        // Two unhealthy nodes are never a partial disruption.
        assert_eq!(s(1, 2), ZoneState::Normal);
        // 3 of 5 = 60% >= 55%.
        assert_eq!(s(2, 3), ZoneState::PartialDisruption);
        // 3 of 6 = 50% < 55%.
        assert_eq!(s(3, 3), ZoneState::Normal);
    }

    #[test]
    fn rates_per_zone_state() {
        assert_eq!(zone_qps(ZoneState::Normal, 10, false, &R), 0.1);
        assert_eq!(zone_qps(ZoneState::FullDisruption, 10, false, &R), 0.1);
        assert_eq!(zone_qps(ZoneState::PartialDisruption, 51, false, &R), 0.01);
        assert_eq!(zone_qps(ZoneState::PartialDisruption, 50, false, &R), 0.0);
        assert_eq!(zone_qps(ZoneState::Normal, 10, true, &R), 0.0);
        let mut m = BTreeMap::new();
        assert!(!all_fully_disrupted(&m));
        m.insert("a".to_string(), ZoneState::FullDisruption);
        assert!(all_fully_disrupted(&m));
        m.insert("b".to_string(), ZoneState::Normal);
        assert!(!all_fully_disrupted(&m));
    }

    #[test]
    fn token_bucket_starts_full_and_refills_at_qps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.1, 1, t0);
        assert!(b.try_accept(t0));
        assert!(!b.try_accept(t0 + Duration::from_secs(5)));
        assert_eq!(
            b.next_token_in(t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        assert!(b.try_accept(t0 + Duration::from_secs(10)));
        // Burst 1: a long pause does not bank tokens.
        assert!(b.try_accept(t0 + Duration::from_secs(100)));
        assert!(!b.try_accept(t0 + Duration::from_secs(101)));
        let mut zero = TokenBucket::new(0.0, 1, t0);
        assert!(!zero.try_accept(t0));
        assert_eq!(zero.next_token_in(t0), None);
    }
}

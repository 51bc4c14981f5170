//! Heartbeats of every node an agent process runs, on one schedule: each
//! node renews its Lease every lease interval and re-posts its Ready
//! condition at least every status report interval. A node's first renewal
//! is offset by a hash of its name, so thousands of nodes spread their
//! renewals evenly over the interval instead of sending them in bursts. A
//! paused node (simulated node failure) sends nothing until resumed.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::time::Instant;

use crate::facts::NodeFacts;
use crate::poster::{Job, Poster};
use crate::status;

struct Beat {
    uid: Option<String>,
    paused: bool,
    next: Instant,
    last_status: Option<Instant>,
    ready_since: Timestamp,
    facts: Option<NodeFacts>,
}

/// The heartbeat schedule.
pub struct Heartbeats {
    lease_interval: Duration,
    report_interval: Duration,
    lease_duration_seconds: i32,
    nodes: HashMap<String, Beat>,
    due: BTreeSet<(Instant, String)>,
}

/// Where in the interval a node's renewals fall.
fn offset(name: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

impl Heartbeats {
    pub fn new(
        lease_interval: Duration,
        report_interval: Duration,
        lease_duration_seconds: i32,
    ) -> Self {
        Heartbeats {
            lease_interval: lease_interval.max(Duration::from_millis(10)),
            report_interval,
            lease_duration_seconds,
            nodes: HashMap::new(),
            due: BTreeSet::new(),
        }
    }

    /// Adds a node whose status was just posted. Its status re-posts are
    /// offset within the report interval like its renewals, so nodes
    /// registered together do not all re-post in the same moment.
    pub fn add(&mut self, name: &str, uid: Option<String>, paused: bool, now: Instant) {
        let next = now + offset(name, self.lease_interval);
        let spread = offset(&format!("{name}/status"), self.report_interval);
        let last_status = now.checked_sub(spread).unwrap_or(now);
        self.remove(name);
        self.nodes.insert(
            name.to_string(),
            Beat {
                uid,
                paused,
                next,
                last_status: Some(last_status),
                ready_since: Timestamp::now(),
                facts: None,
            },
        );
        if !paused {
            self.due.insert((next, name.to_string()));
        }
    }

    /// Gives a node measured pressure conditions to report.
    pub fn set_facts(&mut self, name: &str, facts: Option<NodeFacts>) {
        if let Some(b) = self.nodes.get_mut(name) {
            b.facts = facts;
        }
    }

    /// Posts the node's status with its next heartbeat, now (a measured
    /// condition changed). Paused nodes stay silent.
    pub fn post_status_now(&mut self, name: &str, now: Instant) {
        let Some(b) = self.nodes.get_mut(name) else {
            return;
        };
        b.last_status = None;
        if b.paused {
            return;
        }
        self.due.remove(&(b.next, name.to_string()));
        b.next = now;
        self.due.insert((now, name.to_string()));
    }

    /// Stops a node's heartbeats for good.
    pub fn remove(&mut self, name: &str) {
        if let Some(b) = self.nodes.remove(name) {
            self.due.remove(&(b.next, name.to_string()));
        }
    }

    /// Number of nodes scheduled.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Pauses (`true`) or resumes a node's heartbeats. On resume the node
    /// renews its Lease and re-posts its status at once.
    pub fn set_paused(&mut self, name: &str, paused: bool, now: Instant) {
        let Some(b) = self.nodes.get_mut(name) else {
            return;
        };
        if b.paused == paused {
            return;
        }
        b.paused = paused;
        self.due.remove(&(b.next, name.to_string()));
        if !paused {
            b.next = now;
            b.last_status = None;
            self.due.insert((now, name.to_string()));
        }
    }

    /// When the next heartbeat is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.first().map(|(t, _)| *t)
    }

    /// Sends every heartbeat due by `now`.
    pub fn fire(&mut self, now: Instant, poster: &Poster) {
        while let Some((t, name)) = self.due.first().cloned() {
            if t > now {
                break;
            }
            self.due.pop_first();
            let Some(b) = self.nodes.get_mut(&name) else {
                continue;
            };
            poster.submit(
                format!("lease/{name}"),
                Job::Lease {
                    node: name.clone(),
                    node_uid: b.uid.clone(),
                    duration_seconds: self.lease_duration_seconds,
                },
            );
            if b.last_status
                .is_none_or(|l| now.duration_since(l) >= self.report_interval)
            {
                b.last_status = Some(now);
                let measured = b.facts.as_ref().map(|f| f.get()).unwrap_or_default();
                let conditions =
                    status::node_conditions_with(Timestamp::now(), b.ready_since, &measured);
                poster.submit(
                    format!("nodestatus/{name}"),
                    Job::NodeStatus {
                        node: name.clone(),
                        status: json!({ "conditions": conditions }),
                    },
                );
            }
            b.next = (t + self.lease_interval).max(now);
            self.due.insert((b.next, name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let mut buckets = [0u32; 10];
        for i in 0..5000 {
            let o = offset(&format!("sim-node-{i}"), interval);
            assert!(o < interval);
            buckets[o.as_secs() as usize] += 1;
        }
        // 500 expected per second of the interval.
        assert!(
            buckets.iter().all(|&b| (400..600).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn schedule_pause_resume_remove() {
        let now = Instant::now();
        let mut hb = Heartbeats::new(Duration::from_secs(10), Duration::from_secs(300), 40);
        hb.add("a", None, false, now);
        hb.add("b", None, true, now);
        assert_eq!(hb.len(), 2);
        let first = hb.next_deadline().unwrap();
        assert!(first >= now && first < now + Duration::from_secs(10));
        // Only "a" is scheduled.
        assert_eq!(hb.due.len(), 1);
        hb.set_paused("b", false, now);
        assert_eq!(hb.next_deadline(), Some(now), "resumed node beats at once");
        hb.set_paused("a", true, now);
        assert_eq!(hb.due.len(), 1);
        hb.remove("b");
        assert_eq!(hb.next_deadline(), None);
        // Status re-posts of nodes added together fall at different times.
        let mut spread = Heartbeats::new(Duration::from_secs(10), Duration::from_secs(300), 40);
        let later = now + Duration::from_secs(600);
        for i in 0..100 {
            spread.add(&format!("n{i}"), None, false, later);
        }
        let distinct: std::collections::BTreeSet<_> =
            spread.nodes.values().map(|b| b.last_status).collect();
        assert!(
            distinct.len() > 90,
            "{} distinct report times",
            distinct.len()
        );
        assert_eq!(hb.len(), 1);
    }

    #[test]
    fn a_measured_change_posts_the_status_at_once() {
        let now = Instant::now();
        let mut hb = Heartbeats::new(Duration::from_secs(10), Duration::from_secs(300), 40);
        hb.add("a", None, false, now);
        hb.set_facts("a", Some(NodeFacts::default()));
        let later = now + Duration::from_secs(3);
        hb.post_status_now("a", later);
        assert_eq!(hb.next_deadline(), Some(later));
        assert_eq!(hb.due.len(), 1, "rescheduled, not added twice");
        assert_eq!(hb.nodes["a"].last_status, None, "the status goes with it");
        // A paused node stays silent.
        hb.set_paused("a", true, later);
        hb.post_status_now("a", later);
        assert_eq!(hb.next_deadline(), None);
    }
}

//! Pods held at Permit (upstream's waiting pods): when a Permit plugin
//! answers Wait, the pod stays assumed on its node but is not bound until
//! every waiting plugin allows it; a rejection or the earliest timeout
//! sends it back to the queue (after Unreserve). Plugins decide through
//! the [`WaitingPods`] handle (e.g. a gang plugin allowing its group once
//! all members are reserved); the scheduler loop owns the [`PermitGate`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Upstream's longest Permit wait.
pub const MAX_PERMIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A plugin's decision about a waiting pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        uid: String,
        plugin: &'static str,
    },
    Reject {
        uid: String,
        plugin: &'static str,
        message: String,
    },
}

/// What plugins see: which pods wait, and a way to allow or reject them.
#[derive(Clone, Default)]
pub struct WaitingPods {
    uids: Arc<Mutex<HashSet<String>>>,
    tx: Arc<Mutex<Option<mpsc::UnboundedSender<Decision>>>>,
}

impl WaitingPods {
    /// Connects the handle to the scheduler loop.
    pub fn connect(&self) -> mpsc::UnboundedReceiver<Decision> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut t) = self.tx.lock() {
            *t = Some(tx);
        }
        rx
    }

    /// Whether the pod is waiting at Permit.
    pub fn is_waiting(&self, uid: &str) -> bool {
        self.uids.lock().is_ok_and(|u| u.contains(uid))
    }

    fn send(&self, d: Decision) {
        if let Ok(t) = self.tx.lock() {
            if let Some(tx) = t.as_ref() {
                let _ = tx.send(d);
            }
        }
    }

    /// `plugin` allows the pod.
    pub fn allow(&self, uid: &str, plugin: &'static str) {
        self.send(Decision::Allow {
            uid: uid.to_string(),
            plugin,
        });
    }

    /// `plugin` rejects the pod.
    pub fn reject(&self, uid: &str, plugin: &'static str, message: &str) {
        self.send(Decision::Reject {
            uid: uid.to_string(),
            plugin,
            message: message.to_string(),
        });
    }

    fn set(&self, uid: &str, waiting: bool) {
        if let Ok(mut u) = self.uids.lock() {
            if waiting {
                u.insert(uid.to_string());
            } else {
                u.remove(uid);
            }
        }
    }
}

/// One held pod and what it carries until it is bound or sent back.
pub struct Held<T> {
    pub item: T,
    /// Plugins that have not allowed it yet, with their timeouts.
    pending: HashMap<&'static str, Duration>,
    deadline: Instant,
}

/// Why a held pod leaves the gate without binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub message: String,
}

/// The scheduler loop's side: held pods by uid.
pub struct PermitGate<T> {
    held: HashMap<String, Held<T>>,
    handle: WaitingPods,
}

impl<T> PermitGate<T> {
    pub fn new(handle: WaitingPods) -> Self {
        PermitGate {
            held: HashMap::new(),
            handle,
        }
    }

    /// Holds `item` until each plugin in `waits` (with its timeout, capped
    /// at 15 minutes) allows it.
    pub fn hold(&mut self, uid: &str, item: T, waits: Vec<(&'static str, Duration)>, now: Instant) {
        let pending: HashMap<&'static str, Duration> = waits
            .into_iter()
            .map(|(p, t)| (p, t.min(MAX_PERMIT_TIMEOUT)))
            .collect();
        let shortest = pending.values().min().copied().unwrap_or_default();
        self.handle.set(uid, true);
        self.held.insert(
            uid.to_string(),
            Held {
                item,
                pending,
                deadline: now + shortest,
            },
        );
    }

    /// Applies a decision: `Ok(Some(item))` when the pod may now bind,
    /// `Err((item, why))` when it was rejected, `Ok(None)` otherwise
    /// (still waiting, or not held).
    pub fn decide(&mut self, d: Decision) -> Result<Option<T>, (T, Rejection)> {
        match d {
            Decision::Allow { uid, plugin } => {
                let Some(h) = self.held.get_mut(&uid) else {
                    return Ok(None);
                };
                h.pending.remove(plugin);
                if !h.pending.is_empty() {
                    return Ok(None);
                }
                Ok(self.release(&uid).map(|h| h.item))
            }
            Decision::Reject {
                uid,
                plugin,
                message,
            } => match self.release(&uid) {
                Some(h) => Err((h.item, Rejection { plugin, message })),
                None => Ok(None),
            },
        }
    }

    fn release(&mut self, uid: &str) -> Option<Held<T>> {
        self.handle.set(uid, false);
        self.held.remove(uid)
    }

    /// Removes a held pod (e.g. deleted meanwhile).
    pub fn remove(&mut self, uid: &str) -> Option<T> {
        self.release(uid).map(|h| h.item)
    }

    /// The earliest deadline of a held pod.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.values().map(|h| h.deadline).min()
    }

    /// Pods whose wait has timed out, with upstream's message naming the
    /// plugin they waited for.
    pub fn expired(&mut self, now: Instant) -> Vec<(T, Rejection)> {
        let uids: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(u, _)| u.clone())
            .collect();
        let mut out = Vec::new();
        for uid in uids {
            if let Some(h) = self.release(&uid) {
                let (plugin, wait) = h
                    .pending
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(p, t)| (*p, *t))
                    .unwrap_or(("", Duration::ZERO));
                let message =
                    format!("rejected due to timeout after waiting {wait:?} at plugin {plugin}");
                out.push((h.item, Rejection { plugin, message }));
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bound_once_every_waiting_plugin_allows() {
        let handle = WaitingPods::default();
        let mut rx = handle.connect();
        let mut gate = PermitGate::new(handle.clone());
        let now = Instant::now();
        gate.hold(
            "u1",
            "pod-1",
            vec![("A", Duration::from_secs(5)), ("B", Duration::from_secs(9))],
            now,
        );
        assert!(handle.is_waiting("u1"));
        assert_eq!(gate.next_deadline(), Some(now + Duration::from_secs(5)));
        handle.allow("u1", "A");
        let d = rx.recv().await.unwrap();
        assert_eq!(gate.decide(d), Ok(None), "B still waits");
        handle.allow("u1", "B");
        let d = rx.recv().await.unwrap();
        assert_eq!(gate.decide(d), Ok(Some("pod-1")));
        assert!(!handle.is_waiting("u1"));
        assert!(gate.is_empty());
        // Decisions about pods no longer held change nothing.
        assert_eq!(
            gate.decide(Decision::Allow {
                uid: "u1".into(),
                plugin: "A"
            }),
            Ok(None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rejections_and_timeouts_send_pods_back() {
        let handle = WaitingPods::default();
        let mut gate = PermitGate::new(handle.clone());
        let now = Instant::now();
        gate.hold("u1", 1, vec![("A", Duration::from_secs(5))], now);
        gate.hold("u2", 2, vec![("A", Duration::from_secs(30 * 60))], now);
        let r = gate.decide(Decision::Reject {
            uid: "u1".into(),
            plugin: "A",
            message: "no quorum".into(),
        });
        assert_eq!(
            r,
            Err((
                1,
                Rejection {
                    plugin: "A",
                    message: "no quorum".into()
                }
            ))
        );
        // Timeouts are capped at 15 minutes.
        assert!(gate.expired(now + Duration::from_secs(899)).is_empty());
        let out = gate.expired(now + MAX_PERMIT_TIMEOUT);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 2);
        assert_eq!(
            out[0].1.message,
            "rejected due to timeout after waiting 900s at plugin A"
        );
        assert!(!handle.is_waiting("u2"));
        assert_eq!(gate.next_deadline(), None);
        gate.hold("u3", 3, vec![("A", Duration::from_secs(1))], now);
        assert_eq!(gate.remove("u3"), Some(3));
        assert_eq!(gate.len(), 0);
    }
}

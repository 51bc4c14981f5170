//! Measured node conditions shared between the real agent's housekeeping
//! (which measures memory and disk against the eviction thresholds) and the
//! heartbeat (which posts them in the node status). A change wakes the
//! engine so the status is posted at once instead of at the next report.

use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;

/// A pressure condition: whether it holds and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub pressure: bool,
    /// The condition's lastTransitionTime.
    pub since: Timestamp,
}

/// The measured conditions; `None` until first measured (reported as no
/// pressure since the node became ready).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    pub memory: Option<Pressure>,
    pub disk: Option<Pressure>,
}

#[derive(Default)]
struct Inner {
    conditions: Mutex<Conditions>,
    changed: Notify,
}

/// The shared handle; cheap to clone.
#[derive(Clone, Default)]
pub struct NodeFacts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NodeFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeFacts").field(&self.get()).finish()
    }
}

impl NodeFacts {
    /// The current conditions.
    pub fn get(&self) -> Conditions {
        *self
            .inner
            .conditions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `c`; wakes [`NodeFacts::changed`] if the pressure changed.
    pub fn set(&self, c: Conditions) {
        let old = std::mem::replace(
            &mut *self
                .inner
                .conditions
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            c,
        );
        let flag = |p: Option<Pressure>| p.map(|p| p.pressure);
        if flag(old.memory) != flag(c.memory) || flag(old.disk) != flag(c.disk) {
            self.inner.changed.notify_one();
        }
    }

    /// Resolves after the next change (or a change not yet waited for).
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_a_later_waiter() {
        let f = NodeFacts::default();
        let t = Timestamp::UNIX_EPOCH;
        let on = Pressure {
            pressure: true,
            since: t,
        };
        f.set(Conditions {
            memory: Some(on),
            disk: None,
        });
        // The change happened before anyone waited: the permit is kept.
        f.changed().await;
        assert_eq!(f.get().memory, Some(on));
        // Same pressure again: no wake-up pending.
        f.set(Conditions {
            memory: Some(on),
            disk: None,
        });
        use futures::FutureExt;
        assert!(f.changed().now_or_never().is_none());
    }
}

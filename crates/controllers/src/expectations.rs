//! Creation/deletion expectations (client-go's ControllerExpectations): a
//! controller that just created or deleted N objects waits until its
//! informer has seen all N before it acts on the owner again, so that a
//! stale cache never makes it create or delete twice. Expectations lapse
//! after five minutes, in case a watch event was lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long an unmet expectation holds the owner back.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Expectation {
    adds: i64,
    dels: i64,
    set_at: Instant,
}

/// Expectations by owner key.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `adds` creations and `dels` deletions are on their way.
    pub fn expect(&self, key: &str, adds: usize, dels: usize) {
        self.lock().insert(
            key.to_string(),
            Expectation {
                adds: adds as i64,
                dels: dels as i64,
                set_at: Instant::now(),
            },
        );
    }

    /// An expected creation was seen by the informer (or its call failed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// An expected deletion happened (or its call failed).
    pub fn deletion_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.dels -= 1;
        }
    }

    /// Whether the owner may be acted on: nothing expected, everything
    /// expected seen, or the expectation lapsed.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.dels <= 0) || e.set_at.elapsed() > EXPECTATION_TTL,
        }
    }

    /// Forgets the owner (it was deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn satisfied_once_everything_is_observed_or_after_the_ttl() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a"));
        e.expect("ns/a", 2, 1);
        assert!(!e.satisfied("ns/a"));
        e.creation_observed("ns/a");
        e.creation_observed("ns/a");
        assert!(!e.satisfied("ns/a"));
        e.deletion_observed("ns/a");
        assert!(e.satisfied("ns/a"));
        e.expect("ns/a", 1, 0);
        assert!(!e.satisfied("ns/a"));
        tokio::time::advance(EXPECTATION_TTL + Duration::from_secs(1)).await;
        assert!(e.satisfied("ns/a"));
        e.expect("ns/b", 1, 0);
        e.forget("ns/b");
        assert!(e.satisfied("ns/b"));
    }
}

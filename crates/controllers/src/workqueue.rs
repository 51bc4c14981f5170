//! A work queue with client-go's semantics: a key is queued at most once
//! however often it is added; a key being processed is not handed to a
//! second worker, and if it was added meanwhile it is queued again when the
//! first worker is done; failures are retried with per-key exponential
//! backoff (5 ms doubling up to 1000 s, client-go's default controller rate
//! limiter), and `forget` resets the backoff after a success.
//!
//! It reports upstream's workqueue metrics (`workqueue_depth`,
//! `workqueue_adds_total`, `workqueue_retries_total`,
//! `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`)
//! labelled with the controller's name.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{ControllerMetrics, QueueMetrics};

/// The first retry delay of a failing key.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    queued_at: HashMap<String, Instant>,
    shut_down: bool,
}

/// A de-duplicating, rate-limited queue of object keys (`namespace/name`,
/// or `name` for cluster-scoped objects).
pub struct WorkQueue {
    name: String,
    inner: Mutex<Inner>,
    notify: Notify,
    metrics: QueueMetrics,
}

impl WorkQueue {
    /// An empty queue reporting its metrics under `name`.
    pub fn new(name: &str, metrics: &ControllerMetrics) -> Arc<WorkQueue> {
        Arc::new(WorkQueue {
            name: name.to_string(),
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            metrics: metrics.queue(name),
        })
    }

    /// The controller's name the queue reports under.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is queued already.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut q = self.lock();
        if q.shut_down || q.dirty.contains(&key) {
            return;
        }
        self.metrics.adds.inc();
        q.dirty.insert(key.clone());
        if q.processing.contains(&key) {
            return;
        }
        q.queued_at.insert(key.clone(), Instant::now());
        q.queue.push_back(key);
        self.metrics.depth.set(q.queue.len() as i64);
        drop(q);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(key);
        });
    }

    /// Queues `key` after its backoff, which doubles with each failure.
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let delay = {
            let mut q = self.lock();
            let n = q.failures.entry(key.clone()).or_insert(0);
            let d = backoff(*n);
            *n = n.saturating_add(1);
            d
        };
        self.metrics.retries.inc();
        self.add_after(key, delay);
    }

    /// Counts a failed reconcile in the controller's error metric.
    pub fn record_error(&self) {
        self.metrics.errors.inc();
    }

    /// How many times `key` failed since it was last forgotten.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Resets `key`'s backoff.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The next key to process; waits while the queue is empty. `None`
    /// once the queue is shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut q = self.lock();
                if let Some(key) = q.queue.pop_front() {
                    q.dirty.remove(&key);
                    q.processing.insert(key.clone());
                    if let Some(t) = q.queued_at.remove(&key) {
                        self.metrics
                            .queue_duration
                            .observe(t.elapsed().as_secs_f64());
                    }
                    self.metrics.depth.set(q.queue.len() as i64);
                    return Some(key);
                }
                if q.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; queues it again if it was added meanwhile.
    pub fn done(&self, key: &str, took: Duration) {
        self.metrics.work_duration.observe(took.as_secs_f64());
        let mut q = self.lock();
        q.processing.remove(key);
        if q.dirty.contains(key) {
            q.queued_at.insert(key.to_string(), Instant::now());
            q.queue.push_back(key.to_string());
            self.metrics.depth.set(q.queue.len() as i64);
            drop(q);
            self.notify.notify_one();
        }
    }

    /// How many keys wait to be processed.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys once the queue is drained.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

/// The delay before the retry after `failures` earlier failures.
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u64.checked_shl(failures.min(63)).unwrap_or(u64::MAX);
    BASE_DELAY
        .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WorkQueue> {
        WorkQueue::new("test", &ControllerMetrics::new())
    }

    #[tokio::test]
    async fn a_key_is_queued_once() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert_eq!(q.get().await.as_deref(), Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_comes_back_after_done() {
        let q = queue();
        q.add("a");
        let k = q.get().await.unwrap();
        q.add("a");
        // Not handed to a second worker while the first holds it.
        assert!(q.is_empty());
        q.done(&k, Duration::ZERO);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.done("a", Duration::ZERO);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn get_waits_for_an_add() {
        let q = queue();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.get().await });
        tokio::task::yield_now().await;
        q.add("x");
        assert_eq!(waiter.await.unwrap().as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn shut_down_ends_get() {
        let q = queue();
        q.shut_down();
        assert_eq!(q.get().await, None);
        q.add("late");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_forget_resets() {
        let q = queue();
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.failures("a"), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.forget("a");
        assert_eq!(q.failures("a"), 0);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(10), Duration::from_millis(5120));
        assert_eq!(backoff(30), MAX_DELAY);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }
}

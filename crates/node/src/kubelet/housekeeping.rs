//! The real agent's periodic housekeeping (every `interval`, ~10 s):
//! measure memory and disk against the hard eviction thresholds and publish
//! MemoryPressure/DiskPressure ([`crate::facts::NodeFacts`]), refresh the
//! CPU samples of the Summary API, and garbage-collect images when the
//! image file system is used above `--image-gc-high-threshold` (down to the
//! low threshold), never removing an image a container (running or not yet
//! removed) was made from, nor one pulled or used within the minimum age
//! (`--minimum-image-ttl-duration`, 2 min by default, as upstream).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rkube_container::{Containers, Rootfs};
use rkube_image::{GcPolicy, ImageStore};

use super::hostfacts::HostFacts;
use super::pressure::{met, Observed, PressureTracker};
use super::reserved::Threshold;
use super::stats::StatsCollector;
use crate::facts::NodeFacts;

/// Why a round of housekeeping could not measure.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    #[error("measuring the host: {0}")]
    Facts(#[from] super::hostfacts::FactsError),
    #[error("image gc: {0}")]
    Images(#[from] rkube_image::ImageError),
    #[error("listing containers: {0}")]
    Containers(#[from] rkube_container::ContainerError),
}

/// Image garbage collection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcConfig {
    /// Start above this share of the image file system in use (percent).
    pub high_percent: u8,
    /// Free down to this share.
    pub low_percent: u8,
    /// Images pulled or used more recently are kept.
    pub minimum_age: Duration,
}

impl Default for ImageGcConfig {
    fn default() -> Self {
        ImageGcConfig {
            high_percent: 85,
            low_percent: 80,
            minimum_age: Duration::from_secs(120),
        }
    }
}

/// The images (by ID) whose layers some container's rootfs is made of.
pub fn images_in_use(
    images: &[(String, Vec<PathBuf>)],
    containers: &[Vec<PathBuf>],
) -> HashSet<String> {
    images
        .iter()
        .filter(|(_, layers)| {
            !layers.is_empty()
                && containers
                    .iter()
                    .any(|rootfs| layers.iter().all(|l| rootfs.contains(l)))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether the file system is used at or above `percent`.
pub fn above(capacity: u64, available: u64, percent: u8) -> bool {
    let used = capacity.saturating_sub(available);
    capacity > 0 && u128::from(used) * 100 >= u128::from(capacity) * u128::from(percent)
}

/// The housekeeping of one real agent.
pub struct Housekeeping {
    pub facts: NodeFacts,
    pub host: Arc<dyn HostFacts>,
    pub thresholds: Vec<Threshold>,
    pub root_dir: PathBuf,
    pub images: ImageStore,
    pub containers: Containers,
    pub stats: Arc<StatsCollector>,
    pub image_gc: ImageGcConfig,
    tracker: PressureTracker,
}

impl Housekeeping {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        facts: NodeFacts,
        host: Arc<dyn HostFacts>,
        thresholds: Vec<Threshold>,
        transition_period: Duration,
        root_dir: PathBuf,
        images: ImageStore,
        containers: Containers,
        stats: Arc<StatsCollector>,
        image_gc: ImageGcConfig,
    ) -> Self {
        Housekeeping {
            facts,
            host,
            thresholds,
            root_dir,
            images,
            containers,
            stats,
            image_gc,
            tracker: PressureTracker::new(transition_period, Timestamp::now()),
        }
    }

    /// Measures once and publishes the pressure conditions.
    #[tracing::instrument(skip_all)]
    pub fn measure(&mut self) -> Result<Observed, HousekeepingError> {
        let mem = self.host.meminfo()?;
        let o = Observed {
            memory_available: mem.available(),
            memory_capacity: mem.total,
            nodefs: self.host.fs(&self.root_dir)?,
            imagefs: self.host.fs(self.images.root())?,
        };
        let signals = met(&self.thresholds, &o);
        if self.tracker.observe(&signals, Timestamp::now()) {
            let c = self.tracker.conditions();
            tracing::info!(
                memory_pressure = c.memory.is_some_and(|p| p.pressure),
                disk_pressure = c.disk.is_some_and(|p| p.pressure),
                signals = ?signals.iter().map(|s| s.name()).collect::<Vec<_>>(),
                memory_available = o.memory_available,
                nodefs_available = o.nodefs.available,
                imagefs_available = o.imagefs.available,
                "node pressure changed"
            );
        }
        self.facts.set(self.tracker.conditions());
        Ok(o)
    }

    /// Removes unused images if the image file system is above the high
    /// threshold.
    #[tracing::instrument(skip_all)]
    pub async fn image_gc(
        &self,
        imagefs_capacity: u64,
        imagefs_available: u64,
    ) -> Result<(), HousekeepingError> {
        if !above(
            imagefs_capacity,
            imagefs_available,
            self.image_gc.high_percent,
        ) {
            return Ok(());
        }
        let store = self.images.clone();
        let containers = self.containers.clone();
        let in_use = tokio::task::spawn_blocking(move || in_use_now(&store, &containers))
            .await
            .unwrap_or_else(|_| Ok(HashSet::new()))?;
        let report = self
            .images
            .gc_min_age(
                &in_use,
                GcPolicy::Thresholds {
                    high_percent: self.image_gc.high_percent,
                    low_percent: self.image_gc.low_percent,
                },
                self.image_gc.minimum_age,
            )
            .await?;
        tracing::info!(
            removed = ?report.removed_images,
            freed_bytes = report.freed_image_bytes,
            blobs = report.removed_blobs,
            layers = report.removed_layers,
            "image garbage collection above the high threshold"
        );
        Ok(())
    }

    /// Runs forever, one round every `interval`.
    pub async fn run(mut self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.measure() {
                Ok(o) => {
                    if let Err(e) = self.image_gc(o.imagefs.capacity, o.imagefs.available).await {
                        tracing::warn!(error = %e, "image garbage collection failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "housekeeping measurement failed"),
            }
            let stats = self.stats.clone();
            let _ = tokio::task::spawn_blocking(move || stats.summary(Timestamp::now())).await;
        }
    }
}

/// Images in use by containers. (Images too young to collect are left to
/// [`ImageStore::gc_min_age`]: it judges age under its exclusion of pulls,
/// so an image pulled since this list was made is kept.)
fn in_use_now(
    store: &ImageStore,
    containers: &Containers,
) -> Result<HashSet<String>, HousekeepingError> {
    let images = store.list()?;
    let rootfs: Vec<Vec<PathBuf>> = containers
        .list()?
        .iter()
        .filter_map(|c| match containers.spec(&c.id).ok()?.rootfs {
            Rootfs::Layers(l) => Some(l),
            _ => None,
        })
        .collect();
    let layers: Vec<(String, Vec<PathBuf>)> = images
        .iter()
        .map(|i| (i.id.clone(), i.layer_dirs.clone()))
        .collect();
    Ok(images_in_use(&layers, &rootfs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_whose_layers_a_container_uses_are_in_use() {
        let p = |s: &str| PathBuf::from(s);
        let images = vec![
            ("busybox".to_string(), vec![p("/l/a")]),
            ("app".to_string(), vec![p("/l/a"), p("/l/b")]),
            ("other".to_string(), vec![p("/l/c")]),
            ("empty".to_string(), vec![]),
        ];
        // A container of "app" (top layer first, as rootfs lists them).
        let containers = vec![vec![p("/l/b"), p("/l/a")]];
        let used = images_in_use(&images, &containers);
        assert!(used.contains("app"));
        assert!(used.contains("busybox"), "its only layer is in use too");
        assert!(!used.contains("other"));
        assert!(!used.contains("empty"));
        assert!(images_in_use(&images, &[]).is_empty());
    }

    #[test]
    fn threshold_percentages() {
        assert!(!above(100, 20, 85));
        assert!(above(100, 15, 85));
        assert!(above(100, 0, 85));
        assert!(!above(0, 0, 85));
        assert!(above(u64::MAX, 0, 100));
    }
}

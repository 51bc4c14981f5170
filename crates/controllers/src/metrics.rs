//! The controller manager's Prometheus metrics: client-go's workqueue
//! metrics under upstream's names, labelled `name=<controller>`
//! (`workqueue_depth`, `workqueue_adds_total`, `workqueue_retries_total`,
//! `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`),
//! and per-controller reconcile errors
//! (`rkube_controller_reconcile_errors_total{name}`).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub name: String,
}

/// One queue's handles into the families.
#[derive(Clone)]
pub struct QueueMetrics {
    pub depth: Gauge,
    pub adds: Counter,
    pub retries: Counter,
    pub errors: Counter,
    pub queue_duration: Histogram,
    pub work_duration: Histogram,
}

/// All controller metrics, in their own registry.
pub struct ControllerMetrics {
    registry: Registry,
    depth: Family<NameLabels, Gauge>,
    adds: Family<NameLabels, Counter>,
    retries: Family<NameLabels, Counter>,
    errors: Family<NameLabels, Counter>,
    queue_duration: Family<NameLabels, Histogram>,
    work_duration: Family<NameLabels, Histogram>,
}

fn duration_histogram() -> Histogram {
    // client-go: exponential from 1e-8 s, factor 10, 10 buckets.
    Histogram::new(exponential_buckets(1e-8, 10.0, 10))
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics::new()
    }
}

impl ControllerMetrics {
    pub fn new() -> ControllerMetrics {
        let mut registry = Registry::default();
        let depth = Family::<NameLabels, Gauge>::default();
        let adds = Family::<NameLabels, Counter>::default();
        let retries = Family::<NameLabels, Counter>::default();
        let errors = Family::<NameLabels, Counter>::default();
        let queue_duration = Family::<NameLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let work_duration = Family::<NameLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            work_duration.clone(),
        );
        registry.register(
            "rkube_controller_reconcile_errors",
            "Total number of reconciles that ended in an error, by controller",
            errors.clone(),
        );
        ControllerMetrics {
            registry,
            depth,
            adds,
            retries,
            errors,
            queue_duration,
            work_duration,
        }
    }

    /// The handles of the queue called `name` (created at zero).
    pub fn queue(&self, name: &str) -> QueueMetrics {
        let l = NameLabels {
            name: name.to_string(),
        };
        QueueMetrics {
            depth: self.depth.get_or_create(&l).clone(),
            adds: self.adds.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            errors: self.errors.get_or_create(&l).clone(),
            queue_duration: self.queue_duration.get_or_create(&l).clone(),
            work_duration: self.work_duration.get_or_create(&l).clone(),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_metrics_render_with_the_controller_name() {
        let m = ControllerMetrics::new();
        let q = m.queue("deployment");
        q.adds.inc();
        q.depth.set(3);
        q.errors.inc();
        let text = m.render();
        assert!(
            text.contains("workqueue_depth{name=\"deployment\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("workqueue_adds_total{name=\"deployment\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rkube_controller_reconcile_errors_total{name=\"deployment\"} 1"),
            "{text}"
        );
    }
}

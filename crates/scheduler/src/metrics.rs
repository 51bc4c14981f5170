//! The scheduler's Prometheus metrics, under upstream's names:
//! `scheduler_pending_pods{queue}`, `scheduler_schedule_attempts_total
//! {result,profile}`, `scheduler_scheduling_attempt_duration_seconds
//! {result,profile}`, `scheduler_framework_extension_point_duration_seconds
//! {extension_point,status,profile}`, `scheduler_plugin_execution_duration_seconds
//! {plugin,extension_point,status}` (sampled in one cycle of ten, as upstream
//! does) and the preemption counters.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PointLabels {
    pub extension_point: &'static str,
    pub status: &'static str,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: &'static str,
    pub extension_point: &'static str,
    pub status: &'static str,
}

/// All scheduler metrics, registered in their own registry.
pub struct SchedulerMetrics {
    registry: Registry,
    pub pending_pods: Family<QueueLabels, Gauge>,
    pub schedule_attempts: Family<ResultLabels, Counter>,
    pub attempt_duration: Family<ResultLabels, Histogram>,
    pub extension_point_duration: Family<PointLabels, Histogram>,
    pub plugin_duration: Family<PluginLabels, Histogram>,
    pub preemption_attempts: Counter,
    pub preemption_victims: Histogram,
}

fn attempt_histogram() -> Histogram {
    // Upstream: exponential from 1 ms, factor 2, 15 buckets.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn point_histogram() -> Histogram {
    // Upstream: exponential from 0.1 ms, factor 2, 12 buckets.
    Histogram::new(exponential_buckets(0.0001, 2.0, 12))
}

fn plugin_histogram() -> Histogram {
    // Upstream: exponential from 10 µs, factor 1.5, 20 buckets.
    Histogram::new(exponential_buckets(0.00001, 1.5, 20))
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics::new()
    }
}

impl SchedulerMetrics {
    pub fn new() -> SchedulerMetrics {
        let mut registry = Registry::default();
        let pending_pods = Family::<QueueLabels, Gauge>::default();
        let schedule_attempts = Family::<ResultLabels, Counter>::default();
        let attempt_duration = Family::<ResultLabels, Histogram>::new_with_constructor(
            attempt_histogram as fn() -> Histogram,
        );
        let extension_point_duration = Family::<PointLabels, Histogram>::new_with_constructor(
            point_histogram as fn() -> Histogram,
        );
        let plugin_duration = Family::<PluginLabels, Histogram>::new_with_constructor(
            plugin_histogram as fn() -> Histogram,
        );
        let preemption_attempts = Counter::default();
        let preemption_victims = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods; 'gated' is the number of unschedulable pods that are gated",
            pending_pods.clone(),
        );
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem",
            schedule_attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            attempt_duration.clone(),
        );
        registry.register(
            "scheduler_framework_extension_point_duration_seconds",
            "Latency for running all plugins of a specific extension point",
            extension_point_duration.clone(),
        );
        registry.register(
            "scheduler_plugin_execution_duration_seconds",
            "Duration for running a plugin at a specific extension point",
            plugin_duration.clone(),
        );
        registry.register(
            "scheduler_preemption_attempts",
            "Total preemption attempts in the cluster till now",
            preemption_attempts.clone(),
        );
        registry.register(
            "scheduler_preemption_victims",
            "Number of selected preemption victims",
            preemption_victims.clone(),
        );
        for queue in ["active", "backoff", "unschedulable", "gated"] {
            let _ = pending_pods.get_or_create(&QueueLabels { queue });
        }
        SchedulerMetrics {
            registry,
            pending_pods,
            schedule_attempts,
            attempt_duration,
            extension_point_duration,
            plugin_duration,
            preemption_attempts,
            preemption_victims,
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

    /// Sets the pending-pod gauges.
    pub fn set_pending(&self, active: usize, backoff: usize, unschedulable: usize, gated: usize) {
        for (queue, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
            ("gated", gated),
        ] {
            self.pending_pods
                .get_or_create(&QueueLabels { queue })
                .set(n as i64);
        }
    }

    /// One scheduling attempt's result and duration.
    pub fn attempt(&self, result: &'static str, profile: &str, seconds: f64) {
        let l = ResultLabels {
            result,
            profile: profile.to_string(),
        };
        self.schedule_attempts.get_or_create(&l).inc();
        self.attempt_duration.get_or_create(&l).observe(seconds);
    }

    /// One extension point's run.
    pub fn point(&self, point: &'static str, status: &'static str, profile: &str, seconds: f64) {
        self.extension_point_duration
            .get_or_create(&PointLabels {
                extension_point: point,
                status,
                profile: profile.to_string(),
            })
            .observe(seconds);
    }

    /// One plugin call (sampled cycles only).
    pub fn plugin(&self, plugin: &'static str, point: &'static str, status: &'static str, s: f64) {
        self.plugin_duration
            .get_or_create(&PluginLabels {
                plugin,
                extension_point: point,
                status,
            })
            .observe(s);
    }
}

/// Upstream's status label of a framework code.
pub fn status_label(code: crate::framework::Code) -> &'static str {
    use crate::framework::Code;
    match code {
        Code::Success => "Success",
        Code::Error => "Error",
        Code::Unschedulable => "Unschedulable",
        Code::UnschedulableAndUnresolvable => "UnschedulableAndUnresolvable",
        Code::Wait => "Wait",
        Code::Skip => "Skip",
        Code::Pending => "Pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstream_names() {
        let m = SchedulerMetrics::new();
        m.set_pending(3, 1, 2, 4);
        m.attempt("scheduled", "default-scheduler", 0.002);
        m.point("Filter", "Success", "default-scheduler", 0.0005);
        m.plugin("NodeResourcesFit", "Filter", "Success", 0.00001);
        let text = m.render();
        for want in [
            "scheduler_pending_pods{queue=\"active\"} 3",
            "scheduler_pending_pods{queue=\"gated\"} 4",
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1",
            "scheduler_scheduling_attempt_duration_seconds_count{result=\"scheduled\",profile=\"default-scheduler\"} 1",
            "scheduler_framework_extension_point_duration_seconds_bucket{le=",
            "scheduler_plugin_execution_duration_seconds_count{plugin=\"NodeResourcesFit\",extension_point=\"Filter\",status=\"Success\"} 1",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}

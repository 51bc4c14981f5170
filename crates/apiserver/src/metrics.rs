//! Prometheus metrics of the API server (`/metrics`): request counts and
//! latency histograms per verb and resource, under upstream's metric names.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub verb: String,
    pub resource: String,
}

/// Renders another component's metrics (e.g. the in-process scheduler's)
/// in the text format, to be served with the API server's.
pub type ExtraMetrics = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    /// Other in-process components' metrics, appended to /metrics.
    pub extra: Vec<ExtraMetrics>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    pub inflight_watches: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

impl Metrics {
    /// Metrics that also serve `extra` components' metrics.
    pub fn with_extra(extra: Vec<ExtraMetrics>) -> Self {
        Metrics {
            extra,
            ..Metrics::new()
        }
    }

    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let inflight_watches = Gauge::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out by verb, resource and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource",
            latency.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Number of open watch requests",
            inflight_watches.clone(),
        );
        Metrics {
            registry,
            extra: Vec::new(),
            requests,
            latency,
            inflight_watches,
        }
    }

    pub fn observe(&self, verb: &str, resource: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: code.to_string(),
            })
            .inc();
        if verb != "WATCH" {
            self.latency
                .get_or_create(&LatencyLabels {
                    verb: verb.to_string(),
                    resource: resource.to_string(),
                })
                .observe(seconds);
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        if self.extra.is_empty() {
            return s;
        }
        // One exposition: each part without its `# EOF`, then one at the end.
        const EOF: &str = "# EOF\n";
        let mut out = s.strip_suffix(EOF).unwrap_or(&s).to_string();
        for f in &self.extra {
            let part = f();
            out.push_str(part.strip_suffix(EOF).unwrap_or(&part));
        }
        out.push_str(EOF);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::new();
        m.observe("LIST", "pods", 200, 0.003);
        m.observe("LIST", "pods", 200, 0.004);
        let out = m.render();
        assert!(
            out.contains("apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"200\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("apiserver_request_duration_seconds_bucket"),
            "{out}"
        );
    }
}

//! Prometheus metrics, rendered at `GET /metrics` in the text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<Labels, Counter>,
    auth_failures: Family<Labels, Counter>,
    access_checks: Family<Labels, Counter>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("entitled");
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Authenticated webhook deliveries, by provider and outcome",
            deliveries.clone(),
        );
        let auth_failures = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_auth_failures",
            "Webhook requests refused for failed authentication (nothing stored), by provider",
            auth_failures.clone(),
        );
        let access_checks = Family::<Labels, Counter>::default();
        registry.register(
            "access_checks",
            "Access decisions answered, by result (entitled or denied) and reason",
            access_checks.clone(),
        );
        let requests =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method, route and status",
            requests.clone(),
        );
        Self {
            registry,
            deliveries,
            auth_failures,
            access_checks,
            requests,
        }
    }

    pub fn delivery(&self, provider: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    pub fn auth_failure(&self, provider: &str) {
        self.auth_failures
            .get_or_create(&vec![("provider", provider.to_owned())])
            .inc();
    }

    pub fn access_check(&self, entitled: bool, reason: &str) {
        let result = if entitled { "entitled" } else { "denied" };
        self.access_checks
            .get_or_create(&vec![
                ("result", result.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

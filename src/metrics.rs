//! Prometheus metrics, rendered at `GET /metrics` in the Prometheus text format
//! (0.0.4) by default and in OpenMetrics when a scraper asks for it. Every label
//! takes bounded values only, so no request can add a series.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::domain::access::Reason;

/// What an attempt's outcome is counted as in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    /// The receiver answered, not with a 2xx.
    Rejected,
    TimedOut,
    /// No answer: the connection could not be made or broke.
    Unreachable,
}

impl AttemptResult {
    pub const ALL: [Self; 4] = [
        Self::Delivered,
        Self::Rejected,
        Self::TimedOut,
        Self::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Rejected => "rejected",
            Self::TimedOut => "timed_out",
            Self::Unreachable => "unreachable",
        }
    }
}

/// Label sets are fixed-size arrays of static names and values: recording a
/// sample allocates nothing.
type Labels = [(&'static str, &'static str); 2];
type ProviderLabel = [(&'static str, &'static str); 1];
/// `method`, `route`; `status`.
type RequestLabels = ([(&'static str, &'static str); 2], [(&'static str, u16); 1]);

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<Labels, Counter>,
    auth_failures: Family<ProviderLabel, Counter>,
    /// One counter per reason, made up front: a check takes no lock to count.
    access_checks: Vec<Counter>,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// This instance among others in the process (tests make several), for
    /// the per-thread caches of request histograms.
    id: u64,
    group_commits: Counter,
    group_committed: Counter,
    /// Outbound attempts, one counter per result, made up front.
    outbound_attempts: Vec<Counter>,
    /// Outbound messages by status, as of the last scrape.
    outbound_messages: Vec<Gauge>,
    outbound_oldest_pending: Gauge<f64, AtomicU64>,
    event_streams: Gauge,
    /// Two scrapes at once must not both add the same difference.
    syncing: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::default()
}

/// Upper bounds of the latency buckets: 0.5 ms to ~16 s, then +Inf.
const LATENCY_BUCKETS: usize = 16;

/// A latency histogram that records without a lock: two atomic adds, the
/// bucket's and the sum's (prometheus-client's takes a write lock per
/// observation, which every request would take).
#[derive(Debug, Clone, Default)]
pub struct Histogram(std::sync::Arc<HistogramInner>);

#[derive(Debug, Default)]
struct HistogramInner {
    /// Per bucket, not cumulative; the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS + 1],
    sum_nanos: AtomicU64,
}

fn latency_bounds() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, LATENCY_BUCKETS as u16).chain([f64::MAX])
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let bucket = latency_bounds()
            .position(|bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS);
        self.0.buckets[bucket].fetch_add(1, Relaxed);
        self.0
            .sum_nanos
            .fetch_add((seconds.max(0.0) * 1e9) as u64, Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = latency_bounds()
            .zip(&self.0.buckets)
            .map(|(bound, n)| (bound, n.load(Relaxed)))
            .collect();
        // The count is what the buckets add up to.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
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
        let auth_failures = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "webhook_auth_failures",
            "Webhook requests refused for failed authentication (nothing stored), by provider",
            auth_failures.clone(),
        );
        let checks = Family::<Labels, Counter>::default();
        registry.register(
            "access_checks",
            "Access decisions answered, by result (entitled or denied) and reason",
            checks.clone(),
        );
        let access_checks = Reason::ALL
            .iter()
            .map(|reason| {
                let result = if reason.grants() {
                    "entitled"
                } else {
                    "denied"
                };
                checks
                    .get_or_create(&[("result", result), ("reason", reason.as_str())])
                    .clone()
            })
            .collect();
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method, route and status",
            requests.clone(),
        );
        let group_commits = Counter::default();
        registry.register(
            "group_commits",
            "Transactions that committed a batch of webhook deliveries",
            group_commits.clone(),
        );
        let group_committed = Counter::default();
        registry.register(
            "group_committed_deliveries",
            "Webhook deliveries committed in group commits",
            group_committed.clone(),
        );
        let attempts = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "outbound_attempts",
            "Attempts at sending outbound webhook messages, by result \
             (delivered, rejected: a non-2xx answer, timed_out, unreachable)",
            attempts.clone(),
        );
        let outbound_attempts = AttemptResult::ALL
            .iter()
            .map(|r| attempts.get_or_create(&[("result", r.as_str())]).clone())
            .collect();
        let messages = Family::<ProviderLabel, Gauge>::default();
        registry.register(
            "outbound_messages",
            "Outbound webhook messages kept, by status",
            messages.clone(),
        );
        let outbound_messages = crate::store::MessageStatus::ALL
            .iter()
            .map(|s| messages.get_or_create(&[("status", s.as_str())]).clone())
            .collect();
        let outbound_oldest_pending = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbound_oldest_pending_age_seconds",
            "Age of the oldest pending outbound webhook message (0: none pending)",
            outbound_oldest_pending.clone(),
        );
        let event_streams = Gauge::default();
        registry.register(
            "event_streams_open",
            "Server-Sent Event streams of GET /v1/events open on this replica",
            event_streams.clone(),
        );
        Self {
            registry,
            outbound_attempts,
            outbound_messages,
            outbound_oldest_pending,
            event_streams,
            group_commits,
            group_committed,
            syncing: std::sync::Mutex::new(()),
            deliveries,
            auth_failures,
            access_checks,
            requests,
            id: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn delivery(&self, provider: &'static str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&[("provider", provider), ("outcome", outcome)])
            .inc();
    }

    pub fn auth_failure(&self, provider: &'static str) {
        self.auth_failures
            .get_or_create(&[("provider", provider)])
            .inc();
    }

    pub fn access_check(&self, reason: Reason) {
        if let Some(counter) = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.access_checks.get(i))
        {
            counter.inc();
        }
    }

    /// One request's latency. The histogram of each (method, route, status)
    /// is looked up in the family once per thread, then kept in a per-thread
    /// cache: no lock is taken per request.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = bounded_method(method);
        REQUEST_HISTOGRAMS.with_borrow_mut(|cache| {
            let by_route = cache.entry((self.id, method, status)).or_default();
            if let Some(histogram) = by_route.get(route) {
                histogram.observe(seconds);
                return;
            }
            let labels = (
                [("method", method), ("route", route_label(route))],
                [("status", status)],
            );
            let histogram = self.requests.get_or_create(&labels).clone();
            histogram.observe(seconds);
            by_route.insert(route.into(), histogram);
        });
    }

    pub fn outbound_attempt(&self, result: AttemptResult) {
        if let Some(counter) = AttemptResult::ALL
            .iter()
            .position(|r| *r == result)
            .and_then(|i| self.outbound_attempts.get(i))
        {
            counter.inc();
        }
    }

    /// Sets the outbound gauges from the store's figures at `now`.
    pub fn outbound(&self, stats: &crate::store::OutboundStats, now: crate::domain::Instant) {
        for (gauge, n) in self.outbound_messages.iter().zip(stats.by_status) {
            gauge.set(n);
        }
        let age = stats
            .oldest_pending
            .map_or(0.0, |oldest| (now - oldest).as_seconds_f64().max(0.0));
        self.outbound_oldest_pending.set(age);
    }

    /// An event stream opened; the guard counts it closed when dropped.
    pub fn event_stream(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.event_streams.inc();
        StreamGuard(self.clone())
    }

    /// Brings the group-commit counters up to the store's figures.
    pub fn group_commits(&self, batches: u64, deliveries: u64) {
        let _one_at_a_time = self
            .syncing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.group_commits
            .inc_by(batches.saturating_sub(self.group_commits.get()));
        self.group_committed
            .inc_by(deliveries.saturating_sub(self.group_committed.get()));
    }

    /// The OpenMetrics exposition (`application/openmetrics-text`).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text exposition (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// One open event stream, counted until dropped.
#[derive(Debug)]
pub struct StreamGuard(std::sync::Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.event_streams.dec();
    }
}

static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Request histograms by (metrics instance, method, status), then route.
type HistogramCache = HashMap<(u64, &'static str, u16), HashMap<Box<str>, Histogram>>;

thread_local! {
    static REQUEST_HISTOGRAMS: std::cell::RefCell<HistogramCache> = Default::default();
}

/// Route templates as static label values. Routes are the router's own
/// templates (or `unmatched`), a bounded set: each is stored once for the
/// life of the process.
fn route_label(route: &str) -> &'static str {
    static ROUTES: std::sync::Mutex<Option<HashSet<&'static str>>> = std::sync::Mutex::new(None);
    let mut routes = ROUTES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let routes = routes.get_or_insert_with(HashSet::new);
    match routes.get(route) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(route.into());
            routes.insert(leaked);
            leaked
        }
    }
}

/// A request method as a label: the standard ones, else `other`.
fn bounded_method(method: &str) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method)
        .unwrap_or("other")
}

/// Rewrites OpenMetrics as the Prometheus text format 0.0.4. They differ in
/// what matters to Prometheus' text parser: a counter family's `# HELP` and
/// `# TYPE` name its `_total` samples, and there is no `# UNIT`, `_created` or
/// `# EOF`.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(line) => out.push_str(&line),
            None => {
                let sample = line.split(['{', ' ']).next().unwrap_or("");
                if !line.starts_with('#') && sample.ends_with("_created") {
                    continue;
                }
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_samples_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.delivery("zenofy", "applied");
        let text = metrics.render();
        assert!(
            text.contains("# HELP entitled_webhook_deliveries_total "),
            "{text}"
        );
        assert!(
            text.contains("# TYPE entitled_webhook_deliveries_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                "entitled_webhook_deliveries_total{provider=\"zenofy\",outcome=\"applied\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn every_family_has_help_in_both_formats() {
        let metrics = Metrics::new();
        metrics.delivery("zid", "noted");
        metrics.auth_failure("zid");
        metrics.access_check(Reason::Active);
        metrics.request("GET", "/healthz", 200, 0.001);
        for text in [metrics.render(), metrics.render_openmetrics()] {
            for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
                let name = line.split(' ').nth(2).unwrap();
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "{name} in {text}"
                );
            }
        }
    }

    #[test]
    fn a_made_up_method_is_counted_as_other() {
        let metrics = Metrics::new();
        metrics.request("BREW", "unmatched", 404, 0.001);
        metrics.request("GET", "unmatched", 404, 0.001);
        let text = metrics.render();
        assert!(text.contains("method=\"other\""), "{text}");
        assert!(!text.contains("BREW"), "{text}");
    }
}

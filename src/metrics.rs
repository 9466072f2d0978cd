//! Prometheus metrics, one registry per gateway process (kept across config reloads), encoded with
//! `prometheus-client`. Login outcomes are told apart here and in the logs only, never in responses.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// A route name as a cheap-to-clone label value.
pub type RouteName = Arc<String>;

/// Labels of `gateway_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: RouteName,
    pub method: &'static str,
    pub status: &'static str,
}

/// `1xx` … `5xx` for a status code.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A route label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: RouteName,
}

/// A `kind` or `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Labels of `gateway_logins_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 0.5 ms .. ~16 s: proxied requests sit at the low end, logins (password hashing) near 20-200 ms.
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16)
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub upstream_duration: Family<RouteLabels, Histogram>,
    pub upstream_errors: Family<KindLabels, Counter>,
    pub logins: Family<OutcomeLabels, Counter>,
    pub siteverify_duration: Histogram,
    pub siteverify_failures: Family<KindLabels, Counter>,
    pub hash_queue: Gauge,
    pub password_verifications: Counter,
    pub open_connections: Gauge,
    pub config_reloads: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route, method and status class",
            requests.clone(),
        );
        let request_duration_hist = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by route",
            request_duration_hist.clone(),
        );
        let upstream_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register(
            "upstream_duration_seconds",
            "Time the upstream took to send its response head, by route",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind (connect, connect_timeout, timeout, protocol)",
            upstream_errors.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by outcome (success, captcha_failed, bad_credentials, inactive, throttled, store_error, busy, bad_request)",
            logins.clone(),
        );
        let siteverify_duration = Histogram::new(latency_buckets());
        registry.register(
            "siteverify_duration_seconds",
            "Turnstile siteverify call latency",
            siteverify_duration.clone(),
        );
        let siteverify_failures = Family::<KindLabels, Counter>::default();
        registry.register(
            "siteverify_failures",
            "Turnstile verifications that did not pass, by kind",
            siteverify_failures.clone(),
        );
        let hash_queue = Gauge::default();
        registry.register(
            "hash_pool_queue",
            "Logins waiting for a password-hashing slot",
            hash_queue.clone(),
        );
        let password_verifications = Counter::default();
        registry.register(
            "password_verifications",
            "Password hashes verified (real or dummy); throttled logins are refused before this",
            password_verifications.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let config_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by outcome (ok, refused)",
            config_reloads.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_duration: request_duration_hist,
            upstream_duration,
            upstream_errors,
            logins,
            siteverify_duration,
            siteverify_failures,
            hash_queue,
            password_verifications,
            open_connections,
            config_reloads,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a login outcome.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Records one answered request.
    pub fn request(
        &self,
        route: &RouteName,
        method: &http::Method,
        status: http::StatusCode,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method_label(method),
                status: status_class(status),
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
    }
}

/// A bounded set of method labels, so arbitrary methods cannot grow the series count.
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

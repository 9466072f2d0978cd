//! Prometheus metrics, one registry per gateway process (kept across config reloads), encoded with
//! `prometheus-client`. Login outcomes are told apart here and in the logs only, never in responses.
//!
//! `/metrics` speaks two formats, chosen from the scraper's `Accept` (see [`Format::negotiate`]): OpenMetrics
//! 1.0 and the Prometheus text format 0.0.4. They differ in ways a parser notices: OpenMetrics names a
//! counter family without `_total` (`# TYPE x counter`, samples `x_total`) and ends with `# EOF`, while a
//! 0.0.4 parser expects the `# TYPE` line to name the sample itself; served under the wrong content type,
//! every counter reads as untyped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};
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
    CLASSES[class_index(status)]
}

/// A route label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: RouteName,
}

/// A route and one of its upstream targets (the target's configured URL).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub route: RouteName,
    pub target: RouteName,
}

/// A route, a target and a failure kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetErrorLabels {
    pub route: RouteName,
    pub target: RouteName,
    pub kind: &'static str,
}

/// A route and why a request was sent again.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub route: RouteName,
    pub reason: &'static str,
}

/// A `kind` or `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// An `operation` label (shared-store calls).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
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
    pub user_lookups: Counter,
    pub open_connections: Gauge,
    pub config_reloads: Family<OutcomeLabels, Counter>,
    /// Backend pools (issue 17): per-target state, traffic, failures, latency, and retries.
    pub targets: TargetMetrics,
    pub shared_errors: Family<OperationLabels, Counter>,
    pub shared_duration: Family<OperationLabels, Histogram>,
    pub shared_up: Gauge,
    pub shared_fallbacks: Family<OperationLabels, Counter>,
}

/// The per-target families of backend pools.
pub struct TargetMetrics {
    pub up: Family<TargetLabels, Gauge>,
    pub requests: Family<TargetLabels, Counter>,
    pub errors: Family<TargetErrorLabels, Counter>,
    pub duration: Family<TargetLabels, Histogram>,
    pub retries: Family<RetryLabels, Counter>,
}

impl TargetMetrics {
    fn register(registry: &mut Registry) -> TargetMetrics {
        let up = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "upstream_target_up",
            "1 while a pool target takes requests, 0 while its health check fails or it is ejected",
            up.clone(),
        );
        let requests = Family::<TargetLabels, Counter>::default();
        registry.register(
            "upstream_target_requests",
            "Attempts sent to a pool target (retries included)",
            requests.clone(),
        );
        let errors = Family::<TargetErrorLabels, Counter>::default();
        registry.register(
            "upstream_target_errors",
            "Failed attempts per pool target, by kind (connect, connect_timeout, timeout, protocol, status_5xx)",
            errors.clone(),
        );
        let duration = Family::<TargetLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register(
            "upstream_target_duration_seconds",
            "Time a pool target took to send its response head",
            duration.clone(),
        );
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Requests sent again to another target, by route and the first attempt's failure",
            retries.clone(),
        );
        TargetMetrics {
            up,
            requests,
            errors,
            duration,
            retries,
        }
    }
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
            "Login attempts by outcome (success, captcha_failed, bad_credentials, inactive, throttled, store_error, shared_store_error, busy, bad_request)",
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
        let user_lookups = Counter::default();
        registry.register(
            "user_store_lookups",
            "Users looked up in the user store (only after a captcha passed)",
            user_lookups.clone(),
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
        let targets = TargetMetrics::register(&mut registry);
        let shared_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "shared_store_errors",
            "Shared-store (Redis) calls that failed or timed out, by operation",
            shared_errors.clone(),
        );
        let shared_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            // 50 us .. ~0.8 s: a loopback Redis answers near the bottom, shared.timeout caps the top.
            (|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.00005, 2.0, 15,
                ))
            }) as fn() -> Histogram,
        );
        registry.register(
            "shared_store_duration_seconds",
            "Shared-store (Redis) round trip time, by operation",
            shared_duration.clone(),
        );
        let shared_up = Gauge::default();
        registry.register(
            "shared_store_up",
            "1 while the shared store (Redis) answers, 0 while it does not",
            shared_up.clone(),
        );
        let shared_fallbacks = Family::<OperationLabels, Counter>::default();
        registry.register(
            "shared_store_fallbacks",
            "Login steps served by this instance's own tables because the shared store failed (shared.on_failure = \"local\")",
            shared_fallbacks.clone(),
        );
        Arc::new(Metrics {
            registry,
            targets,
            requests,
            request_duration: request_duration_hist,
            upstream_duration,
            upstream_errors,
            logins,
            siteverify_duration,
            siteverify_failures,
            hash_queue,
            password_verifications,
            user_lookups,
            open_connections,
            config_reloads,
            shared_errors,
            shared_duration,
            shared_up,
            shared_fallbacks,
        })
    }

    /// Every metric, in the given exposition format.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            // prometheus-client's own 0.0.4 encoder (since 0.26): `_total` in HELP/TYPE, no `# EOF`, no
            // `_created`, no exemplars, info as gauge, unknown as untyped.
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
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

/// The method labels: a bounded set, so arbitrary methods cannot grow the series count.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER",
];

/// The status classes, in the order of [`class_index`].
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index of a method's label in `METHODS`.
fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::PUT => 2,
        http::Method::DELETE => 3,
        http::Method::PATCH => 4,
        http::Method::HEAD => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Index of a status's class in `CLASSES`.
fn class_index(status: http::StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

/// A bounded set of method labels, so arbitrary methods cannot grow the series count.
pub fn method_label(m: &http::Method) -> &'static str {
    METHODS[method_index(m)]
}

/// One route's series, each looked up in its family on first use and then kept: a proxied request then
/// neither hashes its labels (SipHash over the route name) nor takes the families' locks. The families never
/// drop a series, so a kept handle and the family's entry stay the same metric.
pub struct RouteMetrics {
    route: RouteName,
    requests: [[OnceLock<Counter>; CLASSES.len()]; METHODS.len()],
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// Nothing resolved yet: series appear in `/metrics` on first use, as with `Metrics::request`.
    pub fn new(route: RouteName) -> RouteMetrics {
        RouteMetrics {
            route,
            requests: Default::default(),
            request_duration: OnceLock::new(),
            upstream_duration: OnceLock::new(),
        }
    }

    /// Records one answered request of this route.
    pub fn request(
        &self,
        metrics: &Metrics,
        method: &http::Method,
        status: http::StatusCode,
        took: Duration,
    ) {
        let (m, c) = (method_index(method), class_index(status));
        self.requests[m][c]
            .get_or_init(|| {
                metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        route: self.route.clone(),
                        method: METHODS[m],
                        status: CLASSES[c],
                    })
                    .clone()
            })
            .inc();
        self.request_duration
            .get_or_init(|| {
                metrics
                    .request_duration
                    .get_or_create(&RouteLabels {
                        route: self.route.clone(),
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }

    /// Records how long this route's upstream took to answer.
    pub fn upstream(&self, metrics: &Metrics, took: Duration) {
        self.upstream_duration
            .get_or_init(|| {
                metrics
                    .upstream_duration
                    .get_or_create(&RouteLabels {
                        route: self.route.clone(),
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }
}

/// An exposition format `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: what any scraper understands, so the default.
    PrometheusText,
    /// OpenMetrics 1.0.0 text, for scrapers that ask for it.
    OpenMetrics,
}

/// Media type of OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text";

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format for the given `Accept` field values (RFC 9110 §12.5.1).
    ///
    /// OpenMetrics only when the client names `application/openmetrics-text` itself (a wildcard does not
    /// count: curl's `*/*` or a missing header gets the text format every tool reads), with a version we
    /// can serve (none, `1.0.0`, or `0.0.1`, which Prometheus lists as the same text format), a q above 0,
    /// and a q at least that of `text/plain`. Anything else, including an unparsable header, gets the text
    /// format rather than 406: a scrape should not fail over a header.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a http::HeaderValue>) -> Format {
        let mut openmetrics: f32 = 0.0;
        // Best q of `text/plain`, `text/*`, `*/*`: the most specific range present decides (§12.5.1).
        let mut text = [None::<f32>; 3];
        for value in accept {
            let Ok(value) = value.to_str() else { continue };
            for element in value.split(',') {
                let Some(range) = MediaRange::parse(element) else {
                    continue;
                };
                let slot = match range.essence.as_str() {
                    OPENMETRICS => {
                        if matches!(range.version.as_deref(), None | Some("1.0.0" | "0.0.1")) {
                            openmetrics = openmetrics.max(range.q);
                        }
                        continue;
                    }
                    "text/plain" if matches!(range.version.as_deref(), None | Some("0.0.4")) => 0,
                    "text/*" => 1,
                    "*/*" => 2,
                    _ => continue,
                };
                text[slot] = Some(text[slot].map_or(range.q, |q: f32| q.max(range.q)));
            }
        }
        let text = text.into_iter().flatten().next().unwrap_or(0.0);
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// One element of an `Accept` list, as far as negotiation needs it.
struct MediaRange {
    /// `type/subtype`, lower-cased.
    essence: String,
    /// The `version` parameter, unquoted.
    version: Option<String>,
    /// The weight, 1 when absent.
    q: f32,
}

impl MediaRange {
    /// None for an element that is not `type/subtype` or has an invalid `q` (it is then ignored).
    fn parse(element: &str) -> Option<MediaRange> {
        let mut parts = element.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if essence.split('/').count() != 2 || essence.split('/').any(str::is_empty) {
            return None;
        }
        let mut range = MediaRange {
            essence,
            version: None,
            q: 1.0,
        };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    range.q = value
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))?
                }
                "version" => range.version = Some(value.to_string()),
                _ => {}
            }
        }
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn route_series_kept_by_a_route_are_the_families_series() {
        let metrics = Metrics::new();
        let route = RouteMetrics::new(Arc::new("app".to_string()));
        for status in [200, 204, 404] {
            let status = http::StatusCode::from_u16(status).unwrap();
            route.request(
                &metrics,
                &http::Method::GET,
                status,
                Duration::from_millis(3),
            );
        }
        route.request(
            &metrics,
            &http::Method::from_bytes(b"BREW").unwrap(),
            http::StatusCode::BAD_GATEWAY,
            Duration::from_millis(1),
        );
        route.upstream(&metrics, Duration::from_millis(2));
        // The plain path records into the same series.
        metrics.request(
            &Arc::new("app".to_string()),
            &http::Method::GET,
            http::StatusCode::OK,
            Duration::from_millis(1),
        );
        let text = metrics.encode(Format::PrometheusText);
        for line in [
            r#"gateway_requests_total{route="app",method="GET",status="2xx"} 3"#,
            r#"gateway_requests_total{route="app",method="GET",status="4xx"} 1"#,
            r#"gateway_requests_total{route="app",method="OTHER",status="5xx"} 1"#,
            r#"gateway_request_duration_seconds_count{route="app"} 5"#,
            r#"gateway_upstream_duration_seconds_count{route="app"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    fn pick(accept: &[&str]) -> Format {
        let values: Vec<HeaderValue> = accept
            .iter()
            .map(|a| HeaderValue::from_str(a).unwrap())
            .collect();
        Format::negotiate(&values)
    }

    #[test]
    fn prometheus_scrape_headers_get_openmetrics() {
        // Prometheus 2.x/3.x defaults (scrape_protocols without protobuf).
        assert_eq!(
            pick(&["application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"]),
            Format::OpenMetrics
        );
        assert_eq!(
            pick(&["application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"]),
            Format::OpenMetrics
        );
        assert_eq!(
            pick(&["Application/OpenMetrics-Text; Version=\"1.0.0\""]),
            Format::OpenMetrics
        );
        // Split over two header lines.
        assert_eq!(
            pick(&["text/plain;q=0.5", "application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn everything_else_gets_prometheus_text() {
        for accept in [
            &[][..],
            &["*/*"],
            &["text/plain"],
            &["text/plain;version=0.0.4"],
            &["application/*"],
            &["application/json"],
            &["garbage"],
            &["application/openmetrics-text;q=0"],
            &["application/openmetrics-text;version=2.0.0"],
            &["application/openmetrics-text;q=0.4,text/plain;q=0.5"],
            &["application/openmetrics-text;q=0.4,text/*"],
            &["application/openmetrics-text;q=nonsense"],
            &["application/openmetrics-text;q=2"],
        ] {
            assert_eq!(pick(accept), Format::PrometheusText, "{accept:?}");
        }
        // A more specific text range outranks `*/*`.
        assert_eq!(
            pick(&["application/openmetrics-text;q=0.3,text/plain;q=0.2,*/*"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn formats_differ_as_their_parsers_expect() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: Arc::new("app".into()),
                method: "GET",
                status: "2xx",
            })
            .inc();
        let om = m.encode(Format::OpenMetrics);
        assert!(om.contains("# TYPE gateway_requests counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = m.encode(Format::PrometheusText);
        assert!(
            text.contains("# TYPE gateway_requests_total counter\n"),
            "{text}"
        );
        assert!(text
            .contains("gateway_requests_total{route=\"app\",method=\"GET\",status=\"2xx\"} 1\n"));
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("# TYPE gateway_open_connections gauge\n"));
        assert!(text.contains("# TYPE gateway_siteverify_duration_seconds histogram\n"));
    }
}

//! A route's backend pool: which target a request goes to, what each attempt taught about the target, and
//! the active health checks.
//!
//! Candidates are the primaries that take requests; only when none does, the backups that do. A route with
//! no candidate at all answers 503 at once (`UpstreamError::NoHealthyTarget`), without waiting on a server
//! known to be dead. Passive ejection never takes out a route's last available target: with one server
//! left, its own errors are the best answer the client can get.
//!
//! A one-target route skips all of it but two atomic loads (the target's health) and one increment (its
//! request counter): no lock, no allocation, no balancing.

pub mod balance;
pub mod connections;
pub mod health;
pub mod target;

use crate::config::{Balance, HealthCheckConfig, PassiveConfig, RouteConfig};
use crate::forward::connect::ClientError;
use crate::metrics::{Metrics, RetryLabels, RouteName, TargetErrorLabels};
use balance::Candidates;
use health::{now_ms, HealthBook, TargetHealth};
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use target::Target;
use tokio_util::task::AbortOnDropHandle;

/// The targets of one route and how to choose among them.
pub struct Pool {
    pub route: RouteName,
    pub targets: Vec<Target>,
    pub balance: Balance,
    pub max_attempts: u32,
    pub queue_timeout: Duration,
    passive: PassiveConfig,
    check: Option<HealthCheckConfig>,
    weights: Vec<u32>,
    seeds: Vec<u64>,
    primaries: Candidates,
    backups: Candidates,
    /// Smooth round-robin scores (round_robin with several targets only).
    rr: Mutex<Vec<i64>>,
    /// Requests in flight are counted for `least_requests`.
    count_load: bool,
    metrics: Arc<Metrics>,
    /// The active checkers; they stop with the pool (the `State` it belongs to).
    _checkers: Vec<AbortOnDropHandle<()>>,
}

impl Pool {
    /// Builds the pool of `route`, taking each target's health from `book`, and starts its health checks
    /// when the route has them and a runtime is running.
    pub fn new(
        route: &RouteConfig,
        name: &RouteName,
        book: &HealthBook,
        metrics: &Arc<Metrics>,
    ) -> Result<Pool, ClientError> {
        let cfg = &route.pool;
        let mut targets = Vec::with_capacity(cfg.targets.len());
        let (mut primaries, mut backups) = (0u64, 0u64);
        for (i, t) in cfg.targets.iter().enumerate() {
            let health = book.entry(name, &t.upstream.url, metrics);
            targets.push(Target::new(route, name, t, health, metrics)?);
            if t.backup {
                backups |= 1 << i;
            } else {
                primaries |= 1 << i;
            }
        }
        let checkers = match (&cfg.health, tokio::runtime::Handle::try_current()) {
            (Some(check), Ok(rt)) => targets
                .iter()
                .map(|t| {
                    AbortOnDropHandle::new(rt.spawn(check_loop(
                        t.conns.clone(),
                        t.upstream.clone(),
                        t.host.clone(),
                        t.health.clone(),
                        check.clone(),
                    )))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Pool {
            route: name.clone(),
            weights: cfg.targets.iter().map(|t| t.weight).collect(),
            seeds: cfg
                .targets
                .iter()
                .map(|t| balance::hash_bytes(t.upstream.url.as_bytes()))
                .collect(),
            rr: Mutex::new(vec![0; targets.len()]),
            count_load: cfg.balance == Balance::LeastRequests,
            targets,
            balance: cfg.balance,
            max_attempts: cfg.max_attempts,
            queue_timeout: cfg.queue_timeout,
            passive: cfg.passive.clone(),
            check: cfg.health.clone(),
            primaries,
            backups,
            metrics: metrics.clone(),
            _checkers: checkers,
        })
    }

    /// True for a route with a single target (the hot path).
    pub fn is_single(&self) -> bool {
        self.targets.len() == 1
    }

    /// Whether requests in flight must be counted on their target.
    pub fn counts_load(&self) -> bool {
        self.count_load
    }

    /// True when some target takes requests (for `/readyz`).
    pub fn has_available(&self) -> bool {
        self.targets.iter().any(|t| t.health.available())
    }

    fn available(&self, set: Candidates) -> Candidates {
        let mut out = 0;
        let mut rest = set;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if self.targets[i].health.available() {
                out |= 1 << i;
            }
        }
        out
    }

    /// The target for the next attempt, not one of `tried`; `affinity` is the key of `user` balancing.
    /// None when no untried target takes requests.
    pub fn pick(&self, tried: Candidates, affinity: u64) -> Option<usize> {
        if self.is_single() {
            return (tried == 0 && self.targets[0].health.available()).then_some(0);
        }
        let mut candidates = self.available(self.primaries) & !tried;
        if candidates == 0 {
            candidates = self.available(self.backups) & !tried;
        }
        if candidates == 0 {
            return None;
        }
        match self.balance {
            Balance::RoundRobin => {
                let mut cur = self.rr.lock().unwrap_or_else(|p| p.into_inner());
                balance::round_robin(&mut cur, &self.weights, candidates)
            }
            Balance::LeastRequests => {
                balance::least_requests(&self.weights, candidates, |i| self.targets[i].load())
            }
            Balance::User => balance::rendezvous(affinity, &self.seeds, &self.weights, candidates),
        }
    }

    /// How long to tell a client to wait when no target takes requests.
    pub fn retry_after(&self) -> Duration {
        let healths: Vec<&TargetHealth> = self.targets.iter().map(|t| &*t.health).collect();
        health::retry_after(&healths, self.check.as_ref())
    }

    /// An attempt on target `i`, sent at `sent`, got a response head with `status`.
    pub fn answered(&self, i: usize, status: http::StatusCode, sent: std::time::Instant) {
        let t = &self.targets[i];
        t.health.answered();
        if !self.is_single() {
            t.duration.observe(sent.elapsed().as_secs_f64());
        }
        if status.is_server_error() {
            self.error(i, "status_5xx");
        }
        if self.passive.eject_5xx {
            let now = now_ms();
            if t.health
                .count_status(&self.passive, now, status.is_server_error())
            {
                self.eject(i, now, "5xx ratio");
            }
        }
    }

    /// An attempt on target `i` failed before a response head: `kind` as in `UpstreamError::kind`;
    /// `ejects` for the failures that say the server is gone (connect failures, resets).
    pub fn failed(&self, i: usize, kind: &'static str, ejects: bool) {
        self.error(i, kind);
        if ejects {
            self.eject(i, now_ms(), kind);
        }
    }

    fn error(&self, i: usize, kind: &'static str) {
        self.metrics
            .targets
            .errors
            .get_or_create(&TargetErrorLabels {
                route: self.route.clone(),
                target: self.targets[i].health.target().clone(),
                kind,
            })
            .inc();
    }

    fn eject(&self, i: usize, now: u64, reason: &'static str) {
        let everyone = self.primaries | self.backups;
        let others = self.available(everyone & !(1 << i));
        if others == 0 {
            tracing::debug!(route = %self.route, target = %self.targets[i].health.target(), reason, "last available upstream target kept in rotation");
            return;
        }
        self.targets[i].health.eject(&self.passive, now, reason);
    }

    /// Counts and logs a retry after a failed attempt on target `i`.
    pub fn retrying(&self, i: usize, reason: &'static str, attempt: u32) {
        self.metrics
            .targets
            .retries
            .get_or_create(&RetryLabels {
                route: self.route.clone(),
                reason,
            })
            .inc();
        tracing::info!(route = %self.route, target = %self.targets[i].health.target(), reason, attempt = attempt + 1, "retrying the request on another upstream target");
    }
}

/// Every (route, target URL) pair the routes name: what the health book keeps on a reload.
pub fn health_keys(routes: &[RouteConfig]) -> Vec<(RouteName, String)> {
    routes
        .iter()
        .flat_map(|r| {
            let name = Arc::new(r.name.clone());
            r.pool
                .targets
                .iter()
                .map(move |t| (name.clone(), t.upstream.url.clone()))
        })
        .collect()
}

/// The most of a health page's body read so that its connection can be kept.
const HEALTH_BODY_LIMIT: usize = 64 * 1024;

/// Asks one target's health page every `interval` until the pool is dropped.
async fn check_loop(
    conns: Arc<connections::Connections>,
    upstream: crate::config::Upstream,
    host: http::HeaderValue,
    health: Arc<TargetHealth>,
    check: HealthCheckConfig,
) {
    let uri = format!("{}{}", upstream.base_path, check.path);
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let req = http::Request::get(uri.as_str())
            .header(http::header::HOST, host.clone())
            .header(http::header::USER_AGENT, "gateway-health-check")
            .body(crate::body::ClientBody::empty());
        let Ok(req) = req else {
            health.checked(&check, false, "health check URL is not valid");
            return;
        };
        match tokio::time::timeout(check.timeout, conns.send(req)).await {
            Err(_) => health.checked(&check, false, "timeout"),
            Ok(Err(e)) => health.checked(&check, false, &e.to_string()),
            Ok(Ok((res, connection))) => {
                let status = res.status().as_u16();
                let passed = check.expected_status.contains(&status);
                health.checked(&check, passed, &format!("status {status}"));
                // A short answer read to its end leaves its connection fit for traffic; any other is closed.
                let body = http_body_util::Limited::new(res.into_body(), HEALTH_BODY_LIMIT);
                let read = tokio::time::timeout(check.timeout, body.collect()).await;
                if matches!(read, Ok(Ok(_))) {
                    connection.give_back();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn routes(targets: &str) -> Vec<RouteConfig> {
        Config::from_toml(&format!(
            "[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[[routes]]\nname = \"farm\"\nprefix = \"/\"\nupstreams = [{targets}]\n[routes.passive]\neject_time = \"1s\"\nmax_eject_time = \"4s\"\n"
        ))
        .unwrap()
        .routes
    }

    fn pool(routes: &[RouteConfig], book: &HealthBook, metrics: &Arc<Metrics>) -> Pool {
        Pool::new(&routes[0], &Arc::new("farm".into()), book, metrics).unwrap()
    }

    #[test]
    fn ejection_grows_while_failing_and_spares_the_last_target() {
        let (book, metrics) = (HealthBook::new(), Metrics::new());
        let p = pool(&routes("\"http://a:1\", \"http://b:1\""), &book, &metrics);
        p.failed(0, "connect", true);
        assert_eq!(p.pick(0, 0), Some(1));
        let first = p.targets[0].health.ejected_for(now_ms()).unwrap();
        assert!((900..=1000).contains(&first), "{first}");
        // b is the last target in rotation: its failures are counted, never ejected.
        p.failed(1, "connect", true);
        assert_eq!(p.pick(0, 0), Some(1));
        assert_eq!(p.pick(1 << 1, 0), None);
        // A second ejection in a row doubles, capped at max_eject_time.
        p.targets[0].health.eject(&p.passive, now_ms(), "connect");
        let second = p.targets[0].health.ejected_for(now_ms()).unwrap();
        assert!((1900..=2000).contains(&second), "{second}");
        for _ in 0..5 {
            p.targets[0].health.eject(&p.passive, now_ms(), "connect");
        }
        assert!(p.targets[0].health.ejected_for(now_ms()).unwrap() <= 4000);
        // An answer ends the streak: the next ejection is the short one again.
        p.targets[0].health.answered();
        p.targets[0].health.eject(&p.passive, now_ms(), "connect");
        assert!(p.targets[0].health.ejected_for(now_ms()).unwrap() <= 1000);
    }

    #[test]
    fn a_reload_keeps_what_is_known_about_unchanged_targets() {
        let (book, metrics) = (HealthBook::new(), Metrics::new());
        let old = pool(&routes("\"http://a:1\", \"http://b:1\""), &book, &metrics);
        old.failed(0, "connect", true);
        let new_routes = routes("\"http://a:1\", \"http://c:1\"");
        let new = pool(&new_routes, &book, &metrics);
        assert!(!new.targets[0].health.available(), "a forgot its ejection");
        assert!(new.targets[1].health.available());
        book.retain(&health_keys(&new_routes), &metrics);
        assert_eq!(book.entries.len(), 2);
        let exported = metrics.encode(crate::metrics::Format::PrometheusText);
        assert!(
            !exported.contains("target_up{route=\"farm\",target=\"http://b:1\"}"),
            "{exported}"
        );
        assert!(exported.contains("target_up{route=\"farm\",target=\"http://c:1\"} 1"));
    }
}

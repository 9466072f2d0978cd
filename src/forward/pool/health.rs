//! What the gateway knows about each target's health, and the active checker that keeps it current.
//!
//! A target takes requests while its active check has not failed (`unhealthy_threshold` times in a row)
//! and no passive ejection is running. Passive ejections come from failed attempts (`Pool::record`) and
//! last `eject_time`, doubled for each further ejection in a row up to `max_eject_time`; an answered
//! request ends the streak, and `healthy_threshold` passing active checks end an ejection early.
//!
//! The state lives in a [`HealthBook`] in `state::Lasting`, keyed by route name and target URL, so a reload
//! that keeps a target keeps what is known about it. Every change of whether a target takes requests is
//! logged once and mirrored in `gateway_upstream_target_up`.

use crate::config::{HealthCheckConfig, PassiveConfig};
use crate::metrics::{Metrics, RouteName, TargetLabels};
use dashmap::DashMap;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds since the first call: a monotonic clock that fits an atomic.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // Starts at 1 so that 0 can mean "not ejected".
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Health of one target of one route.
pub struct TargetHealth {
    route: RouteName,
    target: RouteName,
    /// The active check's verdict (true until checks say otherwise, and when there are none).
    active_up: AtomicBool,
    /// End of the current passive ejection on the `now_ms` clock; 0 when not ejected.
    ejected_until: AtomicU64,
    /// Ejections in a row without an answered request in between (the back-off exponent).
    streak: AtomicU32,
    passes: AtomicU32,
    fails: AtomicU32,
    /// Requests and 5xx answers in the current window, when 5xx ejection is on.
    window: Mutex<Window>,
    gauge: Gauge,
}

#[derive(Default)]
struct Window {
    started_ms: u64,
    requests: u32,
    errors: u32,
}

impl TargetHealth {
    fn new(route: RouteName, target: RouteName, metrics: &Metrics) -> TargetHealth {
        let gauge = metrics
            .targets
            .up
            .get_or_create(&TargetLabels {
                route: route.clone(),
                target: target.clone(),
            })
            .clone();
        gauge.set(1);
        TargetHealth {
            route,
            target,
            active_up: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            window: Mutex::new(Window::default()),
            gauge,
        }
    }

    /// The target's URL as configured.
    pub fn target(&self) -> &RouteName {
        &self.target
    }

    /// True when the target takes requests now. An ejection that has run out ends here (and is logged).
    pub fn available(&self) -> bool {
        if !self.active_up.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.ejected_until.load(Ordering::Relaxed);
        // The clock is read only while an ejection runs.
        if until == 0 {
            return true;
        }
        if now_ms() < until {
            return false;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.gauge.set(1);
            tracing::info!(route = %self.route, target = %self.target, "upstream target back in rotation after its ejection time");
        }
        true
    }

    /// Milliseconds until the target may take requests again by itself, if it is out for a known time.
    pub fn ejected_for(&self, now: u64) -> Option<u64> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until > now).then(|| until - now)
    }

    /// Takes the target out after a failed attempt, for a back-off that grows with each ejection in a row.
    pub fn eject(&self, cfg: &PassiveConfig, now: u64, reason: &'static str) {
        let streak = self.streak.fetch_add(1, Ordering::Relaxed).min(20);
        let time = cfg
            .eject_time
            .saturating_mul(1u32 << streak.min(16))
            .min(cfg.max_eject_time);
        let until = now + time.as_millis() as u64;
        let before = self.ejected_until.swap(until, Ordering::Relaxed);
        // Passing checks are counted from the ejection on.
        self.passes.store(0, Ordering::Relaxed);
        if before <= now {
            self.gauge.set(0);
            tracing::warn!(route = %self.route, target = %self.target, reason, eject_ms = time.as_millis() as u64, streak = streak + 1, "upstream target ejected");
        }
    }

    /// An attempt got a response head: the failure streak ends.
    pub fn answered(&self) {
        // A load first: the common case writes nothing.
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    /// Counts an answer for the 5xx ratio; true when the window just closed over the ratio.
    pub fn count_status(&self, cfg: &PassiveConfig, now: u64, server_error: bool) -> bool {
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        let window_ms = cfg.window.as_millis() as u64;
        if now.saturating_sub(w.started_ms) >= window_ms {
            *w = Window {
                started_ms: now,
                ..Window::default()
            };
        }
        w.requests += 1;
        w.errors += u32::from(server_error);
        let over = server_error
            && w.requests >= cfg.min_requests
            && f64::from(w.errors) >= cfg.error_ratio * f64::from(w.requests);
        if over {
            // A fresh window after an ejection: the old answers judged the old state.
            *w = Window {
                started_ms: now,
                ..Window::default()
            };
        }
        over
    }

    /// Records one active check result.
    pub fn checked(&self, cfg: &HealthCheckConfig, passed: bool, detail: &str) {
        if passed {
            self.fails.store(0, Ordering::Relaxed);
            let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if passes < cfg.healthy_threshold {
                return;
            }
            let was_down = !self.active_up.swap(true, Ordering::Relaxed);
            let was_ejected = self.ejected_until.swap(0, Ordering::Relaxed) > now_ms();
            if was_down || was_ejected {
                self.streak.store(0, Ordering::Relaxed);
                self.gauge.set(1);
                tracing::info!(route = %self.route, target = %self.target, passes, "upstream target healthy: health check passes");
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if fails >= cfg.unhealthy_threshold && self.active_up.swap(false, Ordering::Relaxed) {
                self.gauge.set(0);
                tracing::warn!(route = %self.route, target = %self.target, fails, detail, "upstream target unhealthy: health check fails");
            }
        }
    }
}

/// Every target's health, kept across reloads.
#[derive(Default)]
pub struct HealthBook {
    pub(super) entries: DashMap<(RouteName, String), Arc<TargetHealth>>,
}

impl HealthBook {
    /// An empty book.
    pub fn new() -> HealthBook {
        HealthBook::default()
    }

    /// The health of `target` on `route`, made on first use.
    pub fn entry(&self, route: &RouteName, target: &str, metrics: &Metrics) -> Arc<TargetHealth> {
        self.entries
            .entry((route.clone(), target.to_string()))
            .or_insert_with(|| {
                Arc::new(TargetHealth::new(
                    route.clone(),
                    Arc::new(target.to_string()),
                    metrics,
                ))
            })
            .clone()
    }

    /// Forgets targets no route names any more (after a reload), and their state, traffic and latency series.
    pub fn retain(&self, keep: &[(RouteName, String)], metrics: &Metrics) {
        self.entries.retain(|key, h| {
            let kept = keep.contains(key);
            if !kept {
                let labels = TargetLabels {
                    route: h.route.clone(),
                    target: h.target.clone(),
                };
                metrics.targets.up.remove(&labels);
                metrics.targets.requests.remove(&labels);
                metrics.targets.duration.remove(&labels);
            }
            kept
        });
    }
}

/// How long a caller should wait before asking again when no target is available.
pub fn retry_after(healths: &[&TargetHealth], check: Option<&HealthCheckConfig>) -> Duration {
    let now = now_ms();
    let ejected = healths.iter().filter_map(|h| h.ejected_for(now)).min();
    let by_check = check.map(|c| c.interval.as_millis() as u64 * u64::from(c.healthy_threshold));
    let ms = match (ejected, by_check) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 1000,
    };
    Duration::from_millis(ms.clamp(1000, 300_000))
}

//! A route's backend pool: `routes[].upstreams` (or the single `upstream`), how requests are spread over
//! them (`balance`), per-target limits, retries, and the active (`health`) and passive (`passive`) checks.
//!
//! Every target of a pool shares the route's base path: the router rewrites the path once, before a target
//! is chosen, so targets that disagreed on it would serve different resources for one request.

use super::file::Dur;
use super::value::{dur, http_url};
use super::ConfigError;
use crate::defaults;
use http::uri::{Authority, Scheme};
use serde::Deserialize;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A parsed upstream base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Base path without trailing slash ("" for none).
    pub base_path: String,
    pub url: String,
}

/// How a route spreads requests over its healthy targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round-robin (nginx's): weights respected over any window, no bursts.
    RoundRobin,
    /// Power of two choices: two random targets, the one with fewer requests in flight per weight.
    LeastRequests,
    /// Rendezvous hashing on the token's `sub` (the client IP on public routes).
    User,
}

/// One target of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    pub upstream: Upstream,
    /// Share of traffic relative to the other targets (1-1000).
    pub weight: u32,
    /// Used only while no primary target is healthy.
    pub backup: bool,
}

/// The active health check of a pool, run off the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Path asked with GET on every target (after the target's base path).
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that bring a target back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out.
    pub unhealthy_threshold: u32,
    /// Status codes counted as a pass.
    pub expected_status: RangeInclusive<u16>,
}

/// Ejection of targets from what requests see (connect failures, resets, optionally 5xx).
#[derive(Clone, Debug, PartialEq)]
pub struct PassiveConfig {
    /// First ejection; doubled on each further ejection in a row, up to `max_eject_time`.
    pub eject_time: Duration,
    pub max_eject_time: Duration,
    /// Also eject on a high ratio of 5xx answers.
    pub eject_5xx: bool,
    /// Share of 5xx answers in a window (with at least `min_requests`) that ejects.
    pub error_ratio: f64,
    pub window: Duration,
    pub min_requests: u32,
}

/// Everything about a route's targets.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// Primaries and backups, in configuration order (at least one primary).
    pub targets: Vec<TargetConfig>,
    pub balance: Balance,
    /// Attempts per request, the first included (1: never retry).
    pub max_attempts: u32,
    /// Requests in flight per target (0: unlimited).
    pub max_connections_per_target: usize,
    /// Longest wait for a free slot on a full target before 503.
    pub queue_timeout: Duration,
    pub health: Option<HealthCheckConfig>,
    pub passive: PassiveConfig,
}

impl PoolConfig {
    /// The targets as an operator wrote them, for start-up logs and `check-config`: one URL, or every
    /// target with its weight and backup flag when it is not the default, and the balance.
    pub fn describe(&self) -> String {
        if let [only] = self.targets.as_slice() {
            return only.upstream.url.to_string();
        }
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let mut s = t.upstream.url.to_string();
                if t.weight != 1 {
                    s.push_str(&format!(" weight {}", t.weight));
                }
                if t.backup {
                    s.push_str(" (backup)");
                }
                s
            })
            .collect();
        let balance = match self.balance {
            Balance::RoundRobin => "round_robin",
            Balance::LeastRequests => "least_requests",
            Balance::User => "user",
        };
        format!("[{}] balance {balance}", targets.join(", "))
    }
}

/// `routes[].upstreams` entries: a URL, or a table with a weight and the backup flag.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TargetFile {
    Url(String),
    Table(TargetTable),
}

/// The table form of a target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    pub url: String,
    pub weight: Option<u32>,
    #[serde(default)]
    pub backup: bool,
}

/// `routes[].health`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthFile {
    pub path: Option<String>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub expected_status: Option<String>,
}

/// `routes[].passive`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveFile {
    pub eject_time: Option<Dur>,
    pub max_eject_time: Option<Dur>,
    pub eject_5xx: Option<bool>,
    pub error_ratio: Option<f64>,
    pub window: Option<Dur>,
    pub min_requests: Option<u32>,
}

/// The pool keys of one `[[routes]]` entry, as written.
pub(super) struct PoolFile {
    pub upstream: Option<String>,
    pub upstreams: Option<Vec<TargetFile>>,
    pub balance: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_connections_per_target: Option<usize>,
    pub queue_timeout: Option<Dur>,
    pub health: Option<HealthFile>,
    pub passive: Option<PassiveFile>,
}

/// Validates route `i`'s pool; `key` names a key of that route.
pub(super) fn validate_pool(
    p: PoolFile,
    key: &dyn Fn(&str) -> String,
) -> Result<PoolConfig, ConfigError> {
    let targets = match (p.upstream, p.upstreams) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                key("upstreams"),
                "set upstream or upstreams, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                key("upstream"),
                "required (e.g. \"http://127.0.0.1:9000\"), or upstreams = [..]",
            ))
        }
        (Some(text), None) => {
            let upstream = parse_upstream(&text)
                .map_err(|r| ConfigError::invalid(key("upstream"), format!("{text:?}: {r}")))?;
            vec![TargetConfig {
                upstream,
                weight: 1,
                backup: false,
            }]
        }
        (None, Some(list)) => validate_targets(list, key)?,
    };
    let balance = match p.balance.as_deref() {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("least_requests") => Balance::LeastRequests,
        Some("user") => Balance::User,
        Some(other) => {
            return Err(ConfigError::invalid(
                key("balance"),
                format!("{other:?}: one of round_robin, least_requests, user"),
            ))
        }
    };
    let max_attempts = p.max_attempts.unwrap_or(defaults::UPSTREAM_MAX_ATTEMPTS);
    if !(1..=defaults::UPSTREAM_MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
        return Err(ConfigError::invalid(
            key("max_attempts"),
            format!(
                "{max_attempts}: between 1 (no retry) and {}",
                defaults::UPSTREAM_MAX_ATTEMPTS_LIMIT
            ),
        ));
    }
    let health = p
        .health
        .map(|h| validate_health(h, &|k| key(&format!("health.{k}"))))
        .transpose()?;
    let passive = validate_passive(p.passive.unwrap_or_default(), &|k| {
        key(&format!("passive.{k}"))
    })?;
    Ok(PoolConfig {
        targets,
        balance,
        max_attempts,
        max_connections_per_target: p
            .max_connections_per_target
            .unwrap_or(defaults::UPSTREAM_MAX_CONNECTIONS_PER_TARGET),
        queue_timeout: dur(p.queue_timeout, defaults::UPSTREAM_QUEUE_TIMEOUT),
        health,
        passive,
    })
}

fn validate_targets(
    list: Vec<TargetFile>,
    key: &dyn Fn(&str) -> String,
) -> Result<Vec<TargetConfig>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::invalid(
            key("upstreams"),
            "must name at least one target",
        ));
    }
    if list.len() > defaults::UPSTREAM_MAX_TARGETS {
        return Err(ConfigError::invalid(
            key("upstreams"),
            format!("at most {} targets", defaults::UPSTREAM_MAX_TARGETS),
        ));
    }
    let mut out: Vec<TargetConfig> = Vec::with_capacity(list.len());
    for (j, entry) in list.into_iter().enumerate() {
        let k = |f: &str| key(&format!("upstreams[{j}]{f}"));
        let (text, weight, backup, url_key) = match entry {
            TargetFile::Url(u) => (u, None, false, k("")),
            TargetFile::Table(t) => (t.url, t.weight, t.backup, k(".url")),
        };
        let upstream = parse_upstream(&text)
            .map_err(|r| ConfigError::invalid(url_key.clone(), format!("{text:?}: {r}")))?;
        let weight = weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            return Err(ConfigError::invalid(
                k(".weight"),
                format!("{weight}: between 1 and 1000 (remove a target to stop using it)"),
            ));
        }
        if let Some(first) = out.first() {
            if first.upstream.base_path != upstream.base_path {
                return Err(ConfigError::invalid(
                    url_key,
                    format!(
                        "{text:?}: every target of a route needs the same base path ({:?})",
                        first.upstream.url
                    ),
                ));
            }
        }
        if out.iter().any(|t| {
            t.upstream.scheme == upstream.scheme && t.upstream.authority == upstream.authority
        }) {
            return Err(ConfigError::invalid(
                url_key,
                format!("{text:?}: named twice"),
            ));
        }
        out.push(TargetConfig {
            upstream,
            weight,
            backup,
        });
    }
    if out.iter().all(|t| t.backup) {
        return Err(ConfigError::invalid(
            key("upstreams"),
            "at least one target must not be a backup",
        ));
    }
    Ok(out)
}

fn validate_health(
    h: HealthFile,
    key: &dyn Fn(&str) -> String,
) -> Result<HealthCheckConfig, ConfigError> {
    let path = h
        .path
        .ok_or_else(|| ConfigError::invalid(key("path"), "required (e.g. \"/health\")"))?;
    if !path.starts_with('/') || path.contains('#') || path.bytes().any(|b| b.is_ascii_control()) {
        return Err(ConfigError::invalid(
            key("path"),
            format!("{path:?}: a path starting with /"),
        ));
    }
    let interval = dur(h.interval, defaults::HEALTH_INTERVAL);
    let timeout = dur(h.timeout, defaults::HEALTH_TIMEOUT);
    if interval < Duration::from_millis(10) {
        return Err(ConfigError::invalid(key("interval"), "at least 10ms"));
    }
    if timeout.is_zero() || timeout > interval {
        return Err(ConfigError::invalid(
            key("timeout"),
            "above 0 and no longer than the interval",
        ));
    }
    let threshold = |v: Option<u32>, name: &str, default: u32| match v.unwrap_or(default) {
        n @ 1..=100 => Ok(n),
        n => Err(ConfigError::invalid(
            key(name),
            format!("{n}: between 1 and 100"),
        )),
    };
    let text = h.expected_status.unwrap_or_else(|| "200-399".into());
    let expected_status = parse_status_range(&text).ok_or_else(|| {
        ConfigError::invalid(
            key("expected_status"),
            format!("{text:?}: a status or a range like \"200-399\" within 100-599"),
        )
    })?;
    Ok(HealthCheckConfig {
        path,
        interval,
        timeout,
        healthy_threshold: threshold(h.healthy_threshold, "healthy_threshold", 2)?,
        unhealthy_threshold: threshold(h.unhealthy_threshold, "unhealthy_threshold", 2)?,
        expected_status,
    })
}

fn validate_passive(
    p: PassiveFile,
    key: &dyn Fn(&str) -> String,
) -> Result<PassiveConfig, ConfigError> {
    let eject_time = dur(p.eject_time, defaults::PASSIVE_EJECT_TIME);
    let max_eject_time = dur(p.max_eject_time, defaults::PASSIVE_MAX_EJECT_TIME);
    if eject_time.is_zero() {
        return Err(ConfigError::invalid(key("eject_time"), "above 0"));
    }
    if max_eject_time < eject_time {
        return Err(ConfigError::invalid(
            key("max_eject_time"),
            "no shorter than eject_time",
        ));
    }
    let error_ratio = p.error_ratio.unwrap_or(0.5);
    if !(error_ratio > 0.0 && error_ratio <= 1.0) {
        return Err(ConfigError::invalid(
            key("error_ratio"),
            format!("{error_ratio}: above 0 and at most 1"),
        ));
    }
    let window = dur(p.window, defaults::PASSIVE_WINDOW);
    if window < Duration::from_secs(1) {
        return Err(ConfigError::invalid(key("window"), "at least 1s"));
    }
    let min_requests = p.min_requests.unwrap_or(20);
    if min_requests == 0 {
        return Err(ConfigError::invalid(key("min_requests"), "at least 1"));
    }
    Ok(PassiveConfig {
        eject_time,
        max_eject_time,
        eject_5xx: p.eject_5xx.unwrap_or(false),
        error_ratio,
        window,
        min_requests,
    })
}

/// `"200"` or `"200-399"`, within 100-599.
fn parse_status_range(text: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = text.trim().parse().ok()?;
            (v, v)
        }
    };
    (100 <= lo && lo <= hi && hi <= 599).then_some(lo..=hi)
}

/// An upstream base URL: an absolute http(s) URL with a valid port and no credentials, query or fragment.
pub(super) fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let url = http_url(text)?;
    Ok(Upstream {
        scheme: url.scheme,
        authority: url.authority,
        base_path: url.path.trim_end_matches('/').to_string(),
        url: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, with_routes};
    use super::super::Config;
    use super::*;

    fn pool(extra: &str) -> PoolConfig {
        Config::from_toml(&with_routes(&format!(
            "[[routes]]\nprefix = \"/\"\n{extra}\n"
        )))
        .unwrap()
        .routes
        .remove(0)
        .pool
    }

    fn pool_err(extra: &str) -> String {
        err(&with_routes(&format!(
            "[[routes]]\nprefix = \"/\"\n{extra}\n"
        )))
    }

    #[test]
    fn single_upstream_is_a_pool_of_one_with_defaults() {
        let p = pool("upstream = \"http://a:1\"");
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].weight, 1);
        assert_eq!(p.balance, Balance::RoundRobin);
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.max_connections_per_target, 256);
        assert!(p.health.is_none());
        assert!(!p.passive.eject_5xx);
    }

    #[test]
    fn upstreams_take_strings_and_tables() {
        let p = pool(concat!(
            "upstreams = [\"http://a:1/b\", { url = \"http://c:2/b/\", weight = 3 }, ",
            "{ url = \"http://d:3/b\", backup = true }]\nbalance = \"user\"\n",
            "[routes.health]\npath = \"/health.aspx\"\nexpected_status = \"200\"\n",
        ));
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.targets[1].weight, 3);
        assert!(p.targets[2].backup && !p.targets[0].backup);
        assert_eq!(p.balance, Balance::User);
        let h = p.health.unwrap();
        assert_eq!(h.path, "/health.aspx");
        assert_eq!(h.expected_status, 200..=200);
        assert_eq!(h.interval, defaults::HEALTH_INTERVAL);
    }

    #[test]
    fn bad_pools_name_their_key() {
        for (extra, key) in [
            ("upstream = \"http://a:1\"\nupstreams = [\"http://b:1\"]", "routes[0].upstreams:"),
            ("public = true", "routes[0].upstream:"),
            ("upstreams = []", "routes[0].upstreams:"),
            ("upstreams = [\"http://a:1\", \"ftp://b\"]", "routes[0].upstreams[1]:"),
            ("upstreams = [{ url = \"http://a:1\", weight = 0 }]", "routes[0].upstreams[0].weight:"),
            ("upstreams = [\"http://a:1/x\", \"http://b:1/y\"]", "routes[0].upstreams[1]:"),
            ("upstreams = [\"http://a:1\", \"http://a:1\"]", "routes[0].upstreams[1]:"),
            ("upstreams = [{ url = \"http://a:1\", backup = true }]", "routes[0].upstreams:"),
            ("upstream = \"http://a:1\"\nbalance = \"random\"", "routes[0].balance:"),
            ("upstream = \"http://a:1\"\nmax_attempts = 0", "routes[0].max_attempts:"),
            ("upstream = \"http://a:1\"\nmax_idle_connections = 65537", "routes[0].max_idle_connections:"),
            ("upstream = \"http://a:1\"\n[routes.health]\ninterval = \"5s\"", "routes[0].health.path:"),
            ("upstream = \"http://a:1\"\n[routes.health]\npath = \"/h\"\nexpected_status = \"99-700\"", "routes[0].health.expected_status:"),
            ("upstream = \"http://a:1\"\n[routes.health]\npath = \"/h\"\ninterval = \"1s\"\ntimeout = \"2s\"", "routes[0].health.timeout:"),
            ("upstream = \"http://a:1\"\n[routes.passive]\nerror_ratio = 0.0", "routes[0].passive.error_ratio:"),
            ("upstream = \"http://a:1\"\n[routes.passive]\neject_time = \"10s\"\nmax_eject_time = \"1s\"", "routes[0].passive.max_eject_time:"),
        ] {
            let e = pool_err(extra);
            assert!(e.starts_with(key), "{extra}: {e}");
        }
        let e = pool_err("upstreams = [{ url = \"http://a:1\", wieght = 2 }]");
        assert!(e.contains("upstreams"), "{e}");
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200-399"), Some(200..=399));
        assert_eq!(parse_status_range("204"), Some(204..=204));
        assert_eq!(parse_status_range("399-200"), None);
        assert_eq!(parse_status_range("2xx"), None);
    }
}

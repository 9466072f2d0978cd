//! `[login]`, `[login.turnstile]`, `[login.hashing]`, `[login.throttle]`: the gateway's own login endpoint.

use super::file::{HashingFile, LoginFile, ThrottleFile, TurnstileFile};
use super::value::{dur, http_url, secret};
use super::ConfigError;
use crate::defaults;
use std::path::Path;
use std::time::Duration;

/// The login endpoint.
#[derive(Clone, Debug)]
pub struct LoginConfig {
    pub enabled: bool,
    pub path: String,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// Least time a credential failure takes (also held to the slowest verification seen).
    pub min_failure_time: Duration,
    /// Longer user names are unknown users (same 401, same timing) and are never looked up.
    pub max_user_name_chars: usize,
    pub turnstile: TurnstileConfig,
    pub hashing: HashingConfig,
    pub throttle: ThrottleConfig,
}

/// Failed-login limits (0 failures = off).
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    pub ip_max_failures: u32,
    pub ip_window: Duration,
    pub user_max_failures: u32,
    pub user_window: Duration,
    pub max_entries: usize,
}

/// Turnstile siteverify settings.
#[derive(Clone)]
pub struct TurnstileConfig {
    /// None: no secret configured, so every login fails closed (logged at start-up).
    pub secret: Option<String>,
    pub siteverify_url: String,
    pub timeout: Duration,
    pub expected_hostname: Option<String>,
    pub expected_action: Option<String>,
    pub max_concurrent: usize,
    /// How long a login waits for a free siteverify slot before 503.
    pub queue_timeout: Duration,
    /// siteverify calls one client address may have in flight or waiting before 429.
    pub max_per_ip: usize,
    /// The widget's public site key, for the login page.
    pub site_key: Option<String>,
}

impl std::fmt::Debug for TurnstileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnstileConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("siteverify_url", &self.siteverify_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Password-hashing pool bounds and the parameters of newly made hashes.
#[derive(Clone, Debug)]
pub struct HashingConfig {
    pub max_concurrent: usize,
    pub max_queue: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

/// Validates `[login]` and its subsections; a relative `secret_file` resolves against `base`.
pub(super) fn validate_login(l: LoginFile, base: &Path) -> Result<LoginConfig, ConfigError> {
    let path = l.path.unwrap_or_else(|| defaults::LOGIN_PATH.to_string());
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            "login.path",
            format!("{path:?} must be a path starting with /"),
        ));
    }
    let max_body_bytes = l.max_body_bytes.unwrap_or(defaults::MAX_LOGIN_BODY_BYTES);
    if max_body_bytes < 64 {
        return Err(ConfigError::invalid(
            "login.max_body_bytes",
            "must be at least 64",
        ));
    }
    let max_user_name_chars = l
        .max_user_name_chars
        .unwrap_or(defaults::MAX_USER_NAME_CHARS);
    if max_user_name_chars == 0 {
        return Err(ConfigError::invalid(
            "login.max_user_name_chars",
            "must be at least 1",
        ));
    }
    Ok(LoginConfig {
        body_timeout: dur(l.body_timeout, defaults::LOGIN_BODY_TIMEOUT),
        min_failure_time: dur(l.min_failure_time, defaults::LOGIN_MIN_FAILURE_TIME),
        max_user_name_chars,
        enabled: l.enabled.unwrap_or(true),
        path,
        max_body_bytes,
        turnstile: validate_turnstile(l.turnstile, base)?,
        hashing: validate_hashing(l.hashing)?,
        throttle: validate_throttle(l.throttle)?,
    })
}

/// `[login.turnstile]`.
fn validate_turnstile(t: TurnstileFile, base: &Path) -> Result<TurnstileConfig, ConfigError> {
    let secret =
        secret("login.turnstile.secret", t.secret, t.secret_file, base)?.filter(|s| !s.is_empty());
    let siteverify_url = t
        .siteverify_url
        .unwrap_or_else(|| defaults::SITEVERIFY_URL.to_string());
    http_url(&siteverify_url).map_err(|reason| {
        ConfigError::invalid(
            "login.turnstile.siteverify_url",
            format!("{siteverify_url:?}: {reason}"),
        )
    })?;
    let max_concurrent = t
        .max_concurrent
        .unwrap_or(defaults::SITEVERIFY_MAX_CONCURRENT);
    let max_per_ip = t.max_per_ip.unwrap_or(defaults::SITEVERIFY_MAX_PER_IP);
    for (key, n) in [
        ("login.turnstile.max_concurrent", max_concurrent),
        ("login.turnstile.max_per_ip", max_per_ip),
    ] {
        if n == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1"));
        }
    }
    Ok(TurnstileConfig {
        secret,
        siteverify_url,
        timeout: dur(t.timeout, defaults::SITEVERIFY_TIMEOUT),
        expected_hostname: t.expected_hostname.filter(|s| !s.is_empty()),
        expected_action: t.expected_action.filter(|s| !s.is_empty()),
        max_concurrent,
        queue_timeout: dur(t.queue_timeout, defaults::SITEVERIFY_QUEUE_TIMEOUT),
        max_per_ip,
        site_key: t.site_key.filter(|s| !s.is_empty()),
    })
}

/// `[login.hashing]`; `max_concurrent = 0` (or left out) means one per core.
fn validate_hashing(h: HashingFile) -> Result<HashingConfig, ConfigError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashing = HashingConfig {
        max_concurrent: h.max_concurrent.filter(|n| *n > 0).unwrap_or(cores),
        max_queue: h.max_queue.unwrap_or(defaults::HASH_QUEUE),
        argon2_memory_kib: h.argon2_memory_kib.unwrap_or(defaults::ARGON2_MEMORY_KIB),
        argon2_iterations: h.argon2_iterations.unwrap_or(defaults::ARGON2_ITERATIONS),
        argon2_parallelism: h.argon2_parallelism.unwrap_or(defaults::ARGON2_PARALLELISM),
    };
    if hashing.argon2_memory_kib < 8 * hashing.argon2_parallelism.max(1)
        || hashing.argon2_iterations == 0
        || hashing.argon2_parallelism == 0
    {
        return Err(ConfigError::invalid(
            "login.hashing",
            "argon2 parameters out of range (memory >= 8 KiB per lane, iterations and parallelism >= 1)",
        ));
    }
    Ok(hashing)
}

/// `[login.throttle]`.
fn validate_throttle(th: ThrottleFile) -> Result<ThrottleConfig, ConfigError> {
    let throttle = ThrottleConfig {
        ip_max_failures: th
            .ip_max_failures
            .unwrap_or(defaults::THROTTLE_IP_MAX_FAILURES),
        ip_window: dur(th.ip_window, defaults::THROTTLE_IP_WINDOW),
        user_max_failures: th
            .user_max_failures
            .unwrap_or(defaults::THROTTLE_USER_MAX_FAILURES),
        user_window: dur(th.user_window, defaults::THROTTLE_USER_WINDOW),
        max_entries: th.max_entries.unwrap_or(defaults::THROTTLE_MAX_ENTRIES),
    };
    for (key, w) in [
        ("login.throttle.ip_window", throttle.ip_window),
        ("login.throttle.user_window", throttle.user_window),
    ] {
        if w.is_zero() {
            return Err(ConfigError::invalid(key, "must be longer than 0s"));
        }
    }
    Ok(throttle)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;

    fn login(extra: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n{extra}")
    }

    #[test]
    fn siteverify_url_is_validated_like_an_upstream() {
        for bad in [
            "http://127.0.0.1:notaport/siteverify",
            "https://u:p@challenges.example/x",
            "https://challenges.example/x?a=1",
            "https://challenges.example/x#f",
            "ftp://challenges.example/",
        ] {
            let e = err(&login(&format!(
                "[login.turnstile]\nsiteverify_url = \"{bad}\"\n"
            )));
            assert!(
                e.starts_with("login.turnstile.siteverify_url:"),
                "{bad}: {e}"
            );
        }
        let c = Config::from_toml(&login(
            "[login.turnstile]\nsiteverify_url = \"http://127.0.0.1:8081/siteverify\"\n",
        ))
        .unwrap();
        assert_eq!(
            c.login.turnstile.siteverify_url,
            "http://127.0.0.1:8081/siteverify"
        );
    }

    #[test]
    fn zero_throttle_window_is_refused() {
        let e = err(&login("[login.throttle]\nuser_window = \"0s\"\n"));
        assert!(e.starts_with("login.throttle.user_window:"), "{e}");
    }
}

//! `[shared]`: the Redis (or Valkey) store that makes several gateway instances act as one.
//!
//! Without `url`/`url_file` there is no `[shared]` at all (`Config::shared` is None) and every defence stays
//! in-process, exactly as before.

use super::file::SharedFile;
use super::value::{dur, secret};
use super::ConfigError;
use crate::defaults;
use std::path::Path;
use std::time::Duration;

/// What a login does when the shared store does not answer within `shared.timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Answer 503: never unthrottled, never a 401 for an outage.
    Closed,
    /// Use this instance's own tables, so logins keep working with per-instance limits.
    Local,
}

/// The shared store's settings.
#[derive(Clone)]
pub struct SharedConfig {
    /// `redis://` or `rediss://` URL; may hold a password, so never printed (see `redact_url`).
    pub url: String,
    /// Every key starts with `<prefix>:`.
    pub prefix: String,
    /// Bound on one round trip to the store.
    pub timeout: Duration,
    pub on_failure: OnFailure,
    /// How often each instance reloads the complete revocation set (pub/sub loses messages while
    /// disconnected).
    pub reconcile_interval: Duration,
}

impl std::fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConfig")
            .field("url", &super::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}

/// Validates `[shared]`; None when no URL is given (the section's other keys are then still checked).
pub(super) fn validate_shared(
    s: SharedFile,
    base: &Path,
) -> Result<Option<SharedConfig>, ConfigError> {
    let url = secret("shared.url", s.url, s.url_file, base)?
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let prefix = s
        .prefix
        .unwrap_or_else(|| defaults::SHARED_PREFIX.to_string());
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(ConfigError::invalid(
            "shared.prefix",
            format!("{prefix:?} must be 1-64 characters of A-Z a-z 0-9 _ - . :"),
        ));
    }
    let timeout = dur(s.timeout, defaults::SHARED_TIMEOUT);
    if timeout.is_zero() || timeout > Duration::from_secs(30) {
        return Err(ConfigError::invalid(
            "shared.timeout",
            "must be longer than 0s and at most 30s",
        ));
    }
    let on_failure = match s.on_failure.as_deref().unwrap_or("closed") {
        "closed" => OnFailure::Closed,
        "local" => OnFailure::Local,
        other => {
            return Err(ConfigError::invalid(
                "shared.on_failure",
                format!("{other:?} is not \"closed\" or \"local\""),
            ))
        }
    };
    let reconcile_interval = dur(s.reconcile_interval, defaults::SHARED_RECONCILE_INTERVAL);
    if reconcile_interval < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "shared.reconcile_interval",
            "must be at least 1s",
        ));
    }
    let Some(url) = url else {
        return Ok(None);
    };
    check_url(&url).map_err(|reason| {
        ConfigError::invalid(
            "shared.url",
            format!("{}: {reason}", super::redact_url(&url)),
        )
    })?;
    Ok(Some(SharedConfig {
        url,
        prefix,
        timeout,
        on_failure,
        reconcile_interval,
    }))
}

/// A `redis://` or `rediss://` URL the Redis client can use.
fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("redis" | "rediss")) {
        return Err("must start with redis:// or rediss://".into());
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("not a Redis URL ({})", e.category()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;
    use super::OnFailure;
    use std::time::Duration;

    fn shared(extra: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n[shared]\n{extra}")
    }

    #[test]
    fn without_a_url_there_is_no_shared_store() {
        let c = Config::from_toml(&shared("prefix = \"gw1\"\n")).unwrap();
        assert!(c.shared.is_none());
    }

    #[test]
    fn defaults_and_keys() {
        let c = Config::from_toml(&shared("url = \"redis://127.0.0.1:6379/0\"\n")).unwrap();
        let s = c.shared.unwrap();
        assert_eq!(s.prefix, "gateway");
        assert_eq!(s.timeout, Duration::from_millis(200));
        assert_eq!(s.on_failure, OnFailure::Closed);
        let c = Config::from_toml(&shared(
            "url = \"rediss://:pw@redis.example:6380\"\nprefix = \"gw:a\"\ntimeout = \"50ms\"\non_failure = \"local\"\n",
        ))
        .unwrap();
        let s = c.shared.unwrap();
        assert_eq!(s.on_failure, OnFailure::Local);
        assert!(
            !format!("{s:?}").contains("pw@"),
            "the password is never printed"
        );
    }

    #[test]
    fn bad_values_name_their_key_and_never_print_the_password() {
        let e = err(&shared("url = \"http://u:secretpw@127.0.0.1:6379\"\n"));
        assert!(e.starts_with("shared.url:"), "{e}");
        assert!(!e.contains("secretpw"), "{e}");
        let e = err(&shared("url = \"redis://h\"\non_failure = \"open\"\n"));
        assert!(e.starts_with("shared.on_failure:"), "{e}");
        let e = err(&shared("url = \"redis://h\"\ntimeout = \"0s\"\n"));
        assert!(e.starts_with("shared.timeout:"), "{e}");
        let e = err(&shared("url = \"redis://h\"\nprefix = \"a b\"\n"));
        assert!(e.starts_with("shared.prefix:"), "{e}");
        let e = err(&shared("url = \"redis://h\"\nurl_file = \"x\"\n"));
        assert!(e.starts_with("shared.url:"), "{e}");
    }
}

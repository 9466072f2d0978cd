//! `auth.recheck_active` and `[auth.revocation]`: how ended sessions are remembered (the bounds of the local
//! revocation tables) and how often users seen with a token are looked up again.

use super::file::{Dur, RevocationFile};
use super::value::dur;
use super::ConfigError;
use crate::defaults;
use std::time::Duration;

/// Ending sessions: revocation table bounds and the optional re-check of users' active flag.
#[derive(Clone, Debug)]
pub struct SessionsConfig {
    /// Revoked token ids (`jti`) held at once.
    pub max_revoked_tokens: usize,
    /// Users with a not-before watermark held at once.
    pub max_revoked_users: usize,
    /// How long a user's watermark is kept: the longest lifetime (`exp - iat`) of a token it must refuse.
    pub max_token_lifetime: Duration,
    /// Look users seen with a token up again at most this often; None = off.
    pub recheck_active: Option<Duration>,
}

/// Validates `auth.recheck_active` and `[auth.revocation]`; `token_ttl` is the default token lifetime.
pub(super) fn validate_sessions(
    recheck_active: Option<Dur>,
    r: RevocationFile,
    token_ttl: Duration,
) -> Result<SessionsConfig, ConfigError> {
    let max_revoked_tokens = r.max_tokens.unwrap_or(defaults::MAX_REVOKED_TOKENS);
    let max_revoked_users = r.max_users.unwrap_or(defaults::MAX_REVOKED_USERS);
    for (key, n) in [
        ("auth.revocation.max_tokens", max_revoked_tokens),
        ("auth.revocation.max_users", max_revoked_users),
    ] {
        if n == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1"));
        }
    }
    let max_token_lifetime = dur(r.max_token_lifetime, token_ttl);
    if max_token_lifetime < token_ttl {
        return Err(ConfigError::invalid(
            "auth.revocation.max_token_lifetime",
            "must be at least auth.token_ttl, or a revoked user's own tokens would come back",
        ));
    }
    let recheck_active = recheck_active.map(|d| d.0);
    if let Some(every) = recheck_active {
        // Shorter would turn the re-check into a user-store load on every request burst.
        if every < defaults::MIN_RECHECK_ACTIVE {
            return Err(ConfigError::invalid(
                "auth.recheck_active",
                format!(
                    "must be at least {}",
                    humantime::format_duration(defaults::MIN_RECHECK_ACTIVE)
                ),
            ));
        }
    }
    Ok(SessionsConfig {
        max_revoked_tokens,
        max_revoked_users,
        max_token_lifetime,
        recheck_active,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;
    use std::time::Duration;

    fn auth(extra: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n{extra}")
    }

    #[test]
    fn defaults_and_limits() {
        let c = Config::from_toml(&auth("")).unwrap();
        assert_eq!(c.auth.sessions.recheck_active, None);
        assert_eq!(c.auth.sessions.max_token_lifetime, c.auth.token_ttl);
        assert_eq!(c.auth.sessions.max_revoked_tokens, 100_000);
        let c = Config::from_toml(&auth(
            "recheck_active = \"5m\"\n[auth.revocation]\nmax_token_lifetime = \"2h\"\nmax_users = 5\n",
        ))
        .unwrap();
        assert_eq!(
            c.auth.sessions.recheck_active,
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            c.auth.sessions.max_token_lifetime,
            Duration::from_secs(7200)
        );
        assert_eq!(c.auth.sessions.max_revoked_users, 5);
        let e = err(&auth("[auth.revocation]\nmax_tokens = 0\n"));
        assert!(e.starts_with("auth.revocation.max_tokens:"), "{e}");
        let e = err(&auth("[auth.revocation]\nmax_token_lifetime = \"1m\"\n"));
        assert!(e.starts_with("auth.revocation.max_token_lifetime:"), "{e}");
        let e = err(&auth("recheck_active = \"10ms\"\n"));
        assert!(e.starts_with("auth.recheck_active:"), "{e}");
    }
}

//! `[auth.cookie]`: the session token in a cookie, for server-rendered pages that cannot send a Bearer header,
//! and the rules it imposes on other sections (no `*` CORS origin, HTTPS unless on loopback).

use super::file::CookieFile;
use super::ConfigError;
use crate::defaults;
use http::Uri;
use std::str::FromStr;

/// Cookie sessions; absent when `[auth.cookie]` is left out or `enabled = false`.
#[derive(Clone, Debug)]
pub struct CookieConfig {
    /// The cookie's name (`__Host-gateway-session`).
    pub name: String,
    /// Exact origins, lower-cased, besides the gateway's own, that may send unsafe cookie requests.
    pub allowed_origins: Vec<String>,
}

/// Validates `[auth.cookie]`; None when it is off.
pub(super) fn validate_cookie(c: Option<CookieFile>) -> Result<Option<CookieConfig>, ConfigError> {
    let Some(c) = c else { return Ok(None) };
    if c.enabled == Some(false) {
        return Ok(None);
    }
    let name = c
        .name
        .unwrap_or_else(|| defaults::SESSION_COOKIE_NAME.to_string());
    if !is_cookie_name(&name) {
        return Err(ConfigError::invalid(
            "auth.cookie.name",
            format!(
                "{name:?} is not a cookie name (RFC 6265 token: no spaces, separators or controls)"
            ),
        ));
    }
    let mut allowed_origins = Vec::new();
    for (i, o) in c.allowed_origins.iter().enumerate() {
        let uri = Uri::from_str(o).ok();
        let ok = o != "*"
            && uri.as_ref().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some()
                    && u.path() == "/"
                    && !o.ends_with('/')
            });
        if !ok {
            return Err(ConfigError::invalid(
                format!("auth.cookie.allowed_origins[{i}]"),
                format!("{o:?} is not an origin like https://app.example.com (scheme and host, no path, no *)"),
            ));
        }
        allowed_origins.push(o.to_ascii_lowercase());
    }
    Ok(Some(CookieConfig {
        name,
        allowed_origins,
    }))
}

/// RFC 6265 §4.1.1 `cookie-name = token` (RFC 9110 tchar).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The rules cookie mode sets for other sections, checked at start-up, on reload and by `check-config`.
///
/// Transport: a session cookie must never travel in clear text over a network. Browsers treat loopback as a
/// secure context, so plain HTTP is fine when the listener is on loopback. Elsewhere either the gateway
/// terminates TLS, or a trusted proxy does and says so with `X-Forwarded-Proto: https` (checked per request:
/// a request that did not arrive over HTTPS neither gets nor may use the cookie). A non-loopback listener
/// with neither TLS nor a trusted proxy could never serve a cookie safely, so it is refused here.
pub(super) fn check_rules(config: &super::Config) -> Result<(), ConfigError> {
    let Some(_) = &config.cookie else {
        return Ok(());
    };
    if config.cors.allow_any_origin {
        return Err(ConfigError::invalid(
            "auth.cookie",
            "cannot be on with cors.allowed_origins = [\"*\"]: list the exact origins instead",
        ));
    }
    let s = &config.server;
    if s.tls.is_none() && !s.listen.ip().is_loopback() && s.trusted_proxies.is_empty() {
        return Err(ConfigError::invalid(
            "auth.cookie",
            format!(
                "needs HTTPS on {}: set [server.tls], or list the TLS-terminating proxy in server.trusted_proxies \
                 (it must send X-Forwarded-Proto: https), or listen on a loopback address",
                s.listen
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;

    fn with(extra: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n[auth.cookie]\n{extra}")
    }

    #[test]
    fn the_section_turns_it_on_with_the_host_prefixed_name() {
        let c = Config::from_toml(&with("")).unwrap();
        assert_eq!(c.cookie.unwrap().name, "__Host-gateway-session");
        let c = Config::from_toml(&with("enabled = false\n")).unwrap();
        assert!(c.cookie.is_none());
        let c = Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n")).unwrap();
        assert!(c.cookie.is_none());
    }

    #[test]
    fn bad_names_and_origins_are_refused() {
        for bad in ["a b", "a;b", "a=b", ""] {
            let e = err(&with(&format!("name = {bad:?}\n")));
            assert!(e.starts_with("auth.cookie.name:"), "{bad}: {e}");
        }
        for bad in [
            "*",
            "https://a.example/",
            "https://a.example/x",
            "a.example",
        ] {
            let e = err(&with(&format!("allowed_origins = [{bad:?}]\n")));
            assert!(
                e.starts_with("auth.cookie.allowed_origins[0]:"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn any_origin_cors_is_refused() {
        let e = err(&(with("") + "[cors]\nallowed_origins = [\"*\"]\n"));
        assert!(e.starts_with("auth.cookie:") && e.contains('*'), "{e}");
    }

    #[test]
    fn plain_http_off_loopback_needs_a_trusted_proxy() {
        let e = err(&(with("") + "[server]\nlisten = \"0.0.0.0:8080\"\n"));
        assert!(e.starts_with("auth.cookie:") && e.contains("HTTPS"), "{e}");
        Config::from_toml(
            &(with("") + "[server]\nlisten = \"0.0.0.0:8080\"\ntrusted_proxies = [\"10.0.0.1\"]\n"),
        )
        .unwrap();
        Config::from_toml(&(with("") + "[server]\nlisten = \"[::1]:8080\"\n")).unwrap();
    }
}

//! Cross-site request forgery defence for cookie sessions, and the facts it needs about how the request
//! arrived (scheme, public host).
//!
//! A browser attaches the session cookie to requests other sites trigger, so a cookie-authenticated request
//! with an unsafe method (anything but GET, HEAD, OPTIONS) must show it came from the gateway's own pages:
//! `Origin` equal to the gateway's own origin (or a configured one), or `Sec-Fetch-Site: same-origin`.
//! Neither header → refused: every browser that sends cookies on a cross-site POST sends one of them. A
//! WebSocket handshake is a GET the browser sends cross-site with cookies (cross-site WebSocket hijacking);
//! browsers always send `Origin` on it, so that is required there.
//!
//! The own origin is the request's scheme and host; behind a trusted proxy, its `X-Forwarded-Proto` and
//! `X-Forwarded-Host` (first entry: the one the client reached) take their place, as forwarding keeps them.

use http::header::ORIGIN;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
// Named here rather than taken from `forward::headers`: forwarding depends on `auth`, not the reverse.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Why a cookie-authenticated request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// `Origin` names another site, or `Sec-Fetch-Site` is not `same-origin`.
    #[error("cross-origin request with the session cookie")]
    CrossOrigin,
    /// Neither `Origin` nor `Sec-Fetch-Site`: the request cannot show where it came from.
    #[error("unsafe cookie request without Origin or Sec-Fetch-Site")]
    NoEvidence,
    /// A cookie-authenticated WebSocket handshake without a matching `Origin`.
    #[error("WebSocket upgrade with the session cookie from another origin")]
    UpgradeOrigin,
}

/// How a request reached the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// The connection to the gateway is TLS.
    pub tls: bool,
    /// The peer is a trusted proxy.
    pub trusted: bool,
    /// The peer is a loopback address.
    pub loopback: bool,
    pub headers: &'a HeaderMap,
    /// The request's Host (or :authority).
    pub host: Option<&'a HeaderValue>,
}

/// The first comma-separated entry of a header, trimmed.
fn first_entry<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next()?.trim()).filter(|s| !s.is_empty())
}

impl Arrival<'_> {
    /// The scheme the client used: TLS here, else a trusted proxy's `X-Forwarded-Proto`, else http.
    fn scheme(&self) -> &'static str {
        if self.tls {
            return "https";
        }
        match self.proxy_proto() {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        }
    }

    fn proxy_proto(&self) -> Option<&str> {
        self.trusted
            .then(|| first_entry(self.headers, &X_FORWARDED_PROTO))
            .flatten()
    }

    /// True when a session cookie may be set or read: HTTPS to the gateway or to the trusted proxy in front,
    /// or plain HTTP from a loopback peer that no trusted proxy says came in over plain HTTP (browsers treat
    /// `http://127.0.0.1` and `http://localhost` as secure contexts).
    pub fn secure(&self) -> bool {
        self.scheme() == "https" || (self.loopback && self.proxy_proto().is_none())
    }

    /// The gateway's own origin as the client sees it (`https://host[:port]`, default port left out).
    pub fn own_origin(&self) -> Option<String> {
        let host = if self.trusted {
            first_entry(self.headers, &X_FORWARDED_HOST)
        } else {
            None
        };
        let host = host.or_else(|| self.host.and_then(|h| h.to_str().ok()))?;
        Some(normalise(&format!("{}://{host}", self.scheme())))
    }
}

/// An origin lower-cased, with the scheme's default port left out, as browsers write `Origin`.
fn normalise(origin: &str) -> String {
    let lower = origin.to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if lower.starts_with(scheme) && lower.ends_with(port) {
            return lower[..lower.len() - port.len()].to_string();
        }
    }
    lower
}

/// Checks a cookie-authenticated request; `own` is the gateway's origin, `allowed` more accepted origins.
pub fn check(
    method: &Method,
    headers: &HeaderMap,
    upgrade: bool,
    own: Option<&str>,
    allowed: &[String],
) -> Result<(), CsrfError> {
    let origin_ok = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).map(|o| {
        let o = normalise(o.trim());
        own.is_some_and(|own| own == o) || allowed.contains(&o)
    });
    if upgrade {
        return match origin_ok {
            Some(true) => Ok(()),
            _ => Err(CsrfError::UpgradeOrigin),
        };
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let same_origin_fetch = headers
        .get(&SEC_FETCH_SITE)
        .map(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    match (origin_ok, same_origin_fetch) {
        (Some(true), _) | (_, Some(true)) => Ok(()),
        (None, None) => Err(CsrfError::NoEvidence),
        _ => Err(CsrfError::CrossOrigin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn arrival<'a>(
        h: &'a HeaderMap,
        host: &'a HeaderValue,
        tls: bool,
        trusted: bool,
        loopback: bool,
    ) -> Arrival<'a> {
        Arrival {
            tls,
            trusted,
            loopback,
            headers: h,
            host: Some(host),
        }
    }

    #[test]
    fn own_origin_follows_tls_and_trusted_proxies_only() {
        let host = HeaderValue::from_static("App.Example:443");
        let h = headers(&[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "public.example"),
        ]);
        assert_eq!(
            arrival(&h, &host, true, false, false).own_origin().unwrap(),
            "https://app.example"
        );
        let behind = arrival(&h, &host, false, true, false);
        assert_eq!(behind.own_origin().unwrap(), "https://public.example");
        assert!(behind.secure());
        let forged = arrival(&h, &host, false, false, false);
        assert_eq!(forged.own_origin().unwrap(), "http://app.example:443");
        assert!(!forged.secure());
        let plain = headers(&[("x-forwarded-proto", "http")]);
        assert!(
            !arrival(&plain, &host, false, true, true).secure(),
            "a loopback proxy said http"
        );
        assert!(arrival(&HeaderMap::new(), &host, false, false, true).secure());
    }

    #[test]
    fn unsafe_methods_need_evidence_and_upgrades_need_origin() {
        let own = Some("https://app.example");
        let allowed = vec!["https://other.example".to_string()];
        let post = Method::POST;
        let ok = |h: &[(&str, &str)]| check(&post, &headers(h), false, own, &allowed);
        assert_eq!(ok(&[("origin", "https://APP.example:443")]), Ok(()));
        assert_eq!(ok(&[("origin", "https://other.example")]), Ok(()));
        assert_eq!(ok(&[("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(
            ok(&[("origin", "https://evil.example")]),
            Err(CsrfError::CrossOrigin)
        );
        assert_eq!(ok(&[("origin", "null")]), Err(CsrfError::CrossOrigin));
        assert_eq!(
            ok(&[("sec-fetch-site", "same-site")]),
            Err(CsrfError::CrossOrigin)
        );
        assert_eq!(ok(&[]), Err(CsrfError::NoEvidence));
        assert_eq!(
            check(&Method::GET, &HeaderMap::new(), false, own, &[]),
            Ok(())
        );
        let ws = |h: &[(&str, &str)]| check(&Method::GET, &headers(h), true, own, &[]);
        assert_eq!(ws(&[("origin", "https://app.example")]), Ok(()));
        assert_eq!(
            ws(&[("sec-fetch-site", "same-origin")]),
            Err(CsrfError::UpgradeOrigin)
        );
        assert_eq!(
            ws(&[("origin", "https://evil.example")]),
            Err(CsrfError::UpgradeOrigin)
        );
    }
}

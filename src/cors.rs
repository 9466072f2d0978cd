//! CORS for browser front ends: preflights answered by the gateway without a token, and CORS headers on
//! every response to an allowed origin, 401s included, so a single-page app can see the 401 and re-login.
//! Origins not in the list get no CORS headers at all (the browser then blocks the response).

use crate::body::ResBody;
use crate::config::CorsConfig;
use crate::response;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// Precomputed CORS policy.
#[derive(Debug)]
pub struct Cors {
    enabled: bool,
    origins: Vec<String>,
    any_origin: bool,
    credentials: bool,
    methods: HeaderValue,
    headers: HeaderValue,
    /// Always set: it names at least the gateway's 401 marker.
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
}

fn join<T: AsRef<str>>(items: &[T]) -> HeaderValue {
    let text = items
        .iter()
        .map(|i| i.as_ref())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// The exposed headers: the gateway's 401 marker first (a cross-origin client must read it to tell the
/// gateway's 401 from an upstream's), then the configured ones.
fn expose_list(configured: &[http::HeaderName]) -> HeaderValue {
    let marker = &crate::protocol::headers::GATEWAY_AUTH;
    let mut names = vec!["Gateway-Auth"];
    names.extend(
        configured
            .iter()
            .filter(|h| *h != marker)
            .map(|h| h.as_str()),
    );
    join(&names)
}

impl Cors {
    /// Builds the policy from validated settings.
    pub fn new(c: &CorsConfig) -> Cors {
        let mut methods: Vec<&str> = c.allowed_methods.iter().map(Method::as_str).collect();
        if !methods.contains(&"OPTIONS") {
            methods.push("OPTIONS");
        }
        Cors {
            enabled: c.allow_any_origin || !c.allowed_origins.is_empty(),
            origins: c.allowed_origins.clone(),
            any_origin: c.allow_any_origin,
            credentials: c.allow_credentials,
            methods: join(&methods),
            headers: join(
                &c.allowed_headers
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>(),
            ),
            expose: Some(expose_list(&c.expose_headers)),
            max_age: HeaderValue::from(c.max_age.as_secs()),
        }
    }

    /// The request's `Origin` if it is allowed.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if !self.enabled {
            return None;
        }
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        (self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(text)))
            .then(|| origin.clone())
    }

    /// True for a CORS preflight (RFC: OPTIONS with Origin and Access-Control-Request-Method).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(ORIGIN)
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight from an allowed origin (the browser enforces the lists).
    pub fn preflight(&self) -> Response<ResBody> {
        let mut res = response::empty(StatusCode::NO_CONTENT);
        let h = res.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, self.headers.clone());
        h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        h.append(
            VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        res
    }

    /// Adds the CORS response headers for an allowed origin.
    pub fn decorate(&self, origin: HeaderValue, res: &mut Response<ResBody>) {
        let h = res.headers_mut();
        if self.any_origin && !self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.expose {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }
}

//! Routing: from a request's host and normalised path to a decision, without I/O.
//!
//! Longest prefix wins; at equal length a host-specific route beats a host-less one. Prefixes end on a
//! segment boundary (`/api` matches `/api`, `/api/x` and `/api;x`, never `/apix`) and compare without
//! ASCII case, as the IIS/ASP.NET backends the gateway fronts do, so `/ADMIN` cannot dodge `/admin`.
//! Routes are chosen on the path without its `;` parameters, as Tomcat and Jetty resolve it, so
//! `/api;/admin/users` selects `/api/admin`, not `/api`; the upstream still receives the parameters.
//! Lookup is one hash probe per path segment, so its cost does not grow with the number of routes.

use crate::config::RouteConfig;
use crate::protocol::path::{parameters_offset, without_parameters};
use std::collections::HashMap;

/// What the gateway does with a request.
#[derive(Debug)]
pub enum Routed<'a> {
    /// The login endpoint, answered by the gateway.
    Login,
    /// The logout endpoint (`login.logout_path`), answered by the gateway.
    Logout,
    /// The public JWKS document (asymmetric signing only).
    Jwks,
    /// The identity assertion keys' JWKS document (when assertions are on).
    AssertionJwks,
    /// A configured route; `upstream_path` is the path to send (rewritten, base path prepended).
    Upstream {
        index: usize,
        route: &'a RouteConfig,
        upstream_path: std::borrow::Cow<'a, str>,
    },
    /// No route matches.
    NotFound,
}

/// The compiled routing table.
#[derive(Debug)]
pub struct Router {
    routes: Vec<RouteConfig>,
    any_host: HashMap<String, usize>,
    by_host: HashMap<String, HashMap<String, usize>>,
    login_path: Option<String>,
    logout_path: Option<String>,
    jwks: bool,
    assertion_jwks: bool,
}

impl Router {
    /// Compiles validated routes; `login_path` is matched exactly (case-insensitively) when Some.
    pub fn new(routes: Vec<RouteConfig>, login_path: Option<&str>, jwks: bool) -> Router {
        let mut any_host = HashMap::new();
        let mut by_host: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            let key = r.prefix.to_ascii_lowercase();
            match &r.host {
                None => {
                    any_host.insert(key, i);
                }
                Some(h) => {
                    by_host.entry(h.clone()).or_default().insert(key, i);
                }
            }
        }
        Router {
            routes,
            any_host,
            by_host,
            login_path: login_path.map(|p| p.trim_end_matches('/').to_ascii_lowercase()),
            logout_path: None,
            jwks,
            assertion_jwks: false,
        }
    }

    /// Also answers the identity assertion keys' JWKS path.
    pub fn with_assertion_jwks(mut self, on: bool) -> Router {
        self.assertion_jwks = on;
        self
    }

    /// Also answers `path` (matched like the login path) as the logout endpoint.
    pub fn with_logout(mut self, path: Option<&str>) -> Router {
        self.logout_path = path.map(|p| p.trim_end_matches('/').to_ascii_lowercase());
        self
    }

    /// The routes in configuration order.
    pub fn routes(&self) -> &[RouteConfig] {
        &self.routes
    }

    /// Decides where a request goes. `path` must be normalised (it may keep `;` parameters: routes are chosen
    /// without them); `host` is the request's host (any case, port allowed).
    pub fn route<'a>(&'a self, host: Option<&str>, path: &'a str) -> Routed<'a> {
        let view = without_parameters(path);
        // Most paths are already lower case; only allocate when one is not.
        let lower: std::borrow::Cow<'_, str> = if view.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(view.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(&view)
        };
        let exact = if lower.len() > 1 {
            lower.trim_end_matches('/')
        } else {
            &lower
        };
        if self.login_path.as_deref() == Some(exact) {
            return Routed::Login;
        }
        if self.logout_path.as_deref() == Some(exact) {
            return Routed::Logout;
        }
        if self.jwks && view == crate::auth::jwks::JWKS_PATH {
            return Routed::Jwks;
        }
        if self.assertion_jwks && view == crate::auth::assertion::ASSERTION_JWKS_PATH {
            return Routed::AssertionJwks;
        }
        let host_table = host.map(strip_port).and_then(|h| {
            if self.by_host.is_empty() {
                None
            } else {
                self.by_host.get(h.to_ascii_lowercase().as_str())
            }
        });
        let hit = |cut: &str| -> Option<usize> {
            host_table
                .and_then(|t| t.get(cut))
                .or_else(|| self.any_host.get(cut))
                .copied()
        };
        // Candidate cuts from longest to shortest: the whole path, then before every '/'.
        let mut found = hit(&lower).map(|i| (i, lower.len()));
        if found.is_none() {
            for (pos, _) in lower.char_indices().rev().filter(|(_, c)| *c == '/') {
                let cut = if pos == 0 { "/" } else { &lower[..pos] };
                if let Some(i) = hit(cut) {
                    found = Some((i, if pos == 0 { 0 } else { pos }));
                    break;
                }
            }
        }
        // A trailing-slash path like "/api/" is matched by the loop above via its cut "/api".
        match found {
            None => Routed::NotFound,
            Some((i, matched_len)) => {
                let route = &self.routes[i];
                // The length matched in the view, carried over to the path with its parameters.
                let matched_len = if route.prefix == "/" {
                    0
                } else {
                    parameters_offset(path, matched_len)
                };
                Routed::Upstream {
                    index: i,
                    route,
                    upstream_path: upstream_path(route, path, matched_len),
                }
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets' content as the host.
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The path sent upstream: the matched prefix replaced by the route's rewrite, under the upstream's base path.
fn upstream_path<'a>(
    route: &RouteConfig,
    path: &'a str,
    matched_len: usize,
) -> std::borrow::Cow<'a, str> {
    // The common case, a route to the upstream's root that rewrites nothing, sends the path as it is.
    if route.rewrite_prefix.is_none()
        && route.upstream.base_path.is_empty()
        && path.starts_with('/')
    {
        return std::borrow::Cow::Borrowed(path);
    }
    let rest = match &route.rewrite_prefix {
        None => path,
        Some(_) => &path[matched_len..],
    };
    let mut out = String::with_capacity(route.upstream.base_path.len() + rest.len() + 8);
    out.push_str(&route.upstream.base_path);
    if let Some(rewrite) = &route.rewrite_prefix {
        out.push_str(rewrite);
    }
    if !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with(';') {
        out.push('/');
    }
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    } else if !out.starts_with('/') {
        out.insert(0, '/');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn router(routes: &str) -> Router {
        let text = format!("[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{routes}");
        let c = Config::from_toml(&text).unwrap();
        Router::new(c.routes, Some("/api/Auth"), false).with_logout(Some("/api/Auth/logout"))
    }

    fn target(r: &Router, host: Option<&str>, path: &str) -> Option<(String, String)> {
        match r.route(host, path) {
            Routed::Upstream {
                route,
                upstream_path,
                ..
            } => Some((route.name.clone(), upstream_path.into_owned())),
            Routed::Login => Some(("login".into(), String::new())),
            Routed::Logout => Some(("logout".into(), String::new())),
            Routed::Jwks => Some(("jwks".into(), String::new())),
            Routed::AssertionJwks => Some(("assertion-jwks".into(), String::new())),
            Routed::NotFound => None,
        }
    }

    const TABLE: &str = r#"
[[routes]]
name = "root"
prefix = "/"
upstream = "http://root"
[[routes]]
name = "api"
prefix = "/api"
upstream = "http://api/base"
[[routes]]
name = "api-v2"
prefix = "/api/v2"
upstream = "http://v2"
rewrite_prefix = "/v2-internal"
[[routes]]
name = "static"
prefix = "/static"
upstream = "http://static"
strip_prefix = true
[[routes]]
name = "admin-host"
prefix = "/api"
host = "admin.example"
upstream = "http://admin"
"#;

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let r = router(TABLE);
        assert_eq!(target(&r, None, "/api/v2/x").unwrap().0, "api-v2");
        assert_eq!(target(&r, None, "/api/v3").unwrap().0, "api");
        assert_eq!(target(&r, None, "/api").unwrap().0, "api");
        assert_eq!(target(&r, None, "/apix").unwrap().0, "root");
        assert_eq!(target(&r, None, "/api;jsessionid=1").unwrap().0, "api");
        assert_eq!(target(&r, None, "/").unwrap().0, "root");
    }

    #[test]
    fn routes_are_chosen_without_parameters_and_forwarded_with_them() {
        let r = router(TABLE);
        assert_eq!(
            target(&r, None, "/api;/v2/x").unwrap(),
            ("api-v2".into(), "/v2-internal/x".into())
        );
        assert_eq!(
            target(&r, None, "/api/v2;jsessionid=1/x").unwrap(),
            ("api-v2".into(), "/v2-internal;jsessionid=1/x".into())
        );
        assert_eq!(
            target(&r, None, "/api;jsessionid=1/users").unwrap(),
            ("api".into(), "/base/api;jsessionid=1/users".into())
        );
        assert_eq!(
            target(&r, None, "/static;x/app.js").unwrap(),
            ("static".into(), "/;x/app.js".into())
        );
        assert_eq!(target(&r, None, "/API%3Bx/V2").unwrap().0, "api-v2");
        assert_eq!(target(&r, None, "/api/auth;x").unwrap().0, "login");
    }

    #[test]
    fn matching_ignores_ascii_case_but_forwards_the_path_as_sent() {
        let r = router(TABLE);
        assert_eq!(
            target(&r, None, "/API/V2/Users").unwrap(),
            ("api-v2".into(), "/v2-internal/Users".into())
        );
        assert_eq!(
            target(&r, None, "/Api/Users").unwrap(),
            ("api".into(), "/base/Api/Users".into())
        );
    }

    #[test]
    fn host_specific_route_beats_any_host_at_equal_length() {
        let r = router(TABLE);
        assert_eq!(
            target(&r, Some("admin.example"), "/api/x").unwrap().0,
            "admin-host"
        );
        assert_eq!(
            target(&r, Some("ADMIN.example:8443"), "/api/x").unwrap().0,
            "admin-host"
        );
        // The longer any-host prefix still wins over the shorter host-specific one.
        assert_eq!(
            target(&r, Some("admin.example"), "/api/v2/x").unwrap().0,
            "api-v2"
        );
        assert_eq!(
            target(&r, Some("other.example"), "/api/x").unwrap().0,
            "api"
        );
    }

    #[test]
    fn strip_and_rewrite_prefix() {
        let r = router(TABLE);
        assert_eq!(target(&r, None, "/static/app.js").unwrap().1, "/app.js");
        assert_eq!(target(&r, None, "/static").unwrap().1, "/");
        assert_eq!(target(&r, None, "/static/").unwrap().1, "/");
        assert_eq!(target(&r, None, "/api/v2").unwrap().1, "/v2-internal");
        assert_eq!(target(&r, None, "/anything").unwrap().1, "/anything");
    }

    #[test]
    fn login_path_matches_case_insensitively() {
        let r = router(TABLE);
        assert_eq!(target(&r, None, "/api/auth").unwrap().0, "login");
        assert_eq!(target(&r, None, "/API/AUTH/").unwrap().0, "login");
        assert_eq!(target(&r, None, "/api/authx").unwrap().0, "api");
        assert_eq!(target(&r, None, "/api/Auth/Logout/").unwrap().0, "logout");
        assert_eq!(target(&r, None, "/api/auth/logout/x").unwrap().0, "api");
    }

    #[test]
    fn no_route_is_not_found() {
        let r = router("[[routes]]\nprefix = \"/only\"\nupstream = \"http://x\"\n");
        assert!(target(&r, None, "/other").is_none());
        assert!(target(&r, None, "/").is_none());
        assert!(target(&r, None, "/onlyx").is_none());
    }
}

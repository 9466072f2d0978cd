//! `[[routes]]`: path prefixes (optionally per host) and the upstream pool each one forwards to.

use super::file::RouteFile;
use super::pool::{validate_pool, PoolConfig, PoolFile};
use super::value::{dur, resolve};
use super::ConfigError;
use crate::defaults;
use crate::protocol::path::{has_parameters, normalise, screen};
use http::uri::Authority;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// One validated route.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// Normalised prefix: starts with `/`, no trailing slash except for `/` itself.
    pub prefix: String,
    /// Lower-case host without port, if the route is host-specific.
    pub host: Option<String>,
    /// The first target: its base path is every target's (`config::pool`).
    pub upstream: Upstream,
    /// Every target, and how requests are spread over them.
    pub pool: PoolConfig,
    pub public: bool,
    /// What replaces the matched prefix when forwarding (None: path kept as is).
    pub rewrite_prefix: Option<String>,
    pub preserve_host: bool,
    /// Pass the client's `Authorization` upstream (default: on protected routes only, so a public
    /// backend never sees a caller's token).
    pub forward_authorization: bool,
    /// Body bytes read before forwarding (0: stream from the first byte).
    pub request_buffer_bytes: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Idle keep-alive connections kept per target for reuse (0: a new connection per request).
    pub max_idle_connections: usize,
    /// CA bundle that signs an https upstream's certificate (default: the public web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Accept `;` path parameters (Tomcat's `;jsessionid=`) in request paths; they are forwarded as sent.
    /// Off: such a path is refused (400), since a Java backend reads `/api;/admin` as `/api/admin`.
    pub allow_path_parameters: bool,
    /// Send the signed identity assertion here (when `identity.assertion` is on; protected routes only).
    pub assertion: bool,
    /// The assertion's `aud` for this route.
    pub assertion_audience: String,
    /// Answered by the gateway itself (`upstream = "echo:"` or `"example-spa:"`) instead of forwarded.
    pub local: Option<LocalTarget>,
}

impl RouteConfig {
    /// Where the route sends requests, as the operator wrote it (start-up log, `check-config`).
    pub fn describe_upstream(&self) -> String {
        match self.local {
            Some(local) => local.url().to_string(),
            None => self.pool.describe(),
        }
    }
}

/// A route target the gateway answers itself instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalTarget {
    /// `upstream = "echo:"`: JSON describing what an upstream would have received (like Traefik's whoami).
    Echo,
    /// `upstream = "example-spa:"`: the example single-page app embedded in the binary (`examples/spa/`).
    ExampleSpa,
}

impl LocalTarget {
    /// The `upstream` value that selects this target.
    pub fn url(self) -> &'static str {
        match self {
            LocalTarget::Echo => "echo:",
            LocalTarget::ExampleSpa => "example-spa:",
        }
    }

    fn parse(text: &str) -> Option<LocalTarget> {
        [LocalTarget::Echo, LocalTarget::ExampleSpa]
            .into_iter()
            .find(|t| t.url() == text)
    }
}

pub use super::pool::Upstream;

/// Validates every route; two routes may not share both prefix and host.
pub(super) fn validate_routes(
    routes: Vec<RouteFile>,
    base: &Path,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(routes.len());
    for (i, r) in routes.into_iter().enumerate() {
        let route = validate_route(i, r, base)?;
        if let Some(other) = out
            .iter()
            .find(|o| o.prefix == route.prefix && o.host == route.host)
        {
            return Err(ConfigError::invalid(
                format!("routes[{i}].prefix"),
                format!(
                    "overlaps route {:?}: same prefix {:?} and host {:?}",
                    other.name,
                    route.prefix,
                    route.host.as_deref().unwrap_or("(any)")
                ),
            ));
        }
        out.push(route);
    }
    Ok(out)
}

/// Validates route `i` on its own.
fn validate_route(i: usize, r: RouteFile, base: &Path) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let prefix_raw = r
        .prefix
        .ok_or_else(|| ConfigError::invalid(key("prefix"), "required (e.g. \"/\" or \"/api\")"))?;
    let prefix = normalise_prefix(&prefix_raw)
        .ok_or_else(|| ConfigError::invalid(key("prefix"), format!("{prefix_raw:?} must be a normalised path starting with / (no . or .. segments, no //, no query)")))?;
    // A prefix no request path can take (requests are refused or routed without parameters) would never match.
    if has_parameters(&prefix) {
        return Err(ConfigError::invalid(
            key("prefix"),
            format!("{prefix:?}: no ; parameters (routes are matched without them)"),
        ));
    }
    if let Err(e) = screen(&prefix) {
        return Err(ConfigError::invalid(
            key("prefix"),
            format!("{prefix:?}: {e} (requests with such a path are refused)"),
        ));
    }
    let local = r.upstream.as_deref().and_then(LocalTarget::parse);
    let pool = validate_pool(
        PoolFile {
            // `.invalid` never resolves (RFC 2606): even a code path that forwarded a local route could reach
            // nobody.
            upstream: match local {
                Some(_) => Some("http://local.invalid".to_string()),
                None => r.upstream,
            },
            upstreams: r.upstreams,
            balance: r.balance,
            max_attempts: r.max_attempts,
            max_connections_per_target: r.max_connections_per_target,
            queue_timeout: r.queue_timeout,
            health: r.health,
            passive: r.passive,
        },
        &key,
    )?;
    let mut upstream = pool.targets[0].upstream.clone();
    if let Some(t) = local {
        upstream.url = t.url().to_string();
    }
    let host = match r.host {
        None => None,
        Some(h) => {
            let h = h.to_ascii_lowercase();
            if h.is_empty() || Authority::from_str(&h).is_err() || h.contains(':') {
                return Err(ConfigError::invalid(
                    key("host"),
                    format!("{h:?} is not a host name (without port)"),
                ));
            }
            Some(h)
        }
    };
    let rewrite_prefix = match (r.strip_prefix, r.rewrite_prefix) {
        (true, Some(_)) => {
            return Err(ConfigError::invalid(
                key("rewrite_prefix"),
                "set strip_prefix or rewrite_prefix, not both",
            ))
        }
        (true, None) => Some(String::new()),
        (false, Some(p)) => {
            if !p.starts_with('/') || p.contains(['?', '#']) {
                return Err(ConfigError::invalid(
                    key("rewrite_prefix"),
                    format!("{p:?} must start with /"),
                ));
            }
            Some(p.trim_end_matches('/').to_string())
        }
        (false, None) => None,
    };
    let ca_file = match r.ca_file {
        None => None,
        Some(p) => {
            let p = resolve(base, &p);
            if !p.is_file() {
                return Err(ConfigError::invalid(
                    key("ca_file"),
                    format!("{}: file not found", p.display()),
                ));
            }
            Some(p)
        }
    };
    let name = r.name.unwrap_or_else(|| format!("route{i}"));
    let max_idle_connections = r
        .max_idle_connections
        .unwrap_or(defaults::UPSTREAM_POOL_MAX_IDLE_PER_HOST);
    if max_idle_connections > defaults::UPSTREAM_POOL_MAX_IDLE_LIMIT {
        return Err(ConfigError::invalid(
            key("max_idle_connections"),
            format!(
                "{max_idle_connections}: at most {}",
                defaults::UPSTREAM_POOL_MAX_IDLE_LIMIT
            ),
        ));
    }
    let assertion_audience = match r.assertion_audience {
        Some(a) if a.trim().is_empty() || a.trim() != a => {
            return Err(ConfigError::invalid(
                key("assertion_audience"),
                format!("{a:?} must be a non-empty name without edge whitespace"),
            ))
        }
        Some(a) => a,
        None => name.clone(),
    };
    Ok(RouteConfig {
        name,
        prefix,
        host,
        upstream,
        pool,
        public: r.public,
        rewrite_prefix,
        preserve_host: r.preserve_host.unwrap_or(true),
        forward_authorization: r.forward_authorization.unwrap_or(!r.public),
        request_buffer_bytes: r
            .request_buffer_bytes
            .unwrap_or(defaults::REQUEST_BUFFER_BYTES),
        connect_timeout: dur(r.connect_timeout, defaults::UPSTREAM_CONNECT_TIMEOUT),
        timeout: dur(r.timeout, defaults::UPSTREAM_TIMEOUT),
        max_idle_connections,
        ca_file,
        allow_path_parameters: r.allow_path_parameters,
        assertion: r.assertion.unwrap_or(true),
        assertion_audience,
        local,
    })
}

/// Each protected route nested under a public one, with its nearest public ancestor (longest prefix) that
/// can serve the same hosts. Legal, but exactly where a path the backend reads differently (see
/// `protocol::path`) would turn a protected request into a public one, so `check-config` warns about it.
pub fn nested_under_public(routes: &[RouteConfig]) -> Vec<(&RouteConfig, &RouteConfig)> {
    let mut out = Vec::new();
    for inner in routes.iter().filter(|r| !r.public) {
        let inner_prefix = inner.prefix.to_ascii_lowercase();
        let ancestor = routes
            .iter()
            .filter(|outer| outer.public)
            .filter(|outer| {
                outer.host.is_none() || inner.host.is_none() || outer.host == inner.host
            })
            .filter(|outer| {
                let p = outer.prefix.to_ascii_lowercase();
                p.len() < inner_prefix.len()
                    && (p == "/"
                        || inner_prefix
                            .strip_prefix(&p)
                            .is_some_and(|r| r.starts_with('/')))
            })
            .max_by_key(|outer| outer.prefix.len());
        if let Some(outer) = ancestor {
            out.push((inner, outer));
        }
    }
    out
}

/// A route prefix in the same normal form as request paths, or None if it is not one.
fn normalise_prefix(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains(['?', '#', '%', '\\']) {
        return None;
    }
    let trimmed = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    let normal = normalise(trimmed).ok()?;
    (normal == trimmed || (trimmed.is_empty() && normal == "/")).then(|| {
        if trimmed.is_empty() {
            "/".to_string()
        } else {
            normal
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, with_routes};
    use super::super::Config;

    fn upstream_err(upstream: &str) -> String {
        err(&with_routes(&format!(
            "[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n"
        )))
    }

    #[test]
    fn bad_upstream_names_its_route() {
        for bad in [
            "ftp://x",
            "not a url",
            "http://127.0.0.1:notaport",
            "http://127.0.0.1:0",
            "http://127.0.0.1:70000",
            "http://user:pw@127.0.0.1:9",
            "http://127.0.0.1:9/?q=1",
            "http://127.0.0.1:9/#frag",
            "http://:9",
            "/relative",
        ] {
            let e = upstream_err(bad);
            assert!(e.starts_with("routes[0].upstream:"), "{bad}: {e}");
        }
        let e = upstream_err("http://127.0.0.1:notaport");
        assert!(e.contains("notaport") && e.contains("port"), "{e}");
    }

    #[test]
    fn local_targets_are_recognised_exactly() {
        let c = Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"example-spa:\"\npublic = true\n[[routes]]\nprefix = \"/api\"\nupstream = \"echo:\"\n",
        ))
        .unwrap();
        assert_eq!(c.routes[0].local, Some(super::LocalTarget::ExampleSpa));
        assert_eq!(c.routes[1].local, Some(super::LocalTarget::Echo));
        assert_eq!(c.routes[1].upstream.url, "echo:");
        for bad in ["echo", "echo:x", "ECHO:", "spa:"] {
            let e = upstream_err(bad);
            assert!(e.starts_with("routes[0].upstream:"), "{bad}: {e}");
        }
    }

    #[test]
    fn good_upstream_keeps_its_base_path() {
        let c = Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"https://[::1]:8443/base/\"\n",
        ))
        .unwrap();
        let u = &c.routes[0].upstream;
        assert_eq!(u.scheme, http::uri::Scheme::HTTPS);
        assert_eq!(u.authority.as_str(), "[::1]:8443");
        assert_eq!(u.base_path, "/base");
    }

    #[test]
    fn overlapping_routes_are_refused() {
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/api\"\nupstream = \"http://a\"\n[[routes]]\nprefix = \"/api/\"\nupstream = \"http://b\"\n",
        ));
        assert!(
            e.starts_with("routes[1].prefix:") && e.contains("overlaps"),
            "{e}"
        );
    }

    #[test]
    fn same_prefix_on_different_hosts_is_fine() {
        Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"http://a\"\n[[routes]]\nprefix = \"/\"\nhost = \"b.example\"\nupstream = \"http://b\"\n",
        ))
        .unwrap();
    }

    #[test]
    fn prefix_with_parameters_or_a_disguise_is_refused() {
        for bad in ["/api;v=1", "/admin.", "/ADMINI~1", "/(S(x))/app"] {
            let e = err(&with_routes(&format!(
                "[[routes]]\nprefix = \"{bad}\"\nupstream = \"http://a\"\n"
            )));
            assert!(e.starts_with("routes[0].prefix:"), "{bad}: {e}");
        }
    }

    #[test]
    fn allow_path_parameters_defaults_to_false() {
        let c = Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"http://a\"\n[[routes]]\nprefix = \"/app\"\nupstream = \"http://a\"\nallow_path_parameters = true\n",
        ))
        .unwrap();
        assert!(!c.routes[0].allow_path_parameters);
        assert!(c.routes[1].allow_path_parameters);
    }

    #[test]
    fn protected_routes_under_public_ones_are_found_with_the_nearest_ancestor() {
        let c = Config::from_toml(&with_routes(concat!(
            "[[routes]]\nname = \"root\"\nprefix = \"/\"\nupstream = \"http://a\"\npublic = true\n",
            "[[routes]]\nname = \"api\"\nprefix = \"/API\"\nupstream = \"http://a\"\npublic = true\n",
            "[[routes]]\nname = \"admin\"\nprefix = \"/api/admin\"\nupstream = \"http://a\"\n",
            "[[routes]]\nname = \"apix\"\nprefix = \"/apix\"\nupstream = \"http://a\"\n",
            "[[routes]]\nname = \"other-host\"\nprefix = \"/api/other\"\nhost = \"b.example\"\nupstream = \"http://a\"\n",
            "[[routes]]\nname = \"pub-host\"\nprefix = \"/app\"\nhost = \"c.example\"\nupstream = \"http://a\"\npublic = true\n",
            "[[routes]]\nname = \"app-admin\"\nprefix = \"/app/admin\"\nhost = \"d.example\"\nupstream = \"http://a\"\n",
        )))
        .unwrap();
        let pairs: Vec<(&str, &str)> = super::nested_under_public(&c.routes)
            .into_iter()
            .map(|(inner, outer)| (inner.name.as_str(), outer.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("admin", "api"),
                ("apix", "root"),
                ("other-host", "api"),
                ("app-admin", "root"),
            ]
        );
        let only_protected = Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"http://a\"\n[[routes]]\nprefix = \"/admin\"\nupstream = \"http://a\"\n",
        ))
        .unwrap();
        assert!(super::nested_under_public(&only_protected.routes).is_empty());
    }

    #[test]
    fn unnormalised_prefix_is_refused() {
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/a/../b\"\nupstream = \"http://a\"\n",
        ));
        assert!(e.starts_with("routes[0].prefix:"), "{e}");
    }
}

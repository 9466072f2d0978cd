//! Files the gateway serves itself, embedded in the binary so they always match its version and need no
//! path on disk: the browser client under the reserved public prefix `/.gateway/` (`client.js`,
//! `client.d.ts`), the settings a login page needs (`config.json`: login path, Turnstile site key and
//! script URL), and the example single-page app behind `upstream = "example-spa:"` routes.
//!
//! Every answer carries its exact `Content-Type` and `X-Content-Type-Options: nosniff`. Files are
//! revalidated on every use (`Cache-Control: no-cache` with a content `ETag`, 304 on a match), so a new
//! gateway version is picked up at once without a download per page view; `config.json` is `no-store`
//! because it follows the live configuration. Pages get a Content-Security-Policy that allows scripts only
//! from the gateway and the configured Turnstile origin (the example has no inline script).

use crate::body::ResBody;
use crate::config::Config;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{Either, Full};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The public prefix reserved for the gateway's own files; no route can serve below it.
pub const PREFIX: &str = "/.gateway/";

/// Why an embedded file could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssetError {
    /// Nothing is embedded at that path.
    #[error("no such gateway file")]
    NotFound,
    /// Only GET and HEAD read a file.
    #[error("method not allowed on a gateway file")]
    Method,
}

/// One embedded file.
struct Asset {
    /// Path below its mount point, without the leading `/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// A page, which gets the Content-Security-Policy.
    page: bool,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Served below [`PREFIX`].
static GATEWAY_FILES: [Asset; 2] = [
    Asset {
        name: "client.js",
        content_type: JS,
        body: include_bytes!("../web/gateway-client.js"),
        page: false,
    },
    Asset {
        name: "client.d.ts",
        // There is no registered type for TypeScript; plain text is what a browser can show.
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../web/gateway-client.d.ts"),
        page: false,
    },
];

/// Served by `example-spa:` routes.
static EXAMPLE_SPA: [Asset; 3] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../examples/spa/index.html"),
        page: true,
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../examples/spa/app.js"),
        page: false,
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../examples/spa/style.css"),
        page: false,
    },
];

/// Strong ETags of every embedded file, computed once: a quoted SHA-256 prefix of the content.
static ETAGS: LazyLock<Vec<(&'static str, HeaderValue)>> = LazyLock::new(|| {
    GATEWAY_FILES
        .iter()
        .chain(EXAMPLE_SPA.iter())
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            let tag = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a header value");
            (a.name, tag)
        })
        .collect()
});

/// True when `path` (normalised) is below the reserved prefix and so answered here, never routed.
pub fn is_reserved(path: &str) -> bool {
    path.len() >= PREFIX.len() && path[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

/// Answers a request below [`PREFIX`] (see [`is_reserved`]).
pub fn gateway_file(
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    config: &Config,
) -> Result<Response<ResBody>, AssetError> {
    let name = &path[PREFIX.len()..];
    if name == "config.json" {
        readable(method)?;
        return Ok(page_settings(config));
    }
    let asset = GATEWAY_FILES
        .iter()
        .find(|a| a.name == name)
        .ok_or(AssetError::NotFound)?;
    readable(method)?;
    Ok(serve(asset, headers, config))
}

/// Answers a request to an `example-spa:` route; `rest` is the path below the route's prefix.
pub fn example_spa(
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    config: &Config,
) -> Result<Response<ResBody>, AssetError> {
    let name = match rest.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let asset = EXAMPLE_SPA
        .iter()
        .find(|a| a.name == name)
        .ok_or(AssetError::NotFound)?;
    readable(method)?;
    Ok(serve(asset, headers, config))
}

fn readable(method: &Method) -> Result<(), AssetError> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(AssetError::Method)
    }
}

fn serve(asset: &Asset, req: &HeaderMap, config: &Config) -> Response<ResBody> {
    let etag = ETAGS
        .iter()
        .find(|(n, _)| *n == asset.name)
        .map(|(_, t)| t.clone())
        .expect("every asset has an etag");
    let fresh = req
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.body))
    };
    let mut res = build(status, body, asset.content_type);
    let h = res.headers_mut();
    if fresh {
        // A 304 carries no body, so no length of one.
        h.remove(CONTENT_LENGTH);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(ETAG, etag);
    if asset.page {
        if let Ok(csp) = HeaderValue::from_str(&page_policy(&config.login.turnstile.script_url)) {
            h.insert(http::header::CONTENT_SECURITY_POLICY, csp);
        }
        h.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    res
}

fn build(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<ResBody> {
    let len = body.len();
    let mut res = Response::new(Either::Right(Full::new(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The origin (`scheme://host[:port]`) of an absolute URL, or None.
fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!(
        "{}://{}",
        uri.scheme_str()?,
        uri.authority()?.as_str()
    ))
}

/// Scripts from the gateway and the Turnstile script's origin only, the widget's frame from that origin
/// (Cloudflare's documented CSP for Turnstile), nothing inline, and no framing of the page.
fn page_policy(script_url: &str) -> String {
    let turnstile = origin_of(script_url).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' {turnstile}; frame-src {turnstile}; \
         connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `/.gateway/config.json`: what a browser page needs to log in through this gateway. All of it is
/// public (a site key is meant to be in pages; the secret never appears here).
fn page_settings(config: &Config) -> Response<ResBody> {
    let t = &config.login.turnstile;
    let doc = serde_json::json!({
        "loginPath": config.login.enabled.then_some(config.login.path.as_str()),
        "turnstile": {
            "siteKey": t.site_key,
            "scriptUrl": t.script_url,
        },
    });
    let mut res = build(
        StatusCode::OK,
        Bytes::from(doc.to_string()),
        "application/json; charset=utf-8",
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefix_matches_without_case() {
        assert!(is_reserved("/.gateway/client.js"));
        assert!(is_reserved("/.GATEWAY/x"));
        assert!(!is_reserved("/.gateway"));
        assert!(!is_reserved("/.gatewayx/client.js"));
    }

    #[test]
    fn policy_names_only_the_turnstile_origin() {
        let p = page_policy("https://challenges.cloudflare.com/turnstile/v0/api.js");
        assert!(p.contains("script-src 'self' https://challenges.cloudflare.com;"));
        assert!(p.contains("frame-src https://challenges.cloudflare.com;"));
        assert!(!p.contains("unsafe-inline"));
        let local = page_policy("http://127.0.0.1:4321/turnstile/v0/api.js");
        assert!(local.contains("script-src 'self' http://127.0.0.1:4321;"));
    }

    #[test]
    fn etags_are_distinct_per_file() {
        let tags: std::collections::HashSet<_> = ETAGS.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(tags.len(), ETAGS.len());
    }
}

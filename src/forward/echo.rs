//! The built-in echo upstream (`upstream = "echo:"`): instead of sending the request on, the gateway
//! answers with what an upstream would have received, after all the header surgery — method, path, query,
//! the identity headers the gateway set, and every other header. Like Traefik's `whoami`, for a first run
//! and for checking a configuration.
//!
//! It reflects input, so it only ever answers JSON with `X-Content-Type-Options: nosniff` (never HTML a
//! browser could render), and the values of `Authorization` and `Cookie` are replaced by their length: a
//! credential the page cannot read (an HttpOnly cookie) must not come back readable in a body.

use crate::body::ResBody;
use crate::config::IdentityConfig;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use serde_json::{Map, Value};

/// The echo answer for an upstream request whose head is `parts` (already rewritten for the upstream).
pub fn answer(parts: &Parts, identity: &IdentityConfig) -> Response<ResBody> {
    let mut ours: Vec<&HeaderName> = vec![&identity.user_header, &identity.name_header];
    ours.extend(identity.claims.iter().map(|(_, h)| h));
    let mut identity_headers = Map::new();
    let mut other = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| shown(name, v))
            .collect();
        let target = if ours.contains(&name) {
            &mut identity_headers
        } else {
            &mut other
        };
        target.insert(name.as_str().to_string(), Value::Array(values));
    }
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "identity": identity_headers,
        "headers": other,
    });
    let body = Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default());
    let len = body.len();
    let mut res = Response::new(Either::Right(Full::new(body)));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// A header value as shown: credentials by their length only, other values as (lossy) text.
fn shown(name: &HeaderName, v: &HeaderValue) -> Value {
    if name == AUTHORIZATION || name == COOKIE {
        let scheme = if name == AUTHORIZATION {
            v.to_str()
                .ok()
                .and_then(|s| s.split_whitespace().next())
                .map(|s| format!("{s} "))
                .unwrap_or_default()
        } else {
            String::new()
        };
        return Value::String(format!("{scheme}<{} bytes hidden>", v.len()));
    }
    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn identity_headers_are_apart_and_credentials_hidden() {
        let config = Config::from_toml(
            "[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[identity.claims]\nrole = \"X-Auth-Role\"\n",
        )
        .unwrap();
        let req = http::Request::builder()
            .method("PUT")
            .uri("http://local.invalid/api/x?a=1&b=%3Cscript%3E")
            .header("x-auth-user", "alice")
            .header("x-auth-role", "admin")
            .header("authorization", "Bearer secret.token.value")
            .header("cookie", "session=abc")
            .header("accept", "text/html")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let res = answer(&parts, &config.identity);
        assert_eq!(
            res.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["method"], "PUT");
        assert_eq!(doc["path"], "/api/x");
        assert_eq!(doc["query"], "a=1&b=%3Cscript%3E");
        assert_eq!(doc["identity"]["x-auth-user"][0], "alice");
        assert_eq!(doc["identity"]["x-auth-role"][0], "admin");
        assert!(doc["headers"].get("x-auth-user").is_none());
        assert_eq!(
            doc["headers"]["authorization"][0],
            "Bearer <25 bytes hidden>"
        );
        assert_eq!(doc["headers"]["cookie"][0], "<11 bytes hidden>");
        assert_eq!(doc["headers"]["accept"][0], "text/html");
        assert!(!String::from_utf8_lossy(&body).contains("secret.token"));
    }
}

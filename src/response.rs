//! Builders for the responses the gateway makes itself. They are boring on purpose: no detail in the body,
//! `Cache-Control: no-store`, an explicit length.

use crate::body::ResBody;
use crate::defaults::REALM;
use crate::protocol::headers::{GATEWAY_AUTH, GATEWAY_AUTH_REQUIRED};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

fn build(status: StatusCode, body: Bytes, content_type: Option<&'static str>) -> Response<ResBody> {
    let len = body.len();
    let mut res = Response::new(Either::Right(Full::new(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(ct) = content_type {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    res
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<ResBody> {
    build(status, Bytes::new(), None)
}

/// A response with a short fixed text body.
pub fn text(status: StatusCode, body: &'static str) -> Response<ResBody> {
    build(
        status,
        Bytes::from_static(body.as_bytes()),
        Some("text/plain; charset=utf-8"),
    )
}

/// A response with a body of the given content type (the gateway's own pages and assets).
pub fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<ResBody> {
    build(status, body, Some(content_type))
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response<ResBody> {
    build(
        status,
        Bytes::from(body),
        Some("application/json; charset=utf-8"),
    )
}

/// 401 with a Bearer challenge (RFC 6750 §3); `error` is set when a token was presented.
pub fn unauthorized(error: Option<&'static str>) -> Response<ResBody> {
    let mut res = empty(StatusCode::UNAUTHORIZED);
    let challenge = match error {
        None => HeaderValue::from_static(concat!("Bearer realm=\"", "gateway", "\"")),
        Some("invalid_token") => HeaderValue::from_static(concat!(
            "Bearer realm=\"",
            "gateway",
            "\", error=\"invalid_token\""
        )),
        Some(_) => HeaderValue::from_static(concat!(
            "Bearer realm=\"",
            "gateway",
            "\", error=\"invalid_request\""
        )),
    };
    debug_assert_eq!(REALM, "gateway");
    res.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    res.headers_mut().insert(
        GATEWAY_AUTH.clone(),
        HeaderValue::from_static(GATEWAY_AUTH_REQUIRED),
    );
    res
}

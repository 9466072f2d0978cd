//! `GatewayError`: every way a request can fail, and the one place that decides the status code for each.
//!
//! The match in `into_response` is exhaustive with no wildcard, so a new variant must be given a status here.
//! Detail goes to the log (via `Display`), never to the client.

use crate::assets::AssetError;
use crate::auth::assertion::AssertionError;
use crate::auth::csrf::CsrfError;
use crate::auth::login::LoginError;
use crate::auth::logout::LogoutError;
use crate::auth::operator::OperatorError;
use crate::auth::AuthError;
use crate::body::ResBody;
use crate::forward::seats::SeatsFull;
use crate::forward::UpstreamError;
use crate::protocol::path::PathError;
use crate::response;
use crate::shared::SharedError;
use http::{Response, StatusCode};

/// Why a request is refused before it reaches a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2).
    #[error("missing Host")]
    MissingHost,
    /// Several `Host` headers, or one that is not a valid authority.
    #[error("invalid or repeated Host")]
    BadHost,
    /// The path cannot be normalised.
    #[error("bad path: {0}")]
    Path(PathError),
}

/// Any failure of a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Malformed request.
    #[error("bad request: {0}")]
    BadRequest(BadRequest),
    /// No acceptable credentials on a protected route.
    #[error("unauthenticated: {0}")]
    Auth(AuthError),
    /// Authenticated, but no route matches.
    #[error("no route")]
    NotFound,
    /// The path exists but not for this method (the login endpoint is POST only).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The upstream failed.
    #[error("upstream: {0}")]
    Upstream(UpstreamError),
    /// The login endpoint refused.
    #[error("login: {0}")]
    Login(LoginError),
    /// An operator request on the operations listener was refused.
    #[error("operator: {0}")]
    Operator(OperatorError),
    /// The logout endpoint refused.
    #[error("logout: {0}")]
    Logout(LogoutError),
    /// A file the gateway serves itself (`/.gateway/…`, the example app) was not found or not read.
    #[error("gateway file: {0}")]
    Asset(AssetError),
    /// A WebSocket upgrade beyond `server.max_websockets_per_user` for the token's subject.
    #[error("websocket upgrade refused: {0}")]
    WebsocketLimit(SeatsFull),
    /// The identity assertion a route requires could not be signed; the request is not forwarded without it.
    #[error("identity assertion: {0}")]
    Assertion(AssertionError),
    /// The shared store (Redis) did not answer in time.
    #[error("{0}")]
    Shared(SharedError),
    /// A cookie-authenticated request that cannot show it came from the gateway's own pages.
    #[error("csrf: {0}")]
    Csrf(CsrfError),
    /// A session cookie was asked for over plain HTTP from the network.
    #[error("session cookie refused over plain HTTP")]
    InsecureCookie,
    /// A browser navigation without a session: sent to the login page (the `Location`).
    #[error("sign-in required")]
    SignIn(http::HeaderValue),
    /// A method the login page's path does not take; the value is the `Allow` list.
    #[error("method not allowed here")]
    PageMethod(&'static str),
}

impl From<SharedError> for GatewayError {
    fn from(e: SharedError) -> Self {
        GatewayError::Shared(e)
    }
}

impl From<CsrfError> for GatewayError {
    fn from(e: CsrfError) -> Self {
        GatewayError::Csrf(e)
    }
}

impl From<LoginError> for GatewayError {
    fn from(e: LoginError) -> Self {
        GatewayError::Login(e)
    }
}

impl From<LogoutError> for GatewayError {
    fn from(e: LogoutError) -> Self {
        GatewayError::Logout(e)
    }
}

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        GatewayError::Auth(e)
    }
}

impl From<UpstreamError> for GatewayError {
    fn from(e: UpstreamError) -> Self {
        GatewayError::Upstream(e)
    }
}

impl From<BadRequest> for GatewayError {
    fn from(e: BadRequest) -> Self {
        GatewayError::BadRequest(e)
    }
}

impl GatewayError {
    /// The response the client sees.
    pub fn into_response(self) -> Response<ResBody> {
        match self {
            GatewayError::BadRequest(_) => response::empty(StatusCode::BAD_REQUEST),
            GatewayError::Auth(AuthError::Missing | AuthError::NotBearer) => {
                response::unauthorized(None)
            }
            GatewayError::Auth(AuthError::Duplicate) => {
                let mut r = response::unauthorized(Some("invalid_request"));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                // The marker means "log in again"; a malformed request is not that.
                r.headers_mut()
                    .remove(&crate::protocol::headers::GATEWAY_AUTH);
                r
            }
            GatewayError::Auth(
                AuthError::TooLong | AuthError::Invalid(_) | AuthError::SeveralCookies,
            ) => response::unauthorized(Some("invalid_token")),
            GatewayError::NotFound => response::empty(StatusCode::NOT_FOUND),
            GatewayError::MethodNotAllowed => {
                let mut r = response::empty(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static("POST, OPTIONS"),
                );
                r
            }
            GatewayError::Upstream(
                UpstreamError::Connect(_)
                | UpstreamError::Protocol(_)
                | UpstreamError::BadRequest(_),
            ) => response::text(StatusCode::BAD_GATEWAY, "Bad Gateway\n"),
            GatewayError::Upstream(UpstreamError::ClientBody) => {
                response::empty(StatusCode::BAD_REQUEST)
            }
            GatewayError::Upstream(UpstreamError::ClientBodyTimeout) => {
                response::empty(StatusCode::REQUEST_TIMEOUT)
            }
            GatewayError::Upstream(UpstreamError::ConnectTimeout | UpstreamError::Timeout) => {
                response::text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
            }
            // 503, not 502: the gateway knows the servers are out and says when to come back.
            GatewayError::Upstream(UpstreamError::NoHealthyTarget { retry_after }) => {
                let mut r =
                    response::text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after.as_secs().max(1)),
                );
                r
            }
            GatewayError::Upstream(UpstreamError::TargetBusy) => {
                let mut r =
                    response::text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                r
            }
            GatewayError::Login(
                LoginError::BadContentType
                | LoginError::BadJson
                | LoginError::BadForm
                | LoginError::BodyRead(_),
            ) => response::empty(StatusCode::BAD_REQUEST),
            GatewayError::Login(LoginError::BodyTimeout) => {
                response::empty(StatusCode::REQUEST_TIMEOUT)
            }
            GatewayError::Login(LoginError::TooLarge) => {
                response::empty(StatusCode::PAYLOAD_TOO_LARGE)
            }
            // Every credential or captcha failure is the same bare 401: nothing tells them apart.
            GatewayError::Login(
                LoginError::Captcha(_)
                | LoginError::CaptchaReplayed
                | LoginError::CaptchaNotConfigured
                | LoginError::UnknownUser
                | LoginError::Inactive
                | LoginError::BadPassword
                | LoginError::UserThrottled,
            ) => response::unauthorized(None),
            GatewayError::Login(LoginError::Throttled(wait)) => {
                let mut r = response::empty(StatusCode::TOO_MANY_REQUESTS);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(wait.as_secs().max(1)),
                );
                r
            }
            GatewayError::Login(LoginError::Store(_)) => {
                response::empty(StatusCode::SERVICE_UNAVAILABLE)
            }
            GatewayError::Login(LoginError::CaptchaClientBusy) => {
                let mut r = response::empty(StatusCode::TOO_MANY_REQUESTS);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                r
            }
            // The shared store is down: the attempt did not happen, so never a 401 (it would read as bad
            // credentials) and never unthrottled; the client may retry shortly.
            GatewayError::Login(
                LoginError::Busy | LoginError::CaptchaBusy | LoginError::Shared(_),
            )
            | GatewayError::Shared(_) => {
                let mut r = response::empty(StatusCode::SERVICE_UNAVAILABLE);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                r
            }
            GatewayError::Login(LoginError::Token(_)) | GatewayError::Assertion(_) => {
                response::empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
            // Without an operator token the endpoint does not exist: the same 404 as any unknown path, so a
            // scan of the operations listener (reachable on the pod IP) does not learn it is there.
            GatewayError::Operator(OperatorError::NotConfigured) => {
                response::empty(StatusCode::NOT_FOUND)
            }
            GatewayError::Operator(OperatorError::Unauthorized) => response::unauthorized(None),
            GatewayError::Operator(OperatorError::Method) => {
                let mut r = response::empty(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
                r
            }
            GatewayError::Operator(OperatorError::BadRequest(_)) => {
                response::empty(StatusCode::BAD_REQUEST)
            }
            GatewayError::Operator(OperatorError::Revoke(_)) => {
                let mut r = response::empty(StatusCode::SERVICE_UNAVAILABLE);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                r
            }
            // Nothing to log out is the bare 401, whatever was wrong with the token.
            GatewayError::Logout(LogoutError::Auth(_)) => response::unauthorized(None),
            // A logout that did not happen must not look done, nor like a bad token: 503, retry later.
            GatewayError::Logout(LogoutError::Revoke(_)) => {
                let mut r = response::empty(StatusCode::SERVICE_UNAVAILABLE);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                r
            }
            GatewayError::Asset(AssetError::NotFound) => response::empty(StatusCode::NOT_FOUND),
            GatewayError::Asset(AssetError::Method) => {
                let mut r = response::empty(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static("GET, HEAD"),
                );
                r
            }
            // 429 (RFC 6585 §4) because the limit is this user's own: 503 would blame the gateway and make
            // every client back off, 403 would read as "never allowed", and 401 would send the client to
            // log in again for nothing. Retry-After because a seat frees as soon as one of the user's own
            // connections closes.
            GatewayError::WebsocketLimit(_) => {
                let mut r = response::empty(StatusCode::TOO_MANY_REQUESTS);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(crate::defaults::WEBSOCKET_LIMIT_RETRY_AFTER.as_secs()),
                );
                r
            }
            // 403, not 401: the session is fine, the request's provenance is not; logging in again
            // would not help.
            GatewayError::Csrf(_) | GatewayError::InsecureCookie => {
                response::empty(StatusCode::FORBIDDEN)
            }
            // 303 so the browser follows with a GET whatever the method was.
            GatewayError::SignIn(location) => {
                let mut r = response::empty(StatusCode::SEE_OTHER);
                r.headers_mut().insert(http::header::LOCATION, location);
                r
            }
            GatewayError::PageMethod(allow) => {
                let mut r = response::empty(StatusCode::METHOD_NOT_ALLOWED);
                r.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenError;

    fn status(e: GatewayError) -> (u16, Option<String>) {
        let r = e.into_response();
        let challenge = r
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), challenge)
    }

    #[test]
    fn each_error_has_its_status() {
        assert_eq!(status(BadRequest::MissingHost.into()).0, 400);
        assert_eq!(status(BadRequest::Path(PathError::BadEscape).into()).0, 400);
        for e in [
            PathError::Parameters,
            PathError::Cookieless,
            PathError::TrailingDotOrSpace,
            PathError::ShortName,
            PathError::CaseFolding,
        ] {
            assert_eq!(status(BadRequest::Path(e).into()), (400, None), "{e}");
        }
        assert_eq!(
            status(AuthError::Missing.into()),
            (401, Some("Bearer realm=\"gateway\"".into()))
        );
        assert_eq!(status(AuthError::NotBearer.into()).0, 401);
        let (code, ch) = status(AuthError::Invalid(TokenError::Expired).into());
        assert_eq!(code, 401);
        // The browser client's re-login marker is on the gateway's 401s, and only on them.
        let marker = |e: GatewayError| e.into_response().headers().get("gateway-auth").cloned();
        assert_eq!(marker(AuthError::Missing.into()).unwrap(), "required");
        assert_eq!(marker(LoginError::BadPassword.into()).unwrap(), "required");
        assert_eq!(marker(AuthError::Duplicate.into()), None);
        assert_eq!(marker(GatewayError::NotFound), None);
        assert!(ch.unwrap().contains("error=\"invalid_token\""));
        assert_eq!(
            status(AuthError::Invalid(TokenError::HeaderValue).into()),
            (
                401,
                Some("Bearer realm=\"gateway\", error=\"invalid_token\"".into())
            )
        );
        assert_eq!(status(AuthError::TooLong.into()).0, 401);
        assert_eq!(status(AuthError::Duplicate.into()).0, 400);
        assert_eq!(status(GatewayError::NotFound).0, 404);
        assert_eq!(status(GatewayError::MethodNotAllowed).0, 405);
        assert_eq!(
            status(UpstreamError::Connect("refused".into()).into()).0,
            502
        );
        assert_eq!(
            status(UpstreamError::Protocol("reset".into()).into()).0,
            502
        );
        assert_eq!(status(UpstreamError::Timeout.into()).0, 504);
        assert_eq!(status(UpstreamError::ClientBody.into()).0, 400);
        assert_eq!(status(UpstreamError::ClientBodyTimeout.into()).0, 408);
        assert_eq!(status(UpstreamError::ConnectTimeout.into()).0, 504);
        let res = GatewayError::from(UpstreamError::NoHealthyTarget {
            retry_after: std::time::Duration::from_secs(7),
        })
        .into_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "7");
        let res = GatewayError::from(UpstreamError::TargetBusy).into_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(status(LoginError::BadJson.into()).0, 400);
        assert_eq!(status(LoginError::BadContentType.into()).0, 400);
        assert_eq!(status(LoginError::TooLarge.into()).0, 413);
        assert_eq!(status(LoginError::Busy.into()).0, 503);
        // Overload is never a 401: the client must not think its credentials are wrong.
        for (e, code) in [
            (LoginError::Busy, 503),
            (LoginError::CaptchaBusy, 503),
            (LoginError::CaptchaClientBusy, 429),
        ] {
            let res = GatewayError::from(e).into_response();
            assert_eq!(res.status(), code);
            assert!(res.headers().contains_key(http::header::RETRY_AFTER));
        }
        let outage = SharedError::Timeout { operation: "x" };
        for e in [
            GatewayError::Shared(outage.clone()),
            GatewayError::Login(LoginError::Shared(outage)),
        ] {
            let res = e.into_response();
            assert_eq!(res.status(), 503);
            assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        }
        assert_eq!(
            status(LoginError::Throttled(std::time::Duration::from_secs(9)).into()).0,
            429
        );
        assert_eq!(status(GatewayError::Asset(AssetError::NotFound)).0, 404);
        let res = GatewayError::Asset(AssetError::Method).into_response();
        assert_eq!(
            (res.status().as_u16(), &res.headers()["allow"]),
            (405, &"GET, HEAD".parse::<http::HeaderValue>().unwrap())
        );
        let res = GatewayError::WebsocketLimit(SeatsFull { limit: 2 }).into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "5");
        assert_eq!(
            status(LoginError::Store(crate::users::StoreError::Unavailable("x".into())).into()).0,
            503
        );
        assert_eq!(status(CsrfError::NoEvidence.into()), (403, None));
        assert_eq!(status(CsrfError::UpgradeOrigin.into()).0, 403);
        assert_eq!(status(GatewayError::InsecureCookie).0, 403);
        assert_eq!(status(AuthError::SeveralCookies.into()).0, 401);
        assert_eq!(status(LoginError::BadForm.into()).0, 400);
        let r = GatewayError::SignIn(http::HeaderValue::from_static("/login")).into_response();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/login");
        let bare = status(LoginError::UnknownUser.into());
        assert_eq!(
            status(LogoutError::Auth(AuthError::Invalid(TokenError::Revoked)).into()),
            bare
        );
        assert_eq!(
            status(GatewayError::Operator(OperatorError::NotConfigured)).0,
            404
        );
        assert_eq!(
            status(GatewayError::Operator(OperatorError::Unauthorized)),
            bare
        );
        assert_eq!(status(GatewayError::Operator(OperatorError::Method)).0, 405);
        assert_eq!(
            status(GatewayError::Operator(OperatorError::BadRequest(
                "x".into()
            )))
            .0,
            400
        );
        let full = crate::auth::revocation::TableFull {
            table: "tokens",
            limit: 1,
        };
        assert_eq!(status(LogoutError::Revoke(full.into()).into()).0, 503);
        assert_eq!(bare.0, 401);
        for e in [
            LoginError::Inactive,
            LoginError::BadPassword,
            LoginError::CaptchaReplayed,
            LoginError::CaptchaNotConfigured,
            LoginError::UserThrottled,
            LoginError::Captcha(crate::auth::turnstile::CaptchaError::Timeout),
        ] {
            assert_eq!(status(e.into()), bare);
        }
    }
}

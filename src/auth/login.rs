//! `POST /api/Auth`: exchanges a Turnstile token and credentials for a JWT, as the original API did.
//!
//! Security contract:
//! - The captcha is checked first. A missing captcha never reaches Cloudflare; a replayed one is refused
//!   locally; siteverify failures of any kind (rejected, timeout, unreachable, malformed) fail closed.
//! - The user store is consulted only after the captcha passed.
//! - Unknown user, inactive user, missing hash and wrong password are distinct `LoginError`s for logs and
//!   metrics, and one identical bare 401 for the client. Every one of them costs one password verification:
//!   unknown users and missing hashes verify against a dummy hash of the kind the store's users have, and
//!   inactive users verify their real hash before being refused.
//! - Store failures are 503, never 401, so an outage is not mistaken for bad credentials. Overload is never a
//!   401 either: a saturated siteverify queue or hashing pool answers 503 + `Retry-After`, and one client
//!   address with too many siteverify calls pending gets 429 + `Retry-After`.
//! - Throttles reserve before the work: the per-IP slot when the request is admitted, the per-user slot once
//!   the captcha passed and the user was looked up (never before the captcha, or junk captchas could lock
//!   anyone out). The per-user key is the account's stored name when the store found one, so every spelling
//!   its collation matches shares one budget. A success or a 503 gives the slot back.
//! - Every credential failure (unknown, inactive, wrong password, throttled user, unusable name) is held until
//!   the slowest verification seen has passed (`timing::FailureFloor`), so the stored hash's kind and cost
//!   cannot be read from the answer's timing.
//! - With `[shared]`, the throttles and the spent-captcha memory live in the shared store (`guard`), so every
//!   instance enforces one budget; a store that does not answer is 503 (or, with `shared.on_failure =
//!   "local"`, this instance's tables), never a 401 and never an unthrottled attempt.
//! - Hashing runs in the bounded `HashPool`; a saturated pool answers 503 at once.
//! - Bodies are read with a limit; nothing from the request is echoed back or logged except the user name.

use super::defences::{stored_user_key, unknown_user_key, LoginDefences};
use super::guard::{Guard, Ticket};
use super::hashing::{Busy, HashPool};
use super::token::TokenIssuer;
use super::turnstile::{CaptchaError, Turnstile, TurnstileSettings};
use crate::body::{self, BodyError, ResBody};
use crate::config::LoginConfig;
use crate::credentials::{self, Verdict};
use crate::metrics::{KindLabels, Metrics};
use crate::response;
use crate::users::{normalise_name, StoreError, UserRecord, UserStore};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// Why a login did not produce a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Content type is not JSON.
    #[error("content type is not JSON")]
    BadContentType,
    /// Body is not a JSON object with string fields.
    #[error("malformed JSON body")]
    BadJson,
    /// The login page's form names a field twice.
    #[error("malformed login form")]
    BadForm,
    /// Body over `login.max_body_bytes`.
    #[error("body too large")]
    TooLarge,
    /// The body did not arrive within `login.body_timeout`.
    #[error("body read timed out")]
    BodyTimeout,
    /// The client stopped sending the body.
    #[error("body read failed: {0}")]
    BodyRead(String),
    /// Turnstile refused or could not be asked.
    #[error("captcha: {0}")]
    Captcha(CaptchaError),
    /// The captcha token was already redeemed here.
    #[error("captcha token replayed")]
    CaptchaReplayed,
    /// No Turnstile secret is configured, so no captcha can pass.
    #[error("no Turnstile secret configured")]
    CaptchaNotConfigured,
    /// No such user.
    #[error("unknown user")]
    UnknownUser,
    /// The user's `Activo` flag is false.
    #[error("inactive user")]
    Inactive,
    /// Wrong password, or the user has no usable hash.
    #[error("bad password")]
    BadPassword,
    /// The user store failed.
    #[error("{0}")]
    Store(StoreError),
    /// The hashing pool and its queue are full.
    #[error("hashing pool busy")]
    Busy,
    /// This client IP failed too often: 429 with `Retry-After`.
    #[error("client throttled for {0:?}")]
    Throttled(std::time::Duration),
    /// This user name failed too often: the same bare 401 as any failure.
    #[error("user name throttled")]
    UserThrottled,
    /// No siteverify slot came free in time: 503 with `Retry-After`, never a 401.
    #[error("captcha verification queue full")]
    CaptchaBusy,
    /// This client address has too many siteverify calls pending: 429 with `Retry-After`.
    #[error("too many pending captcha verifications from this client")]
    CaptchaClientBusy,
    /// Signing the token failed.
    #[error("token signing failed: {0}")]
    Token(String),
    /// The shared store did not answer and `shared.on_failure = "closed"`: 503, never a 401.
    #[error("{0}")]
    Shared(crate::shared::SharedError),
}

impl LoginError {
    /// True for the failures that count as a guess against the per-IP budget.
    pub(crate) fn is_guess(&self) -> bool {
        matches!(
            self,
            LoginError::Captcha(_)
                | LoginError::CaptchaReplayed
                | LoginError::CaptchaNotConfigured
                | LoginError::UnknownUser
                | LoginError::Inactive
                | LoginError::BadPassword
                | LoginError::UserThrottled
        )
    }

    /// Outcome label for logs and metrics (the only place these causes are told apart).
    pub fn outcome(&self) -> &'static str {
        match self {
            LoginError::BadContentType
            | LoginError::BadJson
            | LoginError::BadForm
            | LoginError::TooLarge
            | LoginError::BodyTimeout
            | LoginError::BodyRead(_) => "bad_request",
            LoginError::Captcha(_)
            | LoginError::CaptchaReplayed
            | LoginError::CaptchaNotConfigured => "captcha_failed",
            LoginError::UnknownUser | LoginError::BadPassword => "bad_credentials",
            LoginError::Inactive => "inactive",
            LoginError::Store(_) => "store_error",
            LoginError::Busy | LoginError::CaptchaBusy => "busy",
            LoginError::Throttled(_)
            | LoginError::UserThrottled
            | LoginError::CaptchaClientBusy => "throttled",
            LoginError::Token(_) => "internal",
            LoginError::Shared(_) => "shared_store_error",
        }
    }
}

impl From<Busy> for LoginError {
    fn from(_: Busy) -> Self {
        LoginError::Busy
    }
}

/// The login endpoint's state.
pub struct Login {
    turnstile: Option<Turnstile>,
    /// Throttles and spent captchas (in-process, or in the shared store), kept across reloads.
    guard: Guard,
    store: Arc<UserStore>,
    pool: HashPool,
    issuer: TokenIssuer,
    max_body_bytes: usize,
    body_timeout: std::time::Duration,
    max_user_name_chars: usize,
    metrics: Arc<Metrics>,
}

/// The three fields of the original API, bound case-insensitively.
#[derive(Debug, Default, PartialEq)]
struct Credentials {
    user_name: Option<String>,
    password: Option<String>,
    captcha: Option<String>,
}

impl Login {
    /// Builds the endpoint; `turnstile` is None when no secret is configured (every login then fails closed).
    pub fn new(
        cfg: &LoginConfig,
        store: Arc<UserStore>,
        issuer: TokenIssuer,
        defences: Arc<LoginDefences>,
        shared: Option<Arc<crate::shared::SharedStore>>,
        metrics: Arc<Metrics>,
    ) -> Result<Login, String> {
        let turnstile = match &cfg.turnstile.secret {
            None => {
                tracing::warn!(
                    "login.turnstile.secret is not set: every login will fail with 401 until it is"
                );
                None
            }
            Some(secret) => {
                let mut s = TurnstileSettings::new(secret.clone());
                s.siteverify_url = cfg.turnstile.siteverify_url.clone();
                s.timeout = cfg.turnstile.timeout;
                s.expected_hostname = cfg.turnstile.expected_hostname.clone();
                s.expected_action = cfg.turnstile.expected_action.clone();
                s.max_concurrent = cfg.turnstile.max_concurrent;
                s.queue_timeout = cfg.turnstile.queue_timeout;
                s.max_per_ip = cfg.turnstile.max_per_ip;
                Some(Turnstile::new(s).map_err(|e| format!("login.turnstile: {e}"))?)
            }
        };
        Ok(Login {
            turnstile,
            guard: Guard::new(defences, shared),
            store,
            pool: HashPool::new(cfg.hashing.max_concurrent, cfg.hashing.max_queue),
            issuer,
            max_body_bytes: cfg.max_body_bytes,
            body_timeout: cfg.body_timeout,
            max_user_name_chars: cfg.max_user_name_chars,
            metrics,
        })
    }

    /// True when a Turnstile secret is configured.
    pub fn has_captcha(&self) -> bool {
        self.turnstile.is_some()
    }

    /// The user store (for readiness).
    pub fn store(&self) -> &Arc<UserStore> {
        &self.store
    }

    /// The hashing pool (for metrics).
    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// Handles one `POST /api/Auth` (JSON body); `client_ip` is sent to siteverify as `remoteip`.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client_ip: IpAddr,
    ) -> Result<Issued, LoginError> {
        let mut ticket = self.guard.arrive(client_ip)?;
        let result = async {
            if !is_json(req.headers()) {
                return Err(LoginError::BadContentType);
            }
            let creds = parse(&self.read_body(req).await?)?;
            self.attempt(creds, client_ip, &mut ticket).await
        }
        .await;
        // Only a guess keeps the reserved slots; a success, a bad request or an overloaded gateway gives them back.
        self.guard.settle(ticket, &result).await;
        result
    }

    /// Handles one login page submission (`application/x-www-form-urlencoded`): the same throttles, captcha,
    /// timing floor and failures as the JSON endpoint. Also gives back the form's `return_to` when it could
    /// be read, so a failed attempt can show the page again with it.
    pub async fn handle_form(
        &self,
        req: Request<Incoming>,
        client_ip: IpAddr,
    ) -> (Result<Issued, LoginError>, Option<String>) {
        let mut ticket = match self.guard.arrive(client_ip) {
            Ok(t) => t,
            Err(e) => return (Err(e), None),
        };
        let mut return_to = None;
        let result = async {
            if !is_form(req.headers()) {
                return Err(LoginError::BadContentType);
            }
            let (creds, back) = parse_form(&self.read_body(req).await?)?;
            return_to = back;
            self.attempt(creds, client_ip, &mut ticket).await
        }
        .await;
        self.guard.settle(ticket, &result).await;
        (result, return_to)
    }

    /// The body, within `login.max_body_bytes` and `login.body_timeout`.
    async fn read_body(&self, req: Request<Incoming>) -> Result<bytes::Bytes, LoginError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(LoginError::TooLarge);
        }
        body::collect_limited(req.into_body(), self.max_body_bytes, self.body_timeout)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => LoginError::TooLarge,
                BodyError::Timeout => LoginError::BodyTimeout,
                BodyError::Read(m) => LoginError::BodyRead(m),
            })
    }

    async fn attempt(
        &self,
        creds: Credentials,
        client_ip: IpAddr,
        ticket: &mut Ticket,
    ) -> Result<Issued, LoginError> {
        // 1. Captcha, before anything about the user is looked at.
        let captcha = creds.captcha.as_deref().unwrap_or("");
        // The IP slot (shared store) and the spent-token check come before anything reaches siteverify.
        self.guard.admit(ticket, captcha).await?;
        if captcha.trim().is_empty() {
            return Err(LoginError::Captcha(CaptchaError::Missing));
        }
        let turnstile = self
            .turnstile
            .as_ref()
            .ok_or(LoginError::CaptchaNotConfigured)?;
        let started = std::time::Instant::now();
        let verdict = turnstile.verify(captcha, Some(client_ip)).await;
        self.metrics
            .siteverify_duration
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &verdict {
            self.metrics
                .siteverify_failures
                .get_or_create(&KindLabels { kind: e.kind() })
                .inc();
        }
        verdict.map_err(|e| match e {
            CaptchaError::Overloaded => LoginError::CaptchaBusy,
            CaptchaError::ClientBusy => LoginError::CaptchaClientBusy,
            e => LoginError::Captcha(e),
        })?;
        // Cloudflare's test keys hand out one dummy token every time; spending it would fail every login
        // after the first for five minutes, which their test secrets never do.
        if !turnstile.answers_locally() {
            self.guard.redeemed(ticket, captcha);
        }

        // 2. Credentials, in constant time whatever the outcome.
        let user_name = creds.user_name.unwrap_or_default();
        let password = creds.password.unwrap_or_default();
        let started = std::time::Instant::now();
        let result = self.check_credentials(&user_name, password, ticket).await;
        if matches!(
            result,
            Err(LoginError::UnknownUser
                | LoginError::Inactive
                | LoginError::BadPassword
                | LoginError::UserThrottled)
        ) {
            self.guard.local().floor.pad(started).await;
        }
        result
    }

    /// Looks the user up, reserves the account's throttle slot, verifies the password off the async threads.
    async fn check_credentials(
        &self,
        user_name: &str,
        password: String,
        ticket: &mut Ticket,
    ) -> Result<Issued, LoginError> {
        let normalised = normalise_name(user_name);
        // A name no store could hold, or that could never be a header value, is an unknown user: it is never
        // looked up, costs the same dummy verification and gets the same 401.
        let lookable = !user_name.is_empty()
            && user_name.chars().count() <= self.max_user_name_chars
            && !user_name.chars().any(char::is_control);
        let record = if lookable {
            self.metrics.user_lookups.inc();
            self.store
                .lookup(&normalised)
                .await
                .map_err(LoginError::Store)?
        } else {
            None
        };
        let key = match &record {
            Some(r) => stored_user_key(&r.user_name),
            None => unknown_user_key(&normalised),
        };
        // Cleared on success, given back after a non-guess (hashing pool full), by `Guard::settle`.
        self.guard.reserve_user(ticket, key).await?;
        self.verify(record, password).await
    }

    async fn verify(
        &self,
        record: Option<UserRecord>,
        password: String,
    ) -> Result<Issued, LoginError> {
        let hash = record.as_ref().and_then(|r| r.password_hash.clone());
        let dummy = self.store.dummy_kind();
        let defences = self.guard.local().clone();
        let verdict = self
            .pool
            .run(move || {
                let started = std::time::Instant::now();
                let verdict = match &hash {
                    Some(h) => credentials::verify(h, &password),
                    None => Verdict::UnknownFormat,
                };
                // Same work for "no such user", "no hash" and "hash in an unknown format" as for a real check.
                if verdict == Verdict::UnknownFormat {
                    credentials::verify_dummy(dummy, &password);
                }
                defences.floor.observe(started.elapsed());
                verdict
            })
            .await?;
        self.metrics.password_verifications.inc();
        let record = record.ok_or(LoginError::UnknownUser)?;
        if !record.active {
            return Err(LoginError::Inactive);
        }
        match verdict {
            Verdict::Match { rehash_recommended } => {
                if rehash_recommended {
                    tracing::debug!(user = %record.user_name, "password hash below current strength; rehash in the application");
                }
                let token = self
                    .issuer
                    .issue(&record.user_name, &record.claims)
                    .map_err(|e| LoginError::Token(e.to_string()))?;
                tracing::info!(user = %record.user_name, outcome = "success", "login");
                Ok(Issued {
                    token,
                    expires_in: self.issuer.ttl(),
                })
            }
            Verdict::Mismatch | Verdict::UnknownFormat => Err(LoginError::BadPassword),
        }
    }
}

/// A token the login issued.
pub struct Issued {
    /// The signed JWT.
    pub token: String,
    /// Its lifetime from now (the cookie's `Max-Age`).
    pub expires_in: std::time::Duration,
}

impl Issued {
    /// The seed's answer: `200 {"token": "..."}`.
    pub fn json_response(&self) -> Result<Response<ResBody>, LoginError> {
        let body = serde_json::to_vec(&serde_json::json!({ "token": self.token }))
            .map_err(|e| LoginError::Token(e.to_string()))?;
        Ok(response::json(StatusCode::OK, body))
    }
}

/// `application/x-www-form-urlencoded`, any parameters (what an HTML form posts).
fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|e| {
            e.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The login page's form: `user_name`, `password`, `cf-turnstile-response` (what the Turnstile widget adds)
/// and `return_to`. A field given twice is refused rather than guessed; others are ignored.
fn parse_form(bytes: &[u8]) -> Result<(Credentials, Option<String>), LoginError> {
    let mut creds = Credentials::default();
    let mut return_to = None;
    for (key, value) in form_urlencoded::parse(bytes) {
        let slot = match key.as_ref() {
            "user_name" => &mut creds.user_name,
            "password" => &mut creds.password,
            "cf-turnstile-response" => &mut creds.captcha,
            "return_to" => &mut return_to,
            _ => continue,
        };
        if slot.is_some() {
            return Err(LoginError::BadForm);
        }
        *slot = Some(value.into_owned());
    }
    Ok((creds, return_to))
}

/// `application/json`, `text/json` or `application/*+json`, any parameters (as ASP.NET Core accepts).
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Binds `UserName`, `Password`, `CaptchaToken` case-insensitively; null means absent; any other type is 400.
fn parse(bytes: &[u8]) -> Result<Credentials, LoginError> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(LoginError::BadJson);
    };
    let mut creds = Credentials::default();
    for (key, value) in map {
        let slot = if key.eq_ignore_ascii_case("username") {
            &mut creds.user_name
        } else if key.eq_ignore_ascii_case("password") {
            &mut creds.password
        } else if key.eq_ignore_ascii_case("captchatoken") {
            &mut creds.captcha
        } else {
            // Unknown members are ignored, as ASP.NET model binding does.
            continue;
        };
        let value = match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            _ => return Err(LoginError::BadJson),
        };
        // "UserName" and "userName" in one body: ambiguous, so refuse rather than guess.
        if slot.is_some() && value.is_some() {
            return Err(LoginError::BadJson);
        }
        if value.is_some() {
            *slot = value;
        }
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_bind_case_insensitively() {
        let c = parse(br#"{"userName":"a","PASSWORD":"b","captchatoken":"c","extra":1}"#).unwrap();
        assert_eq!(c.user_name.as_deref(), Some("a"));
        assert_eq!(c.password.as_deref(), Some("b"));
        assert_eq!(c.captcha.as_deref(), Some("c"));
    }

    #[test]
    fn nulls_are_absent_and_wrong_types_are_refused() {
        let c = parse(br#"{"UserName":null,"Password":"p"}"#).unwrap();
        assert_eq!(c.user_name, None);
        assert!(matches!(
            parse(br#"{"UserName":1}"#),
            Err(LoginError::BadJson)
        ));
        assert!(matches!(
            parse(br#"["UserName"]"#),
            Err(LoginError::BadJson)
        ));
        assert!(matches!(parse(b"not json"), Err(LoginError::BadJson)));
        assert!(matches!(
            parse(br#"{"UserName":"a","username":"b"}"#),
            Err(LoginError::BadJson)
        ));
    }

    #[test]
    fn form_fields_and_duplicates() {
        let (c, back) = parse_form(
            b"user_name=a%20b&password=p%26q&cf-turnstile-response=t&return_to=%2Fx%3Fy%3D1&z=1",
        )
        .unwrap();
        assert_eq!(c.user_name.as_deref(), Some("a b"));
        assert_eq!(c.password.as_deref(), Some("p&q"));
        assert_eq!(c.captcha.as_deref(), Some("t"));
        assert_eq!(back.as_deref(), Some("/x?y=1"));
        assert!(matches!(
            parse_form(b"password=a&password=b"),
            Err(LoginError::BadForm)
        ));
        assert_eq!(parse_form(b"").unwrap().0, Credentials::default());
    }

    #[test]
    fn json_content_types() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(CONTENT_TYPE, v.parse().unwrap());
            m
        };
        assert!(is_json(&h("application/json")));
        assert!(is_json(&h("Application/JSON; charset=utf-8")));
        assert!(is_json(&h("application/problem+json")));
        assert!(is_json(&h("text/json")));
        assert!(!is_json(&h("text/plain")));
        assert!(!is_json(&h("application/x-www-form-urlencoded")));
        assert!(!is_json(&http::HeaderMap::new()));
    }
}

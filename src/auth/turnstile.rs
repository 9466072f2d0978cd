//! Cloudflare Turnstile server-side validation: owns the siteverify client,
//! its deadline, its retry rule and the caps on concurrent calls. Contract:
//! every doubt fails closed (only an explicit `success: true` that also matches
//! the configured hostname and action passes), and neither the widget secret
//! nor the client token is ever logged or put into an error message.
//!
//! Overload is never a verdict: a call that finds every slot taken waits up to
//! `queue_timeout` and then fails with `Overloaded` (the login answers 503), and
//! one client address holding `max_per_ip` calls already gets `ClientBusy` (429),
//! so a junk-captcha flood from a few addresses cannot starve everyone else.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Cloudflare's production siteverify endpoint.
pub const DEFAULT_SITEVERIFY_URL: &str =
    "https://challenges.cloudflare.com/turnstile/v0/siteverify";
/// Default bound on one whole `verify` call, retry included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on siteverify calls in flight at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 64;
/// Default wait for a free siteverify slot.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on one client address's calls in flight or waiting.
pub const DEFAULT_MAX_PER_IP: usize = 8;
/// The token Cloudflare's test sitekeys emit; its test secrets accept only this one.
pub const TEST_DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";
/// Cloudflare's published test secrets and the error code each answers a dummy token with (None: passes).
const TEST_SECRETS: [(&str, Option<&str>); 3] = [
    ("1x0000000000000000000000000000000AA", None),
    (
        "2x0000000000000000000000000000000AA",
        Some("invalid-input-response"),
    ),
    (
        "3x0000000000000000000000000000000AA",
        Some("timeout-or-duplicate"),
    ),
];
/// Longest token Cloudflare issues; anything longer is not worth a round trip.
pub const MAX_TOKEN_LEN: usize = 2048;

/// A siteverify reply is a few hundred bytes; the cap only stops a broken or
/// hostile endpoint from making us buffer without bound.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Error codes are echoed into logs and metrics, so keep them short and few.
const MAX_ERROR_CODES: usize = 16;
const MAX_ERROR_CODE_LEN: usize = 64;

/// Configuration for [`Turnstile`]; `Debug` redacts the secret.
#[derive(Clone)]
pub struct TurnstileSettings {
    /// Widget secret key sent to siteverify.
    pub secret: String,
    /// Siteverify endpoint (overridable so tests can point at a fake).
    pub siteverify_url: String,
    /// Deadline for a whole `verify` call, including the single retry.
    pub timeout: Duration,
    /// When set, a success reply must carry this hostname (ASCII case-insensitive).
    pub expected_hostname: Option<String>,
    /// When set, a success reply must carry exactly this widget action.
    pub expected_action: Option<String>,
    /// Bound on in-flight siteverify calls; callers beyond it wait for a slot.
    pub max_concurrent: usize,
    /// How long a call waits for a slot before `Overloaded`.
    pub queue_timeout: Duration,
    /// Bound on one client address's calls in flight or waiting; beyond it `ClientBusy`.
    pub max_per_ip: usize,
}

impl TurnstileSettings {
    /// Settings with the given secret and the documented defaults for everything else.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            siteverify_url: DEFAULT_SITEVERIFY_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            expected_hostname: None,
            expected_action: None,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            max_per_ip: DEFAULT_MAX_PER_IP,
        }
    }
}

impl fmt::Debug for TurnstileSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnstileSettings")
            .field("secret", &"<redacted>")
            .field("siteverify_url", &self.siteverify_url)
            .field("timeout", &self.timeout)
            .field("expected_hostname", &self.expected_hostname)
            .field("expected_action", &self.expected_action)
            .field("max_concurrent", &self.max_concurrent)
            .field("queue_timeout", &self.queue_timeout)
            .field("max_per_ip", &self.max_per_ip)
            .finish()
    }
}

/// Why a Turnstile check did not pass; every variant means "deny".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptchaError {
    /// The client sent no token (empty or whitespace only).
    #[error("captcha token missing")]
    Missing,
    /// The token cannot be a Turnstile token (too long).
    #[error("captcha token malformed")]
    Malformed,
    /// Siteverify answered `success: false` with these (sanitised) error codes.
    #[error("captcha rejected by siteverify: [{}]", .0.join(", "))]
    Rejected(Vec<String>),
    /// Siteverify did not answer within the configured deadline.
    #[error("captcha siteverify timed out")]
    Timeout,
    /// Siteverify could not be reached (connect or other transport failure).
    #[error("captcha siteverify unreachable")]
    Unreachable,
    /// Siteverify answered something other than a well-formed 2xx JSON verdict.
    #[error("captcha siteverify sent a bad reply")]
    BadReply,
    /// No siteverify slot came free within `queue_timeout`: not a verdict, the login answers 503.
    #[error("captcha verification overloaded")]
    Overloaded,
    /// This client address already has `max_per_ip` calls in flight or waiting: the login answers 429.
    #[error("too many captcha verifications from this client")]
    ClientBusy,
    /// The token was solved on a hostname other than the expected one.
    #[error("captcha hostname mismatch")]
    HostnameMismatch,
    /// The token was solved for a widget action other than the expected one.
    #[error("captcha action mismatch")]
    ActionMismatch,
}

impl CaptchaError {
    /// Stable snake_case label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CaptchaError::Missing => "missing",
            CaptchaError::Malformed => "malformed",
            CaptchaError::Rejected(_) => "rejected",
            CaptchaError::Timeout => "timeout",
            CaptchaError::Unreachable => "unreachable",
            CaptchaError::BadReply => "bad_reply",
            CaptchaError::Overloaded => "overloaded",
            CaptchaError::ClientBusy => "client_busy",
            CaptchaError::HostnameMismatch => "hostname_mismatch",
            CaptchaError::ActionMismatch => "action_mismatch",
        }
    }
}

/// Siteverify client, built once and shared; `Debug` redacts the secret.
pub struct Turnstile {
    settings: TurnstileSettings,
    client: reqwest::Client,
    permits: Semaphore,
    /// Calls in flight or waiting per client address (IPv6: per /64); entries exist only while in use.
    per_client: DashMap<IpAddr, usize>,
}

/// One client address's hold on a siteverify call; dropping it frees the place.
struct ClientPlace<'a> {
    map: &'a DashMap<IpAddr, usize>,
    ip: IpAddr,
}

impl Drop for ClientPlace<'_> {
    fn drop(&mut self) {
        if let Some(mut n) = self.map.get_mut(&self.ip) {
            *n -= 1;
        }
        // Remove the entry once nobody from that address is waiting, so the map only holds live callers.
        self.map.remove_if(&self.ip, |_, n| *n == 0);
    }
}

impl fmt::Debug for Turnstile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turnstile")
            .field("settings", &self.settings)
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SiteverifyRequest<'a> {
    secret: &'a str,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remoteip: Option<String>,
    idempotency_key: String,
}

// Only the fields we act on; serde ignores the rest (challenge_ts, cdata,
// metadata, messages, ...), so new Cloudflare fields cannot break parsing.
#[derive(Deserialize)]
struct SiteverifyReply {
    success: bool,
    #[serde(rename = "error-codes", default)]
    error_codes: Option<Vec<String>>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

impl SiteverifyReply {
    fn has_code(&self, code: &str) -> bool {
        self.error_codes
            .as_deref()
            .is_some_and(|codes| codes.iter().any(|c| c == code))
    }
}

impl Turnstile {
    /// Builds the pooled HTTPS client; fails only if the TLS backend cannot start.
    pub fn new(settings: TurnstileSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect from siteverify is never legitimate; following one
            // would hand the secret to whoever issued it.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        if settings.secret.trim().is_empty() {
            tracing::warn!("turnstile secret is empty; every verification will be rejected");
        }
        // Semaphore::new panics above MAX_PERMITS; a config that large means "unbounded".
        let permits = Semaphore::new(settings.max_concurrent.min(Semaphore::MAX_PERMITS));
        Ok(Self {
            settings,
            client,
            permits,
            per_client: DashMap::new(),
        })
    }

    /// Takes one of `ip`'s places, or refuses when it holds `max_per_ip` already.
    fn enter(&self, ip: IpAddr) -> Result<ClientPlace<'_>, CaptchaError> {
        let ip = super::throttle::ip_key(ip);
        let mut n = self.per_client.entry(ip).or_insert(0);
        if *n >= self.settings.max_per_ip {
            return Err(CaptchaError::ClientBusy);
        }
        *n += 1;
        drop(n);
        Ok(ClientPlace {
            map: &self.per_client,
            ip,
        })
    }

    /// True when this verifier answers without the network: the secret is one of Cloudflare's published
    /// test secrets and siteverify is Cloudflare's own, whose answers for them are documented and fixed. A
    /// first start then works offline. Refused off loopback for the always-pass one (`exposure`); the other
    /// two only ever fail. A configured fake siteverify (tests) is still called.
    pub fn answers_locally(&self) -> bool {
        self.test_secret_code().is_some()
    }

    /// For a test secret against Cloudflare's endpoint: the error code it answers the dummy token with.
    fn test_secret_code(&self) -> Option<Option<&'static str>> {
        if self.settings.siteverify_url != DEFAULT_SITEVERIFY_URL {
            return None;
        }
        TEST_SECRETS
            .iter()
            .find(|(s, _)| *s == self.settings.secret)
            .map(|(_, code)| *code)
    }

    /// Cloudflare's documented answer to a test secret: only the dummy token is accepted, and then the
    /// secret decides (pass, `invalid-input-response`, `timeout-or-duplicate`); a real token with a test
    /// secret is `invalid-input-secret`.
    fn local_test_reply(&self, token: &str) -> Option<SiteverifyReply> {
        let code = self.test_secret_code()?;
        let code = if token != TEST_DUMMY_TOKEN {
            Some("invalid-input-secret")
        } else {
            code
        };
        Some(SiteverifyReply {
            success: code.is_none(),
            error_codes: code.map(|c| vec![c.to_string()]),
            hostname: None,
            action: None,
        })
    }

    /// The settings this verifier was built with.
    pub fn settings(&self) -> &TurnstileSettings {
        &self.settings
    }

    /// Checks a client token with siteverify; `Ok(())` is the only passing outcome.
    pub async fn verify(&self, token: &str, remote_ip: Option<IpAddr>) -> Result<(), CaptchaError> {
        if token.trim().is_empty() {
            return Err(CaptchaError::Missing);
        }
        // Byte length is at least the char count, so this also enforces the
        // 2048-character limit; real tokens are ASCII.
        if token.len() > MAX_TOKEN_LEN {
            return Err(CaptchaError::Malformed);
        }
        if let Some(reply) = self.local_test_reply(token) {
            return self.judge(reply);
        }
        let _place = match remote_ip {
            Some(ip) => Some(self.enter(ip)?),
            None => None,
        };
        // A short, bounded wait absorbs bursts; a longer one would only pile logins up behind a slow Cloudflare.
        let _permit =
            match tokio::time::timeout(self.settings.queue_timeout, self.permits.acquire()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) | Err(_) => return Err(CaptchaError::Overloaded),
            };

        let deadline = Instant::now() + self.settings.timeout;
        let body = SiteverifyRequest {
            secret: &self.settings.secret,
            response: token,
            remoteip: remote_ip.map(|ip| ip.to_string()),
            // One key for the first try and the retry: Cloudflare then answers
            // the retry with the original verdict instead of "duplicate".
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        };

        // The per-attempt deadlines should fire first; this outer bound is the
        // guarantee that nothing (DNS, TLS, a stuck body) outlives the budget.
        let outcome = tokio::time::timeout_at(deadline, self.verify_with_retry(&body, deadline))
            .await
            .unwrap_or(Err(CaptchaError::Timeout));
        match &outcome {
            Ok(()) | Err(CaptchaError::Rejected(_)) => {}
            Err(err) => tracing::debug!(kind = err.kind(), "turnstile verification failed"),
        }
        outcome
    }

    async fn verify_with_retry(
        &self,
        body: &SiteverifyRequest<'_>,
        deadline: Instant,
    ) -> Result<(), CaptchaError> {
        let first = self.call_once(body, deadline).await;
        let retryable = match &first {
            Err(CaptchaError::Unreachable) => true,
            Ok(reply) => !reply.success && reply.has_code("internal-error"),
            Err(_) => false,
        };
        let reply = if retryable && Instant::now() < deadline {
            tracing::debug!("turnstile siteverify failed transiently; retrying once");
            self.call_once(body, deadline).await?
        } else {
            first?
        };
        self.judge(reply)
    }

    /// One POST to siteverify, bounded by what is left of the deadline.
    async fn call_once(
        &self,
        body: &SiteverifyRequest<'_>,
        deadline: Instant,
    ) -> Result<SiteverifyReply, CaptchaError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(CaptchaError::Timeout);
        }
        let mut response = self
            .client
            .post(&self.settings.siteverify_url)
            .timeout(remaining)
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        if !status.is_success() {
            tracing::warn!(%status, "turnstile siteverify answered a non-success status");
            return Err(CaptchaError::BadReply);
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_REPLY_BYTES as u64)
        {
            tracing::warn!("turnstile siteverify reply too large");
            return Err(CaptchaError::BadReply);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
                tracing::warn!("turnstile siteverify reply too large");
                return Err(CaptchaError::BadReply);
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<SiteverifyReply>(&bytes).map_err(|err| {
            tracing::warn!(error = %err, "turnstile siteverify reply is not a valid verdict");
            CaptchaError::BadReply
        })
    }

    fn judge(&self, reply: SiteverifyReply) -> Result<(), CaptchaError> {
        if !reply.success {
            let codes = reply
                .error_codes
                .unwrap_or_default()
                .into_iter()
                .take(MAX_ERROR_CODES)
                .map(sanitize_code)
                .collect();
            return Err(CaptchaError::Rejected(codes));
        }
        if let Some(expected) = &self.settings.expected_hostname {
            // DNS names are case-insensitive; a missing hostname cannot match.
            let matches = reply
                .hostname
                .as_deref()
                .is_some_and(|got| got.eq_ignore_ascii_case(expected));
            if !matches {
                tracing::warn!(
                    expected = %expected,
                    got = ?reply.hostname,
                    "turnstile token solved on an unexpected hostname"
                );
                return Err(CaptchaError::HostnameMismatch);
            }
        }
        if let Some(expected) = &self.settings.expected_action {
            if reply.action.as_deref() != Some(expected.as_str()) {
                tracing::warn!(
                    expected = %expected,
                    got = ?reply.action,
                    "turnstile token solved for an unexpected action"
                );
                return Err(CaptchaError::ActionMismatch);
            }
        }
        Ok(())
    }
}

/// Maps a reqwest failure; its Display names the URL but never the body, so
/// logging it cannot leak the secret or the token.
fn transport_error(err: reqwest::Error) -> CaptchaError {
    // Checked first: a connect timeout is both a timeout and a connect error,
    // and retrying it would only spend the rest of the budget.
    if err.is_timeout() {
        CaptchaError::Timeout
    } else {
        tracing::warn!(error = %err, "turnstile siteverify transport error");
        CaptchaError::Unreachable
    }
}

/// Error codes come from the network and end up in logs and metric labels, so
/// anything that does not look like a Cloudflare code is replaced.
fn sanitize_code(code: String) -> String {
    let plausible = !code.is_empty()
        && code.len() <= MAX_ERROR_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plausible {
        code
    } else {
        "unrecognized".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret() {
        let secret = "0x4AAAAAAA-very-secret";
        let settings = TurnstileSettings::new(secret);
        assert!(!format!("{settings:?}").contains(secret));
        let turnstile = Turnstile::new(settings).expect("client builds");
        assert!(!format!("{turnstile:?}").contains(secret));
    }

    #[test]
    fn kinds_are_stable() {
        let all = [
            (CaptchaError::Missing, "missing"),
            (CaptchaError::Malformed, "malformed"),
            (CaptchaError::Rejected(vec![]), "rejected"),
            (CaptchaError::Timeout, "timeout"),
            (CaptchaError::Unreachable, "unreachable"),
            (CaptchaError::BadReply, "bad_reply"),
            (CaptchaError::Overloaded, "overloaded"),
            (CaptchaError::HostnameMismatch, "hostname_mismatch"),
            (CaptchaError::ActionMismatch, "action_mismatch"),
        ];
        for (err, kind) in all {
            assert_eq!(err.kind(), kind);
        }
    }

    #[test]
    fn reply_parsing_is_lenient_about_extras_and_strict_about_success() {
        let ok: SiteverifyReply =
            serde_json::from_str(r#"{"success":true,"metadata":{"x":1},"cdata":"c"}"#)
                .expect("extra fields ignored");
        assert!(ok.success && ok.error_codes.is_none());
        let null_codes: SiteverifyReply =
            serde_json::from_str(r#"{"success":false,"error-codes":null}"#).expect("null codes");
        assert!(!null_codes.success);
        assert!(serde_json::from_str::<SiteverifyReply>(r#"{"error-codes":[]}"#).is_err());
        assert!(serde_json::from_str::<SiteverifyReply>(r#"{"success":"true"}"#).is_err());
    }

    #[tokio::test]
    async fn test_secrets_are_answered_locally_as_cloudflare_documents() {
        let verdict = |secret: &str, token: &str| {
            let t = Turnstile::new(TurnstileSettings::new(secret)).expect("client builds");
            assert!(t.answers_locally());
            let token = token.to_string();
            async move { t.verify(&token, None).await }
        };
        let pass = "1x0000000000000000000000000000000AA";
        assert_eq!(verdict(pass, TEST_DUMMY_TOKEN).await, Ok(()));
        // Again: test keys hand out the same dummy token every time, and it keeps passing.
        assert_eq!(verdict(pass, TEST_DUMMY_TOKEN).await, Ok(()));
        assert_eq!(
            verdict(pass, "0.real-looking-token").await,
            Err(CaptchaError::Rejected(vec!["invalid-input-secret".into()]))
        );
        assert_eq!(
            verdict("2x0000000000000000000000000000000AA", TEST_DUMMY_TOKEN).await,
            Err(CaptchaError::Rejected(
                vec!["invalid-input-response".into()]
            ))
        );
        assert_eq!(
            verdict("3x0000000000000000000000000000000AA", TEST_DUMMY_TOKEN).await,
            Err(CaptchaError::Rejected(vec!["timeout-or-duplicate".into()]))
        );
    }

    #[tokio::test]
    async fn local_answers_still_check_the_expected_hostname_and_never_apply_elsewhere() {
        let mut s = TurnstileSettings::new("1x0000000000000000000000000000000AA");
        s.expected_hostname = Some("app.example.com".into());
        let t = Turnstile::new(s).expect("client builds");
        assert_eq!(
            t.verify(TEST_DUMMY_TOKEN, None).await,
            Err(CaptchaError::HostnameMismatch)
        );
        let mut fake = TurnstileSettings::new("1x0000000000000000000000000000000AA");
        fake.siteverify_url = "http://127.0.0.1:9/siteverify".into();
        assert!(!Turnstile::new(fake)
            .expect("client builds")
            .answers_locally());
        let real = TurnstileSettings::new("0x4AAAAAAA-real-secret");
        assert!(!Turnstile::new(real)
            .expect("client builds")
            .answers_locally());
    }

    #[test]
    fn odd_error_codes_are_replaced() {
        assert_eq!(
            sanitize_code("timeout-or-duplicate".into()),
            "timeout-or-duplicate"
        );
        assert_eq!(
            sanitize_code("XXXX.DUMMY.TOKEN.XXXX".into()),
            "unrecognized"
        );
        assert_eq!(sanitize_code("a\nb".into()), "unrecognized");
        assert_eq!(sanitize_code("a".repeat(65)), "unrecognized");
    }
}

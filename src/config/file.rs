//! Raw shape of `gateway.toml`: serde structs that mirror the file key by key, with no validation.
//!
//! Unknown keys are refused (`deny_unknown_fields`) so a typo never silently falls back to a default.
//! Every optional value left out here gets its default in `config::validate`, from `crate::defaults`.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The `[section]` tables of `FileConfig`: the only names `GATEWAY_<SECTION>__<KEY>` variables may use.
/// A new section is added here and as a field below (a test checks the two agree).
pub const SECTIONS: [&str; 9] = [
    "server", "auth", "identity", "cors", "login", "users", "log", "metrics", "shared",
];

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub auth: AuthFile,
    pub identity: IdentityFile,
    pub cors: CorsFile,
    pub login: LoginFile,
    pub users: UsersFile,
    pub log: LogFile,
    pub metrics: MetricsFile,
    pub shared: SharedFile,
    pub routes: Vec<RouteFile>,
}

/// `[shared]`: the Redis store several instances share.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedFile {
    /// `redis://` or `rediss://` (a secret: also `url_file` or `GATEWAY_SHARED__URL`).
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub prefix: Option<String>,
    pub timeout: Option<Dur>,
    pub on_failure: Option<String>,
    pub reconcile_interval: Option<Dur>,
}

/// `[log]`: logging and the access log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access: Option<bool>,
}

/// `[metrics]`: the separate listener for /metrics, /healthz and /readyz.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsFile {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub health_on_main_listener: Option<bool>,
    pub readyz_requires_upstreams: Option<bool>,
    /// Operator bearer token for the revoke endpoint; without it that endpoint is not served.
    pub admin_token_file: Option<PathBuf>,
}

/// `[server]`: the listener and its limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub header_read_timeout: Option<Dur>,
    pub max_header_bytes: Option<usize>,
    pub idle_timeout: Option<Dur>,
    pub max_connections: Option<usize>,
    pub drain_timeout: Option<Dur>,
    pub body_timeout: Option<Dur>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub websocket_idle_timeout: Option<Dur>,
    pub max_websockets_per_user: Option<usize>,
    pub trusted_proxies: Vec<String>,
    pub tls: Option<TlsFile>,
}

/// `[server.tls]`: certificate and key for HTTPS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub handshake_timeout: Option<Dur>,
}

/// `[auth]`: how tokens are signed and verified.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFile {
    pub algorithm: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    pub key_id: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Option<Dur>,
    pub token_ttl: Option<Dur>,
    pub max_token_bytes: Option<usize>,
    /// Keys that still verify tokens after a rotation, each chosen by its `kid`.
    pub previous_keys: Vec<PreviousKeyFile>,
    /// How often users seen with a token are looked up again (off when absent).
    pub recheck_active: Option<Dur>,
    pub revocation: RevocationFile,
    pub cookie: Option<CookieFile>,
}

/// One `[[auth.previous_keys]]` entry: a retired signing key that still verifies the tokens it signed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreviousKeyFile {
    pub kid: Option<String>,
    /// Defaults to `auth.algorithm`.
    pub algorithm: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
}

/// `[auth.revocation]`: bounds of the local revocation tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationFile {
    pub max_tokens: Option<usize>,
    pub max_users: Option<usize>,
    pub max_token_lifetime: Option<Dur>,
}

/// `[identity]`: the headers the upstream receives about the caller.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityFile {
    pub user_header: Option<String>,
    pub name_header: Option<String>,
    /// claim name → header name, for extra claims passed upstream.
    pub claims: BTreeMap<String, String>,
    pub forward_authorization: Option<bool>,
    /// More headers removed from every request, whoever sent it.
    pub strip_headers: Vec<String>,
    /// More headers removed from requests of untrusted peers, kept from trusted proxies.
    pub strip_untrusted_headers: Vec<String>,
    /// The signed identity assertion (off unless `header` is set).
    pub assertion: AssertionFile,
}

/// `[identity.assertion]`: a short-lived JWT, signed with its own key, telling the upstream who the caller is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionFile {
    pub header: Option<String>,
    pub algorithm: Option<String>,
    pub key_file: Option<PathBuf>,
    pub kid: Option<String>,
    pub ttl: Option<Dur>,
    pub issuer: Option<String>,
    pub cache_size: Option<usize>,
    pub previous_keys: Vec<AssertionKeyFile>,
}

/// One `[[identity.assertion.previous_keys]]` entry: a retired assertion key's public half, still published.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionKeyFile {
    pub kid: Option<String>,
    pub algorithm: Option<String>,
    pub public_key_file: Option<PathBuf>,
}

/// `[cors]`: browser origins allowed to call the gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsFile {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<Dur>,
}

/// `[login]`: the `POST /api/Auth` endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginFile {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub body_timeout: Option<Dur>,
    pub min_failure_time: Option<Dur>,
    pub max_user_name_chars: Option<usize>,
    pub logout_enabled: Option<bool>,
    pub logout_path: Option<String>,
    pub turnstile: TurnstileFile,
    pub hashing: HashingFile,
    pub throttle: ThrottleFile,
    pub page: Option<PageFile>,
}

/// `[login.throttle]`: failed-login limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleFile {
    pub ip_max_failures: Option<u32>,
    pub ip_window: Option<Dur>,
    pub user_max_failures: Option<u32>,
    pub user_window: Option<Dur>,
    pub max_entries: Option<usize>,
}

/// `[login.turnstile]`: Cloudflare Turnstile server-side validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnstileFile {
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub siteverify_url: Option<String>,
    pub timeout: Option<Dur>,
    pub expected_hostname: Option<String>,
    pub expected_action: Option<String>,
    pub max_concurrent: Option<usize>,
    pub queue_timeout: Option<Dur>,
    pub max_per_ip: Option<usize>,
    pub site_key: Option<String>,
    pub script_url: Option<String>,
}

/// `[login.hashing]`: the bounded pool that verifies passwords.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingFile {
    pub max_concurrent: Option<usize>,
    pub max_queue: Option<usize>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
}

/// `[users]`: where user records come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersFile {
    pub store: Option<String>,
    pub file: Option<PathBuf>,
    pub reload_interval: Option<Dur>,
    /// `store = "sql"`: connection URL (a secret: also `url_file` or `GATEWAY_USERS__URL`).
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub query: Option<String>,
    pub claims: Option<Vec<String>>,
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Dur>,
    pub query_timeout: Option<Dur>,
    pub dummy_hash: Option<String>,
    pub read_only: Option<bool>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteFile {
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub host: Option<String>,
    pub upstream: Option<String>,
    /// Several targets (`config::pool`); exclusive with `upstream`.
    pub upstreams: Option<Vec<super::pool::TargetFile>>,
    pub balance: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_connections_per_target: Option<usize>,
    pub max_idle_connections: Option<usize>,
    pub queue_timeout: Option<Dur>,
    pub health: Option<super::pool::HealthFile>,
    pub passive: Option<super::pool::PassiveFile>,
    pub public: bool,
    pub strip_prefix: bool,
    pub rewrite_prefix: Option<String>,
    pub preserve_host: Option<bool>,
    pub forward_authorization: Option<bool>,
    pub request_buffer_bytes: Option<usize>,
    pub connect_timeout: Option<Dur>,
    pub timeout: Option<Dur>,
    pub ca_file: Option<PathBuf>,
    pub allow_path_parameters: bool,
    /// Send the signed identity assertion to this route (default: on, when `identity.assertion` is).
    pub assertion: Option<bool>,
    /// The assertion's `aud` for this route (default: the route's name).
    pub assertion_audience: Option<String>,
}

/// `[auth.cookie]`: cookie sessions for server-rendered pages (on when the table is present).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieFile {
    pub enabled: Option<bool>,
    pub name: Option<String>,
    /// Origins besides the gateway's own whose unsafe requests may carry the cookie.
    pub allowed_origins: Vec<String>,
}

/// `[login.page]`: the gateway's HTML login page (on when the table is present).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageFile {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub title: Option<String>,
    pub logo_file: Option<PathBuf>,
    pub template_file: Option<PathBuf>,
    pub turnstile_script_url: Option<String>,
    pub max_return_to_bytes: Option<usize>,
}

/// A duration written as a human string (`"30s"`, `"5m"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(Dur)
            .map_err(|e| {
                serde::de::Error::custom(format!("{text:?} is not a duration like \"30s\" ({e})"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_list_matches_the_file_shape() {
        // serde's unknown-field error lists every field of FileConfig, in declaration order.
        let e = serde_json::from_str::<FileConfig>(r#"{"nope": 1}"#)
            .unwrap_err()
            .to_string();
        let expected: Vec<String> = SECTIONS
            .iter()
            .chain(&["routes"])
            .map(|s| format!("`{s}`"))
            .collect();
        let listed = format!("expected one of {} at line", expected.join(", "));
        assert!(e.contains(&listed), "{e}");
    }
}

//! Validated configuration: typed values built from `gateway.toml` and the environment.
//!
//! How values are chosen, later wins:
//! 1. the defaults in `crate::defaults`;
//! 2. the TOML file (`--config`, default `gateway.toml`);
//! 3. environment variables `GATEWAY_<SECTION>__<KEY>`, e.g. `GATEWAY_AUTH__SECRET`
//!    (`GATEWAY_TEST_*`, `GATEWAY_CONFIG`, `GATEWAY_LOG*` and `GATEWAY_WORKER_THREADS` are not config keys);
//! 4. for secrets, `<key>_file` reads the value from a file (Docker/Kubernetes secrets); giving both is an error.
//!
//! Relative paths in the file are resolved against the file's own directory.

mod error;
pub mod file;

pub use error::ConfigError;

use crate::defaults;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use file::{Dur, FileConfig, RouteFile};
use http::uri::{Authority, Scheme};
use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The whole validated configuration.
#[derive(Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub identity: IdentityConfig,
    pub cors: CorsConfig,
    pub login: LoginConfig,
    pub users: UsersConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub routes: Vec<RouteConfig>,
    /// The file this configuration was loaded from (None for in-memory configs); enables hot reload.
    pub source: Option<PathBuf>,
}

/// Logging settings.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `gateway=debug` (`GATEWAY_LOG` overrides it).
    pub level: String,
    pub json: bool,
    /// One line per request on target `access`.
    pub access: bool,
}

/// The metrics and health listener.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// None when disabled.
    pub listen: Option<SocketAddr>,
    /// Also answer /healthz and /readyz on the main listener, without a token.
    pub health_on_main_listener: bool,
}

/// Listener settings and limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Option<TlsConfig>,
}

/// HTTPS listener files.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub handshake_timeout: Duration,
}

/// Token signing and verification.
#[derive(Clone)]
pub struct AuthConfig {
    pub algorithm: Algorithm,
    pub decoding_key: DecodingKey,
    /// Present when the gateway can issue tokens (HMAC secret, or a private key file).
    pub encoding_key: Option<EncodingKey>,
    pub key_id: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub token_ttl: Duration,
    pub max_token_bytes: usize,
    /// True when the shipped development secret is in use.
    pub dev_secret: bool,
}

/// Identity headers set for the upstream.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    pub user_header: HeaderName,
    pub name_header: HeaderName,
    /// (claim, header) pairs for extra claims.
    pub claims: Vec<(String, HeaderName)>,
    pub forward_authorization: bool,
}

/// Cross-origin settings.
#[derive(Clone, Debug)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`); `*` allows any origin without credentials.
    pub allowed_origins: Vec<String>,
    pub allow_any_origin: bool,
    pub allowed_methods: Vec<Method>,
    pub allowed_headers: Vec<HeaderName>,
    pub expose_headers: Vec<HeaderName>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

/// The login endpoint.
#[derive(Clone, Debug)]
pub struct LoginConfig {
    pub enabled: bool,
    pub path: String,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub turnstile: TurnstileConfig,
    pub hashing: HashingConfig,
    pub throttle: ThrottleConfig,
}

/// Failed-login limits (0 failures = off).
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    pub ip_max_failures: u32,
    pub ip_window: Duration,
    pub user_max_failures: u32,
    pub user_window: Duration,
    pub max_entries: usize,
}

/// Turnstile siteverify settings.
#[derive(Clone)]
pub struct TurnstileConfig {
    /// None: no secret configured, so every login fails closed (logged at start-up).
    pub secret: Option<String>,
    pub siteverify_url: String,
    pub timeout: Duration,
    pub expected_hostname: Option<String>,
    pub expected_action: Option<String>,
    pub max_concurrent: usize,
}

impl std::fmt::Debug for TurnstileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnstileConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("siteverify_url", &self.siteverify_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Password-hashing pool bounds and the parameters of newly made hashes.
#[derive(Clone, Debug)]
pub struct HashingConfig {
    pub max_concurrent: usize,
    pub max_queue: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

/// Where users come from.
#[derive(Clone, Debug)]
pub struct UsersConfig {
    pub store: UserStoreKind,
    pub reload_interval: Duration,
}

/// The configured user store.
#[derive(Clone, Debug)]
pub enum UserStoreKind {
    /// A TOML users file, reloaded when it changes.
    File(PathBuf),
    /// A SQL database queried once per login (`users.store = "sql"`).
    Sql(crate::users::sql::SqlSettings),
}

/// One validated route.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// Normalised prefix: starts with `/`, no trailing slash except for `/` itself.
    pub prefix: String,
    /// Lower-case host without port, if the route is host-specific.
    pub host: Option<String>,
    pub upstream: Upstream,
    pub public: bool,
    /// What replaces the matched prefix when forwarding (None: path kept as is).
    pub rewrite_prefix: Option<String>,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// CA bundle that signs an https upstream's certificate (default: the public web PKI roots).
    pub ca_file: Option<PathBuf>,
}

/// A parsed upstream base URL.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Base path without trailing slash ("" for none).
    pub base_path: String,
    pub url: String,
}

// === impl Config ===

impl Config {
    /// The provider stack: the TOML file (which must exist), then `GATEWAY_*` environment variables.
    pub fn figment(path: &Path) -> Figment {
        Figment::new()
            .merge(Toml::file_exact(path))
            .merge(Self::env())
    }

    /// `GATEWAY_SECTION__KEY` variables, minus the ones that are not config keys.
    pub fn env() -> Env {
        Env::prefixed("GATEWAY_").split("__").filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            !k.starts_with("test_")
                && !k.starts_with("log")
                && k != "config"
                && k != "worker_threads"
        })
    }

    /// Loads and validates the file at `path` plus the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::from_figment(Self::figment(path), &base)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Extracts and validates any provider stack; relative paths resolve against `base`.
    pub fn from_figment(figment: Figment, base: &Path) -> Result<Config, ConfigError> {
        let raw: FileConfig = figment.extract()?;
        validate(raw, base)
    }

    /// Validates a TOML document (tests and tools); relative paths resolve against the current directory.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)), Path::new("."))
    }
}

fn dur(v: Option<Dur>, default: Duration) -> Duration {
    v.map(|d| d.0).unwrap_or(default)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A secret given inline, by env, or as `<key>_file`; never both.
fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(f)) => {
            let path = resolve(base, &f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", path.display()))
            })?;
            // Secret files conventionally end with a newline that is not part of the secret.
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => Ok(None),
    }
}

fn header_name(key: &str, value: &str) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_str(value)
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))?;
    if crate::protocol::headers::is_hop_by_hop(&name) || name == http::header::HOST {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} is a hop-by-hop or Host header and cannot carry identity"),
        ));
    }
    Ok(name)
}

fn validate(raw: FileConfig, base: &Path) -> Result<Config, ConfigError> {
    let server = validate_server(raw.server, base)?;
    let auth = validate_auth(raw.auth, base)?;
    let identity = validate_identity(raw.identity)?;
    let cors = validate_cors(raw.cors)?;
    let login = validate_login(raw.login, base)?;
    let users = validate_users(raw.users, base)?;
    let log = validate_log(raw.log)?;
    let metrics = validate_metrics(raw.metrics)?;
    let routes = validate_routes(raw.routes, base)?;
    if login.enabled
        && routes
            .iter()
            .any(|r| r.prefix.eq_ignore_ascii_case(&login.path))
    {
        return Err(ConfigError::invalid(
            "routes",
            format!(
                "a route prefix equals login.path {:?}, which the gateway answers itself",
                login.path
            ),
        ));
    }
    Ok(Config {
        server,
        auth,
        identity,
        cors,
        login,
        users,
        log,
        metrics,
        source: None,
        routes,
    })
}

fn validate_log(l: file::LogFile) -> Result<LogConfig, ConfigError> {
    let level = l.level.unwrap_or_else(|| "info".to_string());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{level:?} is not a log filter like \"info\" or \"gateway=debug\""),
        ));
    }
    let json = match l.format.as_deref().unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ))
        }
    };
    Ok(LogConfig {
        level,
        json,
        access: l.access.unwrap_or(true),
    })
}

fn validate_metrics(m: file::MetricsFile) -> Result<MetricsConfig, ConfigError> {
    let listen = if m.enabled.unwrap_or(true) {
        let text = m
            .listen
            .unwrap_or_else(|| defaults::METRICS_LISTEN_ADDR.to_string());
        Some(SocketAddr::from_str(&text).map_err(|_| {
            ConfigError::invalid(
                "metrics.listen",
                format!("{text:?} is not an address like 127.0.0.1:9090"),
            )
        })?)
    } else {
        None
    };
    Ok(MetricsConfig {
        listen,
        health_on_main_listener: m.health_on_main_listener.unwrap_or(false),
    })
}

fn validate_server(s: file::ServerFile, base: &Path) -> Result<ServerConfig, ConfigError> {
    let listen_text = s
        .listen
        .unwrap_or_else(|| defaults::LISTEN_ADDR.to_string());
    let listen = SocketAddr::from_str(&listen_text).map_err(|_| {
        ConfigError::invalid(
            "server.listen",
            format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
        )
    })?;
    let max_header_bytes = s.max_header_bytes.unwrap_or(defaults::MAX_HEADER_BYTES);
    // hyper's read buffer cannot be smaller than 8 KiB.
    if max_header_bytes < 8192 {
        return Err(ConfigError::invalid(
            "server.max_header_bytes",
            "must be at least 8192",
        ));
    }
    let max_connections = s.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ConfigError::invalid(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    let h2_max_concurrent_streams = s
        .h2_max_concurrent_streams
        .unwrap_or(defaults::H2_MAX_CONCURRENT_STREAMS);
    if h2_max_concurrent_streams == 0 {
        return Err(ConfigError::invalid(
            "server.h2_max_concurrent_streams",
            "must be at least 1",
        ));
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().enumerate() {
        let net = IpNet::from_str(p)
            .or_else(|_| std::net::IpAddr::from_str(p).map(IpNet::from))
            .map_err(|_| {
                ConfigError::invalid(
                    format!("server.trusted_proxies[{i}]"),
                    format!("{p:?} is not an IP address or CIDR range"),
                )
            })?;
        trusted_proxies.push(net);
    }
    let tls = match s.tls {
        None => None,
        Some(t) => {
            let cert = resolve(
                base,
                &t.cert.unwrap_or_else(|| PathBuf::from("certs/gateway.crt")),
            );
            let key = resolve(
                base,
                &t.key.unwrap_or_else(|| PathBuf::from("certs/gateway.key")),
            );
            for (k, p) in [("server.tls.cert", &cert), ("server.tls.key", &key)] {
                if !p.is_file() {
                    return Err(ConfigError::invalid(
                        k,
                        format!("{}: file not found", p.display()),
                    ));
                }
            }
            Some(TlsConfig {
                cert,
                key,
                handshake_timeout: dur(t.handshake_timeout, defaults::TLS_HANDSHAKE_TIMEOUT),
            })
        }
    };
    Ok(ServerConfig {
        listen,
        header_read_timeout: dur(s.header_read_timeout, defaults::HEADER_READ_TIMEOUT),
        max_header_bytes,
        idle_timeout: dur(s.idle_timeout, defaults::IDLE_TIMEOUT),
        max_connections,
        drain_timeout: dur(s.drain_timeout, defaults::DRAIN_TIMEOUT),
        h2_max_concurrent_streams,
        trusted_proxies,
        tls,
    })
}

fn validate_auth(a: file::AuthFile, base: &Path) -> Result<AuthConfig, ConfigError> {
    let alg_text = a.algorithm.unwrap_or_else(|| "HS256".to_string());
    const KNOWN: [&str; 12] = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ];
    let canonical = KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&alg_text))
        .copied()
        .unwrap_or("");
    let algorithm = Algorithm::from_str(canonical).map_err(|_| {
        ConfigError::invalid(
            "auth.algorithm",
            format!("{alg_text:?} is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"),
        )
    })?;
    // An empty value means "not set", so an environment variable can clear a secret from the file.
    let secret = secret(
        "auth.secret",
        a.secret.filter(|s| !s.is_empty()),
        a.secret_file,
        base,
    )?;
    let is_hmac = matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let (decoding_key, encoding_key, dev_secret) = if is_hmac {
        if a.public_key_file.is_some() || a.private_key_file.is_some() {
            return Err(ConfigError::invalid(
                "auth.public_key_file",
                format!("{alg_text} uses auth.secret, not key files"),
            ));
        }
        let secret = secret.ok_or_else(|| {
            ConfigError::invalid(
                "auth.secret",
                format!("required for {alg_text} (or auth.secret_file, or GATEWAY_AUTH__SECRET)"),
            )
        })?;
        if secret.len() < defaults::MIN_HMAC_SECRET_BYTES {
            return Err(ConfigError::invalid(
                "auth.secret",
                format!(
                    "is {} bytes; an HMAC secret needs at least {} random bytes",
                    secret.len(),
                    defaults::MIN_HMAC_SECRET_BYTES
                ),
            ));
        }
        (
            DecodingKey::from_secret(secret.as_bytes()),
            Some(EncodingKey::from_secret(secret.as_bytes())),
            secret == defaults::DEV_JWT_SECRET,
        )
    } else {
        if secret.is_some() {
            return Err(ConfigError::invalid(
                "auth.secret",
                format!(
                    "{alg_text} uses auth.public_key_file / auth.private_key_file, not a secret"
                ),
            ));
        }
        let pub_path = a
            .public_key_file
            .map(|p| resolve(base, &p))
            .ok_or_else(|| {
                ConfigError::invalid("auth.public_key_file", format!("required for {alg_text}"))
            })?;
        let pem = std::fs::read(&pub_path).map_err(|e| {
            ConfigError::invalid(
                "auth.public_key_file",
                format!("{}: {e}", pub_path.display()),
            )
        })?;
        let decoding = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        }
        .map_err(|e| {
            ConfigError::invalid(
                "auth.public_key_file",
                format!("not a {alg_text} public key PEM: {e}"),
            )
        })?;
        let encoding = match a.private_key_file {
            None => None,
            Some(p) => {
                let path = resolve(base, &p);
                let pem = std::fs::read(&path).map_err(|e| {
                    ConfigError::invalid(
                        "auth.private_key_file",
                        format!("{}: {e}", path.display()),
                    )
                })?;
                let key = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                    _ => EncodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| {
                    ConfigError::invalid(
                        "auth.private_key_file",
                        format!("not a {alg_text} private key PEM: {e}"),
                    )
                })?;
                Some(key)
            }
        };
        if let Some(enc) = &encoding {
            // A mismatched pair would issue tokens the gateway itself refuses: find out now, not at the first login.
            let probe = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(algorithm),
                &serde_json::json!({"sub": "probe", "exp": u32::MAX}),
                enc,
            )
            .map_err(|e| {
                ConfigError::invalid("auth.private_key_file", format!("cannot sign with it: {e}"))
            })?;
            let mut v = jsonwebtoken::Validation::new(algorithm);
            v.validate_aud = false;
            if jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &v).is_err() {
                return Err(ConfigError::invalid(
                    "auth.private_key_file",
                    "does not match auth.public_key_file",
                ));
            }
        }
        (decoding, encoding, false)
    };
    let token_ttl = dur(a.token_ttl, defaults::TOKEN_TTL);
    if token_ttl.is_zero() {
        return Err(ConfigError::invalid(
            "auth.token_ttl",
            "must be longer than 0s",
        ));
    }
    let max_token_bytes = a.max_token_bytes.unwrap_or(defaults::MAX_TOKEN_BYTES);
    if max_token_bytes < 256 {
        return Err(ConfigError::invalid(
            "auth.max_token_bytes",
            "must be at least 256",
        ));
    }
    Ok(AuthConfig {
        algorithm,
        decoding_key,
        encoding_key,
        key_id: a.key_id,
        issuer: a.issuer.filter(|s| !s.is_empty()),
        audience: a.audience.filter(|s| !s.is_empty()),
        leeway: dur(a.leeway, defaults::TOKEN_LEEWAY),
        token_ttl,
        max_token_bytes,
        dev_secret,
    })
}

fn validate_identity(i: file::IdentityFile) -> Result<IdentityConfig, ConfigError> {
    let user_header = header_name(
        "identity.user_header",
        i.user_header.as_deref().unwrap_or(defaults::USER_HEADER),
    )?;
    let name_header = header_name(
        "identity.name_header",
        i.name_header.as_deref().unwrap_or(defaults::NAME_HEADER),
    )?;
    let mut claims = Vec::new();
    for (claim, header) in i.claims {
        let h = header_name(&format!("identity.claims.{claim}"), &header)?;
        claims.push((claim, h));
    }
    Ok(IdentityConfig {
        user_header,
        name_header,
        claims,
        forward_authorization: i.forward_authorization.unwrap_or(true),
    })
}

fn validate_cors(c: file::CorsFile) -> Result<CorsConfig, ConfigError> {
    let mut allow_any_origin = false;
    let mut allowed_origins = Vec::new();
    for (i, o) in c.allowed_origins.iter().enumerate() {
        if o == "*" {
            allow_any_origin = true;
            continue;
        }
        let uri = Uri::from_str(o).ok();
        let ok = uri.as_ref().is_some_and(|u| {
            u.scheme().is_some() && u.authority().is_some() && u.path() == "/" && !o.ends_with('/')
        });
        if !ok {
            return Err(ConfigError::invalid(
                format!("cors.allowed_origins[{i}]"),
                format!("{o:?} is not an origin like https://app.example.com (scheme and host, no path)"),
            ));
        }
        allowed_origins.push(o.to_ascii_lowercase());
    }
    if allow_any_origin && c.allow_credentials {
        return Err(ConfigError::invalid(
            "cors.allow_credentials",
            "cannot be true with allowed_origins = [\"*\"] (browsers refuse it)",
        ));
    }
    let methods = c.allowed_methods.unwrap_or_else(|| {
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    let mut allowed_methods = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        allowed_methods.push(Method::from_str(&m.to_ascii_uppercase()).map_err(|_| {
            ConfigError::invalid(
                format!("cors.allowed_methods[{i}]"),
                format!("{m:?} is not a method"),
            )
        })?);
    }
    let headers = c.allowed_headers.unwrap_or_else(|| {
        ["authorization", "content-type", "x-requested-with"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    let parse_headers = |key: &str, list: &[String]| -> Result<Vec<HeaderName>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, h)| {
                HeaderName::from_str(h).map_err(|_| {
                    ConfigError::invalid(
                        format!("{key}[{i}]"),
                        format!("{h:?} is not a header name"),
                    )
                })
            })
            .collect()
    };
    Ok(CorsConfig {
        allowed_origins,
        allow_any_origin,
        allowed_methods,
        allowed_headers: parse_headers("cors.allowed_headers", &headers)?,
        expose_headers: parse_headers("cors.expose_headers", &c.expose_headers)?,
        allow_credentials: c.allow_credentials,
        max_age: dur(c.max_age, defaults::CORS_MAX_AGE),
    })
}

fn validate_login(l: file::LoginFile, base: &Path) -> Result<LoginConfig, ConfigError> {
    let path = l.path.unwrap_or_else(|| defaults::LOGIN_PATH.to_string());
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            "login.path",
            format!("{path:?} must be a path starting with /"),
        ));
    }
    let max_body_bytes = l.max_body_bytes.unwrap_or(defaults::MAX_LOGIN_BODY_BYTES);
    if max_body_bytes < 64 {
        return Err(ConfigError::invalid(
            "login.max_body_bytes",
            "must be at least 64",
        ));
    }
    let t = l.turnstile;
    let secret =
        secret("login.turnstile.secret", t.secret, t.secret_file, base)?.filter(|s| !s.is_empty());
    let siteverify_url = t
        .siteverify_url
        .unwrap_or_else(|| defaults::SITEVERIFY_URL.to_string());
    match Uri::from_str(&siteverify_url) {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
        _ => {
            return Err(ConfigError::invalid(
                "login.turnstile.siteverify_url",
                format!("{siteverify_url:?} is not an absolute http(s) URL"),
            ))
        }
    }
    let max_concurrent = t
        .max_concurrent
        .unwrap_or(defaults::SITEVERIFY_MAX_CONCURRENT);
    if max_concurrent == 0 {
        return Err(ConfigError::invalid(
            "login.turnstile.max_concurrent",
            "must be at least 1",
        ));
    }
    let h = l.hashing;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashing = HashingConfig {
        max_concurrent: h.max_concurrent.filter(|n| *n > 0).unwrap_or(cores),
        max_queue: h.max_queue.unwrap_or(defaults::HASH_QUEUE),
        argon2_memory_kib: h.argon2_memory_kib.unwrap_or(defaults::ARGON2_MEMORY_KIB),
        argon2_iterations: h.argon2_iterations.unwrap_or(defaults::ARGON2_ITERATIONS),
        argon2_parallelism: h.argon2_parallelism.unwrap_or(defaults::ARGON2_PARALLELISM),
    };
    if hashing.argon2_memory_kib < 8 * hashing.argon2_parallelism.max(1)
        || hashing.argon2_iterations == 0
        || hashing.argon2_parallelism == 0
    {
        return Err(ConfigError::invalid(
            "login.hashing",
            "argon2 parameters out of range (memory >= 8 KiB per lane, iterations and parallelism >= 1)",
        ));
    }
    let th = l.throttle;
    let throttle = ThrottleConfig {
        ip_max_failures: th
            .ip_max_failures
            .unwrap_or(defaults::THROTTLE_IP_MAX_FAILURES),
        ip_window: dur(th.ip_window, defaults::THROTTLE_IP_WINDOW),
        user_max_failures: th
            .user_max_failures
            .unwrap_or(defaults::THROTTLE_USER_MAX_FAILURES),
        user_window: dur(th.user_window, defaults::THROTTLE_USER_WINDOW),
        max_entries: th.max_entries.unwrap_or(defaults::THROTTLE_MAX_ENTRIES),
    };
    for (key, w) in [
        ("login.throttle.ip_window", throttle.ip_window),
        ("login.throttle.user_window", throttle.user_window),
    ] {
        if w.is_zero() {
            return Err(ConfigError::invalid(key, "must be longer than 0s"));
        }
    }
    Ok(LoginConfig {
        body_timeout: dur(l.body_timeout, defaults::LOGIN_BODY_TIMEOUT),
        throttle,
        enabled: l.enabled.unwrap_or(true),
        path,
        max_body_bytes,
        turnstile: TurnstileConfig {
            secret,
            siteverify_url,
            timeout: dur(t.timeout, defaults::SITEVERIFY_TIMEOUT),
            expected_hostname: t.expected_hostname.filter(|s| !s.is_empty()),
            expected_action: t.expected_action.filter(|s| !s.is_empty()),
            max_concurrent,
        },
        hashing,
    })
}

fn validate_users(u: file::UsersFile, base: &Path) -> Result<UsersConfig, ConfigError> {
    use crate::users::sql::{self, SqlSettings};
    let kind = u.store.as_deref().unwrap_or("file");
    // Keys of the other store are refused rather than silently ignored.
    let sql_keys = [
        ("users.url", u.url.is_some()),
        ("users.url_file", u.url_file.is_some()),
        ("users.query", u.query.is_some()),
        ("users.claims", u.claims.is_some()),
        ("users.max_connections", u.max_connections.is_some()),
        ("users.connect_timeout", u.connect_timeout.is_some()),
        ("users.query_timeout", u.query_timeout.is_some()),
        ("users.dummy_hash", u.dummy_hash.is_some()),
        ("users.read_only", u.read_only.is_some()),
    ];
    let file_keys = [
        ("users.file", u.file.is_some()),
        ("users.reload_interval", u.reload_interval.is_some()),
    ];
    let store = match kind {
        "file" => {
            if let Some((key, _)) = sql_keys.iter().find(|(_, set)| *set) {
                return Err(ConfigError::invalid(
                    *key,
                    "only used with users.store = \"sql\"",
                ));
            }
            UserStoreKind::File(resolve(
                base,
                &u.file
                    .unwrap_or_else(|| PathBuf::from(defaults::USERS_FILE)),
            ))
        }
        "sql" => {
            if let Some((key, _)) = file_keys.iter().find(|(_, set)| *set) {
                return Err(ConfigError::invalid(
                    *key,
                    "only used with users.store = \"file\"",
                ));
            }
            let url = secret("users.url", u.url, u.url_file, base)?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "users.url",
                        "required when users.store = \"sql\" (or users.url_file, or GATEWAY_USERS__URL)",
                    )
                })?;
            let mut s = SqlSettings::new(url.trim()).ok_or_else(|| {
                // Only the scheme is echoed: the rest may hold a password.
                let scheme = url.split_once(':').map_or("", |(s, _)| s);
                ConfigError::invalid(
                    "users.url",
                    format!("scheme {scheme:?} is not supported (postgres://, mysql://, mariadb:// or sqlite:)"),
                )
            })?;
            s.check_url()
                .map_err(|e| ConfigError::invalid("users.url", e))?;
            if let Some(q) = u.query {
                if q.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        "users.query",
                        "is empty (leave it out for the default ASP.NET Identity query)",
                    ));
                }
                s.query = q;
            }
            for (i, c) in u.claims.unwrap_or_default().into_iter().enumerate() {
                let key = format!("users.claims[{i}]");
                let lower = c.to_ascii_lowercase();
                if c.trim().is_empty() {
                    return Err(ConfigError::invalid(key, "is empty"));
                }
                if sql::RESERVED_COLUMNS.contains(&lower.as_str()) {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{c:?} is read by the gateway itself and never becomes a claim"),
                    ));
                }
                if crate::protocol::claims::RESERVED_CLAIMS.contains(&lower.as_str()) {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{c:?} is a registered claim the gateway sets itself (alias the column in users.query)"),
                    ));
                }
                if s.claims.iter().any(|o| o.eq_ignore_ascii_case(&c)) {
                    return Err(ConfigError::invalid(key, format!("{c:?} is listed twice")));
                }
                s.claims.push(c);
            }
            if let Some(n) = u.max_connections {
                if n == 0 {
                    return Err(ConfigError::invalid(
                        "users.max_connections",
                        "must be at least 1",
                    ));
                }
                s.max_connections = n;
            }
            s.connect_timeout = dur(u.connect_timeout, sql::DEFAULT_CONNECT_TIMEOUT);
            s.query_timeout = dur(u.query_timeout, sql::DEFAULT_QUERY_TIMEOUT);
            for (key, d) in [
                ("users.connect_timeout", s.connect_timeout),
                ("users.query_timeout", s.query_timeout),
            ] {
                if d.is_zero() {
                    return Err(ConfigError::invalid(key, "must be longer than 0s"));
                }
            }
            if let Some(name) = u.dummy_hash {
                s.dummy = sql::parse_dummy_kind(&name).ok_or_else(|| {
                    ConfigError::invalid(
                        "users.dummy_hash",
                        format!("{name:?} is not one of argon2id, aspnet-v3, aspnet-v3-sha256, aspnet-v2"),
                    )
                })?;
            }
            s.read_only = u.read_only.unwrap_or(true);
            UserStoreKind::Sql(s)
        }
        other => {
            return Err(ConfigError::invalid(
                "users.store",
                format!("{other:?} is not a known store (file, sql)"),
            ))
        }
    };
    Ok(UsersConfig {
        store,
        reload_interval: dur(u.reload_interval, defaults::USERS_RELOAD_INTERVAL),
    })
}

fn validate_routes(routes: Vec<RouteFile>, base: &Path) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(routes.len());
    for (i, r) in routes.into_iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        let prefix_raw = r.prefix.ok_or_else(|| {
            ConfigError::invalid(key("prefix"), "required (e.g. \"/\" or \"/api\")")
        })?;
        let prefix = normalise_prefix(&prefix_raw)
            .ok_or_else(|| ConfigError::invalid(key("prefix"), format!("{prefix_raw:?} must be a normalised path starting with / (no . or .. segments, no //, no query)")))?;
        let upstream_text = r.upstream.ok_or_else(|| {
            ConfigError::invalid(key("upstream"), "required (e.g. \"http://127.0.0.1:9000\")")
        })?;
        let upstream = parse_upstream(&upstream_text).map_err(|reason| {
            ConfigError::invalid(key("upstream"), format!("{upstream_text:?}: {reason}"))
        })?;
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
        if let Some(other) = out.iter().find(|o| o.prefix == prefix && o.host == host) {
            return Err(ConfigError::invalid(
                key("prefix"),
                format!(
                    "overlaps route {:?}: same prefix {prefix:?} and host {:?}",
                    other.name,
                    host.as_deref().unwrap_or("(any)")
                ),
            ));
        }
        out.push(RouteConfig {
            name: r.name.unwrap_or_else(|| format!("route{i}")),
            prefix,
            host,
            upstream,
            public: r.public,
            rewrite_prefix,
            preserve_host: r.preserve_host.unwrap_or(true),
            connect_timeout: dur(r.connect_timeout, defaults::UPSTREAM_CONNECT_TIMEOUT),
            timeout: dur(r.timeout, defaults::UPSTREAM_TIMEOUT),
            ca_file: match r.ca_file {
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
            },
        });
    }
    Ok(out)
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
    let normal = crate::protocol::path::normalise(trimmed).ok()?;
    (normal == trimmed || (trimmed.is_empty() && normal == "/")).then(|| {
        if trimmed.is_empty() {
            "/".to_string()
        } else {
            normal
        }
    })
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri = Uri::from_str(text).map_err(|_| "not a URL".to_string())?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => return Err("not an absolute http(s) URL".into()),
    };
    let authority = uri.authority().cloned().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not contain credentials".into());
    }
    if uri.query().is_some() {
        return Err("must not contain a query".into());
    }
    Ok(Upstream {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_string(),
        url: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn with_routes(routes: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n{routes}")
    }

    fn err(text: &str) -> String {
        match Config::from_toml(text) {
            Ok(_) => panic!("config unexpectedly accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n",
        ))
        .unwrap();
        assert_eq!(c.server.listen.to_string(), defaults::LISTEN_ADDR);
        assert_eq!(c.auth.token_ttl, Duration::from_secs(1800));
        assert_eq!(c.auth.leeway, Duration::from_secs(30));
        assert_eq!(c.identity.user_header, "x-auth-user");
        assert!(c.identity.forward_authorization);
        assert_eq!(c.routes[0].prefix, "/");
        assert_eq!(c.login.path, "/api/Auth");
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let e = err(&with_routes("[server]\nlisten_adress = \"127.0.0.1:1\"\n"));
        assert!(e.contains("listen_adress"), "{e}");
    }

    #[test]
    fn short_secret_is_refused() {
        let e = err("[auth]\nsecret = \"short\"\n");
        assert!(e.starts_with("auth.secret:") && e.contains("32"), "{e}");
    }

    #[test]
    fn missing_secret_is_refused() {
        assert!(err("").starts_with("auth.secret:"));
    }

    #[test]
    fn secret_and_secret_file_together_are_refused() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nsecret_file = \"/nonexistent\"\n"
        ));
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn secret_file_is_read_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("jwt");
        std::fs::write(&f, format!("{SECRET}\n")).unwrap();
        let c = Config::from_toml(&format!(
            "[auth]\nsecret_file = {:?}\n",
            f.display().to_string()
        ))
        .unwrap();
        assert!(!c.auth.dev_secret);
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "a", "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let v = jsonwebtoken::Validation::new(Algorithm::HS256);
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, &c.auth.decoding_key, &v).is_ok()
        );
    }

    #[test]
    fn bad_upstream_names_its_route() {
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"ftp://x\"\n",
        ));
        assert!(e.starts_with("routes[0].upstream:"), "{e}");
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"not a url\"\n",
        ));
        assert!(e.starts_with("routes[0].upstream:"), "{e}");
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
    fn unnormalised_prefix_is_refused() {
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/a/../b\"\nupstream = \"http://a\"\n",
        ));
        assert!(e.starts_with("routes[0].prefix:"), "{e}");
    }

    #[test]
    fn missing_cert_file_is_refused() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server.tls]\ncert = \"/nonexistent.crt\"\n"
        ));
        assert!(e.starts_with("server.tls.cert:"), "{e}");
    }

    #[test]
    fn bad_duration_names_its_key() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\nidle_timeout = \"soon\"\n"
        ));
        assert!(e.contains("idle_timeout") && e.contains("soon"), "{e}");
    }

    #[test]
    fn identity_header_must_not_be_hop_by_hop() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[identity]\nuser_header = \"Connection\"\n"
        ));
        assert!(e.starts_with("identity.user_header:"), "{e}");
    }

    #[test]
    fn wildcard_origin_with_credentials_is_refused() {
        let e = err(&format!("[auth]\nsecret = \"{SECRET}\"\n[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n"));
        assert!(e.starts_with("cors.allow_credentials:"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.set_env("GATEWAY_SERVER__LISTEN", "127.0.0.1:9999");
            jail.set_env("GATEWAY_TEST_POSTGRES_URL", "postgres://ignored");
            let c = Config::load(Path::new("gateway.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.port(), 9999);
            Ok(())
        });
    }

    #[test]
    fn mismatched_key_pair_is_refused_and_algorithm_names_ignore_case() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let b = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let private = dir.path().join("a.pem");
        let public_a = dir.path().join("a.pub");
        let public_b = dir.path().join("b.pub");
        std::fs::write(&private, a.serialize_pem()).unwrap();
        std::fs::write(&public_a, a.public_key_pem()).unwrap();
        std::fs::write(&public_b, b.public_key_pem()).unwrap();
        let toml = |public: &Path| {
            format!(
                "[auth]\nalgorithm = \"es256\"\nprivate_key_file = {:?}\npublic_key_file = {:?}\n",
                private.display().to_string(),
                public.display().to_string()
            )
        };
        Config::from_toml(&toml(&public_a)).unwrap();
        let e = err(&toml(&public_b));
        assert!(
            e.starts_with("auth.private_key_file:") && e.contains("does not match"),
            "{e}"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        assert!(matches!(
            Config::load(Path::new("/nonexistent/gateway.toml")),
            Err(ConfigError::Missing(_))
        ));
    }
    // --- users.store = "sql" ---
    fn sql(extra: &str) -> Result<crate::users::sql::SqlSettings, String> {
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"sql\"\n{extra}"
        ))
        .map_err(|e| e.to_string())?;
        match c.users.store {
            UserStoreKind::Sql(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sql_store_defaults_follow_the_url_scheme() {
        use crate::users::sql::Dialect;
        let s = sql("url = \"postgres://gw:pw@db:5432/app\"\n").unwrap();
        assert_eq!(s.dialect, Dialect::Postgres);
        assert_eq!(s.query, Dialect::Postgres.default_query());
        assert_eq!(s.max_connections, 4);
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.query_timeout, Duration::from_secs(2));
        assert_eq!(s.dummy, crate::auth::password::DummyKind::AspNetV3Net7);
        assert!(s.read_only && s.claims.is_empty());
        assert_eq!(
            sql("url = \"mariadb://root@h/db\"\n").unwrap().dialect,
            Dialect::MySql
        );
        let s = sql("url = \"sqlite:///tmp/x.db\"\nquery = \"SELECT 1\"\nclaims = [\"email\"]\nmax_connections = 9\nconnect_timeout = \"5s\"\nquery_timeout = \"250ms\"\ndummy_hash = \"argon2id\"\nread_only = false\n").unwrap();
        assert_eq!(s.dialect, Dialect::Sqlite);
        assert_eq!(s.query, "SELECT 1");
        assert_eq!(s.claims, ["email"]);
        assert_eq!(s.max_connections, 9);
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.query_timeout, Duration::from_millis(250));
        assert_eq!(s.dummy, crate::auth::password::DummyKind::Argon2id);
        assert!(!s.read_only);
    }

    #[test]
    fn sql_store_errors_name_the_key_and_hide_the_password() {
        let e = sql("").unwrap_err();
        assert!(e.starts_with("users.url: required"), "{e}");
        let e = sql("url = \"redis://u:hunter2@h\"\n").unwrap_err();
        assert!(
            e.starts_with("users.url:") && e.contains("redis") && !e.contains("hunter2"),
            "{e}"
        );
        let e = sql("url = \"postgres://u:hunter2@h:notaport/db\"\n").unwrap_err();
        assert!(e.starts_with("users.url:") && !e.contains("hunter2"), "{e}");
        let e = sql("url = \"sqlite:x\"\nurl_file = \"/nonexistent\"\n").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        for (extra, key) in [
            ("query = \"  \"", "users.query:"),
            ("claims = [\"Password_Hash\"]", "users.claims[0]:"),
            ("claims = [\"a\", \"sub\"]", "users.claims[1]:"),
            ("claims = [\"a\", \"A\"]", "users.claims[1]:"),
            ("max_connections = 0", "users.max_connections:"),
            ("connect_timeout = \"0s\"", "users.connect_timeout:"),
            ("query_timeout = \"0s\"", "users.query_timeout:"),
            ("dummy_hash = \"sha1\"", "users.dummy_hash:"),
            ("file = \"users.toml\"", "users.file:"),
            ("reload_interval = \"1s\"", "users.reload_interval:"),
        ] {
            let e = sql(&format!("url = \"sqlite:x.db\"\n{extra}\n")).unwrap_err();
            assert!(e.starts_with(key), "{extra}: {e}");
        }
        // SQL keys with the file store are refused too.
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nquery = \"SELECT 1\"\n"
        ));
        assert!(e.starts_with("users.query: only used with"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"ldap\"\n"
        ));
        assert!(e.starts_with("users.store:"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type
    fn sql_url_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "postgres://gw:pw@db/app\n").unwrap();
        let s = sql(&format!("url_file = {:?}\n", f.display().to_string())).unwrap();
        assert_eq!(s.url, "postgres://gw:pw@db/app");
        assert!(!format!("{s:?}").contains(":pw@"));
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gateway.toml",
                &format!("[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"sql\"\n"),
            )?;
            jail.set_env("GATEWAY_USERS__URL", "mysql://root@127.0.0.1:3306/app");
            let c = Config::load(Path::new("gateway.toml")).map_err(|e| e.to_string())?;
            match c.users.store {
                UserStoreKind::Sql(s) => {
                    assert_eq!(s.dialect, crate::users::sql::Dialect::MySql)
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    }
    // --- end sql ---
}

//! Validated configuration: typed values built from `gateway.toml` and the environment.
//!
//! How values are chosen, later wins:
//! 1. the defaults in `crate::defaults`;
//! 2. the TOML file (`--config`, default `gateway.toml`);
//! 3. environment variables `GATEWAY_<SECTION>__<KEY>` for the sections in `file::SECTIONS`, e.g.
//!    `GATEWAY_AUTH__SECRET`, and `GATEWAY_ROUTES`; other `GATEWAY_*` names are not config keys and are
//!    ignored (see `layers`);
//! 4. for secrets, `<key>_file` reads the value from a file (Docker/Kubernetes secrets); giving both in one
//!    layer is an error, while either form from the environment replaces both forms from the file.
//!
//! Relative paths in the file are resolved against the file's own directory. Each section is validated by
//! its own file (`server`, `auth`, …); this one assembles them and checks the rules that span sections.

mod assertion;
mod auth;
mod cookie;
mod cors;
mod error;
pub mod file;
mod identity;
mod layers;
mod login;
mod observability;
mod page;
mod pool;
mod revocation;
mod routes;
mod server;
mod shared;
mod users;
mod value;

pub use assertion::{AssertionConfig, AssertionSigningKey};
pub use auth::{is_hmac, AuthConfig, VerifyKey};
pub use cookie::CookieConfig;
pub use cors::CorsConfig;
pub use error::ConfigError;
pub use identity::IdentityConfig;
pub use login::{HashingConfig, LoginConfig, ThrottleConfig, TurnstileConfig};
pub use observability::{AdminToken, LogConfig, MetricsConfig};
pub use page::LoginPageConfig;
pub use pool::{Balance, HealthCheckConfig, PassiveConfig, PoolConfig, TargetConfig};
pub use revocation::SessionsConfig;
pub use routes::{nested_under_public, LocalTarget, RouteConfig, Upstream};
pub use server::{ServerConfig, TlsConfig};
pub use shared::{OnFailure, SharedConfig};
pub use users::{
    parse_dummy_kind, redact_url, Dialect, SqlSettings, UserStoreKind, UsersConfig,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DUMMY, DEFAULT_MAX_CONNECTIONS, DEFAULT_QUERY_TIMEOUT,
    MYSQL_DEFAULT_QUERY, POSTGRES_DEFAULT_QUERY, RESERVED_COLUMNS, SQLITE_DEFAULT_QUERY,
};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use file::FileConfig;
use std::path::{Path, PathBuf};

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
    /// The store several instances share; None: every defence is in-process.
    pub shared: Option<SharedConfig>,
    pub routes: Vec<RouteConfig>,
    /// `[auth.cookie]`, when cookie sessions are on.
    pub cookie: Option<CookieConfig>,
    /// `[login.page]`, when the login page is on.
    pub page: Option<LoginPageConfig>,
    /// The file this configuration was loaded from (None for in-memory configs); enables hot reload.
    pub source: Option<PathBuf>,
}

// === impl Config ===

impl Config {
    /// The provider stack: the TOML file (which must exist), then `GATEWAY_*` environment variables.
    pub fn figment(path: &Path) -> Figment {
        layers::log_ignored_env();
        layers::merge_replacing_secrets(Toml::file_exact(path), Self::env())
    }

    /// `GATEWAY_SECTION__KEY` variables of the known sections and `GATEWAY_ROUTES`; nothing else.
    pub fn env() -> Env {
        layers::env()
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

/// Validates each section, then the rules that span sections.
fn validate(mut raw: FileConfig, base: &Path) -> Result<Config, ConfigError> {
    let cookie = cookie::validate_cookie(raw.auth.cookie.take())?;
    let page = page::validate_page(raw.login.page.take(), base)?;
    let server = server::validate_server(raw.server, base)?;
    let auth = auth::validate_auth(raw.auth, base)?;
    let config = Config {
        server,
        identity: identity::validate_identity(raw.identity, &auth, base)?,
        auth,
        cors: cors::validate_cors(raw.cors)?,
        login: login::validate_login(raw.login, base)?,
        users: users::validate_users(raw.users, base)?,
        log: observability::validate_log(raw.log)?,
        metrics: observability::validate_metrics(raw.metrics, base)?,
        shared: shared::validate_shared(raw.shared, base)?,
        routes: routes::validate_routes(raw.routes, base)?,
        cookie,
        page,
        source: None,
    };
    check_login_path_is_free(&config.login, &config.routes)?;
    if config.auth.sessions.recheck_active.is_some() && !config.login.enabled {
        return Err(ConfigError::invalid(
            "auth.recheck_active",
            "needs the login's user store (login.enabled = true)",
        ));
    }
    cookie::check_rules(&config)?;
    page::check_rules(&config)?;
    Ok(config)
}

/// The gateway answers `login.path` itself, so a route with that exact prefix could never be reached.
fn check_login_path_is_free(
    login: &LoginConfig,
    routes: &[RouteConfig],
) -> Result<(), ConfigError> {
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
    if login.logout_enabled
        && routes
            .iter()
            .any(|r| r.prefix.eq_ignore_ascii_case(&login.logout_path))
    {
        return Err(ConfigError::invalid(
            "routes",
            format!(
                "a route prefix equals login.logout_path {:?}, which the gateway answers itself (set login.logout_enabled = false to leave it to the backend)",
                login.logout_path
            ),
        ));
    }
    Ok(())
}

/// Helpers shared by the sections' unit tests.
#[cfg(test)]
mod testing {
    use super::Config;

    /// An HMAC secret long enough to be accepted.
    pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    /// A config with a valid `[auth]` followed by `routes` (any TOML).
    pub fn with_routes(routes: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n{routes}")
    }

    /// The error a TOML document is refused with; panics if it is accepted.
    pub fn err(text: &str) -> String {
        match Config::from_toml(text) {
            Ok(_) => panic!("config unexpectedly accepted"),
            Err(e) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{err, with_routes, SECRET};
    use super::*;
    use crate::defaults;
    use std::time::Duration;

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
    fn route_on_the_login_path_is_refused() {
        let e = err(&with_routes(
            "[[routes]]\nprefix = \"/api/auth\"\nupstream = \"http://a\"\n",
        ));
        assert!(e.starts_with("routes:") && e.contains("login.path"), "{e}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        assert!(matches!(
            Config::load(Path::new("/nonexistent/gateway.toml")),
            Err(ConfigError::Missing(_))
        ));
    }

    // --- the environment layer (figment::Jail: a private environment and directory per test) ---

    /// Loads `gateway.toml` from the jail's directory.
    fn load() -> Result<Config, String> {
        Config::load(Path::new("gateway.toml")).map_err(|e| e.to_string())
    }

    /// The error loading `gateway.toml` fails with; panics if it loads.
    fn load_err(why: &str) -> String {
        match load() {
            Ok(_) => panic!("{why}"),
            Err(e) => e,
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.set_env("GATEWAY_SERVER__LISTEN", "127.0.0.1:9999");
            jail.set_env("GATEWAY_TEST_POSTGRES_URL", "postgres://ignored");
            let c = load()?;
            assert_eq!(c.server.listen.port(), 9999);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn kubernetes_service_variables_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", &with_routes(""))?;
            for (k, v) in [
                ("GATEWAY_PORT", "tcp://10.0.0.12:8080"),
                ("GATEWAY_SERVICE_HOST", "10.0.0.12"),
                ("GATEWAY_SERVICE_PORT", "8080"),
                ("GATEWAY_SERVICE_PORT_HTTP", "8080"),
                ("GATEWAY_PORT_8080_TCP", "tcp://10.0.0.12:8080"),
                ("GATEWAY_PORT_8080_TCP_ADDR", "10.0.0.12"),
                ("GATEWAY_PORT_8080_TCP_PORT", "8080"),
                ("GATEWAY_PORT_8080_TCP_PROTO", "tcp"),
                // Documented names read elsewhere must not reach the config either.
                ("GATEWAY_CONFIG", "gateway.toml"),
                ("GATEWAY_LOG", "debug"),
                ("GATEWAY_LOG_FORMAT", "json"),
                ("GATEWAY_WORKER_THREADS", "2"),
            ] {
                jail.set_env(k, v);
            }
            let c = load()?;
            assert_eq!(c.server.listen.to_string(), defaults::LISTEN_ADDR);
            assert!(
                !c.log.json,
                "GATEWAY_LOG_FORMAT is telemetry's, not log.format"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn unknown_key_of_a_known_section_in_the_environment_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.set_env("GATEWAY_SERVER__LISTEN_ADRESS", "127.0.0.1:1");
            let e = load_err("typo accepted");
            assert!(e.contains("listen_adress"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn log_section_and_routes_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.set_env("GATEWAY_LOG__FORMAT", "json");
            jail.set_env(
                "GATEWAY_ROUTES",
                r#"[{prefix = "/", upstream = "http://127.0.0.1:9"}]"#,
            );
            let c = load()?;
            assert!(c.log.json);
            assert_eq!(c.routes.len(), 1);
            assert_eq!(c.routes[0].upstream.authority.as_str(), "127.0.0.1:9");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn secret_file_from_the_environment_replaces_the_files_secret() {
        figment::Jail::expect_with(|jail| {
            let other = "fedcba9876543210fedcba9876543210-env";
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.create_file("jwt", &format!("{other}\n"))?;
            jail.set_env("GATEWAY_AUTH__SECRET_FILE", "jwt");
            let c = load()?;
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &serde_json::json!({"sub": "a", "exp": 4_000_000_000u64}),
                &jsonwebtoken::EncodingKey::from_secret(other.as_bytes()),
            )
            .unwrap();
            let v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&token, &c.auth.decoding_key, &v).is_ok(),
                "the environment's secret file is not the one in use"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn secret_from_the_environment_replaces_the_files_secret_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gateway.toml",
                "[login.turnstile]\nsecret_file = \"/nonexistent\"\n[users]\nstore = \"sql\"\nurl_file = \"/nonexistent\"\n",
            )?;
            jail.set_env("GATEWAY_AUTH__SECRET", SECRET);
            jail.set_env("GATEWAY_LOGIN__TURNSTILE__SECRET", "ts-secret");
            jail.set_env("GATEWAY_USERS__URL", "sqlite:users.db");
            let c = load()?;
            assert_eq!(c.login.turnstile.secret.as_deref(), Some("ts-secret"));
            assert!(matches!(c.users.store, UserStoreKind::Sql(s) if s.url == "sqlite:users.db"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type, not ours
    fn both_secret_forms_in_one_layer_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("jwt", SECRET)?;
            // Both in the environment.
            jail.create_file("gateway.toml", &with_routes(""))?;
            jail.set_env("GATEWAY_AUTH__SECRET", SECRET);
            jail.set_env("GATEWAY_AUTH__SECRET_FILE", "jwt");
            let e = load_err("both forms accepted from the environment");
            assert!(
                e.starts_with("auth.secret:") && e.contains("not both"),
                "{e}"
            );
            // Both in the file, none in the environment.
            jail.clear_env();
            jail.create_file(
                "gateway.toml",
                &format!("[auth]\nsecret = \"{SECRET}\"\nsecret_file = \"jwt\"\n"),
            )?;
            let e = load_err("both forms accepted from the file");
            assert!(
                e.starts_with("auth.secret:") && e.contains("not both"),
                "{e}"
            );
            Ok(())
        });
    }
}

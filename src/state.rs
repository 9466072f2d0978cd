//! `State`: everything a request needs, built once from a validated `Config` (keys parsed, routes compiled,
//! upstream clients pooled), so the request path reads it without locks or re-parsing.
//!
//! A reload builds a new `State` and drops the old one. What must survive that — metrics, the login's
//! defences (throttles, spent captchas) and the per-user count of open WebSockets — lives in [`Lasting`],
//! made once per process and handed to every `State`; the users file store is carried over while its path
//! stays the same, so it keeps its last good copy.

use crate::auth::defences::LoginDefences;
use crate::auth::login::Login;
use crate::auth::token::{TokenIssuer, TokenVerifier};
use crate::config::{Config, IdentityConfig};
use crate::cors::Cors;
use crate::forward::client::{self, ClientError, UpstreamClient};
use crate::forward::seats::UpgradeSeats;
use crate::metrics::{Metrics, RouteName};
use crate::routing::Router;
use crate::users::file::FileStore;
use crate::users::UserStore;
use bytes::Bytes;
use http::HeaderName;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// Shared, immutable per-configuration state.
pub struct State {
    pub router: Router,
    /// One pooled client per route, same index as `router.routes()`.
    pub clients: Vec<UpstreamClient>,
    pub verifier: TokenVerifier,
    pub identity: IdentityConfig,
    /// Every header name that carries identity or overrides the target, stripped from every request.
    pub identity_names: Vec<HeaderName>,
    /// Header names stripped from untrusted peers' requests (client address claims).
    pub untrusted_names: Vec<HeaderName>,
    pub max_token_bytes: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub cors: Cors,
    /// The login endpoint, when enabled.
    pub login: Option<Login>,
    /// The file store, for the reload watcher.
    pub users_file: Option<Arc<FileStore>>,
    /// The JWKS document, for asymmetric algorithms.
    pub jwks: Option<Bytes>,
    /// Process-wide metrics (survive reloads).
    pub metrics: Arc<Metrics>,
    /// Route names as metric labels, same index as `router.routes()`.
    pub route_names: Vec<RouteName>,
    /// TLS acceptor with the current certificate, when HTTPS is on.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Write one access-log line per request.
    pub access_log: bool,
    /// Answer /healthz and /readyz on the main listener.
    pub health_on_main: bool,
    /// The login page, when `[login.page]` is on.
    pub page: Option<crate::page::LoginPage>,
    /// The configuration this state was built from.
    pub config: Config,
}

/// State that outlives configuration reloads: made once per process, shared by every `State`.
pub struct Lasting {
    /// Process-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Login throttles and spent captcha tokens.
    pub defences: Arc<LoginDefences>,
    /// Open upgraded connections per token subject: kept across reloads because the connections are.
    pub websockets: UpgradeSeats,
}

impl Lasting {
    /// Fresh process-wide state, sized by the first configuration.
    pub fn new(config: &Config) -> Lasting {
        Lasting {
            metrics: Metrics::new(),
            defences: Arc::new(LoginDefences::new(&config.login)),
            websockets: UpgradeSeats::new(),
        }
    }

    /// Makes the lasting parts enforce a newly loaded configuration's limits.
    pub fn apply(&self, config: &Config) {
        self.defences.apply(&config.login);
    }
}

/// Why runtime state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An upstream client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The login endpoint could not be set up.
    #[error("{0}")]
    Login(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl State {
    /// Builds the state for `config`; `previous` (on a reload) lends its users file store when the path is
    /// unchanged. Applying the new limits to `lasting` is the caller's step, once the state is accepted.
    pub fn new(
        config: &Config,
        lasting: &Lasting,
        previous: Option<&State>,
    ) -> Result<State, StateError> {
        let metrics = lasting.metrics.clone();
        let tls = match &config.server.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                t,
            )?)),
            None => None,
        };
        let clients = config
            .routes
            .iter()
            .map(client::build)
            .collect::<Result<Vec<_>, _>>()?;
        let mut identity_names = vec![
            config.identity.user_header.clone(),
            config.identity.name_header.clone(),
        ];
        identity_names.extend(config.identity.claims.iter().map(|(_, h)| h.clone()));
        identity_names.extend(crate::forward::headers::ALWAYS_STRIPPED.iter().cloned());
        identity_names.extend(config.identity.strip_headers.iter().cloned());
        let mut untrusted_names = crate::forward::headers::UNTRUSTED_STRIPPED.to_vec();
        untrusted_names.extend(config.identity.strip_untrusted_headers.iter().cloned());
        let login_path = config.login.enabled.then_some(config.login.path.as_str());
        let jwks = crate::auth::jwks::document(&config.auth)
            .map_err(StateError::Login)?
            .map(Bytes::from);
        let (login, users_file) = if config.login.enabled {
            let issuer = TokenIssuer::new(&config.auth).ok_or_else(|| {
                StateError::Login(
                    "auth.private_key_file: required to issue tokens while login is enabled".into(),
                )
            })?;
            let (store, file) = match &config.users.store {
                crate::config::UserStoreKind::File(path) => {
                    let kept = previous
                        .and_then(|p| p.users_file.clone())
                        .filter(|f| f.path() == path.as_path());
                    let file = kept.unwrap_or_else(|| Arc::new(FileStore::open(path)));
                    (UserStore::File(file.clone()), Some(file))
                }
                // Lazy: nothing connects here, so the gateway starts with the database down.
                crate::config::UserStoreKind::Sql(settings) => (
                    UserStore::Sql(Arc::new(crate::users::sql::SqlStore::new(settings.clone()))),
                    None,
                ),
            };
            let store = Arc::new(store);
            tracing::debug!(store = %store.describe(), "user store");
            (
                Some(
                    Login::new(
                        &config.login,
                        store,
                        issuer,
                        lasting.defences.clone(),
                        metrics.clone(),
                    )
                    .map_err(StateError::Login)?,
                ),
                file,
            )
        } else {
            (None, None)
        };
        Ok(State {
            router: Router::new(config.routes.clone(), login_path, jwks.is_some()),
            clients,
            verifier: TokenVerifier::for_identity(&config.auth, &config.identity),
            identity: config.identity.clone(),
            identity_names,
            untrusted_names,
            max_token_bytes: config.auth.max_token_bytes,
            trusted_proxies: config.server.trusted_proxies.clone(),
            cors: Cors::new(&config.cors),
            login,
            users_file,
            jwks,
            route_names: config
                .routes
                .iter()
                .map(|r| Arc::new(r.name.clone()))
                .collect(),
            metrics,
            tls,
            access_log: config.log.access,
            health_on_main: config.metrics.health_on_main_listener,
            page: login_page(config),
            config: config.clone(),
        })
    }

    /// Readiness: the user store (when login is on) can answer.
    pub async fn ready(&self) -> Result<(), String> {
        match &self.login {
            Some(login) => login.store().ready().await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The session cookie's name when cookie mode is on.
    pub fn cookie_name(&self) -> Option<&str> {
        self.config.cookie.as_ref().map(|c| c.name.as_str())
    }

    /// True when `ip` is a configured trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// The login page; validation made sure cookie mode and the site key are there when it is on.
fn login_page(config: &Config) -> Option<crate::page::LoginPage> {
    let page = config.page.as_ref()?;
    let cookie = config.cookie.as_ref()?;
    let site_key = config.login.turnstile.site_key.as_deref()?;
    Some(crate::page::LoginPage::new(page, site_key, &cookie.name))
}

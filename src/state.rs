//! `State`: everything a request needs, built once from a validated `Config` (keys parsed, routes compiled,
//! upstream clients pooled), so the request path reads it without locks or re-parsing.
//!
//! A reload builds a new `State` and drops the old one. What must survive that — metrics, the login's
//! defences (throttles, spent captchas) and the per-user count of open WebSockets — lives in [`Lasting`],
//! made once per process and handed to every `State`; the users file store is carried over while its path
//! stays the same, so it keeps its last good copy.

use crate::auth::assertion::Asserter;
use crate::auth::defences::LoginDefences;
use crate::auth::login::Login;
use crate::auth::revocation::Revocations;
use crate::auth::sessions::Sessions;
use crate::auth::token::{TokenIssuer, TokenVerifier};
use crate::config::{AssertionSigningKey, Config, IdentityConfig};
use crate::cors::Cors;
use crate::forward::connect::ClientError;
use crate::forward::pool::health::HealthBook;
use crate::forward::pool::Pool;
use crate::forward::seats::UpgradeSeats;
use crate::metrics::{Metrics, RouteMetrics, RouteName};
use crate::routing::Router;
use crate::shared::SharedStore;
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
    /// Each route's backend pool (a pooled client per target), same index as `router.routes()`.
    pub pools: Vec<Pool>,
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
    /// Signs identity assertions, when `identity.assertion` is on.
    pub asserter: Option<Asserter>,
    /// Process-wide metrics (survive reloads).
    pub metrics: Arc<Metrics>,
    /// Route names as metric labels, same index as `router.routes()`.
    pub route_names: Vec<RouteName>,
    /// Each route's metric series, resolved once per configuration; same index as `router.routes()`.
    pub route_metrics: Vec<RouteMetrics>,
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
    /// The ephemeral assertion key (no `identity.assertion.key_file`), made once so that a reload does not
    /// change the key upstreams verify with.
    ephemeral_assertion_key: std::sync::Mutex<Option<AssertionSigningKey>>,
    /// What is known about each upstream target's health: kept while a reload keeps the target.
    pub upstream_health: HealthBook,
    /// Ended sessions: the revocation table (revoked token ids, per-user watermarks, users seen for
    /// `auth.recheck_active`) and where revocations are published.
    pub sessions: Arc<Sessions>,
    /// The store several instances share (`[shared]`), when configured; its connection outlives reloads.
    pub shared: Option<Arc<SharedStore>>,
}

impl Lasting {
    /// Fresh process-wide state, sized by the first configuration. The shared store is started only inside
    /// a Tokio runtime (serving); outside one (`check-config`) there is nothing to connect for.
    pub fn new(config: &Config) -> Result<Lasting, StateError> {
        let metrics = Metrics::new();
        let shared = match &config.shared {
            Some(cfg) if tokio::runtime::Handle::try_current().is_ok() => {
                Some(SharedStore::start(cfg, metrics.clone()).map_err(StateError::Shared)?)
            }
            _ => None,
        };
        Ok(Lasting {
            metrics,
            defences: Arc::new(LoginDefences::new(&config.login)),
            websockets: UpgradeSeats::new(),
            ephemeral_assertion_key: std::sync::Mutex::default(),
            upstream_health: HealthBook::new(),
            sessions: Arc::new(Sessions::new(
                Arc::new(Revocations::new(&config.auth.sessions, config.auth.leeway)),
                shared.clone(),
            )),
            shared,
        })
    }

    /// The process's ephemeral assertion key for `algorithm`, generated (with a loud warning) on first use.
    pub fn ephemeral_assertion_key(
        &self,
        algorithm: jsonwebtoken::Algorithm,
    ) -> Result<AssertionSigningKey, String> {
        let mut slot = self
            .ephemeral_assertion_key
            .lock()
            .map_err(|_| "assertion key lock poisoned".to_string())?;
        if let Some(key) = slot
            .as_ref()
            .filter(|k| k.public.common.key_algorithm == Some(algorithm.into()))
        {
            return Ok(key.clone());
        }
        let key = AssertionSigningKey::generate(algorithm).map_err(|e| e.to_string())?;
        tracing::warn!(
            kid = key.kid(),
            "identity.assertion.key_file is not set: signing identity assertions with an EPHEMERAL key made \
             for this process; upstreams must refetch the assertion JWKS after every restart, and instances \
             do not share it. Development only: refused on a non-loopback address"
        );
        *slot = Some(key.clone());
        Ok(key)
    }

    /// Makes the lasting parts enforce a newly loaded configuration's limits.
    pub fn apply(&self, config: &Config) {
        self.defences.apply(&config.login);
        self.upstream_health.retain(
            &crate::forward::pool::health_keys(&config.routes),
            &self.metrics,
        );
        self.sessions
            .table()
            .apply(&config.auth.sessions, config.auth.leeway);
        if let (Some(store), Some(cfg)) = (&self.shared, &config.shared) {
            store.apply(cfg);
        }
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
    /// The identity assertion signer could not be set up.
    #[error("{0}")]
    Assertion(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The shared store's client could not be set up.
    #[error("{0}")]
    Shared(String),
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
        let route_names: Vec<RouteName> = config
            .routes
            .iter()
            .map(|r| Arc::new(r.name.clone()))
            .collect();
        let pools = config
            .routes
            .iter()
            .zip(&route_names)
            .map(|(r, name)| Pool::new(r, name, &lasting.upstream_health, &metrics))
            .collect::<Result<Vec<_>, _>>()?;
        let mut identity_names = vec![
            config.identity.user_header.clone(),
            config.identity.name_header.clone(),
        ];
        identity_names.extend(config.identity.claims.iter().map(|(_, h)| h.clone()));
        identity_names.extend(crate::forward::headers::ALWAYS_STRIPPED.iter().cloned());
        identity_names.extend(config.identity.strip_headers.iter().cloned());
        let asserter = match &config.identity.assertion {
            Some(a) => {
                let key = match &a.key {
                    Some(k) => k.clone(),
                    None => lasting
                        .ephemeral_assertion_key(a.algorithm)
                        .map_err(StateError::Assertion)?,
                };
                identity_names.push(a.header.clone());
                Some(
                    Asserter::new(a, &key, &config.identity, &config.routes)
                        .map_err(StateError::Assertion)?,
                )
            }
            None => None,
        };
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
                        lasting.shared.clone(),
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
            router: Router::new(config.routes.clone(), login_path, jwks.is_some())
                .with_assertion_jwks(asserter.is_some())
                .with_logout(
                    config
                        .login
                        .logout_enabled
                        .then_some(config.login.logout_path.as_str()),
                ),
            pools,
            verifier: TokenVerifier::for_identity(&config.auth, &config.identity)
                .with_revocations(lasting.sessions.table().clone()),
            identity: config.identity.clone(),
            identity_names,
            untrusted_names,
            max_token_bytes: config.auth.max_token_bytes,
            trusted_proxies: config.server.trusted_proxies.clone(),
            cors: Cors::new(&config.cors),
            login,
            users_file,
            jwks,
            asserter,
            route_metrics: config
                .routes
                .iter()
                .map(|r| RouteMetrics::new(Arc::new(r.name.clone())))
                .collect(),
            route_names,
            metrics,
            tls,
            access_log: config.log.access,
            health_on_main: config.metrics.health_on_main_listener,
            page: login_page(config),
            config: config.clone(),
        })
    }

    /// Readiness: the user store (when login is on) can answer, and with
    /// `metrics.readyz_requires_upstreams` every route has a target that takes requests.
    pub async fn ready(&self) -> Result<(), String> {
        if self.config.metrics.readyz_requires_upstreams {
            if let Some(p) = self.pools.iter().find(|p| !p.has_available()) {
                return Err(format!(
                    "route {}: no upstream target takes requests",
                    p.route
                ));
            }
        }
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

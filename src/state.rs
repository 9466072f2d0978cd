//! `State`: everything a request needs, built once from a validated `Config` (keys parsed, routes compiled,
//! upstream clients pooled), so the request path reads it without locks or re-parsing.

use crate::auth::login::Login;
use crate::auth::token::{TokenIssuer, TokenVerifier};
use crate::config::{Config, IdentityConfig};
use crate::cors::Cors;
use crate::forward::client::{self, ClientError, UpstreamClient};
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
    /// Every header name that carries identity, stripped from client requests.
    pub identity_names: Vec<HeaderName>,
    pub max_token_bytes: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub cors: Cors,
    /// The login endpoint, when enabled.
    pub login: Option<Login>,
    /// The file store, for the reload watcher.
    pub users_file: Option<Arc<FileStore>>,
    /// The JWKS document, for asymmetric algorithms.
    pub jwks: Option<Bytes>,
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
}

impl State {
    /// Builds the state; fails only on upstream TLS setup.
    pub fn new(config: &Config) -> Result<State, StateError> {
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
            let crate::config::UserStoreKind::File(path) = &config.users.store;
            let file = Arc::new(FileStore::open(path));
            let store = Arc::new(UserStore::File(file.clone()));
            (
                Some(Login::new(&config.login, store, issuer).map_err(StateError::Login)?),
                Some(file),
            )
        } else {
            (None, None)
        };
        Ok(State {
            router: Router::new(config.routes.clone(), login_path, jwks.is_some()),
            clients,
            verifier: TokenVerifier::new(&config.auth, !config.identity.claims.is_empty()),
            identity: config.identity.clone(),
            identity_names,
            max_token_bytes: config.auth.max_token_bytes,
            trusted_proxies: config.server.trusted_proxies.clone(),
            cors: Cors::new(&config.cors),
            login,
            users_file,
            jwks,
        })
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

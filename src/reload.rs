//! Hot reload: the current `State` behind an `ArcSwap`, swapped whole when the configuration file, the TLS
//! certificate or key change (polled), or on SIGHUP.
//!
//! One watcher owns SIGHUP and every file stamp, and tells each consumer what changed: a changed config or
//! certificate file (or SIGHUP) rebuilds the whole state; a changed users file alone reloads just that store;
//! SIGHUP also re-reads the users file even when its stamp looks unchanged. The state built on a reload shares
//! [`Lasting`] (metrics, login defences) with the one it replaces, so a reload never forgets the defences.
//!
//! A new configuration is loaded and validated and its `State` fully built (keys, routes, upstream clients,
//! certificate, users) before the swap, so an invalid file is refused with a logged reason and the old one
//! keeps serving. In-flight requests hold the `State` they started with and finish on it. Settings fixed at
//! start (listen addresses, connection limits and timeouts, TLS on/off) are reported as needing a restart.

use crate::config::Config;
use crate::metrics::OutcomeLabels;
use crate::state::{Lasting, State};
use crate::users::file::{stamp, Stamp};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the listener, the request handler and the reloader share.
pub struct Shared {
    current: ArcSwap<State>,
    /// State that outlives reloads (metrics, login defences).
    pub lasting: Lasting,
    source: Option<PathBuf>,
    /// Serialises reloads (SIGHUP and the poller may fire together).
    reloading: Mutex<()>,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

impl Shared {
    /// Wraps the first state, built on `lasting`.
    pub fn new(state: Arc<State>, lasting: Lasting, source: Option<PathBuf>) -> Shared {
        let stamps = watched_files(&state.config, source.as_deref())
            .iter()
            .map(|p| stamp(p))
            .collect();
        Shared {
            current: ArcSwap::new(state),
            lasting,
            source,
            reloading: Mutex::new(()),
            stamps: Mutex::new(stamps),
        }
    }

    /// The state new requests use.
    pub fn current(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// Remembers the watched files' stamps now; true when they differ from what was last seen.
    fn files_changed(&self) -> bool {
        if self.source.is_none() {
            return false;
        }
        let files = watched_files(&self.current().config, self.source.as_deref());
        let now: Vec<_> = files.iter().map(|p| stamp(p)).collect();
        self.stamps
            .lock()
            .map(|mut s| {
                let changed = *s != now;
                // Remember what we saw, so a refused file is not retried (and logged) every tick.
                *s = now;
                changed
            })
            .unwrap_or(false)
    }
}

fn watched_files(config: &Config, source: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = source.map(Path::to_path_buf).into_iter().collect();
    if let Some(tls) = &config.server.tls {
        files.push(tls.cert.clone());
        files.push(tls.key.clone());
    }
    files
}

/// Settings that only take effect after a restart, named by key.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            keys.push(key);
        }
    };
    check(o.listen != n.listen, "server.listen");
    check(
        o.header_read_timeout != n.header_read_timeout,
        "server.header_read_timeout",
    );
    check(
        o.max_header_bytes != n.max_header_bytes,
        "server.max_header_bytes",
    );
    check(o.idle_timeout != n.idle_timeout, "server.idle_timeout");
    check(
        o.max_connections != n.max_connections,
        "server.max_connections",
    );
    check(o.drain_timeout != n.drain_timeout, "server.drain_timeout");
    check(
        o.h2_max_concurrent_streams != n.h2_max_concurrent_streams,
        "server.h2_max_concurrent_streams",
    );
    check(o.tls.is_some() != n.tls.is_some(), "server.tls");
    check(
        o.tls.as_ref().map(|t| t.handshake_timeout) != n.tls.as_ref().map(|t| t.handshake_timeout),
        "server.tls.handshake_timeout",
    );
    check(old.metrics.listen != new.metrics.listen, "metrics.listen");
    // The shared store's connection is made once per process (`Lasting`).
    let store = |c: &Config| c.shared.as_ref().map(|s| (s.url.clone(), s.prefix.clone()));
    check(store(old) != store(new), "shared.url/shared.prefix");
    check(
        old.log.level != new.log.level || old.log.json != new.log.json,
        "log.level/log.format",
    );
    keys
}

/// Loads, validates and builds the configuration from its file, then swaps it in.
pub fn reload(shared: &Shared) -> Result<(), String> {
    let Some(path) = &shared.source else {
        return Err("this gateway was started without a configuration file".into());
    };
    let _guard = shared
        .reloading
        .lock()
        .map_err(|_| "reload lock poisoned".to_string())?;
    let outcome = (|| {
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let old = shared.current();
        let restart = needs_restart(&old.config, &config);
        let state = State::new(&config, &shared.lasting, Some(&old)).map_err(|e| e.to_string())?;
        crate::exposure::check(&config, &state)?;
        if let Ok(mut stamps) = shared.stamps.lock() {
            *stamps = watched_files(&config, Some(path))
                .iter()
                .map(|p| stamp(p))
                .collect();
        }
        shared.current.store(Arc::new(state));
        shared.lasting.apply(&config);
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "configuration reloaded, but these changes need a restart to apply");
        }
        Ok::<_, String>(config.routes.len())
    })();
    match outcome {
        Ok(routes) => {
            shared
                .lasting
                .metrics
                .config_reloads
                .get_or_create(&OutcomeLabels { outcome: "ok" })
                .inc();
            tracing::info!(path = %path.display(), routes, "configuration reloaded");
            Ok(())
        }
        Err(e) => {
            shared
                .lasting
                .metrics
                .config_reloads
                .get_or_create(&OutcomeLabels { outcome: "refused" })
                .inc();
            tracing::error!(path = %path.display(), error = %e, "new configuration refused; the previous one keeps serving");
            Err(e)
        }
    }
}

/// The one watcher: polls the configuration, certificate and users files every `interval` and listens for
/// SIGHUP, until its task is aborted.
pub async fn watch(shared: Arc<Shared>, interval: Duration) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if shared.files_changed() {
                    full_reload(&shared).await;
                }
                if let Some(file) = &shared.current().users_file {
                    file.reload_if_changed();
                }
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                let s = shared.clone();
                let _ = tokio::task::spawn_blocking(move || reload_everything(&s)).await;
                // Keep the poller from reloading the same files again on its next tick.
                shared.files_changed();
            }
        }
    }
}

/// What SIGHUP does: reloads the configuration (when there is a file) and re-reads the users file even if its
/// stamp looks unchanged. Errors are logged; the first one is returned.
pub fn reload_everything(shared: &Shared) -> Result<(), String> {
    let config = match shared.source {
        Some(_) => reload(shared),
        None => Ok(()),
    };
    let users = match &shared.current().users_file {
        Some(file) => match file.reload() {
            Ok(n) => {
                tracing::info!(users = n, "users file reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "users file refused; keeping the last good copy");
                Err(e)
            }
        },
        None => Ok(()),
    };
    config.and(users)
}

/// Runs [`reload`] off the async threads: it reads files and may parse keys and certificates.
async fn full_reload(shared: &Arc<Shared>) {
    let s = shared.clone();
    let _ = tokio::task::spawn_blocking(move || reload(&s)).await;
}

//! The shared store: one Redis (or Valkey) that several gateway instances use so they act as one.
//!
//! `SharedStore` lives in `state::Lasting` (its connection outlives reloads; a changed `shared.url` or
//! `shared.prefix` needs a restart). It never blocks start-up: the connection manager is created lazily
//! and reconnects by itself, and a probe pings the store every [`PROBE_INTERVAL`] so `/readyz`, the
//! `gateway_shared_store_up` gauge and the reconnect do not wait for the next login. Every call goes through
//! [`SharedStore::call`], which bounds it by `shared.timeout`, records its latency and errors per operation,
//! and turns every failure into one [`SharedError`].
//!
//! Nothing on the proxied (Bearer) path calls the store: only logins (and session controls) do.

pub mod error;
pub mod throttle;

pub use error::SharedError;

use crate::config::{OnFailure, SharedConfig};
use crate::metrics::{Metrics, OperationLabels};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the store is pinged in the background (readiness, the up gauge, and an early reconnect).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one connection attempt; longer than `shared.timeout` so a slow link can still connect while
/// logins already answered 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between reconnection attempts, so a store that comes back is used again within seconds.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// A handle on the shared store; cheap to share behind an `Arc`.
pub struct SharedStore {
    client: redis::Client,
    manager: ConnectionManager,
    url: String,
    prefix: String,
    /// `shared.timeout` in nanoseconds (a reload may change it).
    timeout_nanos: AtomicU64,
    /// `shared.on_failure`: 0 closed, 1 local (a reload may change it).
    on_failure: AtomicU8,
    /// The last call (or probe) succeeded.
    up: AtomicBool,
    /// Some call has succeeded since start.
    reached: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("url", &crate::config::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// A store for `cfg`; connects lazily, so it returns at once even when Redis is down. Must run inside a
    /// Tokio runtime (the connection manager and the probe are tasks).
    pub fn start(cfg: &SharedConfig, metrics: Arc<Metrics>) -> Result<Arc<SharedStore>, String> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| format!("shared.url: not a Redis URL ({})", e.category()))?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Calls are bounded by shared.timeout in `call`; this bounds what a silent server can pile up.
            .set_response_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_cfg)
            .map_err(|e| format!("shared store: {e}"))?;
        let store = Arc::new(SharedStore {
            client,
            manager,
            url: cfg.url.clone(),
            prefix: cfg.prefix.clone(),
            timeout_nanos: AtomicU64::new(nanos(cfg.timeout)),
            on_failure: AtomicU8::new(on_failure_code(cfg.on_failure)),
            up: AtomicBool::new(false),
            reached: AtomicBool::new(false),
            metrics,
        });
        store.metrics.shared_up.set(0);
        tokio::spawn(probe(Arc::downgrade(&store)));
        tracing::info!(url = %crate::config::redact_url(&cfg.url), prefix = %cfg.prefix, "shared store configured");
        Ok(store)
    }

    /// Applies a reloaded configuration's timeout and failure policy (the URL and prefix need a restart).
    pub fn apply(&self, cfg: &SharedConfig) {
        self.timeout_nanos
            .store(nanos(cfg.timeout), Ordering::Relaxed);
        self.on_failure
            .store(on_failure_code(cfg.on_failure), Ordering::Relaxed);
    }

    /// `<prefix>:<part>:<part>…`: every key of this gateway lives under its prefix.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for p in parts {
            key.push(':');
            key.push_str(p);
        }
        key
    }

    /// The multiplexed connection (a cheap clone); send commands through [`SharedStore::call`].
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The client, for connections of their own (pub/sub: `client().get_async_pubsub()`).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// `shared.timeout`: the bound on one round trip.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_nanos.load(Ordering::Relaxed))
    }

    /// `shared.on_failure`.
    pub fn on_failure(&self) -> OnFailure {
        match self.on_failure.load(Ordering::Relaxed) {
            1 => OnFailure::Local,
            _ => OnFailure::Closed,
        }
    }

    /// True while the last call or probe succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Readiness: the store has answered at least once since start. A later outage does not make the
    /// instance unready: every instance shares the store, so that would take every one of them out of the
    /// load balancer and stop proxied traffic that does not need Redis at all (see README, "Shared state").
    pub fn ready(&self) -> Result<(), String> {
        if self.reached.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the shared store has not answered yet".into())
        }
    }

    /// Runs one store operation: bounded by `shared.timeout`, timed and counted under `operation`.
    pub async fn call<T, F>(&self, operation: &'static str, fut: F) -> Result<T, SharedError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SharedError::Failed {
                operation,
                detail: e.to_string(),
            }),
            Err(_) => Err(SharedError::Timeout { operation }),
        };
        let labels = OperationLabels { operation };
        self.metrics
            .shared_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(_) => self.mark(true, None),
            Err(e) => {
                self.metrics.shared_errors.get_or_create(&labels).inc();
                self.mark(false, Some(e));
            }
        }
        outcome
    }

    /// Counts a login step served by the local tables because the store failed.
    pub fn count_fallback(&self, operation: &'static str) {
        self.metrics
            .shared_fallbacks
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Records the store's state; logs only transitions, so an outage is one line, not one per login.
    fn mark(&self, up: bool, error: Option<&SharedError>) {
        if up {
            self.reached.store(true, Ordering::Relaxed);
        }
        let was = self.up.swap(up, Ordering::Relaxed);
        self.metrics.shared_up.set(i64::from(up));
        match (was, up) {
            (false, true) => tracing::info!("shared store reachable"),
            (true, false) => {
                let policy = match self.on_failure() {
                    OnFailure::Closed => "logins answer 503 until it is back",
                    OnFailure::Local => "logins use this instance's own tables until it is back",
                };
                tracing::warn!(error = %error.map(ToString::to_string).unwrap_or_default(), "shared store unreachable; {policy}");
            }
            _ => {}
        }
    }
}

/// Pings the store until it is dropped.
async fn probe(store: Weak<SharedStore>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let mut conn = store.connection();
        let _ = store
            .call("ping", async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn on_failure_code(p: OnFailure) -> u8 {
    match p {
        OnFailure::Closed => 0,
        OnFailure::Local => 1,
    }
}

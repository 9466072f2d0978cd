//! Revocations in the shared store: written once, seen by every instance.
//!
//! Two sorted sets under the store's prefix hold every live revocation: `revoked:tokens` (member `jti`,
//! score the moment it may be forgotten) and `revoked:users` (member `sub`, score the watermark). A
//! revocation is one Lua script: add (keeping the larger score), trim what has expired, extend the set's
//! TTL, and publish the revocation on the `revoked` channel; so nothing is read-modify-written from the
//! gateway and every key carries a TTL.
//!
//! Each instance subscribes to the channel and applies what it hears to its local table (the request path
//! never waits on the store). Pub/sub loses messages while disconnected, so after every (re)subscription
//! and every `shared.reconcile_interval` the instance reconciles fully: it loads both sets into its table
//! and writes back whatever live entries of its own the store lacks (a store that restarted empty gets the
//! revocations back from the instances that remember them). `/readyz` waits for the first full load.

use super::revocation::{now_secs, Revocation, Revocations};
use crate::shared::{SharedError, SharedStore};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Adds one member keeping the larger score, drops members scored below ARGV[3], makes the key live at
/// least ARGV[4] seconds more, and publishes ARGV[6] on channel ARGV[5] (empty: no publish).
const REVOKE_SCRIPT: &str = r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return 1
";

/// Members of a sorted set with their scores.
type Scored = Vec<(String, u64)>;

/// A revocation on the wire (pub/sub message).
#[derive(Serialize, Deserialize)]
struct Wire {
    /// `token` or `user`.
    kind: String,
    /// The `jti` or the `sub`.
    id: String,
    /// A token's forget-after moment, or a user's watermark.
    at: u64,
}

impl Wire {
    fn of(r: &Revocation) -> Wire {
        match r {
            Revocation::Token { jti, until } => Wire {
                kind: "token".into(),
                id: jti.clone(),
                at: *until,
            },
            Revocation::User { sub, not_after } => Wire {
                kind: "user".into(),
                id: sub.clone(),
                at: *not_after,
            },
        }
    }

    fn revocation(self) -> Option<Revocation> {
        match self.kind.as_str() {
            "token" => Some(Revocation::Token {
                jti: self.id,
                until: self.at,
            }),
            "user" => Some(Revocation::User {
                sub: self.id,
                not_after: self.at,
            }),
            _ => None,
        }
    }
}

/// The revocation sets and channel of one shared store.
pub struct SharedRevocations {
    store: Arc<SharedStore>,
    tokens_key: String,
    users_key: String,
    channel: String,
    script: redis::Script,
    /// The first full load has succeeded (readiness).
    loaded: AtomicBool,
}

impl SharedRevocations {
    /// The revocation keys of `store`.
    pub fn new(store: Arc<SharedStore>) -> SharedRevocations {
        SharedRevocations {
            tokens_key: store.key(&["revoked", "tokens"]),
            users_key: store.key(&["revoked", "users"]),
            channel: store.key(&["revoked"]),
            store,
            script: redis::Script::new(REVOKE_SCRIPT),
            loaded: AtomicBool::new(false),
        }
    }

    /// Readiness: the complete set has been loaded once.
    pub fn ready(&self) -> Result<(), String> {
        if self.loaded.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("revocations not loaded from the shared store yet".into())
        }
    }

    /// Writes `r` and publishes it to every instance (one round trip).
    pub async fn publish(&self, r: &Revocation, table: &Revocations) -> Result<(), SharedError> {
        self.write(r, table, true).await
    }

    async fn write(
        &self,
        r: &Revocation,
        table: &Revocations,
        publish: bool,
    ) -> Result<(), SharedError> {
        let now = now_secs();
        let (key, member, score, floor, until) = match r {
            Revocation::Token { jti, until } => (&self.tokens_key, jti, *until, now, *until),
            Revocation::User { sub, not_after } => {
                let keep = table.watermark_until(0);
                (
                    &self.users_key,
                    sub,
                    *not_after,
                    now.saturating_sub(keep),
                    table.watermark_until(*not_after),
                )
            }
        };
        let ttl = until.saturating_sub(now).max(1);
        let message = serde_json::to_string(&Wire::of(r)).unwrap_or_default();
        let mut invocation = self.script.key(key);
        invocation
            .arg(score)
            .arg(member)
            .arg(floor)
            .arg(ttl)
            .arg(if publish { self.channel.as_str() } else { "" })
            .arg(message);
        let mut conn = self.store.connection();
        self.store
            .call("revoke", async move {
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await
            .map(drop)
    }

    /// Every live revocation in the store.
    async fn load(&self, table: &Revocations) -> Result<Vec<Revocation>, SharedError> {
        let now = now_secs();
        let user_floor = now.saturating_sub(table.watermark_until(0));
        let mut conn = self.store.connection();
        let (tokens, users) = (self.tokens_key.clone(), self.users_key.clone());
        let (tokens, users): (Scored, Scored) = self
            .store
            .call("revocations_load", async move {
                redis::pipe()
                    .cmd("ZRANGE")
                    .arg(&tokens)
                    .arg(now)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("WITHSCORES")
                    .cmd("ZRANGE")
                    .arg(&users)
                    .arg(user_floor)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut all: Vec<Revocation> = tokens
            .into_iter()
            .map(|(jti, until)| Revocation::Token { jti, until })
            .collect();
        all.extend(
            users
                .into_iter()
                .map(|(sub, not_after)| Revocation::User { sub, not_after }),
        );
        Ok(all)
    }

    /// Loads the store's set into `table`, then writes back the live local entries the store lacks.
    pub async fn reconcile(&self, table: &Revocations) -> Result<(), SharedError> {
        let remote = self.load(table).await?;
        let mut known: HashMap<(bool, &str), u64> = HashMap::with_capacity(remote.len());
        for r in &remote {
            if let Err(e) = table.apply_revocation(r) {
                tracing::error!(error = %e, "a revocation from the shared store does not fit in the local table");
            }
            match r {
                Revocation::Token { jti, until } => known.insert((true, jti), *until),
                Revocation::User { sub, not_after } => known.insert((false, sub), *not_after),
            };
        }
        let mut restored = 0;
        for r in table.snapshot() {
            let behind = match &r {
                Revocation::Token { jti, until } => {
                    known.get(&(true, jti.as_str())).is_none_or(|u| u < until)
                }
                Revocation::User { sub, not_after } => known
                    .get(&(false, sub.as_str()))
                    .is_none_or(|n| n < not_after),
            };
            if behind {
                self.write(&r, table, false).await?;
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::warn!(
                restored,
                "the shared store lacked revocations this instance holds; wrote them back"
            );
        }
        if !self.loaded.swap(true, Ordering::Relaxed) {
            tracing::info!(
                revocations = remote.len(),
                "revocations loaded from the shared store"
            );
        }
        Ok(())
    }

    /// Keeps `table` current until the task is aborted: pub/sub for speed, a full reconcile after every
    /// (re)subscription and every `every()` for what pub/sub lost.
    pub async fn follow<F>(self: Arc<Self>, table: Arc<Revocations>, every: F)
    where
        F: Fn() -> Duration + Send + 'static,
    {
        loop {
            let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
                let mut ps = self.store.client().get_async_pubsub().await?;
                ps.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(ps)
            })
            .await;
            let ps = match subscribed {
                Ok(Ok(ps)) => ps,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "revocation channel: cannot subscribe yet");
                    tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                    continue;
                }
            };
            // Subscribed first, then loaded: a revocation made in between arrives by message.
            if let Err(e) = self.reconcile(&table).await {
                tracing::warn!(error = %e, "revocations: full reconcile failed; retrying");
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                continue;
            }
            let mut messages = ps.into_on_message();
            let mut tick = tokio::time::interval(every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    msg = messages.next() => match msg {
                        Some(m) => apply_message(&table, m.get_payload_bytes()),
                        // The connection closed: subscribe again, then reconcile.
                        None => break,
                    },
                    _ = tick.tick() => {
                        if let Err(e) = self.reconcile(&table).await {
                            // The subscription may be as dead as the store: start over.
                            tracing::warn!(error = %e, "revocations: periodic reconcile failed; resubscribing");
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    }
}

/// Bound on connecting and subscribing to the channel.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before subscribing again after a failure; short, since revocations are missed meanwhile.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(250);

fn apply_message(table: &Revocations, payload: &[u8]) {
    match serde_json::from_slice::<Wire>(payload)
        .ok()
        .and_then(Wire::revocation)
    {
        Some(r) => {
            if let Err(e) = table.apply_revocation(&r) {
                tracing::error!(error = %e, "a published revocation does not fit in the local table");
            }
        }
        None => tracing::warn!("ignoring a malformed message on the revocation channel"),
    }
}

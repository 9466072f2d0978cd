//! Revocations: the local table of ended sessions, consulted on every authenticated request.
//!
//! Two kinds of entry: a revoked token id (`jti`, refused until the token's own `exp` + leeway) and a
//! per-user not-before watermark on `iat` (every token of that `sub` issued at or before the watermark is
//! refused; a token without `iat` counts as issued at the epoch). The request path does one hash lookup per
//! table and no I/O; the tables live in `Lasting`, so a reload forgets nothing.
//!
//! Bounded: an entry expires with the tokens it covers (a watermark after `max_token_lifetime` + leeway),
//! expired entries are swept on a timer and whenever a table is full, and a table still full after the sweep
//! refuses the new entry rather than forget an old one (the caller answers 503).
//!
//! Every accepted revocation bumps a generation number that upgraded connections watch, so a WebSocket
//! opened with a token that is later revoked is closed. The table also remembers which users were seen with
//! a valid token, for the optional `auth.recheck_active`.

use super::Identity;
use super::StrMap;
use crate::config::SessionsConfig;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A table is full of live entries: the revocation was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {table} revocation table is full ({limit} live entries)")]
pub struct TableFull {
    /// `tokens` or `users`.
    pub table: &'static str,
    /// The limit in force.
    pub limit: usize,
}

/// One user's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// Tokens with `iat` at or before this (seconds since the epoch) are refused.
    pub not_after: u64,
    /// The entry is dropped after this moment: no token it refuses can still be valid.
    pub until: u64,
}

/// One revocation, as written to and read from the shared store and the operations endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One token, by `jti`, refused until `until`.
    Token { jti: String, until: u64 },
    /// Every token of `sub` issued at or before `not_after`.
    User { sub: String, not_after: u64 },
}

/// When a user was last looked up for `auth.recheck_active`, and whether a token of theirs was accepted since.
#[derive(Debug)]
pub struct Seen {
    /// Seconds since the epoch of the last look-up; 0 = never.
    pub checked: AtomicU64,
    /// A token of this user was accepted since the last look-up.
    pub since: AtomicBool,
}

/// The local revocation table (see the module documentation).
pub struct Revocations {
    tokens: StrMap<u64>,
    users: StrMap<Watermark>,
    seen: StrMap<Seen>,
    max_tokens: AtomicUsize,
    max_users: AtomicUsize,
    max_token_lifetime: AtomicU64,
    leeway: AtomicU64,
    recheck: AtomicBool,
    generation: watch::Sender<u64>,
}

// === impl Revocations ===

impl Revocations {
    /// An empty table with the configuration's bounds.
    pub fn new(sessions: &SessionsConfig, leeway: std::time::Duration) -> Revocations {
        let r = Revocations {
            tokens: StrMap::default(),
            users: StrMap::default(),
            seen: StrMap::default(),
            max_tokens: AtomicUsize::new(0),
            max_users: AtomicUsize::new(0),
            max_token_lifetime: AtomicU64::new(0),
            leeway: AtomicU64::new(0),
            recheck: AtomicBool::new(false),
            generation: watch::Sender::new(0),
        };
        r.apply(sessions, leeway);
        r
    }

    /// Applies a reloaded configuration's bounds; entries already held stay (they are still revocations).
    pub fn apply(&self, sessions: &SessionsConfig, leeway: std::time::Duration) {
        self.max_tokens
            .store(sessions.max_revoked_tokens, Ordering::Relaxed);
        self.max_users
            .store(sessions.max_revoked_users, Ordering::Relaxed);
        self.max_token_lifetime
            .store(sessions.max_token_lifetime.as_secs(), Ordering::Relaxed);
        self.leeway.store(leeway.as_secs(), Ordering::Relaxed);
        let recheck = sessions.recheck_active.is_some();
        self.recheck.store(recheck, Ordering::Relaxed);
        if !recheck {
            self.seen.clear();
        }
    }

    /// True when `id`'s token must be refused now. Also notes the user as seen for `auth.recheck_active`.
    pub fn refuses(&self, id: &Identity, now: u64) -> bool {
        if let Some(jti) = &id.jti {
            if self.tokens.get(&**jti).is_some_and(|until| now <= *until) {
                return true;
            }
        }
        if let Some(w) = self.users.get(id.sub.as_str()) {
            if id.iat <= w.not_after && now <= w.until {
                return true;
            }
        }
        if self.recheck.load(Ordering::Relaxed) {
            self.note_seen(&id.sub);
        }
        false
    }

    /// Refuses token `jti` until `until` (its `exp` + leeway). Idempotent; a later `until` wins.
    pub fn revoke_token(&self, jti: &str, until: u64) -> Result<(), TableFull> {
        if until < now_secs() {
            // Already expired: nothing to refuse.
            return Ok(());
        }
        let limit = self.max_tokens.load(Ordering::Relaxed);
        if !self.tokens.contains_key(jti) && self.tokens.len() >= limit {
            self.sweep(now_secs());
            if self.tokens.len() >= limit {
                return Err(TableFull {
                    table: "tokens",
                    limit,
                });
            }
        }
        let mut changed = false;
        self.tokens
            .entry(jti.into())
            .and_modify(|u| {
                if until > *u {
                    *u = until;
                    changed = true;
                }
            })
            .or_insert_with(|| {
                changed = true;
                until
            });
        if changed {
            self.bump();
        }
        Ok(())
    }

    /// Refuses every token of `sub` issued at or before `not_after`. Idempotent; a later watermark wins.
    pub fn revoke_user(&self, sub: &str, not_after: u64) -> Result<(), TableFull> {
        let until = self.watermark_until(not_after);
        if until < now_secs() {
            return Ok(());
        }
        let limit = self.max_users.load(Ordering::Relaxed);
        if !self.users.contains_key(sub) && self.users.len() >= limit {
            self.sweep(now_secs());
            if self.users.len() >= limit {
                return Err(TableFull {
                    table: "users",
                    limit,
                });
            }
        }
        let mut changed = false;
        let fresh = Watermark { not_after, until };
        self.users
            .entry(sub.into())
            .and_modify(|w| {
                if not_after > w.not_after {
                    *w = fresh;
                    changed = true;
                }
            })
            .or_insert_with(|| {
                changed = true;
                fresh
            });
        if changed {
            self.bump();
        }
        Ok(())
    }

    /// Applies one revocation, whichever kind.
    pub fn apply_revocation(&self, r: &Revocation) -> Result<(), TableFull> {
        match r {
            Revocation::Token { jti, until } => self.revoke_token(jti, *until),
            Revocation::User { sub, not_after } => self.revoke_user(sub, *not_after),
        }
    }

    /// When a watermark set at `not_after` may be forgotten: every token it refuses has expired by then.
    pub fn watermark_until(&self, not_after: u64) -> u64 {
        not_after
            .saturating_add(self.max_token_lifetime.load(Ordering::Relaxed))
            .saturating_add(self.leeway.load(Ordering::Relaxed))
    }

    /// Every live entry, for writing the local copy back to a shared store that lost it.
    pub fn snapshot(&self) -> Vec<Revocation> {
        let now = now_secs();
        let mut all: Vec<Revocation> = self
            .tokens
            .iter()
            .filter(|e| *e.value() >= now)
            .map(|e| Revocation::Token {
                jti: e.key().to_string(),
                until: *e.value(),
            })
            .collect();
        all.extend(
            self.users
                .iter()
                .filter(|e| e.value().until >= now)
                .map(|e| Revocation::User {
                    sub: e.key().to_string(),
                    not_after: e.value().not_after,
                }),
        );
        all
    }

    /// Drops entries whose tokens have all expired, and users not seen for a while from the recheck list.
    pub fn sweep(&self, now: u64) {
        self.tokens.retain(|_, until| *until >= now);
        self.users.retain(|_, w| w.until >= now);
    }

    /// Live entries in each table (tokens, users), for tests and metrics.
    pub fn len(&self) -> (usize, usize) {
        (self.tokens.len(), self.users.len())
    }

    /// True when both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.users.is_empty()
    }

    /// A future that completes once `id`'s token is refused (for upgraded connections); never completes
    /// otherwise. The table is re-checked on every accepted revocation, not on a timer.
    pub fn until_refused(
        self: &Arc<Self>,
        id: Identity,
    ) -> impl Future<Output = ()> + Send + 'static {
        // Subscribed before the first check, so a revocation between the two is not missed.
        let mut changes = self.generation.subscribe();
        let table = self.clone();
        async move {
            loop {
                if table.refuses_quietly(&id, now_secs()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// `refuses` without noting the user as seen (a long-lived connection is not a request).
    fn refuses_quietly(&self, id: &Identity, now: u64) -> bool {
        let jti = id
            .jti
            .as_ref()
            .is_some_and(|j| self.tokens.get(&**j).is_some_and(|u| now <= *u));
        jti || self
            .users
            .get(id.sub.as_str())
            .is_some_and(|w| id.iat <= w.not_after && now <= w.until)
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    // --- auth.recheck_active: who was seen ---

    fn note_seen(&self, sub: &str) {
        if let Some(s) = self.seen.get(sub) {
            // Read first: most requests find the flag already set and write nothing.
            if !s.since.load(Ordering::Relaxed) {
                s.since.store(true, Ordering::Relaxed);
            }
            return;
        }
        // The same bound as the watermarks: beyond it, new users are looked up once they fit again.
        if self.seen.len() >= self.max_users.load(Ordering::Relaxed) {
            return;
        }
        self.seen.entry(sub.into()).or_insert_with(|| Seen {
            checked: AtomicU64::new(0),
            since: AtomicBool::new(true),
        });
    }

    /// Users due for a look-up at `now`: seen since their last one, and not looked up for `every` seconds.
    /// Users not seen for a whole period are forgotten.
    pub fn due_for_recheck(&self, now: u64, every: u64) -> Vec<String> {
        self.seen.retain(|_, s| {
            s.since.load(Ordering::Relaxed)
                || now < s.checked.load(Ordering::Relaxed).saturating_add(every)
        });
        self.seen
            .iter()
            .filter(|e| {
                e.value().since.load(Ordering::Relaxed)
                    && now
                        >= e.value()
                            .checked
                            .load(Ordering::Relaxed)
                            .saturating_add(every)
            })
            .map(|e| e.key().to_string())
            .collect()
    }

    /// Records that `sub` was looked up at `now`.
    pub fn rechecked(&self, sub: &str, now: u64) {
        if let Some(s) = self.seen.get(sub) {
            s.checked.store(now, Ordering::Relaxed);
            s.since.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(max: usize) -> Arc<Revocations> {
        Arc::new(Revocations::new(
            &SessionsConfig {
                max_revoked_tokens: max,
                max_revoked_users: max,
                max_token_lifetime: Duration::from_secs(1800),
                recheck_active: None,
            },
            Duration::from_secs(30),
        ))
    }

    fn id(sub: &str, jti: Option<&str>, iat: u64) -> Identity {
        Identity {
            sub: sub.into(),
            sub_value: http::HeaderValue::from_str(sub).unwrap(),
            name: None,
            name_value: None,
            extra: None,
            exp: iat + 1800,
            jti: jti.map(Into::into),
            iat,
        }
    }

    #[test]
    fn a_revoked_jti_is_refused_until_its_expiry() {
        let t = table(10);
        let now = now_secs();
        let a = id("alice", Some("j1"), now);
        assert!(!t.refuses(&a, now));
        t.revoke_token("j1", now + 60).unwrap();
        assert!(t.refuses(&a, now));
        assert!(t.refuses(&a, now + 60));
        assert!(!t.refuses(&a, now + 61), "expired with the token");
        assert!(!t.refuses(&id("alice", Some("j2"), now), now));
        assert!(!t.refuses(&id("alice", None, now), now));
    }

    #[test]
    fn a_watermark_refuses_older_tokens_and_tokens_without_iat() {
        let t = table(10);
        let now = now_secs();
        t.revoke_user("alice", now).unwrap();
        assert!(t.refuses(&id("alice", Some("a"), now - 100), now));
        assert!(t.refuses(&id("alice", Some("b"), now), now), "same second");
        assert!(t.refuses(&id("alice", None, 0), now), "no iat = the epoch");
        assert!(!t.refuses(&id("alice", Some("c"), now + 1), now + 1));
        assert!(!t.refuses(&id("bob", Some("d"), now - 100), now));
        // An older watermark never lowers a newer one.
        t.revoke_user("alice", now - 500).unwrap();
        assert!(t.refuses(&id("alice", None, now - 100), now));
        // Kept for the longest token lifetime plus leeway.
        assert!(!t.refuses(&id("alice", None, 0), now + 1800 + 31));
    }

    #[test]
    fn a_full_table_sweeps_then_refuses() {
        let t = table(2);
        let now = now_secs();
        t.revoke_token("a", now + 100).unwrap();
        t.revoke_token("b", now + 100).unwrap();
        assert_eq!(
            t.revoke_token("c", now + 100),
            Err(TableFull {
                table: "tokens",
                limit: 2
            })
        );
        // Re-revoking a held id needs no room.
        t.revoke_token("a", now + 200).unwrap();
        // Expired entries make room.
        t.tokens.insert("b".into(), now - 1);
        t.revoke_token("c", now + 100).unwrap();
        assert_eq!(t.len(), (2, 0));
        // Already expired revocations are not stored at all.
        t.revoke_token("old", now - 5).unwrap();
        assert_eq!(t.len(), (2, 0));
    }

    #[tokio::test]
    async fn until_refused_completes_on_revocation_only() {
        let t = table(10);
        let now = now_secs();
        let watch = tokio::spawn(t.until_refused(id("alice", Some("j"), now)));
        t.revoke_token("other", now + 60).unwrap();
        t.revoke_user("bob", now).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.is_finished());
        t.revoke_user("alice", now).unwrap();
        tokio::time::timeout(Duration::from_secs(1), watch)
            .await
            .expect("closed on revocation")
            .unwrap();
        // Already refused: completes at once.
        tokio::time::timeout(
            Duration::from_secs(1),
            t.until_refused(id("alice", None, 0)),
        )
        .await
        .unwrap();
    }

    #[test]
    fn seen_users_are_due_once_per_period() {
        let t = table(10);
        t.recheck.store(true, Ordering::Relaxed);
        let now = now_secs();
        assert!(!t.refuses(&id("alice", None, now), now));
        assert_eq!(t.due_for_recheck(now, 60), ["alice"]);
        t.rechecked("alice", now);
        assert!(t.due_for_recheck(now + 10, 60).is_empty(), "not seen since");
        t.refuses(&id("alice", None, now), now + 10);
        assert!(
            t.due_for_recheck(now + 10, 60).is_empty(),
            "checked recently"
        );
        assert_eq!(t.due_for_recheck(now + 60, 60), ["alice"]);
        t.rechecked("alice", now + 60);
        assert!(t.due_for_recheck(now + 200, 60).is_empty());
        assert!(t.seen.is_empty(), "not seen for a period: forgotten");
    }
}

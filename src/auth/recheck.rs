//! `auth.recheck_active`: tokens of users who became inactive (or locked, or were removed) in the user store
//! stop working within about one period, without a look-up on the request path.
//!
//! The request path only notes which users it accepted a token of (`Revocations::refuses`). This task looks
//! each of them up again at most once per period, and only if a token of theirs was accepted since the last
//! look-up; a user that is inactive or gone gets a watermark at the current second, which ends every token
//! issued up to then (on every instance, through `Sessions::revoke`). A store that cannot answer revokes
//! nothing: the user is looked up again at the next tick.

use super::revocation::{now_secs, Revocation};
use super::sessions::Sessions;
use crate::users::{normalise_name, UserStore};
use std::sync::Arc;
use std::time::Duration;

/// What the task needs from the configuration in force: the user store and the period (None = off).
pub type Current = (Option<Arc<UserStore>>, Option<Duration>);

/// Ticks a few times per period, so a due user waits at most a tenth of it beyond the period.
fn tick_for(every: Duration) -> Duration {
    (every / 10).max(Duration::from_millis(100))
}

/// Runs until its task is aborted; `current` is asked for the store and period on every tick, so a reload
/// can turn the re-check on, off, or point it at another store.
pub async fn run<F>(sessions: Arc<Sessions>, current: F)
where
    F: Fn() -> Current + Send + 'static,
{
    loop {
        let (store, every) = current();
        let (Some(store), Some(every)) = (store, every) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        recheck_due(&sessions, &store, every).await;
        tokio::time::sleep(tick_for(every)).await;
    }
}

/// Looks up every user due now; returns how many were found inactive or gone.
pub async fn recheck_due(sessions: &Sessions, store: &UserStore, every: Duration) -> usize {
    let table = sessions.table();
    let mut ended = 0;
    for sub in table.due_for_recheck(now_secs(), every.as_secs().max(1)) {
        let active = match store.lookup(&normalise_name(&sub)).await {
            Ok(found) => found.is_some_and(|u| u.active),
            Err(e) => {
                tracing::warn!(error = %e, "auth.recheck_active: user store unavailable; will retry");
                continue;
            }
        };
        let now = now_secs();
        if !active {
            let r = Revocation::User {
                sub: sub.clone(),
                not_after: now,
            };
            if let Err(e) = sessions.revoke(&r).await {
                tracing::warn!(error = %e, "auth.recheck_active: could not revoke an inactive user's tokens; will retry");
                continue;
            }
            tracing::info!(user = %sub, "tokens of an inactive or removed user revoked");
            ended += 1;
        }
        table.rechecked(&sub, now);
    }
    ended
}

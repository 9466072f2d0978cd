//! Waiting on conditions instead of sleeping: every wait is bounded in time and in the number of checks.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Checks `cond` every `step` until it holds or `limit` has passed; true if it held. At most
/// `limit / step + 1` checks.
pub async fn eventually<F, Fut>(limit: Duration, step: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() + step > deadline {
            return false;
        }
        tokio::time::sleep(step).await;
    }
}

/// For properties that must keep holding ("still serves", "not served yet"): checks `cond` every `step`
/// for the whole `window`. Ok(checks made) if it held every time, Err(index of the first failed check).
pub async fn holds_for<F, Fut>(
    window: Duration,
    step: Duration,
    mut cond: F,
) -> Result<usize, usize>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + window;
    let mut checks = 0;
    loop {
        if !cond().await {
            return Err(checks);
        }
        checks += 1;
        if Instant::now() >= deadline {
            return Ok(checks);
        }
        tokio::time::sleep(step.min(deadline - Instant::now())).await;
    }
}

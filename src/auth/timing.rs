//! Equal timing for every credential failure, whatever the stored hash.
//!
//! Unknown users verify a dummy hash, but a store can mix hash kinds (ASP.NET V2 at 1,000 PBKDF2 rounds next
//! to argon2 with large memory), so a wrong password for one user can answer in 4 ms and an unknown name in
//! 90 ms. Which kinds a store holds cannot be known without scanning it, so the gateway learns instead: every
//! verification reports its duration, and every credential failure is held, after its hashing slot is free,
//! until `max(slowest verification seen, login.min_failure_time)` has passed since the credential stage began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The least time a credential failure takes; survives reloads with the other login defences.
#[derive(Debug, Default)]
pub struct FailureFloor {
    slowest_nanos: AtomicU64,
    min_nanos: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl FailureFloor {
    /// A floor of at least `min`.
    pub fn new(min: Duration) -> FailureFloor {
        let floor = FailureFloor::default();
        floor.set_min(min);
        floor
    }

    /// Changes the configured minimum (a reload); what was learnt stays.
    pub fn set_min(&self, min: Duration) {
        self.min_nanos.store(nanos(min), Ordering::Relaxed);
    }

    /// Records how long one password verification took.
    pub fn observe(&self, took: Duration) {
        self.slowest_nanos.fetch_max(nanos(took), Ordering::Relaxed);
    }

    /// How long a credential failure takes at least, now.
    pub fn floor(&self) -> Duration {
        let slowest = self.slowest_nanos.load(Ordering::Relaxed);
        Duration::from_nanos(slowest.max(self.min_nanos.load(Ordering::Relaxed)))
    }

    /// How much longer a failure whose credential stage began at `started` must wait at `now`.
    pub fn remaining(&self, started: Instant, now: Instant) -> Duration {
        self.floor()
            .saturating_sub(now.saturating_duration_since(started))
    }

    /// Waits until the floor has passed since `started` (at once if it already has).
    pub async fn pad(&self, started: Instant) {
        let wait = self.remaining(started, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_failure_lasts_as_long_as_the_slowest_verification_seen() {
        // The clock is the test's: `started` and `now` are chosen, not read.
        let t0 = Instant::now();
        let floor = FailureFloor::new(20 * MS);
        assert_eq!(floor.remaining(t0, t0), 20 * MS, "the minimum");

        floor.observe(90 * MS);
        floor.observe(4 * MS);
        assert_eq!(
            floor.remaining(t0, t0 + 4 * MS),
            86 * MS,
            "a cheap verification is held to the slowest"
        );
        assert_eq!(
            floor.remaining(t0, t0 + 150 * MS),
            Duration::ZERO,
            "a slow stage is not held further"
        );

        floor.set_min(200 * MS);
        assert_eq!(
            floor.remaining(t0, t0 + 4 * MS),
            196 * MS,
            "a reload raising the minimum"
        );
    }

    #[tokio::test]
    async fn pad_waits_out_the_remaining_time() {
        let floor = FailureFloor::new(30 * MS);
        let started = Instant::now();
        floor.pad(started).await;
        assert!(started.elapsed() >= 30 * MS);
    }
}

//! The password-hashing pool: verification runs on blocking threads, at most `max_concurrent` at once, with
//! at most `max_queue` logins waiting. Beyond that a login is refused at once (503) instead of queueing without
//! bound, so a login flood costs bounded memory (running hashes × one hash's memory) and never starves the
//! async workers that carry proxied traffic.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// The pool is full and its queue too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing pool saturated")]
pub struct Busy;

/// Bounded runner for CPU-heavy password work.
#[derive(Debug)]
pub struct HashPool {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
}

impl HashPool {
    /// A pool running `max_concurrent` jobs with `max_queue` more waiting.
    pub fn new(max_concurrent: usize, max_queue: usize) -> HashPool {
        HashPool {
            slots: Semaphore::new(max_concurrent.max(1)),
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    /// Logins currently waiting for a slot (for metrics).
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `job` on a blocking thread once a slot is free, or refuses when the queue is full.
    pub async fn run<F, R>(&self, job: F) -> Result<R, Busy>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Busy);
                }
                let p = self.slots.acquire().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                p.map_err(|_| Busy)?
            }
        };
        let result = tokio::task::spawn_blocking(job).await;
        drop(permit);
        // A panic inside the job is a bug; the login fails closed as if the pool were busy.
        result.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn at_most_max_concurrent_run_and_the_queue_is_bounded() {
        let pool = Arc::new(HashPool::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut ok = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(Busy) => busy += 1,
            }
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(ok, 5, "2 running + 3 queued");
        assert_eq!(busy, 3);
    }
}

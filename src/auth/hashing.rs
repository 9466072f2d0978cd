//! The password-hashing pool: `max_concurrent` dedicated threads, at low CPU priority, fed through a queue of
//! at most `max_queue` logins. Beyond that a login is refused at once (503) instead of queueing without bound.
//!
//! Why dedicated threads and not `spawn_blocking`: tokio's blocking pool grows to hundreds of threads and each
//! new thread can get its own malloc arena, where a freed 19 MiB argon2 buffer stays cached; measured, 16
//! concurrent logins held ~500 MiB that way. A fixed set of threads keeps memory at about `max_concurrent` ×
//! one hash. Why low priority: a login storm then yields the CPU to the async workers, so proxied traffic
//! keeps its latency while logins take what is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// The pool is full and its queue too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing pool saturated")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// Bounded runner for CPU-heavy password work.
#[derive(Debug)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
}

impl HashPool {
    /// A pool of `max_concurrent` threads with `max_queue` more logins waiting.
    pub fn new(max_concurrent: usize, max_queue: usize) -> HashPool {
        let (jobs, rx) = sync_channel::<Job>(max_queue);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..max_concurrent.max(1) {
            let rx = rx.clone();
            let queued = queued.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gateway-hash-{i}"))
                .spawn(move || worker(&rx, &queued));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        HashPool { jobs, queued }
    }

    /// Logins currently waiting for a hashing thread (for metrics).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `job` on a hashing thread, or refuses at once when the queue is full.
    pub async fn run<F, R>(&self, job: F) -> Result<R, Busy>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let boxed: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(boxed) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(Busy);
            }
        }
        // A panic inside the job drops the sender: the login fails closed as if the pool were busy.
        rx.await.map_err(|_| Busy)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, queued: &AtomicUsize) {
    if thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min).is_err() {
        tracing::debug!("could not lower the hashing thread's priority");
    }
    loop {
        // The lock is held only to take a job, never while hashing.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            // The pool was dropped (configuration reloaded or gateway stopped).
            return;
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("BUG: a password verification panicked");
        }
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
        // Jobs hold their thread until the gate opens, so the pool's state is fixed while the test looks at it.
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let job = || {
            let (running, peak, gate, started) = (
                running.clone(),
                peak.clone(),
                gate.clone(),
                started_tx.clone(),
            );
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let _ = started.send(());
                let (open, cv) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let mut admitted = Vec::new();
        for _ in 0..2 {
            let (pool, job) = (pool.clone(), job());
            admitted.push(tokio::spawn(async move { pool.run(job).await }));
        }
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
                .await
                .expect("both threads took a job");
        }
        for _ in 0..3 {
            let (pool, job) = (pool.clone(), job());
            admitted.push(tokio::spawn(async move { pool.run(job).await }));
        }
        for _ in 0..1000 {
            if pool.queued() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.queued(), 3, "three wait in the queue");
        for _ in 0..3 {
            assert_eq!(
                pool.run(job()).await,
                Err(Busy),
                "a full queue refuses at once"
            );
        }
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        for t in admitted {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "never more than two at once"
        );
        assert_eq!(pool.queued(), 0);
    }
}

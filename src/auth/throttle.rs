//! Failed-login throttling per client IP and per user name: a token bucket per key in a bounded `DashMap`.
//!
//! Each attempt *reserves* one token before its work starts, atomically (one shard lock per key), so a burst
//! of parallel guesses cannot all pass a check made before any of them failed: at most `max_failures`
//! attempts of one key are ever admitted within a window. An attempt that turns out not to be a guess (a
//! success, an overloaded gateway) gives its token back. Tokens refill at `max_failures / window`; a key
//! with no token left is throttled until one refills. Successful logins clear the user's bucket. Memory is bounded: when the map is
//! full, buckets that have refilled completely (equivalent to no entry) are purged; if it is still full, new
//! keys are not tracked (logged), so a flood of random names costs at most `max_entries` entries. IPv6
//! clients are keyed by their /64, since one host usually owns a whole /64.

use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One limit: `max_failures` within `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_failures: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a table enforces; replaced whole when the configuration changes.
#[derive(Debug, Clone, Copy)]
struct Settings {
    limit: Limit,
    max_entries: usize,
}

impl Settings {
    fn rate(&self) -> f64 {
        self.limit.max_failures as f64 / self.limit.window.as_secs_f64().max(0.001)
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.rate()).min(self.limit.max_failures as f64)
    }
}

/// Token buckets keyed by `K`. The table outlives configuration reloads: `set_limit` changes what it enforces
/// without forgetting who has failed.
#[derive(Debug)]
pub struct Buckets<K: Eq + Hash> {
    map: DashMap<K, Bucket>,
    settings: ArcSwap<Settings>,
    warned_full: AtomicBool,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// Empty buckets for `limit`, holding at most `max_entries` keys.
    pub fn new(limit: Limit, max_entries: usize) -> Self {
        Buckets {
            map: DashMap::new(),
            settings: ArcSwap::from_pointee(Settings { limit, max_entries }),
            warned_full: AtomicBool::new(false),
        }
    }

    /// Applies a new limit and table size, keeping every tracked key; a smaller table is trimmed now.
    pub fn set_limit(&self, limit: Limit, max_entries: usize) {
        self.settings
            .store(std::sync::Arc::new(Settings { limit, max_entries }));
        if self.map.len() > max_entries {
            self.make_room(Instant::now());
        }
    }

    /// The limit this table enforces now (the shared store applies the same one).
    pub fn limit(&self) -> Limit {
        self.settings.load().limit
    }

    /// None if `key` may try again now, else how long until it may.
    pub fn check(&self, key: &K) -> Option<Duration> {
        let s = **self.settings.load();
        if s.limit.max_failures == 0 {
            return None;
        }
        let b = *self.map.get(key)?;
        let tokens = s.refilled(&b, Instant::now());
        if tokens >= 1.0 {
            None
        } else {
            Some(
                Duration::from_secs_f64(((1.0 - tokens) / s.rate()).max(0.0))
                    .max(Duration::from_secs(1)),
            )
        }
    }

    /// Takes one token for an attempt of `key`, or says how long until one is free. The token stays taken
    /// (a failure) unless [`Buckets::release`] gives it back.
    pub fn reserve(&self, key: &K) -> Result<(), Duration> {
        self.take(key, true)
    }

    /// Gives back a token [`Buckets::reserve`] took, when the attempt was not a failure.
    pub fn release(&self, key: &K) {
        let s = **self.settings.load();
        let now = Instant::now();
        if let Some(mut b) = self.map.get_mut(key) {
            let tokens = s.refilled(&b, now);
            *b = Bucket {
                tokens: (tokens + 1.0).min(s.limit.max_failures as f64),
                at: now,
            };
        }
    }

    /// Records a failure for `key`.
    pub fn fail(&self, key: &K) {
        let _ = self.take(key, false);
    }

    /// Takes a token for `key` under its shard's lock (the entry API), so two attempts racing on one key
    /// cannot both see the same count; with `refuse`, an empty bucket is left as it is and reported.
    fn take(&self, key: &K, refuse: bool) -> Result<(), Duration> {
        let s = **self.settings.load();
        if s.limit.max_failures == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // Room is made before the entry is locked: eviction walks every shard.
        if self.map.len() >= s.max_entries && !self.map.contains_key(key) {
            self.make_room(now);
        }
        let mut outcome = Ok(());
        self.map
            .entry(key.clone())
            .and_modify(|b| {
                let tokens = s.refilled(b, now);
                if refuse && tokens < 1.0 {
                    let wait = Duration::from_secs_f64(((1.0 - tokens) / s.rate()).max(0.0));
                    outcome = Err(wait.max(Duration::from_secs(1)));
                } else {
                    *b = Bucket {
                        tokens: (tokens - 1.0).max(0.0),
                        at: now,
                    };
                }
            })
            .or_insert(Bucket {
                tokens: s.limit.max_failures as f64 - 1.0,
                at: now,
            });
        outcome
    }

    /// Frees at least a tenth of the table, dropping the keys with the fewest recent failures first: a flood
    /// of one-failure names goes before a victim name that has failed many times, so a flood cannot switch
    /// per-key throttling off. Each pass is O(n) and frees >= 10%, so inserts stay amortised O(1).
    fn make_room(&self, now: Instant) {
        let s = **self.settings.load();
        let max = s.limit.max_failures as f64;
        let target = s.max_entries.saturating_sub(s.max_entries / 10 + 1);
        let mut spare = 1.0_f64;
        loop {
            // Keep only keys with fewer tokens left than `max - spare` (more failures than `spare`).
            let threshold = max - spare;
            self.map.retain(|_, b| s.refilled(b, now) < threshold);
            if self.map.len() <= target || threshold <= 0.0 {
                break;
            }
            spare *= 2.0;
        }
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                entries = self.map.len(),
                "login throttle table was full; evicted the keys with the fewest failures"
            );
        }
    }

    /// Forgets `key` (after a success).
    pub fn clear(&self, key: &K) {
        self.map.remove(key);
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The key for a client address: the address itself, or its /64 for IPv6.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_max_failures_and_refills() {
        let b = Buckets::new(
            Limit {
                max_failures: 3,
                window: Duration::from_millis(300),
            },
            100,
        );
        for _ in 0..3 {
            assert!(b.check(&"k").is_none());
            b.fail(&"k");
        }
        let wait = b.check(&"k").expect("throttled");
        assert!(
            wait >= Duration::from_secs(1),
            "Retry-After is at least a second"
        );
        std::thread::sleep(Duration::from_millis(150));
        assert!(b.check(&"k").is_none(), "a token refilled");
        b.clear(&"k");
        assert!(b.is_empty());
    }

    #[test]
    fn parallel_reservations_admit_at_most_the_limit() {
        let b = std::sync::Arc::new(Buckets::new(
            Limit {
                max_failures: 5,
                window: Duration::from_secs(3600),
            },
            100,
        ));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
        let admitted: usize = (0..32)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    b.reserve(&"victim").is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap() as usize)
            .sum();
        assert_eq!(admitted, 5);
        // A released reservation (a success, or a 503) is available again.
        b.release(&"victim");
        assert!(b.reserve(&"victim").is_ok());
        assert!(b.reserve(&"victim").is_err());
    }

    #[test]
    fn a_new_limit_keeps_what_the_table_remembers_and_a_smaller_table_is_trimmed() {
        let hour = Duration::from_secs(3600);
        let b = Buckets::new(
            Limit {
                max_failures: 2,
                window: hour,
            },
            100,
        );
        b.fail(&"victim".to_string());
        b.fail(&"victim".to_string());
        for i in 0..50 {
            b.fail(&format!("once{i}"));
        }
        assert!(b.check(&"victim".to_string()).is_some());
        // A reload that lowers the table size: the victim (most failures) stays, the table shrinks.
        b.set_limit(
            Limit {
                max_failures: 2,
                window: hour,
            },
            10,
        );
        assert!(b.len() <= 10, "trimmed to the new size: {}", b.len());
        assert!(b.check(&"victim".to_string()).is_some(), "still throttled");
        // Switching the limit off takes effect at once; switching it back on finds the victim again.
        let off = Limit {
            max_failures: 0,
            window: hour,
        };
        b.set_limit(off, 10);
        assert!(b.check(&"victim".to_string()).is_none());
        b.set_limit(
            Limit {
                max_failures: 2,
                window: hour,
            },
            10,
        );
        assert!(b.check(&"victim".to_string()).is_some());
    }

    #[test]
    fn a_flood_of_new_keys_does_not_evict_a_key_under_attack() {
        let b = Buckets::new(
            Limit {
                max_failures: 3,
                window: Duration::from_secs(3600),
            },
            16,
        );
        for _ in 0..3 {
            b.fail(&"victim".to_string());
        }
        for i in 0..1000 {
            b.fail(&format!("flood-{i}"));
        }
        assert!(b.len() <= 16);
        assert!(
            b.check(&"victim".to_string()).is_some(),
            "the victim is still throttled"
        );
    }

    #[test]
    fn table_is_bounded() {
        let b = Buckets::new(
            Limit {
                max_failures: 5,
                window: Duration::from_secs(3600),
            },
            50,
        );
        for i in 0..1000 {
            b.fail(&i);
        }
        assert!(b.len() <= 50);
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(c));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}

//! Captcha tokens are single use at the gateway too: a token that passed siteverify is remembered (as a
//! SHA-256 digest, never the token itself) for Turnstile's 5-minute validity and refused locally if replayed,
//! without a second siteverify call. Memory is bounded: expired entries are purged, and when the table is
//! full new tokens are simply not remembered (siteverify still refuses their replay).

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Turnstile tokens expire 300 s after issue.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(300);

/// Recently redeemed captcha tokens.
#[derive(Debug)]
pub struct SpentTokens {
    seen: DashMap<[u8; 32], Instant>,
    capacity: usize,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SpentTokens {
    /// A table holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> SpentTokens {
        SpentTokens {
            seen: DashMap::new(),
            capacity,
        }
    }

    /// True when the token was redeemed within its validity.
    pub fn is_spent(&self, token: &str) -> bool {
        self.seen
            .get(&digest(token))
            .is_some_and(|at| at.elapsed() < TOKEN_VALIDITY)
    }

    /// Remembers a redeemed token.
    pub fn spend(&self, token: &str) {
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, at| at.elapsed() < TOKEN_VALIDITY);
            if self.seen.len() >= self.capacity {
                return;
            }
        }
        self.seen.insert(digest(token), Instant::now());
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_token_is_refused_and_the_table_is_bounded() {
        let t = SpentTokens::new(3);
        assert!(!t.is_spent("a"));
        t.spend("a");
        assert!(t.is_spent("a"));
        for i in 0..10 {
            t.spend(&format!("x{i}"));
        }
        assert!(t.len() <= 3);
    }
}

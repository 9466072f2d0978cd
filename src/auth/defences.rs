//! The login's memory of attackers: failed-login throttles per client IP and per user, and spent captcha
//! tokens. It lives outside the per-configuration `State`, so a reload (a new config file, a renewed
//! certificate, SIGHUP) never forgets who is being throttled or which captcha tokens were already redeemed;
//! a reload only changes the limits the tables enforce.

use super::replay::SpentTokens;
use super::throttle::{Buckets, Limit};
use super::timing::FailureFloor;
use crate::config::LoginConfig;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// How many redeemed captcha tokens are remembered (32-byte digests plus their time, a few MB at most).
pub const SPENT_TOKENS_CAPACITY: usize = 100_000;

/// Login defences that outlive configuration reloads.
#[derive(Debug)]
pub struct LoginDefences {
    /// Failed logins per client IP (per /64 for IPv6).
    pub ip: Buckets<IpAddr>,
    /// Failed logins per account ([`UserKey`]).
    pub user: Buckets<UserKey>,
    /// Captcha tokens that passed siteverify, refused if presented again.
    pub spent: SpentTokens,
    /// How long every credential failure takes at least.
    pub floor: FailureFloor,
}

/// A per-user throttle key: a fixed-size digest, so a table of 100,000 keys stays small whatever the names.
pub type UserKey = [u8; 32];

/// The throttle key of an account found in the store: its user name as stored, so every spelling the store's
/// collation matches (`CÁROL`, `carol `) shares one budget.
pub fn stored_user_key(stored_name: &str) -> UserKey {
    keyed(b"stored\0", stored_name)
}

/// The throttle key of a name the store did not find: its normalised form.
pub fn unknown_user_key(normalised: &str) -> UserKey {
    keyed(b"unknown\0", normalised)
}

fn keyed(domain: &[u8], name: &str) -> UserKey {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(name.as_bytes());
    h.finalize().into()
}

impl LoginDefences {
    /// Empty tables enforcing `cfg`.
    pub fn new(cfg: &LoginConfig) -> LoginDefences {
        let (ip, user) = limits(cfg);
        LoginDefences {
            ip: Buckets::new(ip, cfg.throttle.max_entries),
            user: Buckets::new(user, cfg.throttle.max_entries),
            spent: SpentTokens::new(SPENT_TOKENS_CAPACITY),
            floor: FailureFloor::new(cfg.min_failure_time),
        }
    }

    /// Enforces a reloaded configuration's limits, keeping what the tables remember.
    pub fn apply(&self, cfg: &LoginConfig) {
        let (ip, user) = limits(cfg);
        self.ip.set_limit(ip, cfg.throttle.max_entries);
        self.user.set_limit(user, cfg.throttle.max_entries);
        self.floor.set_min(cfg.min_failure_time);
    }
}

fn limits(cfg: &LoginConfig) -> (Limit, Limit) {
    let cfg = &cfg.throttle;
    (
        Limit {
            max_failures: cfg.ip_max_failures,
            window: cfg.ip_window,
        },
        Limit {
            max_failures: cfg.user_max_failures,
            window: cfg.user_window,
        },
    )
}

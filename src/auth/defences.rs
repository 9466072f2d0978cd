//! The login's memory of attackers: failed-login throttles per client IP and per user, and spent captcha
//! tokens. It lives outside the per-configuration `State`, so a reload (a new config file, a renewed
//! certificate, SIGHUP) never forgets who is being throttled or which captcha tokens were already redeemed;
//! a reload only changes the limits the tables enforce.

use super::replay::SpentTokens;
use super::throttle::{Buckets, Limit};
use crate::config::ThrottleConfig;
use std::net::IpAddr;

/// How many redeemed captcha tokens are remembered (32-byte digests plus their time, a few MB at most).
pub const SPENT_TOKENS_CAPACITY: usize = 100_000;

/// Login defences that outlive configuration reloads.
#[derive(Debug)]
pub struct LoginDefences {
    /// Failed logins per client IP (per /64 for IPv6).
    pub ip: Buckets<IpAddr>,
    /// Failed logins per user.
    pub user: Buckets<String>,
    /// Captcha tokens that passed siteverify, refused if presented again.
    pub spent: SpentTokens,
}

impl LoginDefences {
    /// Empty tables enforcing `cfg`.
    pub fn new(cfg: &ThrottleConfig) -> LoginDefences {
        let (ip, user) = limits(cfg);
        LoginDefences {
            ip: Buckets::new(ip, cfg.max_entries),
            user: Buckets::new(user, cfg.max_entries),
            spent: SpentTokens::new(SPENT_TOKENS_CAPACITY),
        }
    }

    /// Enforces a reloaded configuration's limits, keeping what the tables remember.
    pub fn apply(&self, cfg: &ThrottleConfig) {
        let (ip, user) = limits(cfg);
        self.ip.set_limit(ip, cfg.max_entries);
        self.user.set_limit(user, cfg.max_entries);
    }
}

fn limits(cfg: &ThrottleConfig) -> (Limit, Limit) {
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

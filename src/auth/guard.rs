//! One interface over the login's defences, wherever they are kept: this process's tables
//! (`LoginDefences`) or, with `[shared]`, the shared store, so N instances throttle and remember spent
//! captchas as one. The login calls the same steps either way; a [`Ticket`] records where each slot was
//! taken, so it is given back in the same place.
//!
//! Steps and their round trips to the store (at most three per login):
//! 1. [`Guard::arrive`] (before the body): in-process only, the IP slot as before `[shared]` existed.
//! 2. [`Guard::admit`] (body parsed, before siteverify): shared, the IP slot and the captcha claim in one
//!    script, so a token redeemed on instance A is refused on B without a siteverify call; in-process, the
//!    spent-token check.
//! 3. [`Guard::reserve_user`] (after the lookup): the account's slot.
//! 4. [`Guard::settle`]: gives back what a non-guess took; nothing to do (no round trip) after a guess.
//!
//! When the store fails: `shared.on_failure = "closed"` answers 503 (`LoginError::Shared`), never 401 and
//! never unthrottled; `"local"` serves that step from the in-process tables (counted in
//! `gateway_shared_store_fallbacks_total`; the store logs the outage once).

use super::defences::{LoginDefences, UserKey};
use super::login::LoginError;
use super::replay::TOKEN_VALIDITY;
use super::throttle::{ip_key, Limit};
use crate::config::OnFailure;
use crate::shared::throttle::{self as remote, Admission, Bucket, UserSettle};
use crate::shared::{SharedError, SharedStore};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

/// Where a slot or a captcha claim was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Nowhere,
    Local,
    Shared,
}

/// The defences one login holds, to be given back by [`Guard::settle`].
#[derive(Debug)]
pub struct Ticket {
    ip: IpAddr,
    ip_at: Place,
    /// The captcha's shared key when it was claimed there.
    claim: Option<String>,
    captcha_at: Place,
    user: Option<(UserKey, Place)>,
}

/// The login's defences: the in-process tables, and the shared store when configured.
#[derive(Clone)]
pub struct Guard {
    local: Arc<LoginDefences>,
    shared: Option<Arc<SharedStore>>,
}

impl Guard {
    /// Defences kept in `local`, or in `shared` when given (with `local` as the fallback).
    pub fn new(local: Arc<LoginDefences>, shared: Option<Arc<SharedStore>>) -> Guard {
        Guard { local, shared }
    }

    /// The in-process tables (the failure-timing floor always lives here).
    pub fn local(&self) -> &Arc<LoginDefences> {
        &self.local
    }

    /// A request arrived from `client_ip`. In-process, its IP slot is reserved now, before the body is read;
    /// with the shared store that happens in [`Guard::admit`], together with the captcha claim.
    pub fn arrive(&self, client_ip: IpAddr) -> Result<Ticket, LoginError> {
        let ip = ip_key(client_ip);
        let mut ticket = Ticket {
            ip,
            ip_at: Place::Nowhere,
            claim: None,
            captcha_at: Place::Nowhere,
            user: None,
        };
        if self.shared.is_none() {
            self.local.ip.reserve(&ip).map_err(LoginError::Throttled)?;
            ticket.ip_at = Place::Local;
        }
        Ok(ticket)
    }

    /// The body is parsed and holds `captcha` (maybe empty): takes the IP slot if not yet taken, and refuses a
    /// captcha token already redeemed (here or, shared, on any instance).
    pub async fn admit(&self, t: &mut Ticket, captcha: &str) -> Result<(), LoginError> {
        let Some(store) = &self.shared else {
            return self.admit_local(t, captcha);
        };
        let ip = self.ip_bucket(store, t.ip);
        let claim = (!captcha.trim().is_empty()).then(|| captcha_key(store, captcha));
        let result = remote::admit(store, &ip, claim.as_deref().map(|k| (k, TOKEN_VALIDITY))).await;
        match result {
            Ok(Admission::Throttled(wait)) => Err(LoginError::Throttled(wait)),
            Ok(admission) => {
                t.ip_at = Place::Shared;
                if claim.is_some() {
                    t.captcha_at = Place::Shared;
                    t.claim = claim;
                }
                if admission == Admission::Replayed {
                    // Claimed before: not ours to give back.
                    t.claim = None;
                    return Err(LoginError::CaptchaReplayed);
                }
                Ok(())
            }
            Err(e) => {
                self.fallback(store, e)?;
                self.local
                    .ip
                    .reserve(&t.ip)
                    .map_err(LoginError::Throttled)?;
                t.ip_at = Place::Local;
                self.admit_local(t, captcha)
            }
        }
    }

    fn admit_local(&self, t: &mut Ticket, captcha: &str) -> Result<(), LoginError> {
        if !captcha.trim().is_empty() {
            t.captcha_at = Place::Local;
            if self.local.spent.is_spent(captcha) {
                return Err(LoginError::CaptchaReplayed);
            }
        }
        Ok(())
    }

    /// siteverify accepted `captcha`: in-process, it is remembered now (shared, it was claimed in `admit`).
    pub fn redeemed(&self, t: &Ticket, captcha: &str) {
        if t.captcha_at == Place::Local {
            self.local.spent.spend(captcha);
        }
    }

    /// Takes a slot of the account `key`; a user with none left is `UserThrottled` (the same bare 401).
    pub async fn reserve_user(&self, t: &mut Ticket, key: UserKey) -> Result<(), LoginError> {
        if let Some(store) = &self.shared {
            let bucket = self.user_bucket(store, &key);
            match remote::reserve(store, &bucket).await {
                Ok(Ok(())) => {
                    t.user = Some((key, Place::Shared));
                    return Ok(());
                }
                Ok(Err(_)) => return Err(LoginError::UserThrottled),
                Err(e) => self.fallback(store, e)?,
            }
        }
        self.local
            .user
            .reserve(&key)
            .map_err(|_| LoginError::UserThrottled)?;
        t.user = Some((key, Place::Local));
        Ok(())
    }

    /// The attempt ended with `outcome`: a success clears the account's bucket and gives the IP slot back;
    /// a failure that is not a guess gives both slots back (and an unused captcha claim); a guess keeps them.
    pub async fn settle<T>(&self, t: Ticket, outcome: &Result<T, LoginError>) {
        let (ip_back, user_settle, unclaim) = match outcome {
            Ok(_) => (true, UserSettle::Clear, false),
            Err(e) if e.is_guess() => (false, UserSettle::Keep, false),
            // siteverify was never asked, so the token is still good for a retry.
            Err(LoginError::CaptchaBusy | LoginError::CaptchaClientBusy) => {
                (true, UserSettle::Release, true)
            }
            Err(_) => (true, UserSettle::Release, false),
        };
        if ip_back && t.ip_at == Place::Local {
            self.local.ip.release(&t.ip);
        }
        if let Some((key, Place::Local)) = &t.user {
            match user_settle {
                UserSettle::Clear => self.local.user.clear(key),
                UserSettle::Release => self.local.user.release(key),
                UserSettle::Keep => {}
            }
        }
        let Some(store) = &self.shared else { return };
        let ip = (ip_back && t.ip_at == Place::Shared).then(|| self.ip_bucket(store, t.ip));
        let user = match &t.user {
            Some((key, Place::Shared)) => Some((self.user_bucket(store, key), user_settle)),
            _ => None,
        };
        let unclaim = t.claim.as_deref().filter(|_| unclaim);
        if let Err(e) = remote::settle(
            store,
            ip.as_ref(),
            user.as_ref().map(|(b, s)| (b, *s)),
            unclaim,
        )
        .await
        {
            // The answer stands (a success is still a success); the slots expire with their TTL.
            tracing::debug!(error = %e, "could not give login slots back to the shared store");
        }
    }

    /// The store failed: `closed` refuses the step (503), `local` lets the caller use the local tables.
    fn fallback(&self, store: &SharedStore, e: SharedError) -> Result<(), LoginError> {
        match store.on_failure() {
            OnFailure::Closed => Err(LoginError::Shared(e)),
            OnFailure::Local => {
                store.count_fallback(e.operation());
                Ok(())
            }
        }
    }

    fn ip_bucket(&self, store: &SharedStore, ip: IpAddr) -> Bucket {
        bucket(
            store.key(&["throttle", "ip", &ip.to_string()]),
            self.local.ip.limit(),
        )
    }

    fn user_bucket(&self, store: &SharedStore, key: &UserKey) -> Bucket {
        bucket(
            store.key(&["throttle", "user", &hex(key)]),
            self.local.user.limit(),
        )
    }
}

fn bucket(key: String, limit: Limit) -> Bucket {
    Bucket {
        key,
        max: limit.max_failures,
        window: limit.window,
    }
}

/// The shared key of a captcha token: its digest, never the token itself.
fn captcha_key(store: &SharedStore, token: &str) -> String {
    store.key(&["captcha", &hex(&Sha256::digest(token.as_bytes()))])
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

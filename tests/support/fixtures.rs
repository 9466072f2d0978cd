//! Password-hash fixtures and captcha tokens shared by the login tests.

use super::turnstile::FakeTurnstile;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The password behind the ASP.NET Identity vectors below. TEST FIXTURE.
pub const ASPNET_PASSWORD: &str = "my password";
/// ASP.NET Identity V2 (PBKDF2-SHA1, 1000 iterations) hash of "my password" (../shared/specs.md); fast to
/// verify, so floods stay quick. TEST FIXTURE.
pub const ASPNET_V2: &str = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==";
/// ASP.NET Identity V3 hash of "my password" as .NET 7 writes it (../shared/specs.md). TEST FIXTURE.
pub const ASPNET_V3_NET7: &str =
    "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==";

/// An argon2id hash of `password` with the gateway's default parameters.
pub fn argon2(password: &str) -> String {
    let params = gateway::credentials::HashParams::default();
    gateway::credentials::hash_password(password, &params).unwrap()
}

/// An argon2id hash of `password`, computed once per test binary: hashing with the default parameters
/// costs tens of milliseconds, and tests only need one for each password.
pub fn argon2_cached(password: &'static str) -> &'static str {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static str)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut known = cache.lock().unwrap();
    if let Some((_, hash)) = known.iter().find(|(p, _)| *p == password) {
        return hash;
    }
    let hash: &'static str = Box::leak(argon2(password).into_boxed_str());
    known.push((password, hash));
    hash
}

/// A fresh single-use captcha token that `fake` accepts. Tokens are unique within a test binary, so tests
/// sharing one fake (or running in parallel) never replay each other's tokens.
pub fn captcha(fake: &FakeTurnstile) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let t = format!("0.test-captcha-{}", NEXT.fetch_add(1, Ordering::SeqCst));
    fake.add_valid_token(t.clone());
    t
}

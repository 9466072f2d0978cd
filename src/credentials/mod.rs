//! Credential formats: verifying and making password hashes (ASP.NET Identity V2/V3, argon2 PHC) and the dummy
//! hashes that give unknown users the same cost. Below both the login (`auth`) and the user stores (`users`).
//!
//! Security contract: every comparison of derived key material is constant-time
//! (`subtle::ConstantTimeEq`, or `password_hash::Output`'s equality, which is built on it);
//! a stored hash that is malformed, truncated, or carries parameters outside the limits
//! below never yields [`Verdict::Match`] (it yields [`Verdict::Mismatch`], or
//! [`Verdict::UnknownFormat`] when it is not recognisably one of the supported formats);
//! no input, stored hash or password, can make this module panic, and cost parameters read
//! from a stored hash are checked against fixed limits before any memory is allocated or any
//! key derivation starts. Supported formats are argon2id/argon2i/argon2d PHC strings and
//! ASP.NET Core Identity V2/V3 hashes; new hashes are always argon2id.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Largest argon2 memory cost (KiB) accepted from a stored hash or for hashing: 1 GiB.
// argon2 allocates m KiB up front; beyond this a corrupted or planted row could exhaust the
// gateway's memory with a single login attempt.
pub const MAX_ARGON2_M_COST_KIB: u32 = 1_048_576;

/// Largest argon2 time cost (passes over memory) accepted from a stored hash or for hashing.
// Verification time grows linearly with t; 64 passes is far above any sane deployment.
pub const MAX_ARGON2_T_COST: u32 = 64;

/// Largest argon2 parallelism accepted from a stored hash or for hashing.
// The argon2 crate computes lanes sequentially, so p buys an attacker CPU time, not defenders
// anything; real deployments use 1 to 8.
pub const MAX_ARGON2_P_COST: u32 = 16;

/// Largest PBKDF2 iteration count accepted from an ASP.NET Identity V3 hash.
// DoS guard: the count is read from the stored hash, and u32::MAX iterations would pin a core
// for hours; .NET itself never writes more than a few hundred thousand.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Smallest salt (bytes) accepted in an ASP.NET Identity V3 hash, as .NET enforces.
pub const MIN_ASPNET_SALT_LEN: usize = 16;

/// Largest salt (bytes) accepted in an ASP.NET Identity V3 hash.
// Identity writes 16; the cap only bounds how much of a hostile blob gets fed to HMAC.
pub const MAX_ASPNET_SALT_LEN: usize = 8192;

/// Smallest derived subkey (bytes) accepted in an ASP.NET Identity V3 hash, as .NET enforces.
pub const MIN_ASPNET_SUBKEY_LEN: usize = 16;

/// Largest derived subkey (bytes) accepted in an ASP.NET Identity V3 hash.
// Not a .NET rule: every extra PRF-output-sized block of subkey repeats all iterations, so an
// unbounded subkey multiplies the MAX_PBKDF2_ITERATIONS budget. Identity writes 32 bytes;
// 64 is the largest PRF output (SHA-512).
pub const MAX_ASPNET_SUBKEY_LEN: usize = 64;

/// V3 SHA-512 hashes with fewer iterations than this are flagged for rehash (.NET 7+ default).
pub const ASPNET_V3_REHASH_BELOW_ITERATIONS: u32 = 100_000;

const ASPNET_V2_MARKER: u8 = 0x00;
const ASPNET_V3_MARKER: u8 = 0x01;
const ASPNET_V2_SALT_LEN: usize = 16;
const ASPNET_V2_SUBKEY_LEN: usize = 32;
const ASPNET_V2_ITERATIONS: u32 = 1000;
const ASPNET_V3_HEADER_LEN: usize = 13;

const ARGON2_PHC_PREFIXES: [&str; 3] = ["$argon2id$", "$argon2i$", "$argon2d$"];

// 0xFF never occurs in UTF-8, so no `&str` password can ever match the dummy hash, even if
// its salt were known or it ended up stored as somebody's hash by mistake.
const DUMMY_PASSWORD: &[u8] = &[0xFF; 32];

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is correct; `rehash_recommended` asks the caller to store a fresh argon2id hash.
    Match {
        /// True when the stored format or its parameters are below current recommendations.
        rehash_recommended: bool,
    },
    /// The password is wrong, or the stored hash is of a known format but malformed or refused.
    Mismatch,
    /// The stored hash is not in any supported format; the password was not checked.
    UnknownFormat,
}

/// Argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes over memory.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).
    pub p_cost: u32,
}

impl Default for HashParams {
    /// OWASP Password Storage Cheat Sheet argon2id baseline: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Why [`hash_password`] could not produce a hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// A parameter exceeds the limit that [`verify`] enforces, so the hash could never verify.
    #[error("argon2 parameter {name}={value} exceeds the verification limit {limit}")]
    AboveLimit {
        /// PHC name of the parameter (`m`, `t` or `p`).
        name: &'static str,
        /// Requested value.
        value: u32,
        /// Largest accepted value.
        limit: u32,
    },
    /// The argon2 crate rejected the parameters (e.g. t=0, p=0, or m < 8*p).
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(argon2::Error),
    /// The operating system's random number generator failed to produce a salt.
    #[error("operating-system random number generator failed")]
    Rng,
    /// Hashing failed after the parameters were accepted.
    #[error("argon2 hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
}

/// Which stored-hash format a dummy verification should cost the same as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DummyKind {
    /// argon2id with [`HashParams::default`]; what [`hash_password`] writes by default.
    #[default]
    Argon2id,
    /// ASP.NET Core Identity V3 as written by .NET 7+: HMAC-SHA512, 100,000 iterations.
    AspNetV3Net7,
    /// ASP.NET Core Identity V3 as written by .NET Core up to 6: HMAC-SHA256, 10,000 iterations.
    AspNetV3Net6,
    /// ASP.NET Identity V2: HMAC-SHA1, 1,000 iterations.
    AspNetV2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    fn from_aspnet_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(Self::Sha1),
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn aspnet_id(self) -> u32 {
        match self {
            Self::Sha1 => 0,
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    fn derive(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match self {
            Self::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, out),
            Self::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out),
            Self::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, out),
        }
    }
}

/// Checks `password` (its UTF-8 bytes, untrimmed) against a stored argon2 or ASP.NET Identity hash.
#[must_use]
pub fn verify(stored_hash: &str, password: &str) -> Verdict {
    if ARGON2_PHC_PREFIXES
        .iter()
        .any(|prefix| stored_hash.starts_with(prefix))
    {
        return verify_argon2(stored_hash, password);
    }
    let Ok(decoded) = STANDARD.decode(stored_hash) else {
        return Verdict::UnknownFormat;
    };
    match decoded.first() {
        Some(&ASPNET_V2_MARKER) => verify_aspnet_v2(&decoded, password),
        Some(&ASPNET_V3_MARKER) => verify_aspnet_v3(&decoded, password),
        _ => Verdict::UnknownFormat,
    }
}

/// Hashes `password` as an argon2id PHC string with a fresh random 16-byte salt.
///
/// # Errors
///
/// [`HashError::AboveLimit`] or [`HashError::InvalidParams`] for unusable `params`,
/// [`HashError::Rng`] if the OS cannot supply a salt.
pub fn hash_password(password: &str, params: &HashParams) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| HashError::Rng)?;
    argon2id_phc(password.as_bytes(), &salt, params)
}

/// Burns the cost of verifying against an argon2id hash with default params; call for unknown users.
///
/// Equivalent to `verify_dummy(DummyKind::Argon2id, password)`. If the gateway hashes with
/// non-default [`HashParams`], it should instead keep its own `hash_password` output (of a
/// random password) and pass it to [`verify`], so the cost matches its real hashes.
pub fn dummy_verify(password: &str) {
    verify_dummy(DummyKind::Argon2id, password);
}

/// Burns the cost of verifying `password` against a hash of `kind`, discarding the result.
///
/// A gateway whose user table mixes formats should pick the kind most of its users still
/// have, because an unknown user must cost what a wrong password for a typical user costs.
pub fn verify_dummy(kind: DummyKind, password: &str) -> Verdict {
    // black_box keeps the optimiser from dropping a computation whose result nobody reads.
    std::hint::black_box(verify(dummy_hash_of(kind), std::hint::black_box(password)))
}

/// The dummy hash standing in for `kind`: the same format and cost as a real one, matching no password.
pub fn dummy_hash_of(kind: DummyKind) -> &'static str {
    match kind {
        DummyKind::Argon2id => dummy_hash(),
        DummyKind::AspNetV3Net7 => {
            static HASH: OnceLock<String> = OnceLock::new();
            HASH.get_or_init(|| aspnet_v3_dummy(Prf::Sha512, 100_000))
        }
        DummyKind::AspNetV3Net6 => {
            static HASH: OnceLock<String> = OnceLock::new();
            HASH.get_or_init(|| aspnet_v3_dummy(Prf::Sha256, 10_000))
        }
        DummyKind::AspNetV2 => {
            static HASH: OnceLock<String> = OnceLock::new();
            HASH.get_or_init(aspnet_v2_dummy)
        }
    }
}

/// The argon2id PHC string (default params, random salt) that [`dummy_verify`] verifies against.
///
/// Computed on first use, which costs one hash: call it once at startup so the first unknown
/// user is not slower than later ones. No `&str` password matches it.
#[must_use]
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(argon2_dummy)
}

fn verify_argon2(stored_hash: &str, password: &str) -> Verdict {
    let hash = match PasswordHash::new(stored_hash) {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(%error, "stored argon2 hash is not a valid PHC string");
            return Verdict::Mismatch;
        }
    };
    if hash.salt.is_none() || hash.hash.is_none() {
        tracing::warn!("stored argon2 hash lacks a salt or an output");
        return Verdict::Mismatch;
    }
    // Same conversion the verifier performs internally, done first so the limits see exactly
    // the parameters that would be used (including defaults for omitted m/t/p).
    let params = match Params::try_from(&hash) {
        Ok(params) => params,
        Err(error) => {
            tracing::warn!(%error, "stored argon2 hash has invalid parameters");
            return Verdict::Mismatch;
        }
    };
    if let Some((name, value, limit)) =
        argon2_limit_violation(params.m_cost(), params.t_cost(), params.p_cost())
    {
        tracing::warn!(
            param = name,
            value,
            limit,
            "refusing stored argon2 hash: cost parameter above limit"
        );
        return Verdict::Mismatch;
    }
    match argon2_matches(&hash, params, password.as_bytes()) {
        Ok(true) => Verdict::Match {
            rehash_recommended: false,
        },
        Ok(false) => Verdict::Mismatch,
        Err(error) => {
            tracing::warn!(%error, "stored argon2 hash could not be verified");
            Verdict::Mismatch
        }
    }
}

/// Largest argon2 working memory (in 1 KiB blocks) kept between verifications on a thread: four times
/// OWASP's 19 MiB. Bigger (unusual) hashes get a temporary buffer so they leave nothing behind.
const ARGON2_REUSED_BLOCKS_MAX: usize = 4 * 19_456;

thread_local! {
    // One argon2 working area per hashing thread, reused: allocating and freeing 19 MiB per login lets
    // glibc keep the freed blocks in per-thread arenas (and fragment them), so memory grew far beyond
    // threads × one hash; a reused buffer holds exactly that.
    static ARGON2_BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes the hash with the stored parameters and salt, then compares in constant time.
fn argon2_matches(
    hash: &PasswordHash<'_>,
    params: Params,
    password: &[u8],
) -> Result<bool, argon2::password_hash::Error> {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let mut salt_buf = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if blocks <= ARGON2_REUSED_BLOCKS_MAX {
        ARGON2_BLOCKS.with(|cell| {
            let mut memory = cell.borrow_mut();
            if memory.len() < blocks {
                memory.resize(blocks, argon2::Block::default());
            }
            argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        })?;
    } else {
        let mut memory = vec![argon2::Block::default(); blocks];
        argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory)?;
    }
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

fn argon2_limit_violation(m: u32, t: u32, p: u32) -> Option<(&'static str, u32, u32)> {
    if m > MAX_ARGON2_M_COST_KIB {
        Some(("m", m, MAX_ARGON2_M_COST_KIB))
    } else if t > MAX_ARGON2_T_COST {
        Some(("t", t, MAX_ARGON2_T_COST))
    } else if p > MAX_ARGON2_P_COST {
        Some(("p", p, MAX_ARGON2_P_COST))
    } else {
        None
    }
}

fn verify_aspnet_v2(decoded: &[u8], password: &str) -> Verdict {
    if decoded.len() != 1 + ASPNET_V2_SALT_LEN + ASPNET_V2_SUBKEY_LEN {
        tracing::warn!(
            len = decoded.len(),
            "refusing ASP.NET Identity V2 hash of wrong length"
        );
        return Verdict::Mismatch;
    }
    let (salt, subkey) = decoded[1..].split_at(ASPNET_V2_SALT_LEN);
    pbkdf2_verdict(
        Prf::Sha1,
        password,
        salt,
        ASPNET_V2_ITERATIONS,
        subkey,
        true,
    )
}

fn verify_aspnet_v3(decoded: &[u8], password: &str) -> Verdict {
    let (Some(prf_id), Some(iterations), Some(salt_len)) = (
        read_u32_be(decoded, 1),
        read_u32_be(decoded, 5),
        read_u32_be(decoded, 9),
    ) else {
        tracing::warn!(
            len = decoded.len(),
            "refusing ASP.NET Identity V3 hash: truncated header"
        );
        return Verdict::Mismatch;
    };
    let Some(prf) = Prf::from_aspnet_id(prf_id) else {
        tracing::warn!(
            prf = prf_id,
            "refusing ASP.NET Identity V3 hash: unknown PRF"
        );
        return Verdict::Mismatch;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
        tracing::warn!(
            iterations,
            limit = MAX_PBKDF2_ITERATIONS,
            "refusing ASP.NET Identity V3 hash: iteration count out of range"
        );
        return Verdict::Mismatch;
    }
    let salt_len = match usize::try_from(salt_len) {
        Ok(len) if (MIN_ASPNET_SALT_LEN..=MAX_ASPNET_SALT_LEN).contains(&len) => len,
        _ => {
            tracing::warn!(
                salt_len,
                "refusing ASP.NET Identity V3 hash: salt length out of range"
            );
            return Verdict::Mismatch;
        }
    };
    let body = decoded.get(ASPNET_V3_HEADER_LEN..).unwrap_or_default();
    let (Some(salt), Some(subkey)) = (body.get(..salt_len), body.get(salt_len..)) else {
        tracing::warn!(
            len = decoded.len(),
            salt_len,
            "refusing ASP.NET Identity V3 hash: shorter than its salt"
        );
        return Verdict::Mismatch;
    };
    if !(MIN_ASPNET_SUBKEY_LEN..=MAX_ASPNET_SUBKEY_LEN).contains(&subkey.len()) {
        tracing::warn!(
            subkey_len = subkey.len(),
            "refusing ASP.NET Identity V3 hash: subkey length out of range"
        );
        return Verdict::Mismatch;
    }
    let rehash = aspnet_v3_rehash(prf, iterations);
    pbkdf2_verdict(prf, password, salt, iterations, subkey, rehash)
}

// Mirrors .NET 7+ PasswordHasher: anything but HMAC-SHA512 at >= 100k iterations is
// SuccessRehashNeeded.
fn aspnet_v3_rehash(prf: Prf, iterations: u32) -> bool {
    prf != Prf::Sha512 || iterations < ASPNET_V3_REHASH_BELOW_ITERATIONS
}

fn read_u32_be(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes(field.try_into().ok()?))
}

fn pbkdf2_verdict(
    prf: Prf,
    password: &str,
    salt: &[u8],
    iterations: u32,
    expected: &[u8],
    rehash_recommended: bool,
) -> Verdict {
    let mut derived = vec![0u8; expected.len()];
    prf.derive(password.as_bytes(), salt, iterations, &mut derived);
    if bool::from(derived.ct_eq(expected)) {
        Verdict::Match { rehash_recommended }
    } else {
        Verdict::Mismatch
    }
}

fn argon2id_phc(password: &[u8], salt: &[u8], params: &HashParams) -> Result<String, HashError> {
    // Refuse what verify() would refuse, or the gateway would write hashes nobody can log in with.
    if let Some((name, value, limit)) =
        argon2_limit_violation(params.m_cost_kib, params.t_cost, params.p_cost)
    {
        return Err(HashError::AboveLimit { name, value, limit });
    }
    let argon2_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, None)
        .map_err(HashError::InvalidParams)?;
    let salt = SaltString::encode_b64(salt).map_err(HashError::Hashing)?;
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params)
        .hash_password(password, &salt)
        .map_err(HashError::Hashing)?;
    Ok(hash.to_string())
}

fn argon2_dummy() -> String {
    let params = HashParams::default();
    let mut salt = [0x5Au8; 16];
    // A random salt keeps the dummy from being a fixed, precomputable value; if the RNG is
    // down the fixed salt still costs the same, and DUMMY_PASSWORD is not a valid &str anyway.
    if OsRng.try_fill_bytes(&mut salt).is_err() {
        tracing::warn!("OS RNG failed; dummy argon2 hash uses a fixed salt");
    }
    argon2id_phc(DUMMY_PASSWORD, &salt, &params).unwrap_or_else(|error| {
        // Unreachable with the default params; an all-zero output still costs one full
        // argon2id run per verification, and no password maps to it.
        tracing::warn!(%error, "dummy argon2 hash failed; using a zero-output dummy");
        format!(
            "$argon2id$v=19$m={},t={},p={}$WlpaWlpaWlpaWlpaWlpaWg${}",
            params.m_cost_kib,
            params.t_cost,
            params.p_cost,
            "A".repeat(43)
        )
    })
}

// The subkey is all zeros rather than derived: finding a password that maps to it is a
// PBKDF2 preimage, and verification costs exactly the same as against a real hash.
fn aspnet_v3_dummy(prf: Prf, iterations: u32) -> String {
    let mut bytes = Vec::with_capacity(ASPNET_V3_HEADER_LEN + 16 + 32);
    bytes.push(ASPNET_V3_MARKER);
    bytes.extend_from_slice(&prf.aspnet_id().to_be_bytes());
    bytes.extend_from_slice(&iterations.to_be_bytes());
    bytes.extend_from_slice(&16u32.to_be_bytes());
    bytes.extend_from_slice(&[0x5A; 16]);
    bytes.extend_from_slice(&[0; 32]);
    STANDARD.encode(bytes)
}

fn aspnet_v2_dummy() -> String {
    let mut bytes = Vec::with_capacity(1 + ASPNET_V2_SALT_LEN + ASPNET_V2_SUBKEY_LEN);
    bytes.push(ASPNET_V2_MARKER);
    bytes.extend_from_slice(&[0x5A; ASPNET_V2_SALT_LEN]);
    bytes.extend_from_slice(&[0; ASPNET_V2_SUBKEY_LEN]);
    STANDARD.encode(bytes)
}

/// The dummy kind whose cost is closest to verifying `stored_hash`, so a store can pick the dummy that
/// matches its users' hashes. Unknown formats map to the argon2id default.
#[must_use]
pub fn dummy_kind_of(stored_hash: &str) -> DummyKind {
    if stored_hash.starts_with('$') {
        return DummyKind::Argon2id;
    }
    match STANDARD.decode(stored_hash.as_bytes()).ok().as_deref() {
        Some([ASPNET_V2_MARKER, ..]) => DummyKind::AspNetV2,
        Some([ASPNET_V3_MARKER, 0, 0, 0, 2, ..]) => DummyKind::AspNetV3Net7,
        Some([ASPNET_V3_MARKER, ..]) => DummyKind::AspNetV3Net6,
        _ => DummyKind::Argon2id,
    }
}

/// True when `stored_hash` looks like a supported format (cheap: no key derivation).
#[must_use]
pub fn is_known_format(stored_hash: &str) -> bool {
    if ARGON2_PHC_PREFIXES
        .iter()
        .any(|p| stored_hash.starts_with(p))
    {
        return true;
    }
    matches!(
        STANDARD.decode(stored_hash.as_bytes()).ok().as_deref(),
        Some([ASPNET_V2_MARKER | ASPNET_V3_MARKER, ..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    const PASSWORD: &str = "my password";

    const MATCH_REHASH: Verdict = Verdict::Match {
        rehash_recommended: true,
    };
    const MATCH_CURRENT: Verdict = Verdict::Match {
        rehash_recommended: false,
    };

    // (hash, expected verdict for PASSWORD)
    const ASPNET_VECTORS: &[(&str, Verdict)] = &[
        // V2
        (
            "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==",
            MATCH_REHASH,
        ),
        // V2, random salt
        (
            "ANXrDknc7fGPpigibZXXZFMX4aoqz44JveK6jQuwY3eH/UyPhvr5xTPeGYEckLxz9A==",
            MATCH_REHASH,
        ),
        // V3 SHA1, 250 iterations, 16-byte salt, 16-byte subkey
        (
            "AQAAAAAAAAD6AAAAEAhftMyfTJylOlZT+eEotFXd1elee8ih5WsjXaR3PA9M",
            MATCH_REHASH,
        ),
        // V3 SHA256, 250000 iterations, 32-byte salt, 32-byte subkey
        (
            "AQAAAAEAA9CQAAAAIESkQuj2Du8Y+kbc5lcN/W/3NiAZFEm11P27nrSN5/tId+bR1SwV8CO1Jd72r4C08OLvplNlCDc3oQZ8efcW+jQ=",
            MATCH_REHASH,
        ),
        // V3 SHA512, 50 iterations, 16-byte salt, 16-byte subkey
        (
            "AQAAAAIAAAAyAAAAEOMwvh3+FZxqkdMBz2ekgGhwQ4B6pZWND6zgESBuWiHw",
            MATCH_REHASH,
        ),
        // V3 SHA512, 250 iterations, 32-byte salt, 64-byte subkey
        (
            "AQAAAAIAAAD6AAAAIJbVi5wbMR+htSfFp8fTw8N8GOS/Sje+S/4YZcgBfU7EQuqv4OkVYmc4VJl9AGZzmRTxSkP7LtVi9IWyUxX8IAAfZ8v+ZfhjCcudtC1YERSqE1OEdXLW9VukPuJWBBjLuw==",
            MATCH_REHASH,
        ),
        // V3 SHA512, 10000 iterations, 16-byte salt, 32-byte subkey
        (
            "AQAAAAIAACcQAAAAEAABAgMEBQYHCAkKCwwNDg9B0Oxwty+PGIDSp95gcCfzeDvA4sGapUIUov8usXfD6A==",
            MATCH_REHASH,
        ),
        // V3 SHA512, 100000 iterations: the .NET 7+ default, the only current one
        (
            "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==",
            MATCH_CURRENT,
        ),
        // V3 SHA256, 10000 iterations: the .NET <= 6 default
        (
            "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==",
            MATCH_REHASH,
        ),
    ];

    const ASPNET_BAD_VECTORS: &[&str] = &[
        // V2 with a corrupted subkey
        "AAABAgMEBQYHCAkKCwwNDg+uAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAALtH1uJg==",
        // V2 too short
        "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggE=",
        // V2 with extra bytes
        "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJgAAAAAAAAAAAAA=",
        // V3 SHA1 with a corrupted subkey
        "AQAAAAAAAAD6AAAAEAhftMyfTJyAAAAAAAAAAAAAAAAAAAih5WsjXaR3PA9M",
        // V3 SHA512 too short
        "AQAAAAIAAAAyAAAAEOMwvh3+FZxqkdMBz2ekgGhwQ4A=",
        // V3 SHA512 with extra data
        "AQAAAAIAAAAyAAAAEOMwvh3+FZxqkdMBz2ekgGhwQ4B6pZWND6zgESBuWiHwAAAAAAAAAAAA",
    ];

    // Reference-implementation vectors (password "password", salt "somesalt").
    const ARGON2I_V19: &str =
        "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8";
    const ARGON2I_V16: &str =
        "$argon2i$v=16$m=256,t=2,p=1$c29tZXNhbHQ$/U3YPXYsSb3q9XxHvc0MLxur+GP960kN9j7emXX8zwY";
    const ARGON2ID_V19: &str =
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
    const ARGON2ID_V19_P2: &str =
        "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc";

    const FAST: HashParams = HashParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn v3_bytes(prf: u32, iterations: u32, salt_len: u32, salt: &[u8], subkey: &[u8]) -> String {
        let mut bytes = vec![ASPNET_V3_MARKER];
        bytes.extend_from_slice(&prf.to_be_bytes());
        bytes.extend_from_slice(&iterations.to_be_bytes());
        bytes.extend_from_slice(&salt_len.to_be_bytes());
        bytes.extend_from_slice(salt);
        bytes.extend_from_slice(subkey);
        STANDARD.encode(bytes)
    }

    // Tiny xorshift so the robustness tests are deterministic without a rand dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn aspnet_known_vectors_match_with_expected_rehash_flag() {
        for (hash, expected) in ASPNET_VECTORS {
            assert_eq!(verify(hash, PASSWORD), *expected, "{hash}");
        }
    }

    #[test]
    fn aspnet_known_vectors_reject_other_passwords() {
        for (hash, _) in ASPNET_VECTORS {
            assert_eq!(verify(hash, "my passwore"), Verdict::Mismatch, "{hash}");
        }
        // No trimming or case folding; checked on the cheapest vectors only (V3 SHA1/250 and
        // SHA512/50) because unoptimised PBKDF2 makes the others slow in debug builds.
        for hash in [ASPNET_VECTORS[2].0, ASPNET_VECTORS[4].0] {
            for wrong in [
                "My password",
                "my password ",
                " my password",
                "my  password",
                "",
            ] {
                assert_eq!(verify(hash, wrong), Verdict::Mismatch, "{hash} / {wrong:?}");
            }
        }
    }

    #[test]
    fn aspnet_corrupted_vectors_mismatch() {
        for hash in ASPNET_BAD_VECTORS {
            assert_eq!(verify(hash, PASSWORD), Verdict::Mismatch, "{hash}");
        }
    }

    #[test]
    fn aspnet_v2_every_wrong_length_mismatches() {
        let valid = STANDARD
            .decode(ASPNET_VECTORS[0].0)
            .expect("test vector is base64");
        for len in 1..valid.len() {
            assert_eq!(
                verify(&STANDARD.encode(&valid[..len]), PASSWORD),
                Verdict::Mismatch,
                "len {len}"
            );
        }
    }

    #[test]
    fn aspnet_v3_truncated_headers_mismatch() {
        // V3 SHA512/50 with 16-byte salt and subkey: the shortest valid V3 shape, so every cut
        // (inside the header, the header alone, inside salt or subkey) must be refused.
        let valid = STANDARD
            .decode(ASPNET_VECTORS[4].0)
            .expect("test vector is base64");
        assert_eq!(
            valid.len(),
            ASPNET_V3_HEADER_LEN + 16 + MIN_ASPNET_SUBKEY_LEN
        );
        for len in 1..valid.len() {
            assert_eq!(
                verify(&STANDARD.encode(&valid[..len]), PASSWORD),
                Verdict::Mismatch,
                "len {len}"
            );
        }
    }

    #[test]
    fn aspnet_v3_subkey_cut_to_16_bytes_still_matches() {
        // A PBKDF2 output of n bytes is a prefix of a longer one, so a subkey cut to 16+ bytes
        // still verifies; .NET behaves the same (it derives as many bytes as are stored).
        let salt = [4u8; 16];
        let mut subkey = [0u8; 32];
        Prf::Sha512.derive(PASSWORD.as_bytes(), &salt, 1, &mut subkey);
        for len in MIN_ASPNET_SUBKEY_LEN..=subkey.len() {
            let hash = v3_bytes(2, 1, 16, &salt, &subkey[..len]);
            assert_eq!(verify(&hash, PASSWORD), MATCH_REHASH, "subkey len {len}");
        }
    }

    #[test]
    fn aspnet_v3_out_of_range_fields_mismatch() {
        // Where a derivation is possible the subkey is genuine (1 iteration, which is also
        // what pbkdf2 computes for 0), so only the range checks stand between it and a Match.
        let derive = |salt: &[u8], len: usize| {
            let mut subkey = vec![0u8; len];
            Prf::Sha512.derive(PASSWORD.as_bytes(), salt, 1, &mut subkey);
            subkey
        };
        let salt = [7u8; 16];
        let subkey = derive(&salt, 32);
        let big_salt = [1u8; MAX_ASPNET_SALT_LEN + 1];
        let big_salt_len = u32::try_from(big_salt.len()).expect("small");
        let cases = [
            ("unknown PRF 3", v3_bytes(3, 1, 16, &salt, &subkey)),
            ("unknown PRF max", v3_bytes(u32::MAX, 1, 16, &salt, &subkey)),
            ("zero iterations", v3_bytes(2, 0, 16, &salt, &subkey)),
            (
                "iterations above limit",
                v3_bytes(2, MAX_PBKDF2_ITERATIONS + 1, 16, &salt, &subkey),
            ),
            (
                "u32::MAX iterations",
                v3_bytes(0, u32::MAX, 16, &salt, &subkey),
            ),
            (
                "salt 15",
                v3_bytes(2, 1, 15, &salt[..15], &derive(&salt[..15], 32)),
            ),
            ("salt len 0", v3_bytes(2, 1, 0, &[], &derive(&[], 32))),
            (
                "salt len above limit",
                v3_bytes(2, 1, big_salt_len, &big_salt, &derive(&big_salt, 32)),
            ),
            (
                "salt len u32::MAX",
                v3_bytes(2, 1, u32::MAX, &salt, &subkey),
            ),
            ("salt longer than data", v3_bytes(2, 1, 64, &salt, &subkey)),
            ("subkey 15", v3_bytes(2, 1, 16, &salt, &derive(&salt, 15))),
            ("no subkey", v3_bytes(2, 1, 16, &salt, &[])),
            (
                "subkey above limit",
                v3_bytes(2, 1, 16, &salt, &derive(&salt, MAX_ASPNET_SUBKEY_LEN + 1)),
            ),
        ];
        for (name, hash) in cases {
            assert_eq!(verify(&hash, PASSWORD), Verdict::Mismatch, "{name}");
        }
    }

    #[test]
    fn aspnet_v3_accepts_limits_inclusive() {
        // Build real hashes at the edges of the accepted ranges so an off-by-one in the
        // range checks turns a Match into a Mismatch.
        let cases: [(Prf, usize, usize); 3] = [
            (Prf::Sha1, MIN_ASPNET_SALT_LEN, MIN_ASPNET_SUBKEY_LEN),
            (Prf::Sha256, MAX_ASPNET_SALT_LEN, MAX_ASPNET_SUBKEY_LEN),
            (Prf::Sha512, 16, MAX_ASPNET_SUBKEY_LEN),
        ];
        for (prf, salt_len, subkey_len) in cases {
            let salt = vec![3u8; salt_len];
            let mut subkey = vec![0u8; subkey_len];
            prf.derive(PASSWORD.as_bytes(), &salt, 1, &mut subkey);
            let salt_len_field = u32::try_from(salt_len).expect("small");
            let hash = v3_bytes(prf.aspnet_id(), 1, salt_len_field, &salt, &subkey);
            assert_eq!(verify(&hash, PASSWORD), MATCH_REHASH, "{prf:?}");
        }
    }

    #[test]
    fn aspnet_v3_rehash_rule() {
        // End-to-end coverage of 100k (false) and 10k (true) is in the known vectors; deriving
        // 99,999 iterations here would only slow the suite down.
        let threshold = ASPNET_V3_REHASH_BELOW_ITERATIONS;
        assert!(aspnet_v3_rehash(Prf::Sha512, threshold - 1));
        assert!(!aspnet_v3_rehash(Prf::Sha512, threshold));
        assert!(!aspnet_v3_rehash(Prf::Sha512, MAX_PBKDF2_ITERATIONS));
        assert!(aspnet_v3_rehash(Prf::Sha256, MAX_PBKDF2_ITERATIONS));
        assert!(aspnet_v3_rehash(Prf::Sha1, MAX_PBKDF2_ITERATIONS));
    }

    #[test]
    fn random_short_blobs_never_match_or_panic() {
        // Below 13 + 16 + 16 bytes no V2/V3 shape is valid, so nothing may match, and the
        // iteration field cannot trigger long work.
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let len = usize::try_from(rng.next() % 45).expect("small");
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
            if let Some(first) = bytes.first_mut() {
                *first %= 3;
            }
            let verdict = verify(&STANDARD.encode(&bytes), PASSWORD);
            assert_ne!(verdict, MATCH_REHASH, "{bytes:?}");
            assert_ne!(verdict, MATCH_CURRENT, "{bytes:?}");
        }
    }

    #[test]
    fn argon2_reference_vectors_match() {
        for hash in [ARGON2I_V19, ARGON2I_V16, ARGON2ID_V19, ARGON2ID_V19_P2] {
            assert_eq!(verify(hash, "password"), MATCH_CURRENT, "{hash}");
            assert_eq!(verify(hash, "Password"), Verdict::Mismatch, "{hash}");
            assert_eq!(verify(hash, "password "), Verdict::Mismatch, "{hash}");
        }
    }

    #[test]
    fn argon2d_round_trip() {
        let salt = SaltString::encode_b64(b"argon2d test salt").expect("valid salt");
        let params = Params::new(64, 1, 1, None).expect("valid params");
        let hash = Argon2::new(Algorithm::Argon2d, Version::V0x13, params)
            .hash_password(PASSWORD.as_bytes(), &salt)
            .expect("hashing works")
            .to_string();
        assert!(hash.starts_with("$argon2d$"), "{hash}");
        assert_eq!(verify(&hash, PASSWORD), MATCH_CURRENT);
        assert_eq!(verify(&hash, "my passworD"), Verdict::Mismatch);
    }

    #[test]
    fn hash_password_round_trip_small_params() {
        for password in [PASSWORD, "", " padded ", "pässwörd 🔑", "a\0b"] {
            let hash = hash_password(password, &FAST).expect("hashing works");
            assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
            assert_eq!(verify(&hash, password), MATCH_CURRENT, "{password:?}");
            assert_eq!(
                verify(&hash, &format!("{password}x")),
                Verdict::Mismatch,
                "{password:?}"
            );
        }
    }

    #[test]
    fn hash_password_round_trip_default_params() {
        let hash = hash_password(PASSWORD, &HashParams::default()).expect("hashing works");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(verify(&hash, PASSWORD), MATCH_CURRENT);
        assert_eq!(verify(&hash, "my passwor"), Verdict::Mismatch);
    }

    #[test]
    fn hash_password_salts_are_random() {
        let first = hash_password(PASSWORD, &FAST).expect("hashing works");
        let second = hash_password(PASSWORD, &FAST).expect("hashing works");
        assert_ne!(first, second);
    }

    #[test]
    fn hash_password_rejects_bad_params() {
        let above = [
            HashParams {
                m_cost_kib: MAX_ARGON2_M_COST_KIB + 1,
                ..FAST
            },
            HashParams {
                t_cost: MAX_ARGON2_T_COST + 1,
                ..FAST
            },
            HashParams {
                p_cost: MAX_ARGON2_P_COST + 1,
                m_cost_kib: 8 * (MAX_ARGON2_P_COST + 1),
                ..FAST
            },
        ];
        for params in above {
            assert!(
                matches!(
                    hash_password(PASSWORD, &params),
                    Err(HashError::AboveLimit { .. })
                ),
                "{params:?}"
            );
        }
        let invalid = [
            HashParams { t_cost: 0, ..FAST },
            HashParams { p_cost: 0, ..FAST },
            HashParams {
                m_cost_kib: 7,
                ..FAST
            },
            HashParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 9,
            },
        ];
        for params in invalid {
            assert!(
                matches!(
                    hash_password(PASSWORD, &params),
                    Err(HashError::InvalidParams(_))
                ),
                "{params:?}"
            );
        }
    }

    #[test]
    fn argon2_hostile_params_refused_without_work() {
        // Each would allocate or run for far too long if it reached argon2; the salt and
        // output are well-formed so only the limits can reject them.
        let tail = "$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        let hostile = [
            format!(
                "$argon2id$v=19$m={},t=2,p=1{tail}",
                MAX_ARGON2_M_COST_KIB + 1
            ),
            format!("$argon2id$v=19$m={},t=2,p=1{tail}", u32::MAX),
            format!("$argon2i$v=19$m=256,t={},p=1{tail}", MAX_ARGON2_T_COST + 1),
            format!("$argon2d$v=19$m=256,t={},p=1{tail}", u32::MAX),
            format!(
                "$argon2id$v=19$m=1024,t=2,p={}{tail}",
                MAX_ARGON2_P_COST + 1
            ),
            format!("$argon2id$v=19$m=4294967295,t=4294967295,p=16777215{tail}"),
        ];
        let started = std::time::Instant::now();
        for hash in &hostile {
            assert_eq!(verify(hash, "password"), Verdict::Mismatch, "{hash}");
        }
        // Generous bound: the point is that none of them ran argon2 at its stated cost.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn argon2_limits_are_inclusive() {
        assert_eq!(
            argon2_limit_violation(MAX_ARGON2_M_COST_KIB, MAX_ARGON2_T_COST, MAX_ARGON2_P_COST),
            None
        );
        assert!(argon2_limit_violation(MAX_ARGON2_M_COST_KIB + 1, 1, 1).is_some());
        assert!(argon2_limit_violation(8, MAX_ARGON2_T_COST + 1, 1).is_some());
        assert!(argon2_limit_violation(8 * 17, 1, MAX_ARGON2_P_COST + 1).is_some());
    }

    #[test]
    fn malformed_argon2_strings_mismatch() {
        for hash in [
            "$argon2id$",
            "$argon2i$",
            "$argon2d$v=19",
            "$argon2id$v=19$m=256,t=2,p=1",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$",
            "$argon2id$v=19$m=abc,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=256,t=0,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=256,t=2,p=0$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=18$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=256,t=2,p=1,x=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=256,t=2,p=1$!!!$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/",
            "$argon2id$v=19$m=256,t=2,p=1$c2FsdA$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        ] {
            assert_eq!(verify(hash, "password"), Verdict::Mismatch, "{hash}");
        }
    }

    #[test]
    fn mutated_argon2_strings_never_match_or_panic() {
        let original = ARGON2ID_V19.as_bytes();
        let alphabet = b"$=,+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..300 {
            let mut mutated = original.to_vec();
            let at = usize::try_from(rng.next()).expect("64-bit") % mutated.len();
            let with = alphabet[usize::try_from(rng.next()).expect("64-bit") % alphabet.len()];
            if mutated[at] == with {
                continue;
            }
            mutated[at] = with;
            let text = String::from_utf8(mutated).expect("ASCII stays UTF-8");
            // Digit substitutions keep m <= 999, t/p <= 9: always cheap.
            let verdict = verify(&text, "password");
            assert!(!matches!(verdict, Verdict::Match { .. }), "{text}");
        }
    }

    #[test]
    fn unknown_formats() {
        for hash in [
            "",
            " ",
            "garbage",
            "not base64!",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$2y$10$abcdefghijklmnopqrstuu",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$pbkdf2-sha256$29000$N2GMMYaw1rqX0tq7Vyp1rg$",
            "$argon2$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2x$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$ARGON2ID$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            // marker bytes 0x02 and 0xFF
            "AgECAwQ=",
            "/wECAwQ=",
            // URL-safe alphabet is not what Identity writes
            "AAABAgMEBQYHCAkKCwwNDg-ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM-E1LtH1uJg==",
            // missing padding
            "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg",
            // surrounding whitespace is not trimmed
            " AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==",
            "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==\n",
        ] {
            assert_eq!(verify(hash, PASSWORD), Verdict::UnknownFormat, "{hash:?}");
        }
    }

    #[test]
    fn dummy_hash_is_stable_default_argon2id_that_nothing_matches() {
        let hash = dummy_hash();
        assert!(std::ptr::eq(hash, dummy_hash()), "computed once");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        for password in ["", PASSWORD, "\u{FFFD}"] {
            assert_eq!(verify(hash, password), Verdict::Mismatch);
        }
        // It must verify as a well-formed hash (a full argon2 run), not be refused early.
        let parsed = PasswordHash::new(hash).expect("valid PHC");
        assert_eq!(
            Argon2::default().verify_password(DUMMY_PASSWORD, &parsed),
            Ok(())
        );
    }

    #[test]
    fn dummy_verify_runs_for_every_kind() {
        dummy_verify(PASSWORD);
        dummy_verify("");
        for kind in [
            DummyKind::Argon2id,
            DummyKind::AspNetV3Net7,
            DummyKind::AspNetV3Net6,
            DummyKind::AspNetV2,
        ] {
            // The dummy is a real hash of the kind it stands in for (so it costs the same), and a verification
            // against it runs to the end: Mismatch, not UnknownFormat (which would be refused early, cheaply).
            assert_eq!(dummy_kind_of(dummy_hash_of(kind)), kind);
            assert!(is_known_format(dummy_hash_of(kind)));
            for password in [PASSWORD, ""] {
                assert_eq!(verify_dummy(kind, password), Verdict::Mismatch, "{kind:?}");
            }
        }
    }

    #[test]
    fn aspnet_dummies_have_the_real_default_shapes() {
        // If a dummy were refused early it would be cheaper than a real hash and leak which
        // users exist; check each one decodes to the cost of the format it stands in for.
        let cases = [
            (aspnet_v3_dummy(Prf::Sha512, 100_000), ASPNET_VECTORS[7].0),
            (aspnet_v3_dummy(Prf::Sha256, 10_000), ASPNET_VECTORS[8].0),
            (aspnet_v2_dummy(), ASPNET_VECTORS[0].0),
        ];
        for (dummy, real) in cases {
            let dummy_bytes = STANDARD.decode(&dummy).expect("dummy is base64");
            let real_bytes = STANDARD.decode(real).expect("vector is base64");
            assert_eq!(dummy_bytes.len(), real_bytes.len(), "{dummy}");
            let header = if real_bytes[0] == ASPNET_V3_MARKER {
                ASPNET_V3_HEADER_LEN
            } else {
                1
            };
            assert_eq!(dummy_bytes[..header], real_bytes[..header], "{dummy}");
        }
    }
}

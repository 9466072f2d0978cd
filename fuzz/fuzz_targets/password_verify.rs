//! Password-hash verification on arbitrary stored hashes: never panics, never matches a hash that was not
//! made from the password. Costs are capped by the gateway (argon2 m <= 1 GiB, PBKDF2 <= 10M iterations);
//! those caps are a deliberate DoS bound for a trusted users file, so inputs asking for more than a small
//! cost are skipped here to keep the fuzzer fast (they are not findings).
#![no_main]

use base64::Engine;
use gateway::credentials::{self, Verdict};
use libfuzzer_sys::fuzz_target;

/// ASP.NET Identity V2 hash of "my password". TEST FIXTURE.
const ASPNET_V2: &str = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==";

fn number_after(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let digits: String = s[i..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().or(Some(u64::MAX))
}

fn too_costly(stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        let m = number_after(stored, "m=").unwrap_or(0);
        let t = number_after(stored, "t=").unwrap_or(0);
        let p = number_after(stored, "p=").unwrap_or(0);
        return m > 65_536 || t > 4 || p > 4;
    }
    match base64::engine::general_purpose::STANDARD.decode(stored) {
        Ok(b) if b.first() == Some(&1) && b.len() >= 9 => {
            u32::from_be_bytes([b[5], b[6], b[7], b[8]]) > 20_000
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let stored = String::from_utf8_lossy(&data[..split]);
    let pw = String::from_utf8_lossy(data.get(split + 1..).unwrap_or(&[]));
    if too_costly(&stored) {
        return;
    }
    let v = credentials::verify(&stored, &pw);
    if matches!(v, Verdict::Match { .. }) {
        // Only a real hash of this password may match; the fuzzer cannot invert PBKDF2/argon2.
        assert!(
            stored == ASPNET_V2 && pw == "my password",
            "{stored:?} matched {pw:?}"
        );
    }
    let _ = credentials::is_known_format(&stored);
    let _ = credentials::dummy_kind_of(&stored);
});

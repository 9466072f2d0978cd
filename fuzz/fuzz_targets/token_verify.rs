//! Token verification on arbitrary input. Three shapes, chosen by the first byte:
//! 0: the input is the token (never valid: it carries no signature made with the key);
//! 1: the input is the payload JSON of a token correctly signed with the key (exercises claim parsing);
//! 2: the input is the header JSON of a token correctly signed with the key (exercises header parsing).
//! Never panics; shape 0 never verifies; a verified token always has a non-empty `sub` and alg HS256.
#![no_main]

use base64::Engine;
use gateway::auth::token::TokenVerifier;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// TEST FIXTURE ONLY.
const SECRET: &str = "fuzz-secret-NOT-REAL-0123456789abcdef";

fn verifiers() -> &'static [TokenVerifier; 2] {
    static V: OnceLock<[TokenVerifier; 2]> = OnceLock::new();
    V.get_or_init(|| {
        let cfg = gateway::config::Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n"))
            .expect("fuzz config");
        [
            TokenVerifier::new(&cfg.auth, false),
            TokenVerifier::new(&cfg.auth, true),
        ]
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signed(header: &[u8], payload: &[u8]) -> String {
    let msg = format!("{}.{}", b64(header), b64(payload));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .expect("sign");
    format!("{msg}.{sig}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (token, may_verify) = match mode % 3 {
        0 => (String::from_utf8_lossy(rest).into_owned(), false),
        1 => (signed(br#"{"alg":"HS256","typ":"JWT"}"#, rest), true),
        _ => {
            let exp = 4_000_000_000u64;
            let payload = format!(r#"{{"sub":"fuzz","exp":{exp}}}"#);
            (signed(rest, payload.as_bytes()), true)
        }
    };
    for v in verifiers() {
        match v.verify(&token) {
            Ok(id) => {
                assert!(may_verify, "an unsigned input verified: {token:?}");
                assert!(!id.sub.is_empty());
                let header =
                    jsonwebtoken::decode_header(&token).expect("verified token has a header");
                assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
            }
            Err(_) => {}
        }
    }
});

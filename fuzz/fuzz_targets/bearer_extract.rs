//! Bearer extraction on arbitrary Authorization header bytes (split on 0x00 into up to three fields):
//! never panics; an extracted token is non-empty, within the size limit, free of whitespace, and comes
//! from a single field that starts with "Bearer " in any case.
#![no_main]

use gateway::auth::bearer;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max) * 4 + 1;
    let mut h = HeaderMap::new();
    for field in rest.split(|b| *b == 0).take(3) {
        if let Ok(v) = HeaderValue::from_bytes(field) {
            h.append(AUTHORIZATION, v);
        }
    }
    if let Ok(token) = bearer::extract(&h, max) {
        assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
        let raw = h.get(AUTHORIZATION).unwrap().as_bytes();
        assert!(raw.len() >= 7 && raw[..7].eq_ignore_ascii_case(b"bearer "));
        assert!(!token.is_empty() && token.len() <= max);
        assert!(!token.bytes().any(|b| b.is_ascii_whitespace()));
    }
});

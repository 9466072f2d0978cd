//! Property tests (proptest) for the pieces that parse attacker-controlled input: path normalisation,
//! Bearer extraction, token verification, password-hash verification and forwarding header surgery.
//! They run in the normal suite; `PROPTEST_CASES` raises the case count for a longer local run.

mod support;

use gateway::auth::bearer;
use gateway::auth::token::TokenVerifier;
use gateway::credentials::{self, Verdict};
use gateway::forward::headers;
use gateway::protocol::path::normalise;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::sync::OnceLock;
use support::fixtures::{ASPNET_PASSWORD, ASPNET_V2};

/// HS256 secret of the verifier under test. TEST FIXTURE ONLY.
const SECRET: &str = "props-test-secret-NOT-REAL-0123456789abcdef";

fn verifier(extra_claims: bool) -> &'static TokenVerifier {
    static PLAIN: OnceLock<TokenVerifier> = OnceLock::new();
    static EXTRA: OnceLock<TokenVerifier> = OnceLock::new();
    let cell = if extra_claims { &EXTRA } else { &PLAIN };
    cell.get_or_init(|| {
        let cfg = gateway::config::Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n"))
            .unwrap();
        TokenVerifier::new(&cfg.auth, extra_claims)
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn valid_token(sub: &str) -> String {
    let n = now();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "exp": n + 600, "iat": n}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Path-shaped strings: pieces that matter to normalisation, glued in any order.
fn path_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/", "//", "\\", ".", "..", "...", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "%5C", ";",
        ";x=1", "a", "B", "admin", "%61", "%41", "%", "%2", "%zz", "%00", "%0a", "%7f", "%25",
        "%252e", "~", "-", "_", "é", "%c3%a9", "%C0%AF", "%3b", "%3B", "?", "#", " ", "\t", "%20",
        "%u002e",
    ]);
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(pieces, 0..24),
    )
        .prop_map(|(slash, parts)| {
            let mut s = if slash {
                String::from("/")
            } else {
                String::new()
            };
            for p in parts {
                s.push_str(p);
            }
            s
        })
}

/// Checks everything a normalised path promises.
fn check_normalised(input: &str, out: &str) -> Result<(), TestCaseError> {
    prop_assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    prop_assert!(!out.contains("//"), "{input:?} -> {out:?}");
    prop_assert!(!out.contains("/./"), "{input:?} -> {out:?}");
    prop_assert!(!out.contains("/../"), "{input:?} -> {out:?}");
    prop_assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}"
    );
    prop_assert!(!out.contains('\\'), "{input:?} -> {out:?}");
    prop_assert!(
        !out.bytes().any(|b| b < 0x20 || b == 0x7f),
        "{input:?} -> {out:?}"
    );
    for seg in out.split('/').skip(1) {
        // A segment is never a dot segment, not even once its `;` parameters are cut off (Tomcat/Jetty).
        let name = seg.split(';').next().unwrap_or(seg);
        prop_assert!(
            name != "." && name != "..",
            "{input:?} -> {out:?} has segment {seg:?}"
        );
    }
    // Escapes left in the output are well-formed, upper-case, and never an encoded slash, backslash,
    // dot or unreserved character (those were decoded).
    let bytes = out.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = out.get(i + 1..i + 3).unwrap_or("");
            prop_assert!(
                hex.len() == 2
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{input:?} -> {out:?}"
            );
            let v = u8::from_str_radix(hex, 16).unwrap();
            prop_assert!(
                !(v.is_ascii_alphanumeric()
                    || matches!(v, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\')),
                "{input:?} -> {out:?} keeps %{hex}"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// RFC 3986 §5.2.4 on inputs without escapes, backslashes or parameters: the reference model.
fn model(input: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut dir = false;
    for seg in input.split('/').skip(1) {
        dir = false;
        match seg {
            "" => dir = true,
            "." => dir = true,
            ".." => {
                stack.pop();
                dir = true;
            }
            s => stack.push(s),
        }
    }
    let mut out: String = stack.iter().map(|s| format!("/{s}")).collect();
    if out.is_empty() || (dir && !stack.is_empty()) {
        out.push('/');
    }
    out
}

proptest! {
    // 512 cases by default (a few seconds in a debug build); PROPTEST_CASES=100000 for a long local run.
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn normalise_never_panics_on_any_string(s in any::<String>()) {
        if let Ok(out) = normalise(&s) {
            check_normalised(&s, &out)?;
            prop_assert_eq!(normalise(&out), Ok(out.clone()), "not idempotent for {:?}", s);
        }
    }

    #[test]
    fn normalise_is_idempotent_and_leaves_no_dot_segments(s in path_like()) {
        match normalise(&s) {
            Ok(out) => {
                check_normalised(&s, &out)?;
                prop_assert_eq!(normalise(&out), Ok(out.clone()), "not idempotent for {:?}", s);
            }
            Err(_) => {
                // Refused inputs are the malformed ones: not absolute, a bad escape or a control character.
                let bad = !(s.starts_with('/') || s.starts_with('\\'))
                    || s.contains('%')
                    || s.bytes().any(|b| b < 0x20 || b == 0x7f);
                prop_assert!(bad, "{:?} was refused", s);
            }
        }
    }

    #[test]
    fn normalise_matches_rfc3986_on_plain_paths(
        parts in prop::collection::vec(prop::sample::select(vec!["a", "bc", ".", "..", "", "x.y", "..."]), 0..16)
    ) {
        let input = format!("/{}", parts.join("/"));
        prop_assert_eq!(normalise(&input).unwrap(), model(&input), "input {:?}", input);
    }

    #[test]
    fn bearer_extract_is_total_and_returns_a_clean_token(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
        prefix in prop::sample::select(vec!["", "Bearer ", "bearer ", "BEARER  ", "Basic ", "Bearer"]),
        max in 1usize..80,
    ) {
        let mut h = HeaderMap::new();
        for v in &values {
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend_from_slice(v);
            if let Ok(hv) = HeaderValue::from_bytes(&bytes) {
                h.append(AUTHORIZATION, hv);
            }
        }
        if let Ok(token) = bearer::extract(&h, max) {
            prop_assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
            let raw = h.get(AUTHORIZATION).unwrap().as_bytes();
            prop_assert!(raw.len() >= 7 && raw[..7].eq_ignore_ascii_case(b"bearer "));
            prop_assert!(!token.is_empty());
            prop_assert!(token.len() <= max);
            prop_assert!(!token.bytes().any(|b| b.is_ascii_whitespace()));
            prop_assert!(std::str::from_utf8(raw).unwrap().contains(token));
        }
    }

    #[test]
    fn verify_never_accepts_arbitrary_strings(s in any::<String>(), extra in any::<bool>()) {
        prop_assert!(verifier(extra).verify(&s).is_err());
    }

    #[test]
    fn verify_never_accepts_unsigned_or_badly_signed_tokens(
        alg in prop::sample::select(vec!["HS256", "none", "None", "HS512", "RS256", "ES256", "hs256", ""]),
        sub in "[a-z]{0,8}",
        sig in prop::collection::vec(any::<u8>(), 0..80),
        extra_header in prop::sample::select(vec!["", ",\"kid\":\"../../dev/null\"", ",\"jku\":\"http://127.0.0.1:1/\"", ",\"alg\":\"none\""]),
        extra in any::<bool>(),
    ) {
        let header = format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"{extra_header}}}");
        let claims = serde_json::json!({"sub": sub, "exp": now() + 600}).to_string();
        let token = format!("{}.{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()), b64(&sig));
        prop_assert!(verifier(extra).verify(&token).is_err(), "{}", token);
        let two = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        prop_assert!(verifier(extra).verify(&two).is_err());
    }

    #[test]
    fn any_single_character_change_to_a_valid_token_is_refused(
        pos in any::<prop::sample::Index>(),
        c in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()),
    ) {
        let token = valid_token("alice");
        prop_assert!(verifier(false).verify(&token).is_ok());
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != c);
        bytes[i] = c;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(verifier(false).verify(&changed).is_err(), "{} verified", changed);
    }

    #[test]
    fn password_verify_never_panics_on_arbitrary_stored_strings(stored in any::<String>(), pw in any::<String>()) {
        let v = credentials::verify(&stored, &pw);
        prop_assert_ne!(v, Verdict::Match { rehash_recommended: false });
        prop_assert_ne!(v, Verdict::Match { rehash_recommended: true });
    }

    #[test]
    fn password_verify_never_panics_on_hash_shaped_strings(
        kind in 0u8..4,
        body in prop::collection::vec(any::<u8>(), 0..96),
        iterations in 1u32..2000,
        tail in "[A-Za-z0-9+/=$,]{0,40}",
    ) {
        let stored = match kind {
            // ASP.NET V2 / V3 markers with a random (cheap) body.
            0 => { let mut b = vec![0u8]; b.extend(&body); base64_std(&b) }
            1 => {
                let mut b = vec![1u8];
                b.extend_from_slice(&(body.first().copied().unwrap_or(1) as u32 % 4).to_be_bytes());
                b.extend_from_slice(&iterations.to_be_bytes());
                b.extend_from_slice(&((body.len() as u32) % 40).to_be_bytes());
                b.extend(&body);
                base64_std(&b)
            }
            // argon2 PHC shapes with random parameters and tails (small costs only).
            2 => format!("$argon2id$v=19$m={},t=1,p=1${tail}", 8 + iterations % 64),
            _ => format!("$argon2i${tail}"),
        };
        let v = credentials::verify(&stored, ASPNET_PASSWORD);
        prop_assert!(!matches!(v, Verdict::Match { .. }) || stored == ASPNET_V2, "{} matched", stored);
    }

    #[test]
    fn password_verify_of_a_real_hash_matches_only_its_password(pw in any::<String>()) {
        let v = credentials::verify(ASPNET_V2, &pw);
        prop_assert_eq!(matches!(v, Verdict::Match { .. }), pw == ASPNET_PASSWORD);
    }

    #[test]
    fn hop_by_hop_removal_leaves_no_hop_by_hop_or_connection_named_field(
        fields in prop::collection::vec((header_name(), "[a-zA-Z0-9 ,_-]{0,24}"), 0..12),
        connection in prop::collection::vec(header_name(), 0..4),
    ) {
        let mut h = HeaderMap::new();
        for (name, value) in &fields {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        if !connection.is_empty() {
            h.append(http::header::CONNECTION, HeaderValue::from_str(&connection.join(", ")).unwrap());
        }
        headers::remove_hop_by_hop(&mut h, false);
        for name in h.keys() {
            prop_assert!(!gateway::protocol::headers::is_hop_by_hop(name), "{name} kept");
            prop_assert!(!connection.iter().any(|c| c.eq_ignore_ascii_case(name.as_str())), "{name} named by Connection kept");
        }
    }

    #[test]
    fn identity_stripping_removes_every_spelling(
        fields in prop::collection::vec((header_name(), "[a-z]{0,8}"), 0..12),
    ) {
        let ours = [HeaderName::from_static("x-auth-user"), HeaderName::from_static("x-auth-name")];
        let mut h = HeaderMap::new();
        for (name, value) in &fields {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        headers::strip_identity(&mut h, &ours);
        for name in h.keys() {
            let folded = name.as_str().replace('_', "-");
            prop_assert!(folded != "x-auth-user" && folded != "x-auth-name", "{name} kept");
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Header names, heavy on the ones that matter (hop-by-hop, identity in odd spellings).
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "x-auth-user",
            "X-Auth-User",
            "x_auth_user",
            "X_AUTH-NAME",
            "x-auth-name",
            "x-auth-username",
            "authorization",
            "host",
            "x-secret",
            "content-length",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z][a-zA-Z0-9_-]{0,12}",
    ]
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

//! Cost of `TokenVerifier::verify` for an HS256 token shaped like the benchmark harness's
//! (claims sub, name, iat, exp), plus the common refusals and the extra-claims path.
//!
//!     cargo bench --bench token

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::auth::bearer;
use gateway::auth::token::TokenVerifier;
use gateway::config::Config;
use jsonwebtoken::{encode, EncodingKey, Header};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn config(extra: &str) -> Config {
    Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n{extra}")).expect("config")
}

fn bench_verify(c: &mut Criterion) {
    let n = now();
    let claims =
        serde_json::json!({"sub": "user-42", "name": "Bench User", "iat": n, "exp": n + 86_400});
    let token = hs256(&claims, SECRET);
    let bad_sig = hs256(&claims, "another-secret-another-secret-another-secret-000");
    let expired = hs256(
        &serde_json::json!({"sub": "user-42", "name": "Bench User", "iat": n - 7200, "exp": n - 3600}),
        SECRET,
    );
    let alg_none = {
        let h = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let p = B64.encode(claims.to_string());
        format!("{h}.{p}.")
    };

    let cfg = config("");
    let core = TokenVerifier::new(&cfg.auth, false);
    let all = TokenVerifier::new(&cfg.auth, true);
    assert!(core.verify(&token).is_ok() && all.verify(&token).is_ok());
    assert!(
        core.verify(&bad_sig).is_err()
            && core.verify(&expired).is_err()
            && core.verify(&alg_none).is_err()
    );

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_hs256_valid", |b| {
        b.iter(|| core.verify(black_box(&token)))
    });
    // A token seen for the first time: full signature check and parsing (distinct tokens, signed outside the
    // timed part); "verify_hs256_valid" above is the repeat case a client's later requests hit.
    let mut i = 0u64;
    g.bench_function("verify_hs256_valid_first_time", |b| {
        b.iter_batched(
            || {
                i += 1;
                hs256(
                    &serde_json::json!({"sub": "user-42", "name": "Bench User", "iat": n, "exp": n + 86_400, "jti": i}),
                    SECRET,
                )
            },
            |t| core.verify(black_box(&t)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_hs256_valid_keep_extra_claims", |b| {
        b.iter(|| all.verify(black_box(&token)))
    });
    g.bench_function("verify_hs256_bad_signature", |b| {
        b.iter(|| core.verify(black_box(&bad_sig)))
    });
    g.bench_function("verify_hs256_expired", |b| {
        b.iter(|| core.verify(black_box(&expired)))
    });
    g.bench_function("verify_alg_none", |b| {
        b.iter(|| core.verify(black_box(&alg_none)))
    });

    // What the request path actually runs: header extraction + verify.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    g.bench_function("bearer_authenticate_valid", |b| {
        b.iter(|| bearer::authenticate(black_box(&headers), &core, 8192))
    });
    g.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);

//! Cost of `verify` per stored-hash format, and of the unknown-user dummy path.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::credentials::{dummy_hash, dummy_verify, hash_password, verify, HashParams};

const PASSWORD: &str = "my password";
// ASP.NET Core Identity V3 as written by .NET 7+: HMAC-SHA512, 100,000 iterations.
const NET7_V3: &str =
    "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==";
// ASP.NET Core Identity V3 as written by .NET Core <= 6: HMAC-SHA256, 10,000 iterations.
const NET6_V3: &str =
    "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==";
// ASP.NET Identity V2: HMAC-SHA1, 1,000 iterations.
const V2: &str = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==";

fn bench_verify(c: &mut Criterion) {
    let argon2id_default = match hash_password(PASSWORD, &HashParams::default()) {
        Ok(hash) => hash,
        Err(error) => panic!("hashing with default params failed: {error}"),
    };
    // Build the dummy outside the timed loop; its first call pays for one hash.
    black_box(dummy_hash());

    let mut group = c.benchmark_group("verify");
    // Each iteration of the slow cases takes tens of milliseconds; criterion's default of
    // 100 samples would stretch a run to minutes on a shared 2-core machine.
    group.sample_size(10);
    group.bench_function("aspnet_v3_net7_sha512_100k", |b| {
        b.iter(|| verify(black_box(NET7_V3), black_box(PASSWORD)));
    });
    group.bench_function("aspnet_v3_net6_sha256_10k", |b| {
        b.iter(|| verify(black_box(NET6_V3), black_box(PASSWORD)));
    });
    group.bench_function("aspnet_v2_sha1_1k", |b| {
        b.iter(|| verify(black_box(V2), black_box(PASSWORD)));
    });
    group.bench_function("argon2id_default_params", |b| {
        b.iter(|| verify(black_box(&argon2id_default), black_box(PASSWORD)));
    });
    group.bench_function("dummy_verify", |b| {
        b.iter(|| dummy_verify(black_box(PASSWORD)));
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);

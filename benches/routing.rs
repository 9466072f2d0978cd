//! Route matching cost with 1, 100 and 10,000 routes: `Router::route` on configs built by `Config::from_toml`.
//! The router probes one hash table per path segment, so every size should cost the same.
//!
//!     cargo bench --bench routing
//!
//! Cases, identical work at every size (same path depth, same number of probes):
//! - `hit`:  `/svc{n-1}/users/42` matches the last-declared route `/svc{n-1}` (3 probes);
//! - `miss`: `/nothing/here/at/all` matches nothing (5 probes, then NotFound);
//! - `normalise+hit`: the request path goes through `protocol::path::normalise` first, as in the server.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gateway::config::Config;
use gateway::protocol::path;
use gateway::routing::{Routed, Router};

fn config(n: usize) -> Config {
    let mut text = String::from("[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[routes]]\nname = \"svc{i}\"\nprefix = \"/svc{i}\"\nupstream = \"http://127.0.0.1:{}\"\n",
            9000 + (i % 1000)
        ));
    }
    Config::from_toml(&text).expect("config")
}

fn bench_route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for n in [1usize, 100, 10_000] {
        let cfg = config(n);
        let router = Router::new(cfg.routes, Some("/api/Auth"), false);
        let hit = format!("/svc{}/users/42", n - 1);
        let miss = "/nothing/here/at/all";
        match router.route(Some("127.0.0.1:8080"), &hit) {
            Routed::Upstream { index, .. } => assert_eq!(index, n - 1),
            other => panic!("{n} routes: {hit} -> {other:?}"),
        }
        assert!(matches!(router.route(None, miss), Routed::NotFound));
        g.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, p| {
            b.iter(|| router.route(black_box(Some("127.0.0.1:8080")), black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, p| {
            b.iter(|| router.route(black_box(Some("127.0.0.1:8080")), black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("normalise+hit", n), &hit, |b, p| {
            b.iter(|| {
                let norm = path::normalise(black_box(p)).expect("path");
                match router.route(Some("127.0.0.1:8080"), &norm) {
                    Routed::Upstream { upstream_path, .. } => upstream_path.len(),
                    _ => 0,
                }
            })
        });
    }
    g.finish();
}

fn bench_normalise(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalise");
    for (name, p) in [
        ("plain", "/api/users/42/orders"),
        ("dot_segments", "/api/./users/../users/42//orders"),
        ("escapes", "/api/%75sers/42/%7Eorders;jsessionid=1"),
    ] {
        g.bench_function(name, |b| b.iter(|| path::normalise(black_box(p))));
    }
    g.finish();
}

criterion_group!(benches, bench_route, bench_normalise);
criterion_main!(benches);

//! Header rewriting cost: the `gateway::forward::headers` functions the proxied path runs per request,
//! on a wrk-like request (4 headers) and a browser-like one (14 headers, cookies, `Connection`).
//!
//!     cargo bench --bench headers

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gateway::forward::headers::{self, Hop};
use http::{HeaderMap, HeaderName, HeaderValue};

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const TOKEN: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IkJlbmNoIFVzZXIiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDA4NjQwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2ln";

fn wrk_like() -> HeaderMap {
    map(&[("host", "127.0.0.1:18090"), ("authorization", TOKEN)])
}

fn browser_like() -> HeaderMap {
    map(&[
        ("host", "app.example.com"),
        ("connection", "keep-alive"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "es-AR,es;q=0.9,en;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        ("authorization", TOKEN),
        ("origin", "https://app.example.com"),
        ("referer", "https://app.example.com/dashboard"),
        ("cookie", "session=abc123; theme=dark"),
        ("x-requested-with", "XMLHttpRequest"),
        ("x-forwarded-for", "6.6.6.6"),
        ("sec-fetch-mode", "cors"),
        ("x-auth-user", "mallory"),
    ])
}

fn bench_headers(c: &mut Criterion) {
    let identity = [
        HeaderName::from_static("x-auth-user"),
        HeaderName::from_static("x-auth-name"),
    ];
    let host = HeaderValue::from_static("127.0.0.1:18090");
    let hop = Hop {
        peer: IpAddr::from([127, 0, 0, 1]),
        trusted: false,
        tls: false,
        host: Some(&host),
        via: "1.1",
    };
    let mut g = c.benchmark_group("headers");
    for (name, make) in [
        ("wrk", wrk_like as fn() -> HeaderMap),
        ("browser", browser_like),
    ] {
        let input = make();
        // `clone` alone, to subtract from the per-function figures below (they need a fresh map each time).
        g.bench_function(format!("{name}/clone_only"), |b| {
            b.iter_batched(|| input.clone(), black_box, BatchSize::SmallInput)
        });
        g.bench_function(format!("{name}/is_upgrade"), |b| {
            b.iter(|| headers::is_upgrade(black_box(&input)))
        });
        g.bench_function(format!("{name}/remove_hop_by_hop"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut h| {
                    headers::remove_hop_by_hop(&mut h, false);
                    h
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("{name}/strip_identity"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut h| {
                    headers::strip_identity(&mut h, &identity);
                    h
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("{name}/set_forwarded"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut h| {
                    headers::set_forwarded(&mut h, &hop);
                    h
                },
                BatchSize::SmallInput,
            )
        });
        // Everything `forward::forward` does to the request headers, in its order.
        g.bench_function(format!("{name}/all_request_rewrites"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut h| {
                    let up = headers::is_upgrade(&h);
                    headers::remove_hop_by_hop(&mut h, up);
                    headers::strip_identity(&mut h, &identity);
                    headers::set_forwarded(&mut h, &hop);
                    headers::set_host(&mut h, host.clone());
                    h.insert(identity[0].clone(), HeaderValue::from_static("user-42"));
                    h.insert(identity[1].clone(), HeaderValue::from_static("Bench User"));
                    h
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The response side: hop-by-hop removal on a typical upstream response head.
    let response = map(&[
        ("server", "nginx/1.22.1"),
        ("date", "Tue, 25 Nov 2025 23:35:00 GMT"),
        ("content-type", "application/json"),
        ("content-length", "11"),
        ("connection", "keep-alive"),
    ]);
    g.bench_function("response/remove_hop_by_hop", |b| {
        b.iter_batched(
            || response.clone(),
            |mut h| {
                headers::remove_hop_by_hop(&mut h, false);
                h
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_headers);
criterion_main!(benches);

//! Login timing: the latency of unknown-user, inactive-user and wrong-password logins must be the same
//! (medians within 5%), so response time does not reveal which users exist. Runs the real gateway in-process
//! on 127.0.0.1 with a local always-pass siteverify stand-in and an argon2id users file.
//!
//!     cargo bench --bench login_timing
//!
//! Read the three `median` figures criterion prints (and `target/criterion/login_*/report`).

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::credentials::{hash_password, HashParams};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A siteverify stand-in that accepts every token (the gateway's own single-use cache still applies).
async fn fake_siteverify() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(bytes::Bytes::from_static(
                        br#"{"success":true,"hostname":"localhost","action":"login"}"#,
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_password("the-right-password", &HashParams::default()).unwrap();
    let users = format!(
        "[[users]]\nname = \"active\"\npassword_hash = \"{hash}\"\n[[users]]\nname = \"inactive\"\npassword_hash = \"{hash}\"\nactive = false\n"
    );
    let users_path = dir.path().join("users.toml");
    std::fs::write(&users_path, users).unwrap();
    let (gw, client) = rt.block_on(async {
        let sv = fake_siteverify().await;
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[metrics]\nenabled = false\n[log]\naccess = false\n\
             [auth]\nsecret = \"bench-secret-NOT-REAL-0123456789abcdef0123\"\n\
             [login.turnstile]\nsecret = \"bench\"\nsiteverify_url = \"http://{sv}/siteverify\"\n\
             [login.throttle]\nip_max_failures = 0\nuser_max_failures = 0\n[users]\nfile = {:?}\n",
            users_path.display().to_string()
        );
        let cfg = gateway::config::Config::from_toml(&toml).unwrap();
        let gw = gateway::spawn(cfg).await.unwrap();
        (gw, reqwest::Client::new())
    });
    let url = format!("http://{}/api/Auth", gw.addr);
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("login");
    group
        .sample_size(60)
        .measurement_time(Duration::from_secs(8));
    for (name, user, password, want) in [
        ("unknown_user", "nobody", "the-right-password", 401),
        ("inactive_user", "inactive", "the-right-password", 401),
        ("wrong_password", "active", "a-wrong-password", 401),
        ("success", "active", "the-right-password", 200),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({"UserName": user, "Password": password, "CaptchaToken": format!("tok-{n}")});
                let req = client.post(&url).json(&body).send();
                async move {
                    let res = req.await.unwrap();
                    assert_eq!(res.status().as_u16(), want);
                }
            })
        });
    }
    group.finish();
    rt.block_on(gw.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);

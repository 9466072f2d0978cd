//! Login timing: the latency of unknown-user, inactive-user and wrong-password logins must be the same
//! (medians within 5%) whatever hash the user has, so response time reveals neither which users exist nor
//! what their hash is. Runs the real gateway in-process on 127.0.0.1 with a local always-pass siteverify
//! stand-in and a users file that mixes every kind: ASP.NET V2, V3-SHA256 (10k), V3-SHA512 (100k), argon2id
//! at the default parameters and a stronger argon2id.
//!
//!     cargo bench --bench login_timing
//!
//! Read the `median` figures criterion prints (and `target/criterion/login_*/report`).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use gateway::credentials::{hash_password, HashParams};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The password of every bench user (the ASP.NET vectors' password).
const PASSWORD: &str = "my password";

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
    // ASP.NET Identity known-answer vectors for "my password" (../shared/specs.md), and argon2id hashes of it.
    let strong = HashParams {
        m_cost_kib: 65_536,
        t_cost: 3,
        p_cost: 1,
    };
    let kinds = [
        (
            "v2",
            "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==".to_string(),
        ),
        (
            "v3sha256",
            "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw=="
                .to_string(),
        ),
        (
            "v3sha512",
            "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ=="
                .to_string(),
        ),
        (
            "argon2",
            hash_password(PASSWORD, &HashParams::default()).unwrap(),
        ),
        ("argon2strong", hash_password(PASSWORD, &strong).unwrap()),
    ];
    let mut users = String::new();
    for (kind, hash) in &kinds {
        users += &format!("[[users]]\nname = \"{kind}\"\npassword_hash = \"{hash}\"\n");
        users += &format!(
            "[[users]]\nname = \"{kind}_off\"\npassword_hash = \"{hash}\"\nactive = false\n"
        );
    }
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
    let login = |user: &str, password: &str| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({"UserName": user, "Password": password, "CaptchaToken": format!("tok-{n}")});
        client.post(&url).json(&body).send()
    };
    // A gateway that has just started has not yet seen its slowest hash; an attacker would measure a running
    // one. One wrong password per kind shows it every kind, as real traffic would.
    rt.block_on(async {
        for _ in 0..3 {
            for (kind, _) in &kinds {
                assert_eq!(login(kind, "warm-up").await.unwrap().status(), 401);
            }
        }
    });
    let mut cases = vec![(
        "unknown_user".to_string(),
        "nobody".to_string(),
        PASSWORD,
        401,
    )];
    for (kind, _) in &kinds {
        cases.push((
            format!("wrong_password_{kind}"),
            kind.to_string(),
            "a-wrong-password",
            401,
        ));
        cases.push((
            format!("inactive_{kind}"),
            format!("{kind}_off"),
            PASSWORD,
            401,
        ));
    }
    cases.push(("success_argon2".into(), "argon2".into(), PASSWORD, 200));
    let mut group = c.benchmark_group("login");
    // Flat sampling: every sample runs the same number of logins, so 60 samples need ~60 logins, not ~1,800.
    group
        .sample_size(60)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8));
    for (name, user, password, want) in &cases {
        group.bench_function(name.as_str(), |b| {
            b.to_async(&rt).iter(|| {
                let req = login(user, password);
                async move {
                    let res = req.await.unwrap();
                    assert_eq!(res.status().as_u16(), *want);
                }
            })
        });
    }
    group.finish();
    rt.block_on(gw.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);

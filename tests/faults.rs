//! Faults (issue 4): broken upstreams fail only the requests routed to them, a broken or slow Turnstile
//! fails logins closed within the timeout, and neither disturbs healthy traffic.
//!
//! Panics in request tasks: there is no route that panics on purpose, so the "panic never kills the
//! process" property is not exercised here (see the report); tokio isolates a panicking connection task and
//! `telemetry::install_panic_hook` only logs it.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::fixtures::{ASPNET_PASSWORD, ASPNET_V2};
use support::turnstile::{FakeTurnstile, Mode};
use support::upstream::Upstream;
use support::{client, route, tokens, user, TestGateway, UsersFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

fn alice() -> String {
    tokens::valid("alice")
}

/// What a scripted upstream does after its reply.
#[derive(Clone, Copy)]
enum Then {
    Close,
    Hang,
    /// Answer every further request on the connection with `200 good`.
    ServeGood,
}

/// An upstream that reads a request head and answers `reply` byte for byte, then does `then`.
struct Scripted {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(reply: &'static [u8], then: Then) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    if read_head(&mut s).await.is_none() {
                        return;
                    }
                    let _ = s.write_all(reply).await;
                    match then {
                        Then::Close => {
                            let _ = s.shutdown().await;
                        }
                        Then::Hang => {
                            let mut buf = [0u8; 1024];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        Then::ServeGood => {
                            while read_head(&mut s).await.is_some() {
                                let _ = s
                                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood")
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Scripted { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read_head(s: &mut TcpStream) -> Option<()> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => got.push(b[0]),
            _ => return None,
        }
    }
    Some(())
}

/// An upstream that accepts and closes at once, before reading anything.
async fn slamming() -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    Scripted { addr, task }
}

/// Outcome of one request: status (0 = transport error) and whether the whole body arrived.
async fn fetch(gw: &TestGateway, path: &str) -> (u16, bool, Duration) {
    let start = Instant::now();
    let res = client()
        .get(gw.url(path))
        .bearer_auth(alice())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match res {
        Err(_) => (0, false, start.elapsed()),
        Ok(r) => {
            let status = r.status().as_u16();
            let body_ok = r.bytes().await.is_ok();
            (status, body_ok, start.elapsed())
        }
    }
}

/// Nine kinds of broken upstream, hit concurrently with a healthy route: each broken route answers its own
/// clients 502/504 (or breaks the stream it already started), within its timeout; every healthy request
/// succeeds, quickly.
#[tokio::test]
async fn broken_upstreams_fail_only_their_own_clients_while_a_healthy_route_serves() {
    let healthy = Upstream::echo().await;
    let refusing = Upstream::refusing().await;
    let hanging = Upstream::hanging().await;
    let garbage = Upstream::garbage().await;
    let reset = Upstream::reset_mid_body().await;
    let slam = slamming().await;
    let half_head = Scripted::start(b"HTTP/1.1 200 OK\r\ncontent-len", Then::Close).await;
    // Reads the whole request, then hangs up without a byte of response.
    let hang_up = Scripted::start(b"", Then::Close).await;
    let unsolicited_101 = Scripted::start(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        Then::Hang,
    )
    .await;
    let huge_head: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
            "a".repeat(1024 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let huge = Scripted::start(huge_head, Then::Close).await;
    let routes = [
        route("/ok", &healthy.url(), ""),
        route("/refuse", &refusing, ""),
        route("/hang", &hanging.url(), "timeout = \"1s\""),
        route("/garbage", &garbage.url(), ""),
        route("/reset", &reset.url(), ""),
        route("/slam", &slam.url(), ""),
        route("/half-head", &half_head.url(), ""),
        route("/hang-up", &hang_up.url(), ""),
        route("/unsolicited-101", &unsolicited_101.url(), ""),
        route("/huge-head", &huge.url(), ""),
    ]
    .concat();
    let gw = std::sync::Arc::new(TestGateway::start(&[&routes]).await);

    let broken: [(&str, &[u16]); 9] = [
        ("/refuse", &[502]),
        ("/hang", &[504]),
        ("/garbage", &[502]),
        ("/reset", &[200]),
        ("/slam", &[502]),
        ("/half-head", &[502]),
        ("/hang-up", &[502]),
        ("/unsolicited-101", &[502]),
        ("/huge-head", &[502]),
    ];
    let mut tasks = Vec::new();
    for round in 0..5 {
        for (path, _) in broken {
            let gw = gw.clone();
            tasks.push(tokio::spawn(async move {
                (
                    path.to_string(),
                    fetch(&gw, &format!("{path}/{round}")).await,
                )
            }));
        }
    }
    let mut healthy_tasks = Vec::new();
    for i in 0..60 {
        let gw = gw.clone();
        healthy_tasks.push(tokio::spawn(async move {
            fetch(&gw, &format!("/ok/{i}")).await
        }));
    }
    let mut slowest_healthy = Duration::ZERO;
    for t in healthy_tasks {
        let (status, body_ok, took) = t.await.unwrap();
        assert_eq!((status, body_ok), (200, true), "a healthy request failed");
        slowest_healthy = slowest_healthy.max(took);
    }
    let mut summary = std::collections::BTreeMap::<String, Vec<(u16, bool)>>::new();
    for t in tasks {
        let (path, (status, body_ok, took)) = t.await.unwrap();
        let want = broken.iter().find(|(p, _)| *p == path).unwrap().1;
        assert!(want.contains(&status), "{path}: status {status}");
        if path == "/reset" {
            assert!(
                !body_ok,
                "a body cut by the upstream must not look complete to the client"
            );
        }
        let limit = if path == "/hang" { 3 } else { 2 };
        assert!(took < Duration::from_secs(limit), "{path} took {took:?}");
        summary.entry(path).or_default().push((status, body_ok));
    }
    println!("slowest of 60 healthy requests: {slowest_healthy:?}");
    for (p, v) in &summary {
        println!("{p:<18} {v:?}");
    }
    assert!(
        slowest_healthy < Duration::from_secs(3),
        "{slowest_healthy:?}"
    );
    assert_eq!(healthy.count(), 60);
}

/// An upstream that answers one request with two responses: the extra one must never be handed to the
/// next client whose request reuses the pooled connection (response queue poisoning).
#[tokio::test]
async fn an_extra_upstream_response_never_reaches_the_next_client() {
    let poison = Scripted::start(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil",
        Then::ServeGood,
    )
    .await;
    let gw = TestGateway::start(&[&route("/", &poison.url(), "")]).await;
    let mut bodies = Vec::new();
    for i in 0..10 {
        let res = client()
            .get(gw.url(&format!("/p/{i}")))
            .bearer_auth(alice())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        bodies.push((status, body));
    }
    println!("{bodies:?}");
    assert!(
        bodies.iter().all(|(_, b)| b != "evil"),
        "a smuggled upstream response reached another request: {bodies:?}"
    );
}

/// An upstream that sends its head and a little body, then stalls forever: the client's response must
/// end (aborted) within a bound, not hold the client and upstream connections open indefinitely.
#[tokio::test]
async fn upstream_body_stall_is_bounded() {
    let stall = Scripted::start(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789",
        Then::Hang,
    )
    .await;
    let gw = TestGateway::start(&[
        &route("/", &stall.url(), "timeout = \"1s\""),
        "[server]\nidle_timeout = \"1s\"\n",
    ])
    .await;
    let res = client()
        .get(gw.url("/stall"))
        .bearer_auth(alice())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let start = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(6), res.bytes()).await;
    assert!(
        body.is_ok(),
        "the response body was still open after {:?} (route timeout 1s, idle_timeout 1s)",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------------------
// Turnstile faults

/// The status of a login as jdoe with `captcha` (0 on a transport error), and how long it took.
async fn login_status(gw: &TestGateway, captcha: &str) -> (u16, Duration) {
    let start = Instant::now();
    let status = support::http::login_status(gw, "jdoe", ASPNET_PASSWORD, captcha).await;
    (status, start.elapsed())
}

/// Siteverify slow, erroring, answering garbage, hanging up, or gone: every login fails closed (401) within
/// the 500 ms timeout (plus slack), while proxied traffic on the same gateway is unaffected.
#[tokio::test]
async fn turnstile_down_or_slow_fails_logins_closed_and_proxied_traffic_flows() {
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    // login_toml: timeout 500ms.
    let gw = std::sync::Arc::new(
        TestGateway::start(&[
            &users.login_toml(&fake.url()),
            "[login.turnstile]\nmax_concurrent = 4\nqueue_timeout = \"1s\"\n",
            &route("/", &up.url(), ""),
        ])
        .await,
    );
    // Control: a working siteverify logs in.
    fake.add_valid_token("0.fault-control");
    assert_eq!(login_status(&gw, "0.fault-control").await.0, 200);

    let modes = [
        ("slow 3 s", Mode::Slow(Duration::from_secs(3))),
        ("HTTP 500", Mode::Status(500)),
        ("HTTP 302 to itself", Mode::Status(302)),
        ("garbage body", Mode::Garbage),
        ("hang-up", Mode::HangUpOnce),
        ("internal-error", Mode::InternalErrorOnce),
    ];
    for (i, (name, mode)) in modes.into_iter().enumerate() {
        if matches!(mode, Mode::HangUpOnce | Mode::InternalErrorOnce) {
            // Deterministic first: one login alone meets the fault. The gateway retries a hang-up or an
            // `internal-error` exactly once with the same idempotency key, and the fault left the token
            // unspent, so the retry gets the real verdict: 200 after exactly two siteverify calls. (In the
            // flood below, which login meets the fault and which are refused by max_concurrent is a race.)
            fake.set_mode(mode.clone());
            let calls = fake.calls();
            let token = format!("0.fault-{i}-alone");
            fake.add_valid_token(token.clone());
            let (s, took) = login_status(&gw, &token).await;
            assert_eq!(s, 200, "{name}: the retry carries the real verdict");
            assert_eq!(
                fake.calls(),
                calls + 2,
                "{name}: one failed call, one retry"
            );
            assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
        }
        fake.set_mode(mode);
        // Ten logins at once (beyond max_concurrent = 4: the rest wait up to queue_timeout, then 503) and
        // proxied requests meanwhile.
        let mut logins = Vec::new();
        for j in 0..10 {
            let gw = gw.clone();
            let token = format!("0.fault-{i}-{j}");
            fake.add_valid_token(token.clone());
            logins.push(tokio::spawn(async move { login_status(&gw, &token).await }));
        }
        let mut proxied = Vec::new();
        for _ in 0..20 {
            let gw = gw.clone();
            proxied.push(tokio::spawn(async move {
                let start = Instant::now();
                let s = client()
                    .get(gw.url("/orders"))
                    .bearer_auth(alice())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                (s, start.elapsed())
            }));
        }
        for p in proxied {
            let (s, took) = p.await.unwrap();
            assert_eq!(s, 200, "{name}: proxied request");
            assert!(
                took < Duration::from_secs(2),
                "{name}: proxied took {took:?}"
            );
        }
        let mut got = Vec::new();
        for l in logins {
            let (s, took) = l.await.unwrap();
            got.push(s);
            assert!(
                took < Duration::from_millis(3000),
                "{name}: login took {took:?}"
            );
        }
        println!("siteverify {name}: logins {got:?}");
        // HangUpOnce / InternalErrorOnce fail one call; the others may pass afterwards (a retry or the
        // restored mode), which is fine: what matters is that no failure turned into a success.
        // A login that waited too long for a siteverify slot is 503, one beyond the per-address cap of pending
        // siteverify calls 429 (overload is never a 401).
        match name {
            "hang-up" | "internal-error" => assert!(
                got.iter().all(|s| matches!(s, 401 | 200 | 503 | 429)),
                "{name}: {got:?}"
            ),
            _ => assert!(
                got.iter().all(|s| matches!(s, 401 | 503 | 429)),
                "{name}: {got:?}"
            ),
        }
        fake.set_mode(Mode::Cloudflare);
    }

    // Siteverify gone entirely.
    drop(fake);
    let (s, took) = login_status(&gw, "0.anything").await;
    assert_eq!(s, 401);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let res = client()
        .get(gw.url("/orders"))
        .bearer_auth(alice())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_upstream_that_never_completes_the_handshake_is_504_after_the_connect_timeout() {
    // A listener whose accept queue is full and never drained: Linux drops further SYNs, so a connect to it
    // neither succeeds nor is refused, like a backend behind a firewall that drops packets.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let extra = "connect_timeout = \"300ms\"\ntimeout = \"10s\"";
    let gw = TestGateway::start(&[&route("/", &format!("http://{addr}"), extra)]).await;
    let started = Instant::now();
    let res = client()
        .get(gw.url("/x"))
        .bearer_auth(alice())
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 504);
    // Told apart from the 10 s response timeout by what the gateway counted, and by when it answered.
    let m = support::metrics::scrape(&gw).await;
    assert_eq!(
        support::metrics::sample(
            &m,
            r#"gateway_upstream_errors_total{kind="connect_timeout"}"#
        ),
        1.0,
        "{m}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop((listener, fillers));
    gw.stop().await;
}

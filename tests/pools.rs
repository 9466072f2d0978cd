//! Backend pools (issue 17): several targets per route, balancing, health checks, retries, affinity.
//! Three (or two) real upstream servers on loopback that answer with their own name and can be killed
//! (listener and every open connection) and started again on the same port.

mod support;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::metrics::{sample, scrape};
use support::{client, tokens, wait, TestGateway};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// How a test backend behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers its name (after `/slow/<ms>` waits); `/health` answers 200.
    Normal,
    /// Waits 3 s before answering anything but `/health`.
    Slow,
    /// Reads the request head (and whatever body came with it), then closes without answering.
    Reset,
}

/// A named backend that can be killed and revived on the same port.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    mode: Mode,
    /// Requests answered or swallowed, `/health` not counted.
    count: Arc<AtomicUsize>,
    /// Request bodies fully read, by bytes (for the POST test).
    bodies: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Backend {
    async fn start(name: &'static str, mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let b = Backend {
            name,
            addr,
            mode,
            count: Arc::default(),
            bodies: Arc::default(),
            tasks: Arc::default(),
        };
        b.serve(listener);
        b
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn serve(&self, listener: TcpListener) {
        let (name, mode, count, bodies, tasks) = (
            self.name,
            self.mode,
            self.count.clone(),
            self.bodies.clone(),
            self.tasks.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (count, bodies) = (count.clone(), bodies.clone());
                let conn = tokio::spawn(async move {
                    if mode == Mode::Reset {
                        reset_after_head(tcp, &count).await;
                        return;
                    }
                    let svc = service_fn(move |req| {
                        answer(req, name, mode, count.clone(), bodies.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Stops listening and drops every open connection.
    fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Listens again on the same port.
    async fn revive(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.serve(listener);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(
    req: http::Request<Incoming>,
    name: &'static str,
    mode: Mode,
    count: Arc<AtomicUsize>,
    bodies: Arc<AtomicUsize>,
) -> Result<http::Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        return Ok(http::Response::new(
            Full::new(Bytes::from_static(b"ok")).boxed(),
        ));
    }
    count.fetch_add(1, Ordering::SeqCst);
    if mode == Mode::Slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let user = req
        .headers()
        .get("x-auth-user")
        .map(|v| v.to_str().unwrap_or("").to_string());
    if let Ok(body) = req.into_body().collect().await {
        bodies.fetch_add(body.to_bytes().len(), Ordering::SeqCst);
    }
    let _ = user;
    let mut res = http::Response::new(Full::new(Bytes::from(name)).boxed());
    res.headers_mut()
        .insert("x-backend", http::HeaderValue::from_static(name));
    Ok(res)
}

/// Reads until the end of the request head and a little more, then closes: a reset before the head.
async fn reset_after_head(mut tcp: tokio::net::TcpStream, count: &AtomicUsize) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    // Some body bytes may follow; take what is there, then hang up.
    let _ = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await;
}

/// A pool route at `/` over `targets` (TOML array items) with extra keys and tables.
fn pool_route(targets: &[String], extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"farm\"\nprefix = \"/\"\npublic = true\nupstreams = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

fn url_of(b: &Backend) -> String {
    format!("\"{}\"", b.url())
}

/// GETs `path` and returns (status, answering backend or "").
async fn get(gw: &TestGateway, path: &str) -> (u16, String) {
    let res = client().get(gw.url(path)).send().await.expect("an answer");
    let status = res.status().as_u16();
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, backend)
}

/// Retries of route `farm`, all reasons.
fn retries(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_upstream_retries_total{route=\"farm\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn target_series(metric: &str, route: &str, target: &str) -> String {
    format!("{metric}{{route=\"{route}\",target=\"{target}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weighted_round_robin_spreads_requests_by_weight() {
    let (a, b, c) = (
        Backend::start("a", Mode::Normal).await,
        Backend::start("b", Mode::Normal).await,
        Backend::start("c", Mode::Normal).await,
    );
    let targets = [
        format!("{{ url = \"{}\", weight = 3 }}", a.url()),
        url_of(&b),
        format!("{{ url = \"{}\", weight = 2 }}", c.url()),
    ];
    let gw = TestGateway::start(&[&pool_route(&targets, "")]).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..60 {
        let (status, backend) = get(&gw, "/").await;
        assert_eq!(status, 200);
        *seen.entry(backend).or_default() += 1;
    }
    // Smooth weighted round-robin is exact over any multiple of the weights' sum (6).
    assert_eq!((seen["a"], seen["b"], seen["c"]), (30, 10, 20), "{seen:?}");
    assert_eq!((a.count(), b.count(), c.count()), (30, 10, 20));
    let m = scrape(&gw).await;
    assert_eq!(
        sample(
            &m,
            &target_series("gateway_upstream_target_requests_total", "farm", &a.url())
        ),
        30.0
    );
    assert_eq!(
        sample(
            &m,
            &target_series("gateway_upstream_target_up", "farm", &b.url())
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_target_is_ejected_after_one_failed_attempt_and_readmitted_by_its_health_check() {
    let (a, b, c) = (
        Backend::start("a", Mode::Normal).await,
        Backend::start("b", Mode::Normal).await,
        Backend::start("c", Mode::Normal).await,
    );
    // A slow active check (3 failures at 1 s) so that what takes b out first is the passive ejection.
    let extra = "[routes.health]\npath = \"/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 3\nhealthy_threshold = 1\n[routes.passive]\neject_time = \"30s\"\n";
    let gw = TestGateway::start(&[&pool_route(&[url_of(&a), url_of(&b), url_of(&c)], extra)]).await;
    for _ in 0..6 {
        assert_eq!(get(&gw, "/").await.0, 200);
    }
    assert_eq!(b.count(), 2);
    let series = target_series("gateway_upstream_target_requests_total", "farm", &b.url());
    let before = sample(&scrape(&gw).await, &series);

    b.kill();
    for i in 0..30 {
        let (status, backend) = get(&gw, "/").await;
        assert_eq!(status, 200, "request {i} after the kill");
        assert_ne!(backend, "b");
    }
    let m = scrape(&gw).await;
    assert_eq!(
        sample(&m, &series) - before,
        1.0,
        "b got more than the one attempt that found it dead"
    );
    assert_eq!(
        sample(
            &m,
            &target_series("gateway_upstream_target_up", "farm", &b.url())
        ),
        0.0
    );
    assert!(retries(&m) >= 1.0);

    // Back on the same port: the next passing health check (well before the 30 s ejection ends) re-admits it.
    b.revive().await;
    let back = wait::eventually(
        Duration::from_secs(8),
        Duration::from_millis(100),
        || async { get(&gw, "/").await.1 == "b" },
    )
    .await;
    assert!(back, "b was not re-admitted after its health check passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn target_killed_during_a_load_of_gets_fails_no_request_without_a_response_head() {
    let (a, b, c) = (
        Backend::start("a", Mode::Normal).await,
        Backend::start("b", Mode::Normal).await,
        Backend::start("c", Mode::Normal).await,
    );
    let extra = "[routes.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n";
    let gw = Arc::new(
        TestGateway::start(&[&pool_route(&[url_of(&a), url_of(&b), url_of(&c)], extra)]).await,
    );
    let no_head = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (gw, no_head, ok, stop) = (gw.clone(), no_head.clone(), ok.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            // Bounded in count (100 per worker) and time (20 s).
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                match client().get(gw.url("/slow/20")).send().await {
                    Err(_) => {
                        no_head.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(res) => {
                        // A head arrived: whatever happens to the body is outside the promise.
                        assert_eq!(res.status(), 200, "a GET failed with a head");
                        let _ = res.bytes().await;
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // Kill b while requests are in flight on it.
    let in_flight = wait::eventually(
        Duration::from_secs(10),
        Duration::from_millis(5),
        || async { b.count() >= 20 },
    )
    .await;
    assert!(in_flight, "b never got traffic");
    b.kill();
    let b_at_kill = b.count();
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        no_head.load(Ordering::SeqCst),
        0,
        "GETs failed without a response head"
    );
    assert!(ok.load(Ordering::SeqCst) >= 200, "the load did not run");
    assert_eq!(b.count(), b_at_kill);
    assert!(retries(&scrape(&gw).await) >= 1.0, "nothing was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_with_no_healthy_target_answers_503_at_once() {
    // Three servers that accept and never answer: only the health checks can tell they are dead.
    let hanging = [
        support::upstream::Upstream::hanging().await,
        support::upstream::Upstream::hanging().await,
        support::upstream::Upstream::hanging().await,
    ];
    let targets: Vec<String> = hanging.iter().map(|u| format!("\"{}\"", u.url())).collect();
    let extra = "connect_timeout = \"10s\"\ntimeout = \"10s\"\n[routes.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\nunhealthy_threshold = 1\n";
    let gw = TestGateway::start(&[
        "[metrics]\nreadyz_requires_upstreams = true\n",
        &pool_route(&targets, extra),
    ])
    .await;
    let ops = gw.running.metrics_addr.unwrap();
    let down = wait::eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let res = client()
                .get(format!("http://{ops}/readyz"))
                .send()
                .await
                .unwrap();
            res.status() == 503
        },
    )
    .await;
    assert!(
        down,
        "/readyz never noticed that the route has no healthy target"
    );
    let started = Instant::now();
    let res = client().get(gw.url("/")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // Generous: the point is that it did not wait for the 10 s timeouts.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_affinity_keeps_each_user_on_one_target_and_moves_only_a_removed_targets_users() {
    let (a, b, c) = (
        Backend::start("a", Mode::Normal).await,
        Backend::start("b", Mode::Normal).await,
        Backend::start("c", Mode::Normal).await,
    );
    let route = |targets: &[String]| {
        format!(
            "[[routes]]\nname = \"farm\"\nprefix = \"/\"\nbalance = \"user\"\nupstreams = [{}]\n",
            targets.join(", ")
        )
    };
    let all = TestGateway::start(&[&route(&[url_of(&a), url_of(&b), url_of(&c)])]).await;
    let without_b = TestGateway::start(&[&route(&[url_of(&a), url_of(&c)])]).await;
    let users: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let name = format!("user{i:04}");
            let token = tokens::bearer(&tokens::valid(&name));
            (name, token)
        })
        .collect();
    let http = client();
    let on = |gw: &TestGateway, token: &str| {
        let req = http.get(gw.url("/")).header("authorization", token).send();
        async move {
            let res = req.await.expect("an answer");
            assert_eq!(res.status(), 200);
            res.headers()["x-backend"].to_str().unwrap().to_string()
        }
    };
    let mut first: HashMap<&str, String> = HashMap::new();
    let mut spread: HashMap<String, usize> = HashMap::new();
    for (name, token) in &users {
        let backend = on(&all, token).await;
        *spread.entry(backend.clone()).or_default() += 1;
        first.insert(name, backend);
    }
    for n in spread.values() {
        assert!(*n > 200, "uneven spread {spread:?}");
    }
    // Again: every user on the same target.
    for (name, token) in users.iter().step_by(3) {
        assert_eq!(on(&all, token).await, first[name.as_str()], "{name} moved");
    }
    // Without b: b's users move, nobody else does.
    let mut moved = 0;
    for (name, token) in &users {
        let now = on(&without_b, token).await;
        if first[name.as_str()] == "b" {
            moved += 1;
            assert_ne!(now, "b");
        } else {
            assert_eq!(
                now,
                first[name.as_str()],
                "{name} moved although its target stayed"
            );
        }
    }
    assert_eq!(moved, spread["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_takes_requests_only_while_no_primary_is_healthy() {
    let (a, b, standby) = (
        Backend::start("a", Mode::Normal).await,
        Backend::start("b", Mode::Normal).await,
        Backend::start("standby", Mode::Normal).await,
    );
    let targets = [
        url_of(&a),
        url_of(&b),
        format!("{{ url = \"{}\", backup = true }}", standby.url()),
    ];
    let extra = "[routes.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n";
    let gw = TestGateway::start(&[&pool_route(&targets, extra)]).await;
    for _ in 0..20 {
        assert_ne!(get(&gw, "/").await.1, "standby");
    }
    assert_eq!(standby.count(), 0);
    a.kill();
    b.kill();
    for i in 0..10 {
        let (status, backend) = get(&gw, "/").await;
        assert_eq!((status, backend.as_str()), (200, "standby"), "request {i}");
    }
    // A primary back: the standby is left alone again.
    a.revive().await;
    let back = wait::eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { get(&gw, "/").await.1 == "a" },
    )
    .await;
    assert!(back);
    let standby_before = standby.count();
    for _ in 0..10 {
        assert_eq!(get(&gw, "/").await.1, "a");
    }
    assert_eq!(standby.count(), standby_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_post_is_never_retried_once_sent_but_a_get_is() {
    let reset = Backend::start("reset", Mode::Reset).await;
    let good = Backend::start("good", Mode::Normal).await;
    // The resetting server first (weight 50), and a 16-byte buffer so a longer body streams.
    let targets = [
        format!("{{ url = \"{}\", weight = 50 }}", reset.url()),
        url_of(&good),
    ];
    let extra = "request_buffer_bytes = 16\n[routes.passive]\neject_time = \"1ms\"\nmax_eject_time = \"1ms\"\n";
    let gw = TestGateway::start(&[&pool_route(&targets, extra)]).await;

    let chunks: Vec<Result<Bytes, Infallible>> =
        (0..8).map(|_| Ok(Bytes::from(vec![b'x'; 1024]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = client()
        .post(gw.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        reset.count(),
        1,
        "the POST reached the resetting server once"
    );
    assert_eq!(good.count(), 0, "the POST was sent again after it was sent");

    // Let the 1 ms ejection run out, so the resetting server is first again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, backend) = get(&gw, "/").await;
    assert_eq!((status, backend.as_str()), (200, "good"));
    assert_eq!(
        reset.count(),
        2,
        "the GET went to the resetting server first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_is_retried_when_the_connection_was_never_made() {
    let dead = support::upstream::Upstream::refusing().await;
    let good = Backend::start("good", Mode::Normal).await;
    let targets = [
        format!("{{ url = \"{dead}\", weight = 50 }}"),
        url_of(&good),
    ];
    let gw = TestGateway::start(&[&pool_route(&targets, "request_buffer_bytes = 16\n")]).await;
    let chunks: Vec<Result<Bytes, Infallible>> =
        (0..8).map(|_| Ok(Bytes::from(vec![b'y'; 1024]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = client()
        .post(gw.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-backend"], "good");
    assert_eq!(
        good.bodies.load(Ordering::SeqCst),
        8 * 1024,
        "the whole streamed body arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_requests_prefers_the_idle_target() {
    let slow = Backend::start("slow", Mode::Slow).await;
    let fast = Backend::start("fast", Mode::Normal).await;
    let gw = Arc::new(
        TestGateway::start(&[&pool_route(
            &[url_of(&slow), url_of(&fast)],
            "balance = \"least_requests\"\n",
        )])
        .await,
    );
    // Start requests in the background until one is held by the slow server (bounded: 10 tries).
    let mut held = Vec::new();
    for _ in 0..10 {
        let gw2 = gw.clone();
        held.push(tokio::spawn(async move { get(&gw2, "/").await }));
        let got = wait::eventually(
            Duration::from_millis(500),
            Duration::from_millis(10),
            || async { slow.count() > 0 },
        )
        .await;
        if got {
            break;
        }
    }
    assert_eq!(slow.count(), 1, "no request reached the slow server");
    for _ in 0..20 {
        assert_eq!(get(&gw, "/").await.1, "fast");
    }
    assert_eq!(slow.count(), 1, "a request went to the busy server");
    for h in held {
        assert_eq!(h.await.unwrap().0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_target_answers_503_after_the_queue_timeout() {
    let slow = Backend::start("slow", Mode::Slow).await;
    let gw = Arc::new(
        TestGateway::start(&[&pool_route(
            &[url_of(&slow)],
            "max_connections_per_target = 1\nqueue_timeout = \"200ms\"\n",
        )])
        .await,
    );
    let gw2 = gw.clone();
    let first = tokio::spawn(async move { get(&gw2, "/").await.0 });
    assert!(
        wait::eventually(
            Duration::from_secs(2),
            Duration::from_millis(10),
            || async { slow.count() == 1 }
        )
        .await
    );
    let res = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(slow.count(), 1);
}

//! Graceful shutdown: the listener closes at once, in-flight requests finish, and the drain timeout bounds
//! how long that may take.

mod support;

use std::time::{Duration, Instant};
use support::http::h2c_client;
use support::tokens;
use support::upstream::Upstream;
use support::wait::eventually;
use support::{closed_within, in_flight, read_head, route, TestGateway};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// True once connecting to `addr` is refused, polling for up to a second.
async fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    eventually(
        Duration::from_secs(1),
        Duration::from_millis(20),
        || async { TcpStream::connect(addr).await.is_err() },
    )
    .await
}

#[tokio::test]
async fn in_flight_request_completes_during_graceful_shutdown() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await; // drain_timeout = "5s"
    let request = in_flight(gw.url("/slow/1000"), &up).await;
    let start = Instant::now();
    gw.running.shutdown();
    assert!(
        refuses_connections(gw.addr).await,
        "new connections are refused once shutdown starts"
    );
    assert!(
        !request.is_finished(),
        "the in-flight request is not cut short"
    );
    tokio::time::timeout(Duration::from_secs(4), gw.running.wait())
        .await
        .expect("wait returns once the in-flight request is done");
    let took = start.elapsed();
    let (status, body) = request
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(status, 200);
    assert!(body.contains("/slow/1000"), "{body}");
    assert!(
        took >= Duration::from_millis(700),
        "wait returned before the request was done: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_and_drops_the_straggler() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\ndrain_timeout = \"1s\"\n",
    ])
    .await;
    let request = in_flight(gw.url("/slow/10000"), &up).await;
    let start = Instant::now();
    gw.running.shutdown();
    tokio::time::timeout(Duration::from_secs(5), gw.running.wait())
        .await
        .expect("wait returns after the drain timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The straggler's connection is dropped, not left running in the background after `wait` returned.
    let outcome = tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .expect("the straggler's connection was dropped at the drain timeout")
        .unwrap();
    assert!(
        outcome.is_err(),
        "the straggler must not complete: {outcome:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /status/204 HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut idle, Duration::from_secs(5)).await.is_some());
    let _silent = TcpStream::connect(gw.addr).await.unwrap();
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(4), gw.stop())
        .await
        .expect("stop returns");
    assert!(
        // Far below the 5 s drain timeout: idle connections are closed at once, not waited for.
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let closed = closed_within(&mut idle, Duration::from_secs(1), &mut Vec::new()).await;
    assert!(
        closed.is_some(),
        "the idle keep-alive connection is closed at shutdown"
    );
}

#[tokio::test]
async fn http2_in_flight_request_completes_during_graceful_shutdown() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let client = h2c_client();
    let before = up.count();
    let req = client
        .get(gw.url("/slow/800"))
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .send();
    let request = tokio::spawn(async move {
        let res = req.await?;
        Ok::<_, reqwest::Error>((res.status().as_u16(), res.version()))
    });
    let arrived = eventually(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || async { up.count() > before },
    )
    .await;
    assert!(arrived, "the request never reached the upstream");
    assert_eq!(up.count(), before + 1);
    gw.running.shutdown();
    tokio::time::timeout(Duration::from_secs(4), gw.running.wait())
        .await
        .expect("drained");
    let (status, version) = request.await.unwrap().expect("completes");
    assert_eq!((status, version), (200, http::Version::HTTP_2));
}

//! Request bodies are read ahead before anything reaches the upstream (issue 12 item 5): a body that breaks
//! or stalls within `routes[].request_buffer_bytes` never reaches a legacy backend; a short one arrives whole
//! with a `Content-Length`; a long one streams on once the buffer is full.

mod support;

use std::time::Duration;
use support::recorder::Recorder;
use support::{raw_exchange, route, tokens, TestGateway};
use tokio::io::AsyncWriteExt;

fn head(gw: &TestGateway, framing: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: text/plain\r\n{framing}\r\n",
        gw.addr,
        tokens::valid("alice")
    )
}

#[tokio::test]
async fn a_body_with_broken_framing_never_reaches_the_upstream() {
    let up = Recorder::start().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let req = head(&gw, "Transfer-Encoding: chunked\r\n") + "5\r\nhelloXX0\r\n\r\n";
    let (status, _, _) = raw_exchange(gw.addr, req.as_bytes()).await;
    assert_eq!(status, 400);
    assert_eq!(up.connections(), 0, "the upstream was never contacted");
    assert!(up.wire().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_408_and_never_reaches_the_upstream() {
    let up = Recorder::start().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\nbody_timeout = \"300ms\"\n",
    ])
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all((head(&gw, "Content-Length: 10\r\n") + "abc").as_bytes())
        .await
        .unwrap();
    let answer = support::read_head(&mut s, Duration::from_secs(5))
        .await
        .expect("an answer while the body is still missing");
    assert_eq!(support::raw_status(&answer), 408, "{answer}");
    assert_eq!(up.connections(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_short_chunked_body_arrives_whole_with_its_length() {
    let up = Recorder::start().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let req =
        head(&gw, "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (status, _, _) = raw_exchange(gw.addr, req.as_bytes()).await;
    assert_eq!(status, 200);
    let got = &up.requests()[0];
    assert_eq!(got.body, b"hello world");
    assert_eq!(got.all("content-length"), ["11"]);
    assert!(got.all("transfer-encoding").is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_long_body_streams_on_once_the_buffer_is_full() {
    let up = Recorder::start().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "request_buffer_bytes = 1024")]).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let res = support::client()
        .post(gw.url("/upload"))
        .bearer_auth(tokens::valid("alice"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.requests()[0].body, body, "every byte, in order");
    gw.stop().await;
}

#[tokio::test]
async fn with_buffering_off_the_body_streams_from_the_first_byte() {
    let up = Recorder::start().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "request_buffer_bytes = 0")]).await;
    let req = head(&gw, "Transfer-Encoding: chunked\r\n") + "5\r\nhelloXX0\r\n\r\n";
    let (status, _, _) = raw_exchange(gw.addr, req.as_bytes()).await;
    assert_eq!(status, 400, "still the client's fault");
    assert!(
        support::wait::eventually(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async { up.connections() == 1 }
        )
        .await,
        "as before, the upstream saw the request start"
    );
    gw.stop().await;
}

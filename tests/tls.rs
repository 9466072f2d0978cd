//! HTTPS termination (HTTP/1.1 and HTTP/2 by ALPN), the TLS handshake timeout, and h2c on a plain listener.

mod support;

use std::time::Duration;
use support::http::get_auth;
use support::tls::{self_signed, TestCert};
use support::tokens;
use support::upstream::Upstream;
use support::{closed_within, route, TestGateway};
use tokio::net::TcpStream;

fn alice() -> String {
    tokens::bearer(&tokens::valid("alice"))
}

async fn https_gateway(cert: &TestCert, up: &Upstream) -> TestGateway {
    TestGateway::start(&[&route("/", &up.url(), ""), &cert.server_toml()]).await
}

fn https_url(gw: &TestGateway, path: &str) -> String {
    format!("https://localhost:{}{path}", gw.addr.port())
}

#[tokio::test]
async fn https_http11_request_is_proxied() {
    let cert = self_signed();
    let up = Upstream::echo().await;
    let gw = https_gateway(&cert, &up).await;
    let client = cert.client(false);
    let res = get_auth(&client, https_url(&gw, "/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_11);
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("x-auth-user").as_deref(), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn alpn_negotiates_http2_and_the_upstream_still_gets_http11() {
    let cert = self_signed();
    let up = Upstream::echo().await;
    let gw = https_gateway(&cert, &up).await;
    // This client offers h2 and http/1.1; the version is whatever the server picks.
    let client = cert.client_alpn();
    let res = get_auth(&client, https_url(&gw, "/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(
        seen.one("host").as_deref(),
        Some(format!("localhost:{}", gw.addr.port()).as_str())
    );
    assert_eq!(seen.one("via").as_deref(), Some("2 gateway"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    // Authentication applies to HTTP/2 exactly as to HTTP/1.1.
    let res = client.get(https_url(&gw, "/x")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"gateway\""
    );
    assert_eq!(up.count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn http2_streams_a_large_body_both_ways() {
    const SIZE: usize = 8 * 1024 * 1024;
    let cert = self_signed();
    let up = Upstream::echo().await;
    let gw = https_gateway(&cert, &up).await;
    let client = cert.client_alpn();
    let mut res = get_auth(&client, https_url(&gw, &format!("/big/{SIZE}")), &alice()).await;
    assert_eq!(res.version(), http::Version::HTTP_2);
    let mut total = 0;
    for _ in 0..SIZE {
        match res.chunk().await.unwrap() {
            Some(c) => total += c.len(),
            None => break,
        }
    }
    assert_eq!(total, SIZE);
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 7) as u8).collect();
    let sum: u64 = body.iter().map(|&b| b as u64).sum();
    let res = client
        .post(https_url(&gw, "/upload"))
        .header("authorization", alice())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let got: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (got["bytes"].as_u64(), got["sum"].as_u64()),
        (Some(SIZE as u64), Some(sum))
    );
    gw.stop().await;
}

#[tokio::test]
async fn tls_client_that_never_sends_client_hello_is_dropped_after_handshake_timeout() {
    let cert = self_signed();
    let up = Upstream::echo().await;
    let gw = https_gateway(&cert, &up).await; // handshake_timeout = "1s"
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(4), &mut Vec::new()).await;
    let took = took.expect("the gateway drops a client that never starts the handshake");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The silent client did not block anyone else meanwhile.
    let res = get_auth(&cert.client(false), https_url(&gw, "/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn silent_tls_client_does_not_block_other_handshakes() {
    let cert = self_signed();
    let up = Upstream::echo().await;
    // A long handshake timeout, so a blocked accept loop would show as a multi-second wait.
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        &cert.server_toml(),
        "[server.tls]\nhandshake_timeout = \"10s\"\n",
    ])
    .await;
    let _silent = [
        TcpStream::connect(gw.addr).await.unwrap(),
        TcpStream::connect(gw.addr).await.unwrap(),
    ];
    let start = std::time::Instant::now();
    let res = get_auth(&cert.client(false), https_url(&gw, "/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_works_on_a_plain_listener() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let client = support::http::h2c_client();
    let res = get_auth(&client, gw.url("/x?q=1"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.path, "/x");
    assert_eq!(seen.query.as_deref(), Some("q=1"));
    assert_eq!(seen.one("host"), Some(gw.addr.to_string()));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("http"));
    let res = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(up.count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn http2_cookie_fields_are_joined_for_the_http11_upstream() {
    // RFC 9113 §8.2.3: HTTP/2 may carry one cookie per field; an HTTP/1.1 hop needs them in one field.
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let client = support::http::h2c_client();
    let res = client
        .get(gw.url("/x"))
        .header("authorization", alice())
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(up.last().all("cookie"), ["a=1; b=2"]);
    gw.stop().await;
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_its_ca_file_and_kept_alive() {
    let cert = self_signed();
    let up = Upstream::echo_tls(&cert).await;
    let ca = format!("ca_file = {:?}", cert.cert_path.display().to_string());
    let gw = TestGateway::start_routes(&[route("/", &up.https_url(), &ca)]).await;
    let c = support::client();
    for _ in 0..3 {
        let res = get_auth(&c, gw.url("/over/tls?n=1"), &alice()).await;
        assert_eq!(res.status(), 200);
        res.bytes().await.expect("the whole body");
    }
    let seen = up.last();
    assert_eq!(
        (seen.path.as_str(), seen.query.as_deref()),
        ("/over/tls", Some("n=1"))
    );
    assert_eq!(
        up.connections(),
        1,
        "one TLS connection kept alive for three requests"
    );
    gw.stop().await;

    // Without the CA file the self-signed certificate is not trusted (WebPKI roots): 502, and nothing
    // reaches the upstream.
    let answered = up.count();
    let gw = TestGateway::start_routes(&[route("/", &up.https_url(), "")]).await;
    let res = get_auth(&c, gw.url("/untrusted"), &alice()).await;
    assert_eq!(res.status(), 502);
    assert_eq!(up.count(), answered);
    gw.stop().await;
}

//! WebSocket upgrades through the gateway: authenticated on the handshake, then spliced byte for byte.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::tokens;
use support::upstream::Upstream;
use support::wait::holds_for;
use support::{route, TestGateway};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn ws_request(gw: &TestGateway, authorization: Option<&str>) -> http::Request<()> {
    let mut req = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .unwrap();
    if let Some(a) = authorization {
        req.headers_mut()
            .insert("authorization", a.parse().unwrap());
    }
    req.headers_mut()
        .insert("x-auth-user", "mallory".parse().unwrap());
    req
}

#[tokio::test]
async fn websocket_with_valid_token_echoes_messages() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let auth = tokens::bearer(&tokens::valid("alice"));
    let (mut ws, res) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(ws_request(&gw, Some(&auth))),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    assert_eq!(res.status(), 101);
    // The handshake reached the upstream authenticated, with the gateway's identity only.
    let seen = up.last();
    assert_eq!(seen.path, "/ws");
    assert_eq!(seen.all("x-auth-user"), ["alice"]);
    assert_eq!(seen.one("upgrade").as_deref(), Some("websocket"));
    for i in 0..3 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("echo in time")
            .expect("stream open")
            .expect("no error");
        assert_eq!(echoed, Message::text(text));
    }
    let blob = vec![7u8; 100_000];
    ws.send(Message::binary(blob.clone())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), blob.as_slice());
    ws.close(None).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn websocket_without_token_is_401_and_never_upgraded() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    for auth in [None, Some(tokens::bearer(&tokens::expired("alice")))] {
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(ws_request(&gw, auth.as_deref())),
        )
        .await
        .expect("answer in time");
        match result {
            Err(WsError::Http(res)) => {
                assert_eq!(res.status(), 401);
                assert!(res.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer realm=\"gateway\""));
            }
            Err(e) => panic!("expected an HTTP 401, got {e}"),
            Ok(_) => panic!("the upgrade succeeded without a valid token"),
        }
    }
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn open_websockets_count_against_max_connections_and_are_closed_at_drain_timeout() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\nmax_connections = 1\ndrain_timeout = \"500ms\"\n",
    ])
    .await;
    let auth = tokens::bearer(&tokens::valid("alice"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&gw, Some(&auth)))
        .await
        .expect("handshake succeeds");
    // The upgraded stream holds the only slot: a second client is not served while it is open.
    let before = up.count();
    let other = tokio::spawn({
        let url = gw.url("/x");
        async move {
            support::client()
                .get(url)
                .header("authorization", tokens::bearer(&tokens::valid("bob")))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // "Not served" can only be shown over a window: checked every 25 ms for 500 ms, the second request
    // neither gets an answer nor reaches the upstream.
    let waiting = holds_for(
        Duration::from_millis(500),
        Duration::from_millis(25),
        || async { !other.is_finished() && up.count() == before },
    )
    .await;
    assert!(
        waiting.is_ok(),
        "a second connection got served beyond max_connections (check {waiting:?})"
    );
    ws.send(Message::text("still here")).await.unwrap();
    assert!(ws.next().await.unwrap().is_ok());
    // Closing the WebSocket frees the slot for the waiting client.
    ws.close(None).await.unwrap();
    drop(ws);
    let status = tokio::time::timeout(Duration::from_secs(5), other)
        .await
        .expect("served once the slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);

    // On shutdown, a WebSocket still open is dropped once the drain timeout passes.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&gw, Some(&auth)))
        .await
        .expect("handshake succeeds");
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), gw.stop())
        .await
        .expect("stop returns after the drain timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    let next = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("stream ends");
    assert!(
        !matches!(next, Some(Ok(Message::Text(_)))),
        "the spliced stream was closed"
    );
}

//! What bounds an upgraded WebSocket's life: the expiry of the token that opened it, the idle timeout, and
//! the per-user count of open upgrades (issue 12 item 6).

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::tokens;
use support::upstream::Upstream;
use support::wait::{eventually, holds_for};
use support::{route, TestGateway};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws` through the gateway, with `token` as Bearer credential when given.
async fn connect(gw: &TestGateway, token: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", tokens::bearer(t).parse().unwrap());
    }
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake answered in time")
    .map(|(ws, _)| ws)
}

/// One message out and its echo back within a second; false if the channel is gone or silent.
async fn echoes(ws: &mut Ws, text: &str) -> bool {
    if ws.send(Message::text(text)).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ws.next()).await,
        Ok(Some(Ok(m))) if m == Message::text(text)
    )
}

/// True once the gateway has ended the connection: the stream ends or errors. A read that merely waits is
/// "still open".
async fn closed(ws: &mut Ws) -> bool {
    match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
        Err(_) => false,
        Ok(None) | Ok(Some(Err(_))) => true,
        Ok(Some(Ok(m))) => m.is_close(),
    }
}

/// How many WebSocket handshakes reached the upstream.
fn upgrades_seen(up: &Upstream) -> usize {
    up.seen().iter().filter(|s| s.path == "/ws").count()
}

fn open_connections(gw: &TestGateway) -> i64 {
    gw.running.metrics().open_connections.get()
}

#[tokio::test]
async fn websocket_is_closed_when_its_token_expires() {
    let up = Upstream::echo().await;
    // No leeway, so the connection must end at `exp` itself.
    let gw = TestGateway::start(&[&route("/", &up.url(), ""), "[auth]\nleeway = \"0s\"\n"]).await;
    let n = tokens::now();
    let exp = n + 2;
    let token =
        tokens::sign(&json!({"sub": "alice", "name": "alice", "iat": n, "nbf": n, "exp": exp}));
    let ws = Arc::new(Mutex::new(
        connect(&gw, Some(&token)).await.expect("upgrade succeeds"),
    ));
    let expires_at = UNIX_EPOCH + Duration::from_secs(exp);
    // `now()` rounds down, so at least a second remains; keep a margin before `exp` for scheduling.
    let open_for = expires_at
        .duration_since(SystemTime::now())
        .unwrap()
        .saturating_sub(Duration::from_millis(300));
    let kept = holds_for(open_for, Duration::from_millis(100), || {
        let ws = ws.clone();
        async move { echoes(&mut *ws.lock().await, "before exp").await }
    })
    .await;
    assert!(
        kept.is_ok(),
        "closed before the token expired (check {kept:?})"
    );
    let ended = eventually(Duration::from_secs(3), Duration::from_millis(50), || {
        let ws = ws.clone();
        async move { closed(&mut *ws.lock().await).await }
    })
    .await;
    assert!(ended, "still open 3 s after the token expired");
    assert!(
        SystemTime::now() >= expires_at,
        "closed before the token expired"
    );
    // Both spliced streams were dropped: the upgraded connection no longer holds its slot.
    assert!(
        eventually(
            Duration::from_secs(2),
            Duration::from_millis(25),
            || async { open_connections(&gw) == 0 }
        )
        .await,
        "the upgraded connection still holds its slot"
    );
    gw.stop().await;
}

#[tokio::test]
async fn idle_websocket_is_closed_and_an_active_one_is_not() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\nwebsocket_idle_timeout = \"500ms\"\n",
    ])
    .await;
    let mut quiet = connect(
        &gw,
        Some(&tokens::valid_with("alice", &json!({"jti": "quiet"}))),
    )
    .await
    .expect("upgrade succeeds");
    assert!(echoes(&mut quiet, "hello").await);
    let quiet = Arc::new(Mutex::new(quiet));
    let active = Arc::new(Mutex::new(
        connect(
            &gw,
            Some(&tokens::valid_with("alice", &json!({"jti": "busy"}))),
        )
        .await
        .expect("upgrade succeeds"),
    ));
    // A message every 100 ms for three idle timeouts: each one keeps the channel open.
    let kept = holds_for(
        Duration::from_millis(1500),
        Duration::from_millis(100),
        || {
            let ws = active.clone();
            async move { echoes(&mut *ws.lock().await, "tick").await }
        },
    )
    .await;
    assert!(
        kept.is_ok(),
        "an active channel was closed (check {kept:?})"
    );
    // The quiet one has been silent for far longer than 500 ms by now.
    assert!(
        eventually(Duration::from_secs(2), Duration::from_millis(50), || {
            let ws = quiet.clone();
            async move { closed(&mut *ws.lock().await).await }
        })
        .await,
        "an idle channel stayed open past the idle timeout"
    );
    assert!(echoes(&mut *active.lock().await, "still here").await);
    gw.stop().await;
}

#[tokio::test]
async fn upgrades_per_user_are_capped_and_seats_come_back() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\nmax_websockets_per_user = 2\n",
    ])
    .await;
    // Different tokens, same subject: the cap is per user, not per token.
    let alice = |jti: &str| tokens::valid_with("alice", &json!({ "jti": jti }));
    let mut first = connect(&gw, Some(&alice("1")))
        .await
        .expect("first upgrade");
    let mut second = connect(&gw, Some(&alice("2")))
        .await
        .expect("second upgrade");
    match connect(&gw, Some(&alice("3"))).await {
        Err(WsError::Http(res)) => {
            assert_eq!(res.status(), 429);
            assert_eq!(res.headers()["retry-after"], "5");
        }
        Err(e) => panic!("expected an HTTP 429, got {e}"),
        Ok(_) => panic!("a third upgrade succeeded with max_websockets_per_user = 2"),
    }
    assert_eq!(
        upgrades_seen(&up),
        2,
        "the refused upgrade reached the upstream"
    );
    // Another user is not affected.
    let mut bob = connect(&gw, Some(&tokens::valid("bob")))
        .await
        .expect("another subject upgrades");
    assert!(echoes(&mut bob, "bob").await);
    assert!(echoes(&mut second, "still open").await);

    // Closing one gives its seat back once the gateway has seen the connection end.
    first.close(None).await.unwrap();
    let bounded = tokio::time::timeout(Duration::from_secs(2), async {
        while first.next().await.is_some() {}
    })
    .await;
    assert!(bounded.is_ok(), "the close handshake did not finish");
    drop(first);
    let again = eventually(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || async {
            match connect(&gw, Some(&alice("4"))).await {
                Ok(mut ws) => echoes(&mut ws, "again").await,
                Err(_) => false,
            }
        },
    )
    .await;
    assert!(again, "no new upgrade after one of the two was closed");
    gw.stop().await;
}

#[tokio::test]
async fn public_route_upgrades_are_not_counted_per_user() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[server]\nmax_websockets_per_user = 1\n",
    ])
    .await;
    let mut open = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&gw, None)
            .await
            .unwrap_or_else(|e| panic!("public upgrade {i} refused: {e}"));
        assert!(echoes(&mut ws, "public").await);
        open.push(ws);
    }
    assert_eq!(upgrades_seen(&up), 3);
    gw.stop().await;
}

//! Instructions per proxied request, one-target route vs a 3-target pool, for `valgrind --tool=callgrind`
//! (no wall clock: the shared machine is too noisy for that).
//!
//!     cargo build --release --bench pool_cost
//!     valgrind --tool=callgrind target/release/deps/pool_cost-* single 200
//!     valgrind --tool=callgrind target/release/deps/pool_cost-* single 2200
//!     (same with `pool`)
//!
//! Each run starts a gateway and its upstream(s) in one single-threaded process and sends `n` GETs one
//! after the other on one keep-alive connection. The difference between the 2200- and the 200-request
//! runs, divided by 2000, is the cost of one request (client, gateway and upstream together) without the
//! start-up; the difference between `pool` and `single` is what the pool adds to one request.
//!
//! Measured 2026-12-01 on the dev profile (dependencies optimised, the gateway crate not: an upper bound;
//! the release build did not fit the time on the shared machine), 100 and 600 requests:
//! single 29,248,898 / 164,548,375 Ir → 270,600 Ir per request; pool of 3 30,702,058 / 170,890,014 Ir →
//! 280,376 Ir per request: the pool adds ~9,800 Ir (3.6 %), mostly the copy of the request head kept for a
//! retry.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("\"http://{addr}\"")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`: nothing to measure by wall clock, so do nothing then.
    let (Some(kind), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: pool_cost single|pool <requests>");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let targets = match kind.as_str() {
            "single" => vec![upstream().await],
            _ => vec![upstream().await, upstream().await, upstream().await],
        };
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[metrics]\nenabled = false\n[log]\naccess = false\n[login]\nenabled = false\n[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[[routes]]\nprefix = \"/\"\npublic = true\nupstreams = [{}]\n",
            targets.join(", ")
        );
        let config = gateway::config::Config::from_toml(&toml).expect("config");
        let gw = gateway::spawn(config).await.expect("gateway");
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        for _ in 0..n {
            let req = hyper::Request::get("/x")
                .header("host", "bench")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            let _ = res.into_body().collect().await.unwrap();
        }
        println!("{kind}: {n} requests");
    });
}

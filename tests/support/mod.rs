//! Shared helpers for the integration tests: a gateway on port 0 built from TOML fragments, an echo
//! upstream that records what it received, token minting, TLS material, and a fake Turnstile.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod tls;
pub mod tokens;
pub mod turnstile;
pub mod upstream;

use figment::providers::{Format, Toml};
use figment::Figment;
use gateway::config::Config;
use std::net::SocketAddr;
use std::path::Path;

/// HS256 secret of every test gateway. TEST FIXTURE ONLY, not a real secret.
pub const SECRET: &str = "integration-test-secret-NOT-REAL-0123456789abcdef";

/// The base every test gateway starts from: loopback port 0, the test secret, login off.
fn base_toml() -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n[auth]\nsecret = \"{SECRET}\"\n[login]\nenabled = false\n"
    )
}

/// Builds a validated config from the base plus TOML fragments (later fragments win, arrays are replaced).
pub fn config(fragments: &[&str]) -> Result<Config, gateway::config::ConfigError> {
    let mut fig = Figment::from(Toml::string(&base_toml()));
    for f in fragments {
        fig = fig.merge(Toml::string(f));
    }
    Config::from_figment(fig, Path::new("."))
}

/// A gateway running in this process.
pub struct TestGateway {
    pub running: gateway::Running,
    pub addr: SocketAddr,
}

impl TestGateway {
    /// Starts a gateway from TOML fragments merged over the base config.
    pub async fn start(fragments: &[&str]) -> TestGateway {
        let cfg = config(fragments).expect("test config is valid");
        Self::start_config(cfg).await
    }

    /// Starts a gateway from a ready config.
    pub async fn start_config(cfg: Config) -> TestGateway {
        let running = gateway::spawn(cfg).await.expect("gateway starts");
        let addr = running.addr;
        TestGateway { running, addr }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the gateway and waits for the drain.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// One route to `upstream` at `prefix`, as a TOML fragment.
pub fn route(prefix: &str, upstream: &str, extra: &str) -> String {
    format!("[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

/// An HTTP client that does not pool (each test controls its own connections) and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends raw bytes on a fresh TCP connection and returns everything read until the server closes it
/// or `wait` passes without new bytes.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in a raw HTTP/1.1 answer, or 0 if there is none.
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

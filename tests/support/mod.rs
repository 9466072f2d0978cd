//! Shared helpers for the integration tests: a gateway on port 0 built from TOML fragments, an echo
//! upstream that records what it received, token minting, TLS material, and a fake Turnstile.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod fixtures;
pub mod http;
pub mod metrics;
pub mod process;
pub mod sql;
pub mod tls;
pub mod tokens;
pub mod turnstile;
pub mod upstream;
pub mod wait;
// Real-browser tests (issue 15): headless Chromium over WebDriver and a Turnstile script stand-in.
pub mod browser;
// Hostile-traffic tests (issue 4): a recording upstream and a raw HTTP/2 frame client.
pub mod h2raw;
pub mod recorder;

use figment::providers::{Format, Toml};
use figment::Figment;
use gateway::config::Config;
use std::net::SocketAddr;
use std::path::Path;

/// All values of header `name`, in order, lossily decoded.
pub fn header_values(headers: &::http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// HS256 secret of every test gateway. TEST FIXTURE ONLY, not a real secret.
pub const SECRET: &str = "integration-test-secret-NOT-REAL-0123456789abcdef";

/// The base every test gateway starts from: loopback port 0, the test secret, login off.
fn base_toml() -> String {
    format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n[auth]\nsecret = \"{SECRET}\"\n[login]\nenabled = false\n"
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

    /// Starts a gateway with these routes (each from `route`). They go in one fragment: a later fragment's
    /// `[[routes]]` would replace, not extend, an earlier one.
    pub async fn start_routes(routes: &[String]) -> TestGateway {
        Self::start(&[&routes.concat()]).await
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
        .pool_max_idle_per_host(0)
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

/// Sends `GET <target>` (sent byte for byte, so paths are not normalised by a client) with `Connection: close`
/// and any extra header lines (each ending in `\r\n`); returns the status and the whole answer.
pub async fn raw_get(addr: SocketAddr, target: &str, extra_headers: &str) -> (u16, String) {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    let answer = raw_request(addr, req.as_bytes(), std::time::Duration::from_secs(5)).await;
    (raw_status(&answer), answer)
}

/// Reads from `stream` until the peer closes it (EOF or error) and returns how long that took, or None if
/// it was still open after `limit`. Bytes received meanwhile are appended to `got`.
pub async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
    got: &mut Vec<u8>,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head (up to the blank line) from a keep-alive connection, within `limit`.
/// Returns None on timeout or close. The response must have no body (or the caller reads it).
pub async fn read_head(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut byte)).await {
            Ok(Ok(1)) => out.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A users file in a temporary directory.
pub struct UsersFile {
    pub dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

impl UsersFile {
    /// Writes `toml` as the users file.
    pub fn new(toml: &str) -> UsersFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, toml).unwrap();
        UsersFile { dir, path }
    }

    /// Replaces the file's content (atomically, via rename, as editors and config managers do).
    pub fn rewrite(&self, toml: &str) {
        let tmp = self.dir.path().join("users.toml.tmp");
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    /// The `[users]` + `[login]` fragment enabling login against this file and a siteverify URL.
    pub fn login_toml(&self, siteverify_url: &str) -> String {
        format!(
            "[login]\nenabled = true\n[login.throttle]\nuser_max_failures = 1000\nip_max_failures = 1000\n[login.turnstile]\nsecret = \"{}\"\nsiteverify_url = \"{siteverify_url}\"\ntimeout = \"500ms\"\n[users]\nfile = {:?}\nreload_interval = \"100ms\"\n",
            turnstile::PASS_SECRET,
            self.path.display().to_string()
        )
    }
}

/// One `[[users]]` entry.
pub fn user(name: &str, hash: &str, active: bool) -> String {
    format!("[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nactive = {active}\n")
}

/// Reads one response from a keep-alive connection: its head, then exactly `Content-Length` body bytes
/// (no body when the header is absent). Returns None if that does not arrive within `limit`.
pub async fn read_response(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + limit;
    let head = tokio::time::timeout_at(deadline, read_head(stream, limit))
        .await
        .ok()??;
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout_at(deadline, stream.read_exact(&mut body))
        .await
        .ok()?
        .ok()?;
    Some((head, body))
}

/// Sends raw bytes on a fresh connection and reads one response (see `read_response`); status 0 and an
/// empty head if none arrived within 5 s.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, String, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    match read_response(&mut s, std::time::Duration::from_secs(5)).await {
        Some((head, body)) => (raw_status(&head), head, body),
        None => (0, String::new(), Vec::new()),
    }
}

/// Starts `GET url` (with a valid token for alice) in the background and returns once `up` has received
/// the request, so the caller knows it is in flight. The task yields the status and body.
pub async fn in_flight(
    url: String,
    up: &upstream::Upstream,
) -> tokio::task::JoinHandle<reqwest::Result<(u16, String)>> {
    let before = up.count();
    let req = client()
        .get(url)
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .send();
    let task = tokio::spawn(async move {
        let res = req.await?;
        let status = res.status().as_u16();
        Ok((status, res.text().await?))
    });
    let step = std::time::Duration::from_millis(10);
    let arrived = wait::eventually(std::time::Duration::from_secs(5), step, || async {
        up.count() > before
    })
    .await;
    assert!(arrived, "the request never reached the upstream");
    task
}

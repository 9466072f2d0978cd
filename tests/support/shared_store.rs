//! Redis for the shared-store tests: the machine's server (`GATEWAY_TEST_REDIS_URL`) under a unique key
//! prefix per test, deleted afterwards, and private `redis-server` processes on a free port for tests that
//! stop and restart Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The variable naming the shared Redis of the test machine.
pub const REDIS_VAR: &str = "GATEWAY_TEST_REDIS_URL";

/// The test Redis URL, or None after printing the skip line `.ci/run` looks for.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIPPED ({REDIS_VAR} unset): {test}");
            None
        }
    }
}

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "gwtest-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Every key under `prefix:`.
pub async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// The TTL in milliseconds of `key` (-1: none, -2: absent).
pub async fn pttl(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Deletes every key under `prefix:` (a test's cleanup).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let found = keys(url, prefix).await;
    if found.is_empty() {
        return;
    }
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&found)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A private `redis-server` on a fixed free loopback port, so it can be stopped and started again at the
/// same address; no persistence, so a restart comes back empty.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> OwnRedis {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut r = OwnRedis {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart().await;
        r
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL of the child this helper started) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port, empty, and waits until it answers PING.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let url = self.url();
        let up =
            super::wait::eventually(Duration::from_secs(10), Duration::from_millis(50), || {
                let url = url.clone();
                async move {
                    let Ok(client) = redis::Client::open(url) else {
                        return false;
                    };
                    match client.get_multiplexed_async_connection().await {
                        Ok(mut c) => redis::cmd("PING")
                            .query_async::<String>(&mut c)
                            .await
                            .is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .await;
        assert!(up, "redis-server on port {} did not start", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

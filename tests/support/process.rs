//! The built `gateway` binary as a child process: its stderr collected line by line, signals sent with
//! `kill`, and the exit awaited within a bound. Killed on drop, so a failed assertion never leaves a
//! server running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// The repository root (where the shipped gateway.toml lives).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with a clean environment (no inherited GATEWAY_* overrides) and no colours in logs, run from
/// the repository root.
pub fn gateway_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("NO_COLOR", "1").current_dir(repo());
    cmd
}

/// Removes ANSI escape sequences, in case the log formatter colours its output anyway.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running gateway process.
pub struct GatewayProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far (ANSI escapes removed).
    pub seen: Vec<String>,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    /// Spawns `cmd` with stdout discarded and stderr read by a thread into a channel.
    pub fn spawn(mut cmd: Command) -> GatewayProcess {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        GatewayProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// `gateway serve --config <path>` with a clean environment plus `env`.
    pub fn serve(config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        let mut cmd = gateway_command();
        cmd.args(["serve", "--config"]).arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far, one line each.
    pub fn log(&self) -> String {
        self.seen.join("\n")
    }

    /// Waits up to `limit` for a stderr line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = strip_ansi(&self.lines.recv_timeout(left).ok()?);
            self.seen.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// Waits for the `gateway listening` line (text or JSON log format) and returns the bound address.
    pub fn wait_listening(&mut self) -> SocketAddr {
        let line = self
            .wait_for_line("gateway listening", Duration::from_secs(20))
            .unwrap_or_else(|| {
                panic!(
                    "no `gateway listening` line; stderr so far:\n{}",
                    self.log()
                )
            });
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let addr = match json["fields"]["addr"].as_str() {
            Some(a) => a.parse().ok(),
            None => line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .and_then(|a| a.parse().ok()),
        };
        addr.unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Sends `signal` (a name `kill` knows: HUP, TERM, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// True if the process has exited (checked now, without waiting).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits up to `limit` for the process to exit, polling every 20 ms.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads the remaining stderr lines: until the pipe closes (the process exited) or nothing arrives for
    /// `quiet`.
    pub fn drain_lines(&mut self, quiet: Duration) {
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.seen.push(strip_ansi(&line));
        }
    }
}

/// Writes a complete gateway config file atomically (write + rename, as config managers do): a loopback
/// listener on port 0, the metrics listener on port 0, the test secret, and `body`.
pub fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    let tmp = dir.join("gateway.toml.tmp");
    let text = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = \"{}\"\n{body}",
        super::SECRET
    );
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

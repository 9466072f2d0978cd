//! The `gateway` binary: `check-config` accepts the shipped config and names the key of every bad one;
//! `serve` starts from the shipped config, warns about the development secret and exits 0 on SIGTERM.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use support::process::{gateway_command as gateway, repo, GatewayProcess};

fn check_config(path: &Path) -> Output {
    gateway()
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .expect("the binary runs")
}

/// Writes `text` as gateway.toml in a fresh temporary directory.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn good_auth() -> String {
    format!("[auth]\nsecret = \"{}\"\n", support::SECRET)
}

#[test]
fn check_config_accepts_the_shipped_config_and_prints_its_routes() {
    let out = check_config(&repo().join("gateway.toml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("routes (2):"), "{stdout}");
    assert!(
        stdout.contains("app") && stdout.contains("example-spa:") && stdout.contains("[public]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("api") && stdout.contains("echo:"),
        "{stdout}"
    );
    assert!(stdout.contains("[token required]"), "{stdout}");
    assert!(stdout.contains("development JWT secret"), "{stdout}");
}

#[test]
fn check_config_lists_every_target_of_a_pool() {
    let (_dir, path) = config_file(&format!(
        "{}[login]\nenabled = false\n[[routes]]\nname = \"farm\"\nprefix = \"/\"\nbalance = \"user\"\nupstreams = [\"http://127.0.0.1:9001\", \
         {{ url = \"http://127.0.0.1:9002\", weight = 3 }}, {{ url = \"http://127.0.0.1:9003\", backup = true }}]\n",
        good_auth()
    ));
    let out = check_config(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("farm"))
        .unwrap_or_else(|| panic!("no line for the route: {stdout}"));
    for part in [
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002 weight 3",
        "http://127.0.0.1:9003 (backup)",
        "balance user",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
}

#[test]
fn check_config_names_the_key_of_each_bad_config() {
    let route = "[[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n";
    let cases: [(&str, String, &str); 6] = [
        ("unknown key", format!("{}[server]\nlisten_adress = \"127.0.0.1:1\"\n{route}", good_auth()), "listen_adress"),
        (
            "bad upstream URL",
            format!("{}[[routes]]\nprefix = \"/\"\nupstream = \"ftp://files.example\"\n", good_auth()),
            "routes[0].upstream",
        ),
        ("short secret", format!("[auth]\nsecret = \"too-short\"\n{route}"), "auth.secret"),
        (
            "overlapping routes",
            format!(
                "{}{route}[[routes]]\nname = \"again\"\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9001\"\n",
                good_auth()
            ),
            "routes[1].prefix",
        ),
        (
            "missing cert file",
            format!("{}[server.tls]\ncert = \"no-such.crt\"\nkey = \"no-such.key\"\n{route}", good_auth()),
            "server.tls.cert",
        ),
        ("bad duration", format!("{}[server]\nidle_timeout = \"soon\"\n{route}", good_auth()), "idle_timeout"),
    ];
    for (case, text, key) in cases {
        let (_dir, path) = config_file(&text);
        let out = check_config(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{case}: accepted\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains(key),
            "{case}: stderr does not name {key}: {stderr}"
        );
    }
}

#[test]
fn check_config_of_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = check_config(&dir.path().join("absent.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.toml"));
}

#[test]
fn serve_with_the_shipped_config_warns_about_the_dev_secret_and_exits_0_on_sigterm() {
    let mut cmd = gateway();
    cmd.args(["serve", "--config", "gateway.toml"])
        .env("GATEWAY_SERVER__LISTEN", "127.0.0.1:0");
    let mut server = GatewayProcess::spawn(cmd);
    let addr = server.wait_listening();
    let seen = &server.seen;
    assert!(
        seen.iter().any(|l| l.contains("DEVELOPMENT JWT SECRET")),
        "no development-secret warning before listening:\n{}",
        seen.join("\n")
    );
    assert_ne!(addr.port(), 0);

    // It serves: a request without a token is refused by the gateway itself.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("the gateway accepts");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /api/anything HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert_eq!(support::raw_status(&answer), 401, "{answer}");

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}\n{}",
        server.log()
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_a_verifiable_argon2id_hash() {
    use std::io::Write;
    let mut child = gateway()
        .args(["hash-password", "--memory-kib", "1024", "--iterations", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Only the line ending is removed: the trailing space is part of the password.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cr3t pass \n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
    use gateway::credentials::{verify, Verdict};
    assert!(matches!(
        verify(&hash, "s3cr3t pass "),
        Verdict::Match { .. }
    ));
    assert_eq!(verify(&hash, "s3cr3t pass"), Verdict::Mismatch);
    // An empty password is refused.
    let mut child = gateway()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(!child.wait_with_output().unwrap().status.success());
}

//! The container image, checked without a container engine (none runs here): what the Dockerfile's runtime
//! stage copies, and the binary run with the image's environment and files (issue 12 item 9).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (name, value) pairs: `COPY` sources and destinations, or `ENV` variables.
type Pairs = Vec<(String, String)>;

/// The runtime stage of the Dockerfile: its `COPY` (source, destination) pairs from the build context and
/// its `ENV` variables.
fn runtime_stage() -> (Pairs, Pairs) {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    // Join continuation lines, then keep what follows the last FROM.
    let joined = text.replace("\\\n", " ");
    let stage: Vec<&str> = joined.lines().map(str::trim).collect();
    let last_from = stage.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let mut copies = Vec::new();
    let mut env = Vec::new();
    for line in &stage[last_from..] {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"COPY") if !words[1].starts_with("--from") => {
                let (dest, sources) = words[1..].split_last().unwrap();
                for src in sources {
                    copies.push((src.to_string(), dest.to_string()));
                }
            }
            Some(&"ENV") => {
                for pair in &words[1..] {
                    let (k, v) = pair.split_once('=').expect("ENV key=value");
                    env.push((k.to_string(), v.to_string()));
                }
            }
            _ => {}
        }
    }
    (copies, env)
}

#[test]
fn the_image_carries_neither_the_development_secret_nor_the_demo_user() {
    let (copies, _) = runtime_stage();
    assert!(
        !copies.is_empty(),
        "the runtime stage copies its configuration"
    );
    for (src, _) in &copies {
        assert_ne!(
            src, "gateway.toml",
            "the repository's development config stays out"
        );
        assert_ne!(src, "users.toml", "the demo users file stays out");
        let text = std::fs::read_to_string(repo().join(src)).unwrap();
        assert!(
            !text.contains("DEVELOPMENT-ONLY"),
            "{src} holds no development secret"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("secret =")),
            "{src} holds no inline secret"
        );
        assert!(!text.contains("[[users]]"), "{src} holds no user");
    }
}

/// Runs `gateway check-config` as the image would: its ENV, the copied config at its path inside a temporary
/// root (absolute paths in it are not touched, so secrets must come from `env`), plus `env`.
fn check_in_image(config: &Path, env: &[(&str, String)]) -> Output {
    let (_, image_env) = runtime_stage();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear().arg("check-config");
    for (k, v) in &image_env {
        cmd.env(k, v);
    }
    cmd.env("GATEWAY_CONFIG", config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_image_starts_only_with_its_secrets_given_at_run_time() {
    let (copies, _) = runtime_stage();
    let (src, _) = copies
        .iter()
        .find(|(_, dest)| dest.ends_with("gateway.toml"))
        .expect("the image copies a gateway.toml");
    let config = repo().join(src);
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, value: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        p.display().to_string()
    };
    let jwt = secret("jwt_secret", "a-real-secret-given-at-run-time-0123456789");
    let turnstile = secret("turnstile_secret", "0x4AAAAAAA-operator-secret");
    let users = dir.path().join("users.toml");
    std::fs::write(&users, "").unwrap();
    let users = users.display().to_string();

    // As shipped, nothing given: refused, naming what to set.
    let out = check_in_image(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("auth.secret_file"),
        "{}",
        stderr(&out)
    );

    // Secrets as files through the environment replace the file's own `secret_file` settings.
    let given = [
        ("GATEWAY_AUTH__SECRET_FILE", jwt.clone()),
        ("GATEWAY_LOGIN__TURNSTILE__SECRET_FILE", turnstile),
        ("GATEWAY_USERS__FILE", users.clone()),
    ];
    let out = check_in_image(&config, &given);
    assert!(out.status.success(), "{}", stderr(&out));

    // An inline secret through the environment also replaces the file's `secret_file`.
    let out = check_in_image(
        &config,
        &[
            (
                "GATEWAY_AUTH__SECRET",
                "another-real-secret-0123456789abcdef".into(),
            ),
            (
                "GATEWAY_LOGIN__TURNSTILE__SECRET",
                "0x4AAAAAAA-operator".into(),
            ),
            ("GATEWAY_USERS__FILE", users.clone()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Cloudflare's always-pass test secret on the image's public address is refused.
    let out = check_in_image(
        &config,
        &[
            ("GATEWAY_AUTH__SECRET_FILE", jwt),
            (
                "GATEWAY_LOGIN__TURNSTILE__SECRET",
                support::turnstile::PASS_SECRET.into(),
            ),
            ("GATEWAY_USERS__FILE", users),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("always-pass"), "{}", stderr(&out));
}

#[test]
fn the_development_config_is_refused_on_a_public_address_and_fine_on_loopback() {
    let config = repo().join("gateway.toml");
    let out = check_in_image(
        &config,
        &[("GATEWAY_SERVER__LISTEN", "0.0.0.0:8080".into())],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("development JWT secret")
            && err.contains("demo user")
            && err.contains("always-pass Turnstile test secret")
            && err.contains("always-pass Turnstile test site key")
            && err.contains("example app"),
        "names every development setting: {err}"
    );
    let out = check_in_image(&config, &[]);
    assert!(
        out.status.success(),
        "on loopback the development config runs: {}",
        stderr(&out)
    );
}

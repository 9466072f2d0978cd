//! Key rotation across three gateway instances (issue 13, "Key rotation without logging everyone out"): the
//! README's procedure — add the new key as a previous key everywhere, make it current, remove the old one —
//! walked one instance at a time with config-file reloads, while tokens of both keys are in flight. At every
//! step every still-valid token gets 200 on every instance; a token of a removed key gets 401 where the key is
//! gone.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::fixtures::captcha;
use support::http::{get_status, login_body, post_login, token_of};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{client, route, user, TestGateway, UsersFile};

/// Password of the test user. TEST FIXTURE.
const PASSWORD: &str = "rotation-test-password-FIXTURE";

/// How one key is written in `[auth]` (as the current key) and in `[[auth.previous_keys]]`.
struct Key {
    kid: &'static str,
    /// Lines of `[auth]` that make this the current key.
    current: String,
    /// Lines of a `[[auth.previous_keys]]` entry for it (after `kid`).
    previous: String,
}

/// The HS256 form: a secret.
fn hmac_key(kid: &'static str, secret: &str) -> Key {
    Key {
        kid,
        current: format!("secret = \"{secret}\"\nkey_id = \"{kid}\"\n"),
        previous: format!("secret = \"{secret}\"\n"),
    }
}

/// The ES256 form: a key pair in `dir`; the previous-key entry needs only the public half.
fn ec_key(kid: &'static str, dir: &Path) -> Key {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let private = dir.join(format!("{kid}.pem"));
    let public = dir.join(format!("{kid}.pub.pem"));
    std::fs::write(&private, kp.serialize_pem()).unwrap();
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    Key {
        kid,
        current: format!(
            "algorithm = \"ES256\"\nsecret = \"\"\nprivate_key_file = {:?}\npublic_key_file = {:?}\nkey_id = \"{kid}\"\n",
            private.display().to_string(),
            public.display().to_string()
        ),
        previous: format!(
            "algorithm = \"ES256\"\npublic_key_file = {:?}\n",
            public.display().to_string()
        ),
    }
}

/// One gateway process-in-a-test with its own config file, reloaded by rewriting that file.
struct Instance {
    name: &'static str,
    dir: tempfile::TempDir,
    gw: TestGateway,
    /// Bumped on every rewrite; the config serves a public marker route `/step-<n>` so the test knows when
    /// the instance runs the new file.
    step: usize,
}

/// Everything a config file needs besides the keys.
struct Common {
    login: String,
    upstream: String,
}

fn config_text(common: &Common, current: &Key, previous: &[&Key], step: usize) -> String {
    let mut text = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[auth]\n{}",
        current.current
    );
    for p in previous {
        text.push_str(&format!(
            "[[auth.previous_keys]]\nkid = \"{}\"\n{}",
            p.kid, p.previous
        ));
    }
    text.push_str(&common.login);
    text.push_str(&route("/", &common.upstream, ""));
    text.push_str(&route(
        &format!("/step-{step}"),
        &common.upstream,
        "public = true",
    ));
    text
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Instance {
    async fn start(name: &'static str, common: &Common, current: &Key) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        write_atomically(&path, &config_text(common, current, &[], 0));
        let config = gateway::config::Config::load(&path).unwrap();
        let gw = TestGateway::start_config(config).await;
        Instance {
            name,
            dir,
            gw,
            step: 0,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// Rewrites the config file with these keys and waits (bounded) until the instance serves it.
    async fn reload(&mut self, common: &Common, current: &Key, previous: &[&Key]) {
        self.step += 1;
        write_atomically(
            &self.path(),
            &config_text(common, current, previous, self.step),
        );
        let marker = self.gw.url(&format!("/step-{}/x", self.step));
        let c = client();
        let live =
            support::wait::eventually(Duration::from_secs(10), Duration::from_millis(50), || {
                let c = c.clone();
                let marker = marker.clone();
                async move { get_status(&c, marker, None).await == 200 }
            })
            .await;
        assert!(live, "{} never reloaded step {}", self.name, self.step);
    }

    /// Logs in and returns the issued token, checking it carries `kid`.
    async fn login(&self, fake: &FakeTurnstile, kid: &str) -> String {
        let res = post_login(&self.gw, &login_body("rita", PASSWORD, &captcha(fake))).await;
        assert_eq!(res.status(), 200, "login on {}", self.name);
        let token = token_of(res).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some(kid),
            "{} signs with its current key",
            self.name
        );
        token
    }

    /// The kids of the instance's published JWKS (asymmetric keys only).
    async fn jwks_kids(&self) -> Vec<String> {
        let doc: Value = client()
            .get(self.gw.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Every (token, expected status) on every instance; the message names the step.
async fn check(instances: &[Instance], tokens: &[(&str, &String, u16)], step: &str) {
    let c = client();
    for i in instances {
        for (label, token, want) in tokens {
            let got = get_status(&c, i.gw.url("/orders"), Some(token)).await;
            assert_eq!(
                got, *want,
                "{step}: token {label} on instance {} answered {got}, expected {want}",
                i.name
            );
        }
    }
}

/// The rotation walk from `old` to `new` on three instances; `jwks` checks the published key sets too.
async fn rotate_across_three_instances(old: Key, new: Key, jwks: bool) {
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let users = UsersFile::new(&user(
        "rita",
        support::fixtures::argon2_cached(PASSWORD),
        true,
    ));
    let common = Common {
        login: users.login_toml(&fake.url()),
        upstream: up.url(),
    };
    let mut nodes = vec![
        Instance::start("A", &common, &old).await,
        Instance::start("B", &common, &old).await,
        Instance::start("C", &common, &old).await,
    ];
    let kids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Before: everyone signs and verifies with the old key.
    let t_old = nodes[0].login(&fake, old.kid).await;
    check(&nodes, &[("old", &t_old, 200)], "start").await;

    // Step 1: the new key is added as a previous key, one instance at a time. Nothing signs with it yet.
    for n in 0..3 {
        nodes[n].reload(&common, &old, &[&new]).await;
        check(&nodes, &[("old", &t_old, 200)], &format!("step 1 on {n}")).await;
        if jwks {
            assert_eq!(nodes[n].jwks_kids().await, kids(&[old.kid, new.kid]));
        }
    }
    let t_old2 = nodes[2].login(&fake, old.kid).await;

    // Step 2: the new key becomes current, the old one previous, one instance at a time. Each switched
    // instance issues new-key tokens, which the others already verify.
    let mut t_new = Vec::new();
    for n in 0..3 {
        nodes[n].reload(&common, &new, &[&old]).await;
        t_new.push(nodes[n].login(&fake, new.kid).await);
        let mut tokens = vec![("old", &t_old, 200), ("old2", &t_old2, 200)];
        tokens.extend(t_new.iter().map(|t| ("new", t, 200)));
        check(&nodes, &tokens, &format!("step 2 on {n}")).await;
        if jwks {
            assert_eq!(nodes[n].jwks_kids().await, kids(&[new.kid, old.kid]));
        }
    }

    // Step 3 (after one token lifetime): the old key is removed, one instance at a time. Old-key tokens are
    // refused exactly where their key is gone; new-key tokens keep working everywhere.
    for n in 0..3 {
        nodes[n].reload(&common, &new, &[]).await;
        let c = client();
        for (m, node) in nodes.iter().enumerate() {
            let want = if m <= n { 401 } else { 200 };
            for t in [&t_old, &t_old2] {
                assert_eq!(
                    get_status(&c, node.gw.url("/orders"), Some(t)).await,
                    want,
                    "step 3 on {n}: old-key token on {}",
                    node.name
                );
            }
        }
        let tokens: Vec<_> = t_new.iter().map(|t| ("new", t, 200)).collect();
        check(&nodes, &tokens, &format!("step 3 on {n}")).await;
        if jwks {
            assert_eq!(nodes[n].jwks_kids().await, kids(&[new.kid]));
        }
    }
    assert_eq!(up.last().one("x-auth-user").as_deref(), Some("rita"));
    for node in nodes {
        node.gw.stop().await;
    }
}

#[tokio::test]
async fn hs256_rotation_across_three_instances_never_refuses_a_valid_token() {
    rotate_across_three_instances(
        hmac_key("2026-01", "old-rotation-secret-FIXTURE-0123456789abcdef"),
        hmac_key("2026-02", "new-rotation-secret-FIXTURE-0123456789abcdef"),
        false,
    )
    .await;
}

#[tokio::test]
async fn es256_rotation_across_three_instances_publishes_both_keys_while_both_verify() {
    let dir = tempfile::tempdir().unwrap();
    rotate_across_three_instances(
        ec_key("ec-old", dir.path()),
        ec_key("ec-new", dir.path()),
        true,
    )
    .await;
}

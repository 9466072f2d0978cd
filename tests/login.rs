//! `POST /api/Auth`: captcha first, then credentials; one identical bare 401 for every failure; the token.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::fixtures::{argon2, captcha, ASPNET_PASSWORD, ASPNET_V2, ASPNET_V3_NET7};
use support::http::{
    assert_all_the_same_bare_401, post_login, snapshot, token_of, unverified_claims,
};
use support::turnstile::{FakeTurnstile, Mode};
use support::upstream::Upstream;
use support::wait::{eventually, holds_for};
use support::{client, route, tokens, user, TestGateway, UsersFile};

/// Password of every test user. TEST FIXTURE.
const PASSWORD: &str = "correct horse battery staple";

struct Env {
    fake: FakeTurnstile,
    users: UsersFile,
    up: Upstream,
    gw: TestGateway,
}

async fn env() -> Env {
    let hash = argon2(PASSWORD);
    let mut users = user("jdoe", &hash, true) + &user("retired", &hash, false);
    users += &user("legacy2", ASPNET_V2, true);
    users += &user("legacy3", ASPNET_V3_NET7, true);
    users += "[[users]]\nname = \"nohash\"\nactive = true\n";
    users += &format!("[[users]]\nname = \"Admin\"\npassword_hash = \"{hash}\"\nclaims = {{ role = \"admin\", groups = [\"a\", \"b\"] }}\n");
    let users = UsersFile::new(&users);
    env_with(users).await
}

async fn env_with(users: UsersFile) -> Env {
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let gw =
        TestGateway::start(&[&users.login_toml(&fake.url()), &route("/", &up.url(), "")]).await;
    Env {
        fake,
        users,
        up,
        gw,
    }
}

async fn login(gw: &TestGateway, body: Value) -> reqwest::Response {
    post_login(gw, &body).await
}

fn creds(e: &Env, user: &str, password: &str) -> Value {
    json!({"UserName": user, "Password": password, "CaptchaToken": captcha(&e.fake)})
}

#[tokio::test]
async fn valid_login_returns_a_30_minute_token_that_opens_protected_routes() {
    let e = env().await;
    let res = login(&e.gw, creds(&e, "jdoe", PASSWORD)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body.as_object().unwrap().len(), 1);

    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_nbf = true;
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(support::SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "jdoe");
    assert_eq!(claims["name"], "jdoe");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 1800);
    assert!(iat.abs_diff(tokens::now()) <= 5);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    let res = client()
        .get(e.gw.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(e.up.last().one("x-auth-user").as_deref(), Some("jdoe"));
}

#[tokio::test]
async fn every_login_failure_is_the_same_bare_401() {
    let e = env().await;
    let mut answers = Vec::new();
    // Credentials failures (captcha valid).
    for (user, password) in [
        ("nobody", PASSWORD),
        ("retired", PASSWORD),
        ("jdoe", "wrong"),
        ("nohash", ""),
        ("", PASSWORD),
    ] {
        answers.push((
            user.to_string(),
            snapshot(login(&e.gw, creds(&e, user, password)).await).await,
        ));
    }
    // Captcha failures (credentials valid).
    answers.push((
        "missing captcha".into(),
        snapshot(login(&e.gw, json!({"UserName": "jdoe", "Password": PASSWORD})).await).await,
    ));
    answers.push((
        "empty captcha".into(),
        snapshot(
            login(
                &e.gw,
                json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": ""}),
            )
            .await,
        )
        .await,
    ));
    answers.push((
        "invalid captcha".into(),
        snapshot(
            login(
                &e.gw,
                json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": "forged"}),
            )
            .await,
        )
        .await,
    ));
    let spent = captcha(&e.fake);
    let ok = login(
        &e.gw,
        json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": spent}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    answers.push((
        "replayed captcha".into(),
        snapshot(
            login(
                &e.gw,
                json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": spent}),
            )
            .await,
        )
        .await,
    ));
    e.fake.set_mode(Mode::Status(500));
    answers.push((
        "siteverify 500".into(),
        snapshot(login(&e.gw, creds(&e, "jdoe", PASSWORD)).await).await,
    ));
    e.fake.set_mode(Mode::Garbage);
    answers.push((
        "siteverify garbage".into(),
        snapshot(login(&e.gw, creds(&e, "jdoe", PASSWORD)).await).await,
    ));
    e.fake.set_mode(Mode::Slow(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    answers.push((
        "siteverify slow".into(),
        snapshot(login(&e.gw, creds(&e, "jdoe", PASSWORD)).await).await,
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the siteverify timeout bounds the login"
    );

    assert_all_the_same_bare_401(&answers);
}

#[tokio::test]
async fn missing_captcha_never_calls_siteverify_and_remoteip_is_sent() {
    let e = env().await;
    // Both are refused with the bare 401 by the gateway itself, before any siteverify call.
    let missing = login(&e.gw, json!({"UserName": "jdoe", "Password": PASSWORD})).await;
    assert_eq!(missing.status(), 401, "missing captcha");
    let blank = login(
        &e.gw,
        json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": "   "}),
    )
    .await;
    assert_eq!(blank.status(), 401, "blank captcha");
    assert_eq!(e.fake.calls(), 0);
    assert_eq!(
        login(&e.gw, creds(&e, "jdoe", PASSWORD)).await.status(),
        200
    );
    let sent = e.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["remoteip"], "127.0.0.1");
    assert_eq!(sent[0]["secret"], support::turnstile::PASS_SECRET);
    assert!(sent[0]["idempotency_key"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn captcha_is_checked_before_the_user_store() {
    // A store that cannot answer (users file missing) gives 503 once the captcha passed...
    let users = UsersFile::new("");
    std::fs::remove_file(&users.path).unwrap();
    let e = env_with(users).await;
    assert_eq!(
        login(&e.gw, creds(&e, "jdoe", PASSWORD)).await.status(),
        503
    );
    // ...but a failed captcha is a 401 without ever reaching the store.
    let res = login(
        &e.gw,
        json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": "forged"}),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn names_and_fields_are_case_insensitive_and_the_path_too() {
    let e = env().await;
    let body = json!({"userName": "JDOE", "password": PASSWORD, "captchaToken": captcha(&e.fake)});
    let res = client()
        .post(e.gw.url("/API/auth"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let claims = unverified_claims(&token_of(res).await);
    assert_eq!(
        claims["sub"], "jdoe",
        "the stored spelling, not the typed one"
    );
}

#[tokio::test]
async fn aspnet_identity_hashes_log_in() {
    let e = env().await;
    assert_eq!(
        login(&e.gw, creds(&e, "legacy2", ASPNET_PASSWORD))
            .await
            .status(),
        200
    );
    assert_eq!(
        login(&e.gw, creds(&e, "legacy3", ASPNET_PASSWORD))
            .await
            .status(),
        200
    );
    assert_eq!(
        login(&e.gw, creds(&e, "legacy3", "My password"))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn extra_claims_from_the_users_file_reach_the_token() {
    let e = env().await;
    let res = login(&e.gw, creds(&e, "admin", PASSWORD)).await;
    assert_eq!(res.status(), 200);
    let claims = unverified_claims(&token_of(res).await);
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["groups"], json!(["a", "b"]));
    assert_eq!(claims["sub"], "Admin");
}

#[tokio::test]
async fn malformed_wrong_type_and_oversized_bodies() {
    let e = env().await;
    let post = |body: Vec<u8>, ct: &'static str| {
        client()
            .post(e.gw.url("/api/Auth"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for (body, ct, want) in [
        (b"{not json".to_vec(), "application/json", 400),
        (b"[]".to_vec(), "application/json", 400),
        (br#"{"UserName": 5}"#.to_vec(), "application/json", 400),
        (b"".to_vec(), "application/json", 400),
        (br#"{"UserName":"jdoe"}"#.to_vec(), "text/plain", 400),
        (
            b"UserName=jdoe".to_vec(),
            "application/x-www-form-urlencoded",
            400,
        ),
        (vec![b' '; 17 * 1024], "application/json", 413),
    ] {
        let res = post(body, ct).await.unwrap();
        assert_eq!(res.status(), want, "{ct}");
        assert!(res.bytes().await.unwrap().is_empty(), "nothing echoed back");
    }
    // A body that lies about its length is still cut at the limit (chunked, no Content-Length).
    let chunks =
        futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let res = client()
        .post(e.gw.url("/api/Auth"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(e.fake.calls(), 0);
}

#[tokio::test]
async fn login_path_only_accepts_post() {
    let e = env().await;
    let res = client().get(e.gw.url("/api/Auth")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers()["allow"].to_str().unwrap().contains("POST"));
}

#[tokio::test]
async fn users_file_changes_apply_without_restart_and_broken_files_are_ignored() {
    let hash = argon2(PASSWORD);
    let e = env_with(UsersFile::new(&user("first", &hash, true))).await;
    assert_eq!(
        login(&e.gw, creds(&e, "second", PASSWORD)).await.status(),
        401
    );
    e.users
        .rewrite(&(user("first", &hash, true) + &user("second", &hash, true)));
    let step = Duration::from_millis(100);
    let second_logs_in =
        || async { login(&e.gw, creds(&e, "second", PASSWORD)).await.status() == 200 };
    assert!(
        eventually(Duration::from_secs(5), step, second_logs_in).await,
        "the new user can log in after the file changed"
    );
    // A broken file keeps the last good copy: checked across several reload intervals (100 ms), not once
    // after a guess of how long the poller takes.
    e.users.rewrite("[[users]]\nname = ");
    let kept = holds_for(Duration::from_millis(500), step, second_logs_in).await;
    assert!(
        kept.is_ok(),
        "the broken file replaced the good copy (check {kept:?})"
    );
    // Deactivating a user takes effect too.
    e.users
        .rewrite(&(user("first", &hash, true) + &user("second", &hash, false)));
    let refused = eventually(Duration::from_secs(5), step, || async {
        login(&e.gw, creds(&e, "second", PASSWORD)).await.status() == 401
    })
    .await;
    assert!(
        refused,
        "the deactivated user is refused after the file changed"
    );
}

#[tokio::test]
async fn saturated_hash_pool_answers_503_and_proxied_traffic_flows() {
    let hash = argon2(PASSWORD);
    let users = UsersFile::new(&user("jdoe", &hash, true));
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    // All twelve come from one address: let them past the per-address siteverify cap, to reach the pool.
    let pool =
        "[login.hashing]\nmax_concurrent = 1\nmax_queue = 1\n[login.turnstile]\nmax_per_ip = 64\n";
    let gw = TestGateway::start(&[
        &users.login_toml(&fake.url()),
        pool,
        &route("/", &up.url(), ""),
    ])
    .await;
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let t = format!("0.pool-{i}");
        fake.add_valid_token(t.clone());
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            login(
                &gw,
                json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": t}),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    // Proxied traffic is served while the logins queue.
    let res = client()
        .get(gw.url("/x"))
        .bearer_auth(tokens::valid("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn repeated_failures_throttle_the_user_with_the_same_401_and_the_ip_with_429() {
    let hash = argon2(PASSWORD);
    let users = UsersFile::new(&(user("jdoe", &hash, true) + &user("other", &hash, true)));
    let fake = FakeTurnstile::start().await;
    let limits = "[login.throttle]\nuser_max_failures = 3\nuser_window = \"1h\"\nip_max_failures = 8\nip_window = \"1h\"\n";
    let gw = TestGateway::start(&[&users.login_toml(&fake.url()), limits]).await;
    let e_creds = |u: &str, p: &str| {
        let t = captcha(&fake);
        json!({"UserName": u, "Password": p, "CaptchaToken": t})
    };
    for _ in 0..3 {
        assert_eq!(login(&gw, e_creds("jdoe", "wrong")).await.status(), 401);
    }
    // The user name is throttled: even the right password gets the same bare 401.
    let throttled = snapshot(login(&gw, e_creds("jdoe", PASSWORD)).await).await;
    let wrong = snapshot(login(&gw, e_creds("other", "wrong")).await).await;
    assert_eq!(throttled, wrong);
    // Another user from the same IP still logs in, and that does not reset jdoe.
    assert_eq!(login(&gw, e_creds("other", PASSWORD)).await.status(), 200);
    assert_eq!(login(&gw, e_creds("jdoe", PASSWORD)).await.status(), 401);
    // The IP has now failed 6 times; two more reach its limit of 8, then 429 with Retry-After.
    for _ in 0..2 {
        assert_eq!(login(&gw, e_creds("nobody", "x")).await.status(), 401);
    }
    let calls_before = fake.calls();
    let res = login(&gw, e_creds("other", PASSWORD)).await;
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        fake.calls(),
        calls_before,
        "a throttled client never reaches siteverify"
    );
}

#[tokio::test]
async fn a_trickled_login_body_times_out_with_408() {
    let users = UsersFile::new(&user("jdoe", &argon2(PASSWORD), true));
    let fake = FakeTurnstile::start().await;
    let gw = TestGateway::start(&[
        &users.login_toml(&fake.url()),
        "[login]\nbody_timeout = \"300ms\"\n",
    ])
    .await;
    let head = "POST /api/Auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"UserName\":";
    let started = std::time::Instant::now();
    let answer = support::raw_request(gw.addr, head.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(support::raw_status(&answer), 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.calls(), 0);
}

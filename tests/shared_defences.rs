//! Issue 13, shared state: several gateway instances sharing one real Redis act as one gateway for the
//! login's defences (throttles, captcha single use), and an outage of Redis never turns into a 401, never
//! into unthrottled logins, and never touches proxied requests.

mod support;

use std::time::Duration;
use support::fixtures::{captcha, ASPNET_PASSWORD, ASPNET_V2};
use support::http::{get_status, login_body, login_status, post_login, token_of};
use support::metrics::{sample, scrape};
use support::shared_store::{delete_prefix, keys, pttl, redis_url, unique_prefix, OwnRedis};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::wait::eventually;
use support::{client, route, user, TestGateway, UsersFile};

/// A login scene: users `victim` and `other` (password [`ASPNET_PASSWORD`], a fast hash), a fake
/// siteverify and an echo upstream at `/`.
struct Scene {
    users: UsersFile,
    fake: FakeTurnstile,
    up: Upstream,
}

impl Scene {
    async fn new() -> Scene {
        Scene {
            users: UsersFile::new(
                &(user("victim", ASPNET_V2, true) + &user("other", ASPNET_V2, true)),
            ),
            fake: FakeTurnstile::start().await,
            up: Upstream::echo().await,
        }
    }

    /// A gateway of this scene with `extra` TOML (throttle limits, `[shared]`).
    async fn gateway(&self, extra: &str) -> TestGateway {
        TestGateway::start(&[
            &self.users.login_toml(&self.fake.url()),
            extra,
            &route("/", &self.up.url(), ""),
        ])
        .await
    }

    /// Three gateways of this scene sharing `url` under `prefix`.
    async fn three(&self, url: &str, prefix: &str, extra: &str) -> Vec<TestGateway> {
        let shared = shared_toml(url, prefix, "");
        let mut gws = Vec::new();
        for _ in 0..3 {
            gws.push(self.gateway(&format!("{extra}{shared}")).await);
        }
        gws
    }

    /// One login with a fresh captcha token.
    async fn login(&self, gw: &TestGateway, name: &str, password: &str) -> u16 {
        login_status(gw, name, password, &captcha(&self.fake)).await
    }
}

fn shared_toml(url: &str, prefix: &str, extra: &str) -> String {
    format!("[shared]\nurl = \"{url}\"\nprefix = \"{prefix}\"\n{extra}\n")
}

fn throttle_toml(ip_max: u32, user_max: u32) -> String {
    format!(
        "[login.throttle]\nip_max_failures = {ip_max}\nip_window = \"1h\"\nuser_max_failures = {user_max}\nuser_window = \"1h\"\n"
    )
}

/// Password hashes verified by these gateways together.
async fn verifications(gws: &[&TestGateway]) -> f64 {
    let mut total = 0.0;
    for gw in gws {
        total += sample(&scrape(gw).await, "gateway_password_verifications_total");
    }
    total
}

async fn readyz(gw: &TestGateway) -> u16 {
    let addr = gw.running.metrics_addr.expect("operations listener");
    get_status(&client(), format!("http://{addr}/readyz"), None).await
}

/// `n` wrong-password guesses against `victim`, spread round-robin over `gws`; their statuses.
async fn brute_force(scene: &Scene, gws: &[&TestGateway], n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(scene.login(gws[i % gws.len()], "victim", "wrong").await);
    }
    statuses
}

#[tokio::test]
async fn brute_force_round_robin_over_three_instances_is_throttled_as_one() {
    let Some(url) = redis_url("brute_force_round_robin_over_three_instances_is_throttled_as_one")
    else {
        return;
    };
    let prefix = unique_prefix("brute");
    let scene = Scene::new().await;
    let limits = throttle_toml(1000, 5);

    // One instance, no Redis: the reference count of verified guesses.
    let single = scene.gateway(&limits).await;
    let statuses = brute_force(&scene, &[&single], 15).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let reference = verifications(&[&single]).await;
    assert_eq!(
        reference, 5.0,
        "one instance verifies user_max_failures guesses"
    );

    // Three instances sharing Redis, the same guesses spread over them.
    let gws = scene.three(&url, &prefix, &limits).await;
    let all: Vec<&TestGateway> = gws.iter().collect();
    let statuses = brute_force(&scene, &all, 15).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(
        verifications(&all).await,
        reference,
        "three instances together verify as many guesses as one"
    );
    // The right password is refused too while the account is throttled, on every instance alike.
    for gw in &all {
        assert_eq!(scene.login(gw, "victim", ASPNET_PASSWORD).await, 401);
    }
    assert_eq!(verifications(&all).await, reference);
    // Other accounts are not affected, and a success clears nothing of the victim's budget.
    assert_eq!(scene.login(all[1], "other", ASPNET_PASSWORD).await, 200);

    // Every key the logins left carries a TTL: nothing grows without bound.
    let left = keys(&url, &prefix).await;
    assert!(!left.is_empty(), "the shared throttle lives in Redis");
    for key in &left {
        let ttl = pttl(&url, key).await;
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
    let metrics = scrape(all[0]).await;
    assert_eq!(sample(&metrics, "gateway_shared_store_up"), 1.0);
    assert!(
        sample(
            &metrics,
            "gateway_shared_store_duration_seconds_count{operation=\"login_admit\"}"
        ) >= 5.0
    );
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn per_address_limit_is_shared_by_the_instances() {
    let Some(url) = redis_url("per_address_limit_is_shared_by_the_instances") else {
        return;
    };
    let prefix = unique_prefix("ip");
    let scene = Scene::new().await;
    let gws = scene.three(&url, &prefix, &throttle_toml(6, 1000)).await;
    // Six guesses under different names from one address, two per instance: all 401.
    for i in 0..6 {
        let name = format!("nobody{i}");
        assert_eq!(scene.login(&gws[i % 3], &name, "wrong").await, 401);
    }
    // The address is now out of guesses on every instance, even with the right password.
    for gw in &gws {
        let res = post_login(
            gw,
            &login_body("victim", ASPNET_PASSWORD, &captcha(&scene.fake)),
        )
        .await;
        assert_eq!(res.status(), 429);
        let wait: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait >= 1, "Retry-After {wait}");
    }
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_captcha_used_on_one_instance_is_refused_on_the_others_without_siteverify() {
    let Some(url) = redis_url("a_captcha_used_on_one_instance_is_refused_on_the_others") else {
        return;
    };
    let prefix = unique_prefix("captcha");
    let scene = Scene::new().await;
    let gws = scene.three(&url, &prefix, "").await;
    let token = captcha(&scene.fake);
    let res = post_login(&gws[0], &login_body("victim", ASPNET_PASSWORD, &token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(scene.fake.calls(), 1);
    for gw in &gws[1..] {
        assert_eq!(
            login_status(gw, "victim", ASPNET_PASSWORD, &token).await,
            401
        );
    }
    // Also on the instance that redeemed it.
    assert_eq!(
        login_status(&gws[0], "victim", ASPNET_PASSWORD, &token).await,
        401
    );
    assert_eq!(
        scene.fake.calls(),
        1,
        "replays were refused from Redis, not by a second siteverify call"
    );
    // The claim is a digest with the token's validity as TTL, never the token itself.
    let left = keys(&url, &prefix).await;
    let claims: Vec<&String> = left.iter().filter(|k| k.contains(":captcha:")).collect();
    assert_eq!(claims.len(), 1, "{left:?}");
    assert!(!claims[0].contains(&token));
    let ttl = pttl(&url, claims[0]).await;
    assert!(ttl > 0 && ttl <= 300_000, "{ttl}");
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn redis_down_logins_answer_503_tokens_still_proxied_and_recovery_needs_no_restart() {
    if redis_url("redis_down_logins_answer_503").is_none() {
        return;
    }
    let mut redis = OwnRedis::start().await;
    // The gateway starts while Redis is down: start-up does not wait for it.
    redis.stop();
    let scene = Scene::new().await;
    let gw = scene
        .gateway(&shared_toml(&redis.url(), "gw", "timeout = \"200ms\""))
        .await;
    assert_eq!(
        readyz(&gw).await,
        503,
        "not ready before the store answered"
    );
    let res = post_login(
        &gw,
        &login_body("victim", ASPNET_PASSWORD, &captcha(&scene.fake)),
    )
    .await;
    assert_eq!(res.status(), 503, "never 401, never unthrottled");
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(scene.fake.calls(), 0, "nothing reached siteverify");

    redis.restart().await;
    let back = eventually(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async { readyz(&gw).await == 200 },
    )
    .await;
    assert!(back, "ready once the store answers");
    let res = post_login(
        &gw,
        &login_body("victim", ASPNET_PASSWORD, &captcha(&scene.fake)),
    )
    .await;
    assert_eq!(res.status(), 200);
    let token = token_of(res).await;

    // Redis goes away: logins 503, the valid token is still proxied.
    redis.stop();
    let status = scene.login(&gw, "victim", ASPNET_PASSWORD).await;
    assert_eq!(status, 503);
    let wrong = scene.login(&gw, "victim", "wrong").await;
    assert_eq!(
        wrong, 503,
        "a guess during the outage is not checked at all"
    );
    assert_eq!(
        get_status(&client(), gw.url("/anything"), Some(&token)).await,
        200
    );
    let metrics = scrape(&gw).await;
    assert_eq!(sample(&metrics, "gateway_shared_store_up"), 0.0);
    assert!(
        sample(
            &metrics,
            "gateway_shared_store_errors_total{operation=\"login_admit\"}"
        ) >= 2.0
    );
    assert!(
        sample(
            &metrics,
            "gateway_logins_total{outcome=\"shared_store_error\"}"
        ) >= 2.0
    );

    // Redis comes back empty: logins work again without a restart.
    redis.restart().await;
    let recovered = eventually(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async { scene.login(&gw, "victim", ASPNET_PASSWORD).await == 200 },
    )
    .await;
    assert!(recovered, "logins work again once Redis is back");
    assert_eq!(sample(&scrape(&gw).await, "gateway_shared_store_up"), 1.0);
}

#[tokio::test]
async fn on_failure_local_keeps_logins_working_and_throttled_while_redis_is_down() {
    if redis_url("on_failure_local_keeps_logins_working").is_none() {
        return;
    }
    let mut redis = OwnRedis::start().await;
    let scene = Scene::new().await;
    let gw = scene
        .gateway(&format!(
            "{}{}",
            throttle_toml(1000, 3),
            shared_toml(&redis.url(), "gw", "on_failure = \"local\"")
        ))
        .await;
    assert_eq!(scene.login(&gw, "victim", ASPNET_PASSWORD).await, 200);
    redis.stop();
    assert_eq!(
        scene.login(&gw, "victim", ASPNET_PASSWORD).await,
        200,
        "the local tables serve while Redis is down"
    );
    // Still throttled: this instance's own limit applies.
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..6 {
            s.push(scene.login(&gw, "other", "wrong").await);
        }
        s
    };
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let metrics = scrape(&gw).await;
    // Two correct logins, then three verified guesses; the other three were throttled before hashing.
    assert_eq!(
        sample(&metrics, "gateway_password_verifications_total"),
        5.0
    );
    assert!(
        sample(
            &metrics,
            "gateway_shared_store_fallbacks_total{operation=\"login_admit\"}"
        ) >= 7.0
    );
    assert_eq!(readyz(&gw).await, 200);
}

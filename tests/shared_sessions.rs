//! Issue 13, ending sessions across instances: three gateways sharing one real Redis refuse a logged-out
//! or revoked token everywhere within a second, an instance started later refuses it from its first ready
//! moment, and a Redis outage makes logout 503 without touching valid tokens; an emptied Redis is refilled.

mod support;

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::http::get_status;
use support::process::gateway_command;
use support::shared_store::{delete_prefix, redis_url, unique_prefix, OwnRedis};
use support::tokens;
use support::upstream::Upstream;
use support::wait::eventually;
use support::{client, route, TestGateway};

/// A token for `user` with a `jti` no other test uses.
fn token(user: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let jti = format!(
        "shared-sessions-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    tokens::valid_with(user, &json!({ "jti": jti }))
}

fn shared_toml(url: &str, prefix: &str) -> String {
    format!("[shared]\nurl = \"{url}\"\nprefix = \"{prefix}\"\nreconcile_interval = \"1s\"\n")
}

/// A gateway with logout on, sharing `url` under `prefix`, in front of `up`; returned once /readyz is 200
/// (the revocations are loaded).
async fn instance(up: &Upstream, url: &str, prefix: &str) -> TestGateway {
    let gw = TestGateway::start(&[&format!(
        "[login]\nlogout_enabled = true\n{}{}",
        shared_toml(url, prefix),
        route("/", &up.url(), "")
    )])
    .await;
    let ready = eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        readyz(&gw)
    })
    .await;
    assert!(ready, "instance never became ready");
    gw
}

async fn readyz(gw: &TestGateway) -> bool {
    let addr = gw.running.metrics_addr.expect("operations listener");
    get_status(&client(), format!("http://{addr}/readyz"), None).await == 200
}

async fn logout(gw: &TestGateway, token: &str) -> u16 {
    client()
        .post(gw.url("/api/Auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// How long until `token` gets 401 on `gw`, polling every 5 ms for at most `limit`.
async fn refused_within(
    gw: &TestGateway,
    token: &str,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let c = client();
    while since.elapsed() < limit {
        if get_status(&c, gw.url("/"), Some(token)).await == 401 {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

// Multi-threaded: the test blocks on the `gateway revoke` child process while the instances keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_revoke_reach_every_instance_within_a_second() {
    let Some(url) = redis_url("logout_and_revoke_reach_every_instance_within_a_second") else {
        return;
    };
    let prefix = unique_prefix("sessions");
    let up = Upstream::echo().await;
    let a = instance(&up, &url, &prefix).await;
    let b = instance(&up, &url, &prefix).await;
    let c = instance(&up, &url, &prefix).await;
    let http = client();
    let mine = token("alice");
    for gw in [&a, &b, &c] {
        assert_eq!(get_status(&http, gw.url("/"), Some(&mine)).await, 200);
    }
    let at = Instant::now();
    assert_eq!(logout(&a, &mine).await, 204);
    assert_eq!(get_status(&http, a.url("/"), Some(&mine)).await, 401);
    for (name, gw) in [("B", &b), ("C", &c)] {
        let took = refused_within(gw, &mine, at, Duration::from_secs(1)).await;
        let took = took.unwrap_or_else(|| panic!("logout on A not seen on {name} within 1 s"));
        println!("propagation: logout on A -> 401 on {name} after {took:?}");
    }

    // `gateway revoke --user` (the real binary) writes to Redis: alice's tokens end everywhere, bob's stay.
    let (alice, bob) = (token("alice"), token("bob"));
    let dir = tempfile::tempdir().unwrap();
    let config = support::process::write_config(dir.path(), &shared_toml(&url, &prefix));
    let at = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        gateway_command()
            .args(["revoke", "--user", "alice", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, gw) in [("A", &a), ("B", &b), ("C", &c)] {
        let took = refused_within(gw, &alice, at, Duration::from_secs(3)).await;
        assert!(took.is_some(), "revoke --user not seen on {name}");
        assert_eq!(
            get_status(&http, gw.url("/"), Some(&bob)).await,
            200,
            "{name}"
        );
    }

    // An instance started after both refuses both tokens from its first ready moment.
    let d = instance(&up, &url, &prefix).await;
    assert_eq!(get_status(&http, d.url("/"), Some(&mine)).await, 401);
    assert_eq!(get_status(&http, d.url("/"), Some(&alice)).await, 401);
    assert_eq!(get_status(&http, d.url("/"), Some(&bob)).await, 200);
    for gw in [a, b, c, d] {
        gw.stop().await;
    }
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn redis_down_logout_is_503_tokens_still_work_and_an_emptied_redis_is_refilled() {
    if redis_url("redis_down_logout_is_503_tokens_still_work_and_an_emptied_redis_is_refilled")
        .is_none()
    {
        return;
    }
    let mut redis = OwnRedis::start().await;
    let up = Upstream::echo().await;
    let a = instance(&up, &redis.url(), "gw").await;
    let b = instance(&up, &redis.url(), "gw").await;
    let http = client();
    let before = token("alice");
    assert_eq!(logout(&a, &before).await, 204);
    // B learns of the logout through Redis; stopping Redis before it has would test nothing but the race.
    let learned = eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { get_status(&http, b.url("/"), Some(&before)).await == 401 },
    )
    .await;
    assert!(learned, "the logout on A never reached B");
    let (kept, other) = (token("bob"), token("carol"));

    redis.stop();
    // A logout that cannot reach the store is 503 and revokes nothing, not even locally.
    assert_eq!(logout(&a, &other).await, 503);
    assert_eq!(get_status(&http, a.url("/"), Some(&other)).await, 200);
    // Valid tokens are never blocked by the store; revoked ones stay refused.
    for gw in [&a, &b] {
        assert_eq!(get_status(&http, gw.url("/"), Some(&kept)).await, 200);
        assert_eq!(get_status(&http, gw.url("/"), Some(&before)).await, 401);
    }

    // Back, empty: without restarts, logouts work and reach the other instance again.
    redis.restart().await;
    let worked = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        let (a, other) = (&a, &other);
        async move { logout(a, other).await == 204 }
    })
    .await;
    assert!(worked, "logout did not recover after Redis came back");
    let seen = eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { get_status(&http, b.url("/"), Some(&other)).await == 401 },
    )
    .await;
    assert!(
        seen,
        "a logout after the outage did not reach the other instance"
    );
    // The revocation made before the outage was written back: a new instance learns it from Redis alone.
    let c = {
        let seen = eventually(
            Duration::from_secs(5),
            Duration::from_millis(100),
            || async {
                let c = instance(&up, &redis.url(), "gw").await;
                let refused = get_status(&http, c.url("/"), Some(&before)).await == 401;
                c.stop().await;
                refused
            },
        )
        .await;
        assert!(
            seen,
            "the emptied Redis never got the earlier revocation back"
        );
        instance(&up, &redis.url(), "gw").await
    };
    assert_eq!(get_status(&http, c.url("/"), Some(&kept)).await, 200);
    for gw in [a, b, c] {
        gw.stop().await;
    }
}

//! The login defences in the shared store: the same token buckets as `auth::throttle` (reserve a slot before
//! the work, give it back when the attempt was not a guess, clear the account's bucket on success) and
//! captcha single use (`SET NX PX`), each step one Lua script so it is atomic on the server. The gateway
//! never reads a value and writes it back.
//!
//! A bucket is a hash `{t: tokens left, at: ms}` that refills at `max / window`; a full bucket is deleted
//! (no entry means full), and every write sets a TTL of the time the bucket needs to refill completely, so
//! nothing outlives its window. Time comes from the Redis server (`TIME`), so every instance sees one clock.
//!
//! One login makes at most three round trips: [`admit`] (the IP slot and the captcha claim), [`reserve`]
//! (the account's slot), and [`settle`] (giving slots back, only when the attempt was not a guess).

use super::{SharedError, SharedStore};
use std::sync::LazyLock;
use std::time::Duration;

/// One bucket: its key and limit (`max == 0` turns it off).
#[derive(Debug, Clone)]
pub struct Bucket {
    pub key: String,
    pub max: u32,
    pub window: Duration,
}

/// What [`admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The IP slot is taken and the captcha claimed.
    Admitted,
    /// The IP has no slot left for this long.
    Throttled(Duration),
    /// The IP slot is taken, but the captcha was claimed before (here or on another instance).
    Replayed,
}

/// What [`settle`] gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSettle {
    /// Nothing: the attempt was a guess, or no slot was taken.
    Keep,
    /// The slot goes back (the attempt was not a guess).
    Release,
    /// The bucket is forgotten (a successful login).
    Clear,
}

/// Functions every script uses: the server's clock and one bucket's arithmetic.
const BUCKET_LUA: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function level(key, max, window, now)
  local b = redis.call('HMGET', key, 't', 'at')
  if not b[1] then return max end
  local tokens = tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * max / window
  if tokens > max then tokens = max end
  return tokens
end
local function store(key, tokens, now, max, window)
  if tokens >= max then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 't', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((max - tokens) * window / max) + 1)
end
local function reserve(key, max, window, now)
  if max <= 0 then return 0 end
  local tokens = level(key, max, window, now)
  if tokens < 1 then
    return math.max(1, math.ceil((1 - tokens) * window / max))
  end
  store(key, tokens - 1, now, max, window)
  return 0
end
local function release(key, max, window, now)
  if max <= 0 or redis.call('EXISTS', key) == 0 then return end
  store(key, math.min(max, level(key, max, window, now) + 1), now, max, window)
end
"#;

/// KEYS: ip bucket, captcha key. ARGV: ip max, ip window ms, captcha ttl ms ("0": no captcha to claim).
/// Returns {0, 0} admitted, {1, wait ms} throttled, {2, 0} replayed.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{BUCKET_LUA}
local now = now_ms()
local wait = reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
if wait > 0 then return {{1, wait}} end
if ARGV[3] ~= '0' and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return {{2, 0}}
end
return {{0, 0}}
"#
    ))
});

/// KEYS: bucket. ARGV: max, window ms. Returns 0 reserved, else the wait in ms.
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{BUCKET_LUA}
return reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())
"#
    ))
});

/// KEYS: ip bucket, user bucket, captcha key. ARGV: release ip (0/1), ip max, ip window ms,
/// user (0 keep, 1 release, 2 clear), user max, user window ms, unclaim captcha (0/1).
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{BUCKET_LUA}
local now = now_ms()
if ARGV[1] == '1' then release(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now) end
if ARGV[4] == '1' then
  release(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), now)
elseif ARGV[4] == '2' then
  redis.call('DEL', KEYS[2])
end
if ARGV[7] == '1' then redis.call('DEL', KEYS[3]) end
return 0
"#
    ))
});

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Takes the IP's slot and, when given, claims the captcha (`key`, kept for `ttl`): round trip 1.
pub async fn admit(
    store: &SharedStore,
    ip: &Bucket,
    captcha: Option<(&str, Duration)>,
) -> Result<Admission, SharedError> {
    let mut conn = store.connection();
    let mut inv = ADMIT.prepare_invoke();
    inv.key(&ip.key)
        .key(captcha.map_or(ip.key.as_str(), |(k, _)| k))
        .arg(ip.max)
        .arg(millis(ip.window))
        .arg(captcha.map_or(0, |(_, ttl)| millis(ttl)));
    let (code, wait): (i64, i64) = store
        .call(
            "login_admit",
            async move { inv.invoke_async(&mut conn).await },
        )
        .await?;
    Ok(match code {
        0 => Admission::Admitted,
        1 => Admission::Throttled(Duration::from_millis(wait.max(1) as u64)),
        _ => Admission::Replayed,
    })
}

/// Takes one slot of `bucket`, or says how long until one is free: round trip 2 (the account).
pub async fn reserve(
    store: &SharedStore,
    bucket: &Bucket,
) -> Result<Result<(), Duration>, SharedError> {
    let mut conn = store.connection();
    let mut inv = RESERVE.prepare_invoke();
    inv.key(&bucket.key)
        .arg(bucket.max)
        .arg(millis(bucket.window));
    let wait: i64 = store
        .call(
            "login_reserve",
            async move { inv.invoke_async(&mut conn).await },
        )
        .await?;
    Ok(if wait <= 0 {
        Ok(())
    } else {
        Err(Duration::from_millis(wait as u64))
    })
}

/// Gives back what an attempt that was not a guess took: round trip 3, skipped when there is nothing to do.
pub async fn settle(
    store: &SharedStore,
    ip: Option<&Bucket>,
    user: Option<(&Bucket, UserSettle)>,
    unclaim: Option<&str>,
) -> Result<(), SharedError> {
    let user = user.filter(|(_, s)| *s != UserSettle::Keep);
    if ip.is_none() && user.is_none() && unclaim.is_none() {
        return Ok(());
    }
    // Unused slots still need a key name; the flags make the script leave them alone.
    let filler = store.key(&["unused"]);
    let mut conn = store.connection();
    let mut inv = SETTLE.prepare_invoke();
    inv.key(ip.map_or(filler.as_str(), |b| b.key.as_str()))
        .key(user.map_or(filler.as_str(), |(b, _)| b.key.as_str()))
        .key(unclaim.unwrap_or(filler.as_str()))
        .arg(u8::from(ip.is_some()))
        .arg(ip.map_or(0, |b| b.max))
        .arg(ip.map_or(1, |b| millis(b.window)))
        .arg(match user.map(|(_, s)| s) {
            Some(UserSettle::Release) => 1,
            Some(UserSettle::Clear) => 2,
            _ => 0,
        })
        .arg(user.map_or(0, |(b, _)| b.max))
        .arg(user.map_or(1, |(b, _)| millis(b.window)))
        .arg(u8::from(unclaim.is_some()));
    store
        .call("login_settle", async move {
            inv.invoke_async::<i64>(&mut conn).await
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnFailure, SharedConfig};
    use crate::metrics::Metrics;
    use std::sync::Arc;

    /// A store on the test Redis under a fresh prefix, or None (skipped) without `GATEWAY_TEST_REDIS_URL`.
    fn store(test: &str) -> Option<Arc<SharedStore>> {
        let Ok(url) = std::env::var("GATEWAY_TEST_REDIS_URL") else {
            println!("SKIPPED (GATEWAY_TEST_REDIS_URL unset): {test}");
            return None;
        };
        let cfg = SharedConfig {
            url,
            prefix: format!("gwunit-{test}-{}", uuid::Uuid::new_v4()),
            timeout: Duration::from_secs(2),
            on_failure: OnFailure::Closed,
            reconcile_interval: crate::defaults::SHARED_RECONCILE_INTERVAL,
        };
        Some(SharedStore::start(&cfg, Metrics::new()).unwrap())
    }

    async fn cleanup(store: &SharedStore) {
        let mut conn = store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(store.key(&["*"]))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    async fn pttl(store: &SharedStore, key: &str) -> i64 {
        let mut conn = store.connection();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    fn hour_bucket(store: &SharedStore, name: &str, max: u32) -> Bucket {
        Bucket {
            key: store.key(&["t", name]),
            max,
            window: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn reserve_takes_at_most_max_and_release_gives_one_back() {
        let Some(store) = store("reserve") else {
            return;
        };
        let b = hour_bucket(&store, "k", 3);
        for _ in 0..3 {
            assert_eq!(reserve(&store, &b).await.unwrap(), Ok(()));
        }
        let wait = reserve(&store, &b).await.unwrap().expect_err("throttled");
        // One token refills in window / max = 20 minutes.
        assert!(
            wait > Duration::from_secs(1100) && wait <= Duration::from_secs(1200),
            "{wait:?}"
        );
        let ttl = pttl(&store, &b.key).await;
        assert!(ttl > 0 && ttl <= 3_600_001, "TTL {ttl}");
        settle(&store, None, Some((&b, UserSettle::Release)), None)
            .await
            .unwrap();
        assert_eq!(reserve(&store, &b).await.unwrap(), Ok(()));
        assert!(reserve(&store, &b).await.unwrap().is_err());
        settle(&store, None, Some((&b, UserSettle::Clear)), None)
            .await
            .unwrap();
        assert_eq!(pttl(&store, &b.key).await, -2, "a cleared bucket is gone");
        cleanup(&store).await;
    }

    #[tokio::test]
    async fn parallel_reservations_admit_exactly_the_limit() {
        let Some(store) = store("parallel") else {
            return;
        };
        let b = Arc::new(hour_bucket(&store, "victim", 5));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (store, b) = (store.clone(), b.clone());
                tokio::spawn(async move { reserve(&store, &b).await.unwrap().is_ok() })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(admitted, 5);
        cleanup(&store).await;
    }

    #[tokio::test]
    async fn a_bucket_refills_and_a_full_one_is_not_stored() {
        let Some(store) = store("refill") else { return };
        // One token every 2 s.
        let b = Bucket {
            key: store.key(&["t", "slow"]),
            max: 2,
            window: Duration::from_secs(4),
        };
        assert_eq!(reserve(&store, &b).await.unwrap(), Ok(()));
        assert_eq!(reserve(&store, &b).await.unwrap(), Ok(()));
        assert!(reserve(&store, &b).await.unwrap().is_err());
        // The key lives only until the bucket would be full again.
        let ttl = pttl(&store, &b.key).await;
        assert!(ttl > 0 && ttl <= 4_001, "TTL {ttl}");
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(reserve(&store, &b).await.unwrap(), Ok(()), "refilled");
        // Giving back what was just taken leaves a bucket that is nearly full; giving back to a full one
        // deletes it rather than storing "full".
        settle(&store, Some(&b), None, None).await.unwrap();
        settle(&store, Some(&b), None, None).await.unwrap();
        assert_eq!(pttl(&store, &b.key).await, -2);
        // A limit of 0 is off: nothing is stored, nothing refused.
        let off = hour_bucket(&store, "off", 0);
        for _ in 0..5 {
            assert_eq!(reserve(&store, &off).await.unwrap(), Ok(()));
        }
        assert_eq!(pttl(&store, &off.key).await, -2);
        cleanup(&store).await;
    }

    #[tokio::test]
    async fn admit_claims_a_captcha_once_and_a_throttled_address_claims_nothing() {
        let Some(store) = store("admit") else { return };
        let ip = hour_bucket(&store, "ip", 2);
        let token = store.key(&["captcha", "a"]);
        let ttl = Duration::from_secs(300);
        assert_eq!(
            admit(&store, &ip, Some((&token, ttl))).await.unwrap(),
            Admission::Admitted
        );
        let left = pttl(&store, &token).await;
        assert!(left > 0 && left <= 300_000, "{left}");
        assert_eq!(
            admit(&store, &ip, Some((&token, ttl))).await.unwrap(),
            Admission::Replayed
        );
        let other = store.key(&["captcha", "b"]);
        assert!(matches!(
            admit(&store, &ip, Some((&other, ttl))).await.unwrap(),
            Admission::Throttled(_)
        ));
        assert_eq!(pttl(&store, &other).await, -2, "not claimed");
        // Giving back the IP slot and an unused claim.
        settle(&store, Some(&ip), None, Some(&token)).await.unwrap();
        assert_eq!(pttl(&store, &token).await, -2);
        assert_eq!(
            admit(&store, &ip, Some((&token, ttl))).await.unwrap(),
            Admission::Admitted
        );
        cleanup(&store).await;
    }
}

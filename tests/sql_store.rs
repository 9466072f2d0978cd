//! The SQL user store through the gateway over HTTP, against real PostgreSQL and MySQL/MariaDB servers
//! (`GATEWAY_TEST_POSTGRES_URL`, `GATEWAY_TEST_MYSQL_URL`; reported as SKIPPED when unset) and an embedded
//! SQLite file. Each test has its own schema/database with an ASP.NET Identity `AspNetUsers` table.
//!
//! The benchmark (`bench_login_latency_small_vs_large_table`, ignored by default) is run by
//! `bench/sql_login.sh`.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::fixtures::{captcha, ASPNET_PASSWORD as LEGACY_PASSWORD, ASPNET_V2, ASPNET_V3_NET7};
use support::http::{
    assert_all_the_same_bare_401, get_status, login_body, login_status, post_login, snapshot,
    token_of,
};
use support::sql::{Kind, Lockout, TestDb, User};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::wait::eventually as poll_until;
use support::{client, route, tokens, TestGateway};

/// Password of the argon2 test users. TEST FIXTURE.
const PASSWORD: &str = "correct horse battery staple";

fn argon2() -> &'static str {
    support::fixtures::argon2_cached(PASSWORD)
}

/// The users every test table starts with.
fn standard_users() -> Vec<User> {
    let a = argon2();
    vec![
        User::new("jdoe", a).phone("555-0100"),
        User::new("legacy2", ASPNET_V2),
        User::new("legacy3", ASPNET_V3_NET7),
        User::new("José", a),
        User::new("retired", a).activo(Some(false)),
        User::new("locked", a).lockout(Lockout::Future),
        User::new("unlocked", a).lockout(Lockout::Past),
        User::new("nohash", a).no_hash(),
        User::new("noflag", a).activo(None),
    ]
}

struct Env {
    // Field order = drop order: the gateway goes before its database.
    gw: TestGateway,
    fake: FakeTurnstile,
    up: Upstream,
    db: TestDb,
}

/// A database with the standard users and a gateway using it (plus extra TOML fragments); None when skipped.
async fn env(kind: Kind, test: &str, users_extra: &str, extra: &[&str]) -> Option<Env> {
    Some(start(standard_db(kind, test).await?, users_extra, extra).await)
}

/// `template` with each `{Identifier}` quoted for the database and `{$1}` replaced by its first bind
/// parameter, so test queries read as SQL whatever the dialect.
fn sql(db: &TestDb, template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("closed placeholder");
        out.push_str(&rest[..open]);
        out.push_str(&match &rest[open + 1..close] {
            "$1" => db.p(1),
            ident => db.q(ident),
        });
        rest = &rest[close + 1..];
    }
    out + rest
}

/// A fresh database holding the standard users; None when this kind of database is skipped.
async fn standard_db(kind: Kind, test: &str) -> Option<TestDb> {
    let db = TestDb::create(kind, test).await?;
    db.insert(&standard_users()).await;
    Some(db)
}

async fn start(db: TestDb, users_extra: &str, extra: &[&str]) -> Env {
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let login = login_toml(&fake);
    let users = db.users_toml(users_extra);
    let upstream = route("/", &up.url(), "");
    let mut fragments: Vec<&str> = vec![&login, &users, &upstream];
    fragments.extend_from_slice(extra);
    let gw = TestGateway::start(&fragments).await;
    Env { gw, fake, up, db }
}

fn login_toml(fake: &FakeTurnstile) -> String {
    format!(
        "[login]\nenabled = true\n[login.throttle]\nuser_max_failures = 100000\nip_max_failures = 100000\n[login.turnstile]\nsecret = \"{}\"\nsiteverify_url = \"{}\"\ntimeout = \"2s\"\n",
        support::turnstile::PASS_SECRET,
        fake.url()
    )
}

async fn login(e: &Env, user: &str, password: &str) -> reqwest::Response {
    post_login(&e.gw, &login_body(user, password, &captcha(&e.fake))).await
}

async fn status(e: &Env, user: &str, password: &str) -> u16 {
    login(e, user, password).await.status().as_u16()
}

/// The token's claims (signature checked with the test secret).
async fn claims_of(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    let token = token_of(res).await;
    jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(support::SECRET.as_bytes()),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .unwrap()
    .claims
}

/// Polls until a login as `user` gives `want`, for at most `limit`.
async fn eventually(e: &Env, user: &str, password: &str, want: u16, limit: Duration) -> bool {
    poll_until(limit, Duration::from_millis(100), || async {
        status(e, user, password).await == want
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------
// Cases, each run against every database (see the modules at the end).

async fn v2_v3_and_argon2_hashes_log_in(kind: Kind, test: &str) {
    let Some(e) = env(kind, test, "", &[]).await else {
        return;
    };
    let c = claims_of(login(&e, "jdoe", PASSWORD).await).await;
    assert_eq!(c["sub"], "jdoe");
    assert_eq!(c["name"], "jdoe");
    assert_eq!(status(&e, "legacy2", LEGACY_PASSWORD).await, 200);
    assert_eq!(status(&e, "legacy3", LEGACY_PASSWORD).await, 200);
    // Looked up by NormalizedUserName: any case, Unicode-normalised; the token carries the stored spelling.
    let c = claims_of(login(&e, "JDOE", PASSWORD).await).await;
    assert_eq!(c["sub"], "jdoe");
    let c = claims_of(login(&e, "jose\u{301}", PASSWORD).await).await;
    assert_eq!(c["sub"], "José");
    // A lockout that has ended does not matter.
    assert_eq!(status(&e, "unlocked", PASSWORD).await, 200);
    // The token opens protected routes.
    let token = token_of(login(&e, "legacy3", LEGACY_PASSWORD).await).await;
    assert_eq!(
        get_status(&client(), e.gw.url("/orders"), Some(&token)).await,
        200
    );
    assert_eq!(e.up.last().one("x-auth-user").as_deref(), Some("legacy3"));
}

async fn every_failure_is_the_same_bare_401(kind: Kind, test: &str) {
    let Some(e) = env(kind, test, "", &[]).await else {
        return;
    };
    let mut answers = Vec::new();
    for (what, user, password) in [
        ("unknown user", "nobody", PASSWORD),
        ("inactive (Activo = false)", "retired", PASSWORD),
        ("locked out (LockoutEnd ahead)", "locked", PASSWORD),
        ("wrong password (argon2)", "jdoe", "wrong"),
        ("wrong password (V3)", "legacy3", "My password"),
        ("wrong password (V2)", "legacy2", "my passworD"),
        ("NULL PasswordHash", "nohash", PASSWORD),
        ("NULL Activo", "noflag", PASSWORD),
        ("empty user name", "", PASSWORD),
    ] {
        answers.push((what, snapshot(login(&e, user, password).await).await));
    }
    assert_all_the_same_bare_401(&answers);
    // The right password still works for the same users' neighbours (nothing was locked by the failures).
    assert_eq!(status(&e, "jdoe", PASSWORD).await, 200);
}

async fn custom_query_with_extra_claims(kind: Kind, test: &str) {
    let Some(db) = standard_db(kind, test).await else {
        return;
    };
    let active = match kind {
        Kind::Postgres => "{Activo} IS TRUE",
        _ => "COALESCE({Activo}, 0)",
    };
    // Log in by e-mail address instead of user name.
    let query = sql(
        &db,
        &format!("SELECT {{UserName}} AS user_name, {{PasswordHash}} AS password_hash, {active} AS active, {{Email}} AS email, {{PhoneNumber}} AS phone, {{AccessFailedCount}} AS failures, {{Id}} AS legacy_id FROM {{AspNetUsers}} WHERE {{NormalizedEmail}} = {{$1}}"),
    );
    let extra = format!(
        "query = {}\nclaims = [\"email\", \"phone\", \"failures\"]\n",
        toml::Value::String(query)
    );
    let e = start(db, &extra, &[]).await;
    let c = claims_of(login(&e, "JDoe@Example.com", PASSWORD).await).await;
    assert_eq!(c["sub"], "jdoe");
    assert_eq!(c["email"], "jdoe@example.com");
    assert_eq!(c["phone"], "555-0100");
    assert_eq!(c["failures"], 0);
    assert!(
        c.get("legacy_id").is_none(),
        "only listed columns become claims"
    );
    // NULL claim columns are left out.
    let c = claims_of(login(&e, "legacy2@example.com", LEGACY_PASSWORD).await).await;
    assert!(c.get("phone").is_none(), "{c}");
    assert_eq!(c["email"], "legacy2@example.com");
    // This query ignores LockoutEnd: the locked user gets in, the inactive one still does not.
    assert_eq!(status(&e, "locked@example.com", PASSWORD).await, 200);
    assert_eq!(status(&e, "retired@example.com", PASSWORD).await, 401);
    assert_eq!(
        status(&e, "jdoe", PASSWORD).await,
        401,
        "user names no longer match"
    );
}

async fn outage_answers_503_and_recovers(kind: Kind, test: &str) {
    let Some(e) = env(kind, test, "", &[]).await else {
        return;
    };
    assert_eq!(status(&e, "legacy2", LEGACY_PASSWORD).await, 200);
    // The database goes away: established connections are cut and new ones refused.
    e.db.fwd().stop();
    let started = Instant::now();
    assert_eq!(status(&e, "legacy2", LEGACY_PASSWORD).await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by users.connect_timeout: {:?}",
        started.elapsed()
    );
    // Unknown users and bad passwords are 503 too: an outage is never mistaken for bad credentials.
    assert_eq!(status(&e, "nobody", "x").await, 503);
    // Proxied traffic does not depend on the database.
    let alice = tokens::valid("alice");
    let still = get_status(&client(), e.gw.url("/still-serving"), Some(&alice)).await;
    assert_eq!(still, 200);
    // The database comes back: the pool reconnects by itself.
    e.db.fwd().restart().await;
    assert!(
        eventually(&e, "legacy2", LEGACY_PASSWORD, 200, Duration::from_secs(10)).await,
        "logins work again after the database is back"
    );
    assert_eq!(status(&e, "nobody", "x").await, 401);
}

async fn starts_with_the_database_down(kind: Kind, test: &str) {
    let Some(db) = standard_db(kind, test).await else {
        return;
    };
    db.fwd().stop();
    // Readiness through the library API: down, then up.
    let cfg = support::config(&[&db.users_toml(""), "[login]\nenabled = true\n"]).unwrap();
    let gateway::config::UserStoreKind::Sql(settings) = cfg.users.store else {
        panic!("sql store expected");
    };
    let store = gateway::users::UserStore::Sql(std::sync::Arc::new(
        gateway::users::sql::SqlStore::new(settings),
    ));
    assert!(store.ready().await.is_err());
    assert!(store.describe().starts_with("sql "));
    let e = start(db, "", &[]).await;
    assert_eq!(status(&e, "legacy2", LEGACY_PASSWORD).await, 503);
    e.db.fwd().restart().await;
    assert!(eventually(&e, "legacy2", LEGACY_PASSWORD, 200, Duration::from_secs(10)).await);
    store.ready().await.unwrap();
    assert_eq!(
        store.lookup("LEGACY2").await.unwrap().unwrap().user_name,
        "legacy2"
    );
}

async fn sqlite_file_missing_then_present(_kind: Kind, _test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.db");
    let fake = FakeTurnstile::start().await;
    let users = format!(
        "[users]\nstore = \"sql\"\nurl = \"sqlite://{}\"\nconnect_timeout = \"1s\"\n",
        path.display()
    );
    let gw = TestGateway::start(&[&login_toml(&fake), &users]).await;
    let try_login = || {
        let captcha = captcha(&fake);
        let gw = &gw;
        async move { login_status(gw, "legacy2", LEGACY_PASSWORD, &captcha).await }
    };
    assert_eq!(try_login().await, 503);
    assert!(!path.exists(), "the read-only store never creates the file");
    // The file appears (created by the legacy application, which keeps it open).
    let db = TestDb::create_sqlite_at(&path).await;
    db.insert(&standard_users()).await;
    assert_eq!(try_login().await, 200);
}

async fn pool_never_exceeds_max_connections(kind: Kind, test: &str) {
    let Some(e) = env(
        kind,
        test,
        "max_connections = 2\nconnect_timeout = \"10s\"\n",
        // 24 logins at once from one address: past the per-address siteverify cap, to load the pool.
        &["[login.hashing]\nmax_queue = 1000\n[login.turnstile]\nmax_per_ip = 64\n"],
    )
    .await
    else {
        return;
    };
    let e = std::sync::Arc::new(e);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let user = if i % 3 == 0 { "nobody" } else { "legacy2" };
            (user, status(&e, user, LEGACY_PASSWORD).await)
        }));
    }
    for t in tasks {
        let (user, s) = t.await.unwrap();
        assert_eq!(s, if user == "nobody" { 401 } else { 200 }, "{user}");
    }
    let fwd = e.db.fwd();
    assert!(fwd.total() >= 1);
    assert!(
        fwd.max_open() <= 2,
        "at most users.max_connections = 2 connections, saw {}",
        fwd.max_open()
    );
}

async fn sessions_are_read_only(kind: Kind, test: &str) {
    let Some(db) = standard_db(kind, test).await else {
        return;
    };
    let truth = if kind == Kind::Postgres { "true" } else { "1" };
    // A query that writes (as a careless custom query might): refused by the read-only session.
    let query = match kind {
        Kind::MySql => sql(
            &db,
            "UPDATE {AspNetUsers} SET {AccessFailedCount} = {AccessFailedCount} + 1 WHERE {NormalizedUserName} = {$1}",
        ),
        _ => sql(
            &db,
            &format!("UPDATE {{AspNetUsers}} SET {{AccessFailedCount}} = {{AccessFailedCount}} + 1 WHERE {{NormalizedUserName}} = {{$1}} RETURNING {{UserName}} AS user_name, {{PasswordHash}} AS password_hash, {truth} AS active"),
        ),
    };
    let count = sql(
        &db,
        "SELECT {AccessFailedCount} FROM {AspNetUsers} WHERE {NormalizedUserName} = 'LEGACY2'",
    );
    let extra = format!("query = {}\n", toml::Value::String(query.clone()));
    let e = start(db, &extra, &[]).await;
    assert_eq!(status(&e, "legacy2", LEGACY_PASSWORD).await, 503);
    assert_eq!(e.db.scalar(&count).await, 0, "nothing was written");
    // The same query with read_only = false does write: the session setting is what stopped it.
    let rw_extra = format!("{extra}read_only = false\n");
    let rw_users = e.db.users_toml(&rw_extra);
    let fake2 = FakeTurnstile::start().await;
    let gw2 = TestGateway::start(&[&login_toml(&fake2), &rw_users]).await;
    let s = login_status(&gw2, "legacy2", LEGACY_PASSWORD, &captcha(&fake2)).await;
    // MySQL's UPDATE returns no row (an unknown user, 401); the others return the user (200).
    assert_eq!(s, if kind == Kind::MySql { 401 } else { 200 });
    assert_eq!(e.db.scalar(&count).await, 1);
    gw2.stop().await;
}

async fn unknown_users_cost_as_much_as_wrong_passwords(kind: Kind, test: &str) {
    // Default dummy_hash (aspnet-v3) matches the legacy V3 hashes' cost.
    let Some(e) = env(kind, test, "", &[]).await else {
        return;
    };
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        assert_eq!(status(&e, &format!("ghost{i}"), "x").await, 401);
        unknown.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(status(&e, "legacy3", "x").await, 401);
        wrong.push(t.elapsed());
    }
    unknown.sort();
    wrong.sort();
    let (u, w) = (unknown[3].as_secs_f64(), wrong[3].as_secs_f64());
    // Loose bounds (shared 2-core machine): without the dummy verification an unknown user would cost a
    // small fraction of a V3 (PBKDF2-SHA512, 100,000 iterations) check.
    assert!(
        u > w * 0.4 && u < w * 2.5,
        "median unknown {u:.4}s vs wrong password {w:.4}s"
    );
}

async fn check_config_tries_the_connection_and_the_query(kind: Kind, test: &str) {
    let Some(db) = standard_db(kind, test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, users: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[auth]\nsecret = \"{}\"\n[login]\nenabled = true\n[login.turnstile]\nsecret = \"x\"\n{users}",
                support::SECRET
            ),
        )
        .unwrap();
        path
    };
    let run = |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
                .arg("--config")
                .arg(&path)
                .arg("check-config")
                .env_remove("GATEWAY_USERS__URL")
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let good = write("good.toml", &db.users_toml(""));
    let (code, out, err) = run(good.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("users: OK sql"), "{out}");
    assert!(out.contains("password_hash"), "{out}");
    let bad_query = write(
        "bad.toml",
        &db.users_toml(&format!(
            "query = {}\n",
            toml::Value::String(sql(
                &db,
                "SELECT {PasswordHash} AS password_hash FROM {AspNetUsers} WHERE {NormalizedUserName} = {$1}",
            ))
        )),
    );
    let (code, out, err) = run(bad_query).await.unwrap();
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("users.query") && err.contains("\"active\""),
        "{err}"
    );
    if let Some(fwd) = &db.forwarder {
        fwd.stop();
        let (code, out, err) = run(good).await.unwrap();
        assert_eq!(code, Some(2), "{out}\n{err}");
        assert!(err.contains("error: users:"), "{err}");
    }
}

async fn bit_activo_column(kind: Kind, test: &str) {
    // Some legacy MySQL schemas declare the flag bit(1); Postgres and SQLite get an integer flag instead.
    let activo_type = match kind {
        Kind::MySql => "bit(1)",
        Kind::Postgres => "integer",
        Kind::Sqlite => "BOOLEAN",
    };
    let Some(db) = TestDb::create_with(kind, test, Some(activo_type)).await else {
        return;
    };
    if kind == Kind::Postgres {
        // The default query expects a boolean; adapt it (as the README shows) for an integer flag.
        let a = argon2();
        for (name, flag) in [("jdoe", "1"), ("retired", "0")] {
            db.exec(&format!(
                r#"INSERT INTO "AspNetUsers" ("Id", "UserName", "NormalizedUserName", "EmailConfirmed", "PasswordHash", "PhoneNumberConfirmed", "TwoFactorEnabled", "LockoutEnabled", "AccessFailedCount", "Activo") VALUES ('{name}', '{name}', '{}', false, '{a}', false, false, true, 0, {flag})"#,
                name.to_uppercase()
            ))
            .await;
        }
        let query = r#"SELECT "UserName" AS user_name, "PasswordHash" AS password_hash, CASE WHEN "Activo" <> 0 AND ("LockoutEnd" IS NULL OR "LockoutEnd" <= now()) THEN 1 ELSE 0 END AS active FROM "AspNetUsers" WHERE "NormalizedUserName" = $1"#;
        let e = start(
            db,
            &format!("query = {}\n", toml::Value::String(query.into())),
            &[],
        )
        .await;
        assert_eq!(status(&e, "jdoe", PASSWORD).await, 200);
        assert_eq!(status(&e, "retired", PASSWORD).await, 401);
        return;
    }
    db.insert(&standard_users()).await;
    let e = start(db, "", &[]).await;
    assert_eq!(status(&e, "jdoe", PASSWORD).await, 200);
    assert_eq!(status(&e, "retired", PASSWORD).await, 401);
    assert_eq!(status(&e, "noflag", PASSWORD).await, 401);
    assert_eq!(status(&e, "locked", PASSWORD).await, 401);
}

/// One `#[tokio::test]` per case and database; server cases report SKIPPED when their URL is unset.
macro_rules! per_database {
    ($module:ident, $kind:expr, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($kind, concat!(stringify!($module), "::", stringify!($case))).await
                }
            )*
        }
    };
}

/// The server databases run the same cases (one list, so neither can fall behind the other).
macro_rules! per_server_database {
    ($($module:ident => $kind:expr),* $(,)?) => {
        $(
            per_database!(
                $module,
                $kind,
                [
                    v2_v3_and_argon2_hashes_log_in,
                    every_failure_is_the_same_bare_401,
                    custom_query_with_extra_claims,
                    outage_answers_503_and_recovers,
                    starts_with_the_database_down,
                    pool_never_exceeds_max_connections,
                    sessions_are_read_only,
                    unknown_users_cost_as_much_as_wrong_passwords,
                    check_config_tries_the_connection_and_the_query,
                    bit_activo_column,
                ]
            );
        )*
    };
}

per_server_database!(
    postgres => super::Kind::Postgres,
    mysql => super::Kind::MySql,
);

per_database!(
    sqlite,
    super::Kind::Sqlite,
    [
        v2_v3_and_argon2_hashes_log_in,
        every_failure_is_the_same_bare_401,
        custom_query_with_extra_claims,
        sqlite_file_missing_then_present,
        sessions_are_read_only,
        unknown_users_cost_as_much_as_wrong_passwords,
        check_config_tries_the_connection_and_the_query,
        bit_activo_column,
    ]
);

#[test]
fn sql_config_errors_name_their_key() {
    let err = |users: &str| match support::config(&[users]) {
        Ok(_) => panic!("accepted: {users}"),
        Err(e) => e.to_string(),
    };
    assert!(err("[users]\nstore = \"sql\"\n").starts_with("users.url: required"));
    let e = err("[users]\nstore = \"sql\"\nurl = \"http://u:secret@h/db\"\n");
    assert!(e.starts_with("users.url:") && !e.contains("secret"), "{e}");
    let e = err("[users]\nstore = \"sql\"\nurl = \"sqlite:x.db\"\nclaims = [\"password_hash\"]\n");
    assert!(e.starts_with("users.claims[0]:"), "{e}");
    let e = err("[users]\nstore = \"sql\"\nurl = \"sqlite:x.db\"\ndummy_hash = \"md5\"\n");
    assert!(e.starts_with("users.dummy_hash:"), "{e}");
    let e = err("[users]\nurl = \"sqlite:x.db\"\n");
    assert!(e.starts_with("users.url: only used with"), "{e}");
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark: `bench/sql_login.sh` (ignored in normal runs).

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64 * 1000.0;
    format!(
        "n={:<5} mean={:>7.3} p50={:>7.3} p95={:>7.3} p99={:>7.3} ms",
        v.len(),
        mean,
        percentile(&v, 0.5),
        percentile(&v, 0.95),
        percentile(&v, 0.99)
    )
}

/// The lookup's plan, as the database explains it.
async fn plan(db: &TestDb) -> String {
    match db.kind {
        Kind::Postgres => {
            let rows: Vec<String> = sqlx::query_scalar(
                r#"EXPLAIN SELECT "PasswordHash" FROM "AspNetUsers" WHERE "NormalizedUserName" = 'BULK5'"#,
            )
            .fetch_all(&sqlx::PgPool::connect(&db.direct_url).await.unwrap())
            .await
            .unwrap();
            rows.join(" | ")
        }
        Kind::MySql => {
            use sqlx::Row;
            let pool = sqlx::MySqlPool::connect(&db.direct_url).await.unwrap();
            let row = sqlx::query(
                "EXPLAIN SELECT `PasswordHash` FROM `AspNetUsers` WHERE `NormalizedUserName` = 'BULK5'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            format!(
                "type={:?} key={:?}",
                row.try_get::<Option<String>, _>("type").ok().flatten(),
                row.try_get::<Option<String>, _>("key").ok().flatten(),
            )
        }
        Kind::Sqlite => {
            use sqlx::Row;
            let pool = sqlx::SqlitePool::connect(&db.direct_url).await.unwrap();
            let rows = sqlx::query(
                r#"EXPLAIN QUERY PLAN SELECT "PasswordHash" FROM "AspNetUsers" WHERE "NormalizedUserName" = 'BULK5'"#,
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" | ")
        }
    }
}

async fn bench_one(kind: Kind, users: u64, logins: usize) -> Option<String> {
    let db = TestDb::create(kind, "bench").await?;
    let started = Instant::now();
    db.fill(users, ASPNET_V2).await;
    let fill = started.elapsed();
    let plan = plan(&db).await;
    let max_connections = 4;
    let e = start(
        db,
        &format!("max_connections = {max_connections}\nconnect_timeout = \"10s\"\n"),
        // 24 logins at once from one address: past the per-address siteverify cap, to load the pool.
        &["[login.hashing]\nmax_queue = 1000\n[login.turnstile]\nmax_per_ip = 64\n"],
    )
    .await;
    let pick = |i: usize| format!("bulk{}", (i as u64 * 7919) % users + 1);
    for i in 0..20 {
        assert_eq!(status(&e, &pick(i), LEGACY_PASSWORD).await, 200);
    }
    // Sequential logins over HTTP: captcha (fake, loopback) + lookup + V2 verification + token.
    let mut http = Vec::with_capacity(logins);
    for i in 0..logins {
        let t = Instant::now();
        assert_eq!(status(&e, &pick(i + 20), LEGACY_PASSWORD).await, 200);
        http.push(t.elapsed());
    }
    // The lookup alone, through a store of its own (same settings, not through the counting forwarder).
    let mut settings = gateway::config::SqlSettings::new(e.db.direct_url.clone()).unwrap();
    settings.max_connections = max_connections;
    let store = gateway::users::sql::SqlStore::new(settings);
    let mut lookups = Vec::with_capacity(logins * 4);
    for i in 0..logins * 4 {
        let name = gateway::users::normalise_name(&pick(i + 1000));
        let t = Instant::now();
        assert!(store.lookup(&name).await.unwrap().is_some());
        lookups.push(t.elapsed());
    }
    // Concurrency: 64 logins at once; the gateway's pool may not exceed max_connections.
    let e = std::sync::Arc::new(e);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let e = e.clone();
        let user = pick(i + 5000);
        tasks.push(tokio::spawn(async move {
            status(&e, &user, LEGACY_PASSWORD).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let max_open = e.db.forwarder.as_ref().map(|f| f.max_open());
    // The store alone: 64 lookups at once, pool size sampled after each (SQLite has no forwarder to count).
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        let name = gateway::users::normalise_name(&pick(i + 9000));
        tasks.push(tokio::spawn(async move {
            assert!(store.lookup(&name).await.unwrap().is_some());
            store.open_connections()
        }));
    }
    let mut store_max = 0;
    for t in tasks {
        store_max = store_max.max(t.await.unwrap());
    }
    store.close().await;
    Some(format!(
        "{kind:?} users={users} (filled in {:.1}s)\n  plan: {plan}\n  login over HTTP: {}\n  lookup only:     {}\n  gateway, 64 concurrent logins: max DB connections open at once {} (limit {max_connections})\n  store, 64 concurrent lookups: largest pool size seen {store_max} (limit {max_connections})\n",
        fill.as_secs_f64(),
        summary(http),
        summary(lookups),
        max_open.map_or("n/a (embedded, no forwarder)".to_string(), |n| n.to_string()),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/sql_login.sh"]
async fn bench_login_latency_small_vs_large_table() {
    let large: u64 = std::env::var("GATEWAY_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let logins: usize = std::env::var("GATEWAY_BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dbs = std::env::var("GATEWAY_BENCH_DBS").unwrap_or_else(|_| "postgres,mysql,sqlite".into());
    let mut out = std::io::stdout();
    for name in dbs.split(',').map(str::trim) {
        let kind = match name {
            "postgres" => Kind::Postgres,
            "mysql" => Kind::MySql,
            "sqlite" => Kind::Sqlite,
            other => panic!("GATEWAY_BENCH_DBS: unknown {other:?}"),
        };
        for users in [10, large] {
            if let Some(report) = bench_one(kind, users, logins).await {
                use std::io::Write;
                let _ = writeln!(out, "{report}");
            }
        }
    }
}

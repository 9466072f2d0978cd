//! The SQL user store: one lookup query per login against PostgreSQL, MySQL/MariaDB or SQLite (sqlx, pooled).
//!
//! The query takes one bind parameter, the normalised user name, and returns at most one row with the columns
//! `password_hash` (text or NULL), `active` (boolean or integer; NULL counts as inactive), optionally
//! `user_name` (the stored spelling, for `sub`/`name`; the normalised name when absent) and the columns named in
//! `users.claims`. Column names compare case-insensitively. The default query per dialect reads ASP.NET
//! Identity's `AspNetUsers` and folds the legacy `Activo` flag and `LockoutEnd` (future = locked) into `active`
//! in SQL, so every value the gateway decodes is a plain text, integer or boolean whatever the column types.
//!
//! Guarantees:
//! - The pool is created lazily on first use and never connects at start-up, so the gateway starts with the
//!   database down; every failure (connect, pool timeout, query error or timeout, unreadable column) is a
//!   `StoreError::Unavailable` (503, never 401), logged once when the database goes away and once when it is
//!   back. The pool drops dead connections (tested before each use) and reconnects by itself.
//! - At most `max_connections` connections are open; acquiring one waits at most `connect_timeout`; the query
//!   runs at most `query_timeout` (client side, and server side where the database allows it).
//! - Sessions are read-only unless `users.read_only = false`: PostgreSQL `default_transaction_read_only`,
//!   MySQL/MariaDB `SET SESSION TRANSACTION READ ONLY`, SQLite opens the file read-only. Nothing is ever written.
//! - The URL's password is never logged or displayed (`redact_url`).

use super::{StoreError, UserRecord};
use crate::config::{redact_url, Dialect, SqlSettings};
use crate::credentials::DummyKind;
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    Column, ConnectOptions, Database, Either, Executor, MySql, Postgres, Row, Sqlite, Statement,
    TypeInfo, ValueRef,
};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Idle connections are closed after this long (the pool reopens them on demand).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are recycled after this long.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// One pool per backend.
enum Pool {
    Pg(sqlx::Pool<Postgres>),
    My(sqlx::Pool<MySql>),
    Lite(sqlx::Pool<Sqlite>),
}

/// Runs `$body` with `$p` bound to the typed pool, whichever backend it is.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Pg($p) => $body,
            Pool::My($p) => $body,
            Pool::Lite($p) => $body,
        }
    };
}

const HEALTH_UNKNOWN: u8 = 0;
const HEALTH_UP: u8 = 1;
const HEALTH_DOWN: u8 = 2;

/// The SQL-backed store.
pub struct SqlStore {
    settings: SqlSettings,
    /// Built on first use (it needs the async runtime); an Err is a URL the driver refused.
    pool: OnceLock<Result<Pool, String>>,
    health: AtomicU8,
}

impl SqlStore {
    /// A store for `settings`; nothing connects until the first lookup.
    pub fn new(settings: SqlSettings) -> SqlStore {
        SqlStore {
            settings,
            pool: OnceLock::new(),
            health: AtomicU8::new(HEALTH_UNKNOWN),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SqlSettings {
        &self.settings
    }

    /// `sql <dialect> <url without password>`.
    pub fn describe(&self) -> String {
        format!(
            "sql {} {}",
            self.settings.dialect.name(),
            redact_url(&self.settings.url)
        )
    }

    /// The configured dummy hash kind.
    pub fn dummy_kind(&self) -> DummyKind {
        self.settings.dummy
    }

    /// Connections currently open (idle or in use), 0 before the first use.
    pub fn open_connections(&self) -> u32 {
        match self.pool.get() {
            Some(Ok(pool)) => on_pool!(pool, p => p.size()),
            _ => 0,
        }
    }

    /// Closes the pool's connections (a later lookup fails); for tools that exit afterwards.
    pub async fn close(&self) {
        if let Some(Ok(pool)) = self.pool.get() {
            on_pool!(pool, p => p.close().await)
        }
    }

    fn pool(&self) -> Result<&Pool, StoreError> {
        self.pool
            .get_or_init(|| build_pool(&self.settings))
            .as_ref()
            .map_err(|e| StoreError::Unavailable(format!("users.url: {e}")))
    }

    /// Looks up a normalised name with the configured query.
    pub async fn lookup(&self, normalised: &str) -> Result<Option<UserRecord>, StoreError> {
        let result = self.lookup_inner(normalised).await;
        self.note(result.as_ref().map(drop));
        result
    }

    async fn lookup_inner(&self, normalised: &str) -> Result<Option<UserRecord>, StoreError> {
        let s = &self.settings;
        on_pool!(self.pool()?, p => {
            let mut conn = acquire(p, s.connect_timeout).await?;
            let row = bounded(
                s.query_timeout,
                sqlx::query(&s.query).bind(normalised).fetch_optional(&mut *conn),
            )
            .await?;
            row.map(|r| to_record(&r, normalised, &s.claims)).transpose()
        })
    }

    /// Readiness: a connection can be had and answers `SELECT 1` within the timeouts.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let s = &self.settings;
        let result = async {
            on_pool!(self.pool()?, p => {
                let mut conn = acquire(p, s.connect_timeout).await?;
                bounded(s.query_timeout, (&mut *conn).execute("SELECT 1")).await?;
            });
            Ok(())
        }
        .await;
        self.note(result.as_ref().map(drop));
        result
    }

    /// For `check-config`: connects, prepares the query (one parameter; the needed columns), runs it once
    /// with a name no user has, and describes what it found.
    pub async fn check(&self) -> Result<String, StoreError> {
        let s = &self.settings;
        let started = Instant::now();
        let (columns, params) = on_pool!(self.pool()?, p => {
            let mut conn = match acquire(p, s.connect_timeout).await {
                Ok(c) => c,
                Err(e) => return Err(self.with_cause(e).await),
            };
            let stmt = bounded(s.query_timeout, (&mut *conn).prepare(s.query.as_str())).await?;
            let columns: Vec<String> =
                stmt.columns().iter().map(|c| c.name().to_string()).collect();
            let params = match stmt.parameters() {
                Some(Either::Left(types)) => Some(types.len()),
                Some(Either::Right(n)) => Some(n),
                None => None,
            };
            (columns, params)
        });
        let connected = started.elapsed();
        let has = |name: &str| columns.iter().any(|c| c.eq_ignore_ascii_case(name));
        let mut problems = Vec::new();
        if let Some(n) = params.filter(|n| *n != 1) {
            problems.push(format!(
                "has {n} bind parameters; it needs exactly one (the normalised user name)"
            ));
        }
        for needed in ["password_hash", "active"] {
            if !has(needed) {
                problems.push(format!("returns no column {needed:?}"));
            }
        }
        for claim in &s.claims {
            if !has(claim) {
                problems.push(format!(
                    "returns no column {claim:?} (listed in users.claims)"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "users.query: {}; it returns [{}]",
                problems.join("; "),
                columns.join(", ")
            )));
        }
        let probe = Instant::now();
        self.lookup("GATEWAY-CHECK-CONFIG-NO-SUCH-USER").await?;
        Ok(format!(
            "{}: connected and prepared in {} ms, lookup in {} ms; columns [{}]{}",
            self.describe(),
            connected.as_millis(),
            probe.elapsed().as_millis(),
            columns.join(", "),
            if has("user_name") {
                ""
            } else {
                " (no user_name column: tokens carry the normalised name)"
            }
        ))
    }

    /// The pool only says it timed out; one direct connection attempt tells why (refused, bad password, ...).
    async fn with_cause(&self, e: StoreError) -> StoreError {
        let s = &self.settings;
        let cause = match s.dialect {
            Dialect::Postgres => {
                direct_connect::<PgConnectOptions>(&s.url, s.connect_timeout).await
            }
            Dialect::MySql => {
                direct_connect::<MySqlConnectOptions>(&s.url, s.connect_timeout).await
            }
            Dialect::Sqlite => {
                direct_connect::<SqliteConnectOptions>(&s.url, s.connect_timeout).await
            }
        };
        match (e, cause) {
            (StoreError::Unavailable(m), Some(cause)) => {
                StoreError::Unavailable(format!("{m}: {cause}"))
            }
            (e, None) => e,
        }
    }

    /// Logs the database going away (once) and coming back (once).
    fn note(&self, result: Result<(), &StoreError>) {
        match result {
            Ok(()) => {
                if self.health.swap(HEALTH_UP, Ordering::Relaxed) == HEALTH_DOWN {
                    tracing::info!(store = %self.describe(), "user database reachable again");
                }
            }
            Err(e) => {
                if self.health.swap(HEALTH_DOWN, Ordering::Relaxed) != HEALTH_DOWN {
                    tracing::error!(store = %self.describe(), error = %e, "user database unavailable; logins answer 503 until it is back");
                } else {
                    tracing::debug!(error = %e, "user database still unavailable");
                }
            }
        }
    }
}

fn pool_options<DB: Database>(s: &SqlSettings) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(s.max_connections)
        .min_connections(0)
        .acquire_timeout(s.connect_timeout)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .max_lifetime(Some(MAX_LIFETIME))
        // A connection killed while idle (database restarted) is noticed and replaced before use.
        .test_before_acquire(true)
}

fn build_pool(s: &SqlSettings) -> Result<Pool, String> {
    s.check_url()?;
    let statement_ms = s.query_timeout.as_millis().max(1);
    match s.dialect {
        Dialect::Postgres => {
            let mut o = PgConnectOptions::from_str(&s.url)
                .map_err(|e| e.to_string())?
                .disable_statement_logging();
            // Startup parameters: no extra round trip per connection.
            o = o.options([("statement_timeout", statement_ms.to_string())]);
            if s.read_only {
                o = o.options([("default_transaction_read_only", "on")]);
            }
            if o.get_application_name().is_none() {
                o = o.application_name("gateway");
            }
            Ok(Pool::Pg(pool_options(s).connect_lazy_with(o)))
        }
        Dialect::MySql => {
            let o = MySqlConnectOptions::from_str(&s.url)
                .map_err(|e| e.to_string())?
                .disable_statement_logging();
            let read_only = s.read_only;
            let secs = s.query_timeout.as_secs_f64().max(0.001);
            let options = pool_options::<MySql>(s).after_connect(
                move |conn: &mut sqlx::MySqlConnection, _| {
                    Box::pin(async move {
                        if read_only {
                            conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                        }
                        // Server-side statement limit: MariaDB spells it in seconds, MySQL in ms; each
                        // server refuses the other's name, which is fine.
                        let _ = conn
                            .execute(format!("SET SESSION max_statement_time = {secs}").as_str())
                            .await;
                        let _ = conn
                            .execute(
                                format!("SET SESSION max_execution_time = {statement_ms}").as_str(),
                            )
                            .await;
                        Ok(())
                    })
                },
            );
            Ok(Pool::My(options.connect_lazy_with(o)))
        }
        Dialect::Sqlite => {
            let o = SqliteConnectOptions::from_str(&s.url)
                .map_err(|e| e.to_string())?
                .read_only(s.read_only)
                .disable_statement_logging();
            Ok(Pool::Lite(pool_options(s).connect_lazy_with(o)))
        }
    }
}

/// One connection outside the pool; the error, if any.
async fn direct_connect<O>(url: &str, limit: Duration) -> Option<String>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    let options = O::from_str(url).ok()?.disable_statement_logging();
    match tokio::time::timeout(limit, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            None
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {limit:?}")),
    }
}

async fn acquire<DB: Database>(
    pool: &sqlx::Pool<DB>,
    limit: Duration,
) -> Result<sqlx::pool::PoolConnection<DB>, StoreError> {
    // The pool's acquire_timeout bounds this already; the outer limit is a backstop.
    match tokio::time::timeout(limit + Duration::from_millis(500), pool.acquire()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(sqlx::Error::PoolTimedOut)) => Err(StoreError::Unavailable(format!(
            "no database connection within {limit:?} (users.connect_timeout)"
        ))),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("database connection: {e}"))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no database connection within {limit:?} (users.connect_timeout)"
        ))),
    }
}

async fn bounded<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("users.query: {e}"))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "users.query: no answer within {limit:?} (users.query_timeout)"
        ))),
    }
}

/// Reads one column of a row as JSON (text, integer, float, boolean or null), trying the listed Rust types.
macro_rules! cell {
    ($row:expr, $idx:expr; $($ty:ty => $conv:expr),+ $(,)?) => {{
        let (row, idx) = ($row, $idx);
        'cell: {
            match row.try_get_raw(idx) {
                Err(e) => break 'cell Err(e.to_string()),
                Ok(raw) if raw.is_null() => break 'cell Ok(Value::Null),
                Ok(_) => {}
            }
            $(
                if let Ok(v) = row.try_get::<$ty, _>(idx) {
                    break 'cell Ok(($conv)(v));
                }
            )+
            let ty = row
                .try_get_raw(idx)
                .map(|r| r.type_info().name().to_string())
                .unwrap_or_default();
            Err(format!("has type {ty}, which the gateway does not read (cast it to text in the query)"))
        }
    }};
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A row type whose cells can be read as JSON.
trait Cells: Row {
    fn cell(&self, idx: usize) -> Result<Value, String>;
}

impl Cells for PgRow {
    fn cell(&self, idx: usize) -> Result<Value, String> {
        cell!(self, idx;
            String => Value::String,
            bool => Value::Bool,
            i16 => Value::from,
            i32 => Value::from,
            i64 => Value::from,
            f32 => |v: f32| float(v.into()),
            f64 => float,
        )
    }
}

impl Cells for MySqlRow {
    fn cell(&self, idx: usize) -> Result<Value, String> {
        cell!(self, idx;
            String => Value::String,
            i64 => Value::from,
            u64 => Value::from,
            // BIT(n) columns.
            bool => Value::Bool,
            f64 => float,
            f32 => |v: f32| float(v.into()),
        )
    }
}

impl Cells for SqliteRow {
    fn cell(&self, idx: usize) -> Result<Value, String> {
        // Decided by the stored value's class, whatever the column's declared type.
        let class = match self.try_get_raw(idx) {
            Err(e) => return Err(e.to_string()),
            Ok(raw) if raw.is_null() => return Ok(Value::Null),
            Ok(raw) => raw.type_info().name().to_ascii_uppercase(),
        };
        match class.as_str() {
            "INTEGER" | "BOOLEAN" | "INT8" => self
                .try_get::<i64, _>(idx)
                .map(Value::from)
                .map_err(|e| e.to_string()),
            "REAL" => self
                .try_get::<f64, _>(idx)
                .map(float)
                .map_err(|e| e.to_string()),
            "TEXT" => self
                .try_get::<String, _>(idx)
                .map(Value::String)
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "has type {other}, which the gateway does not read (cast it to text in the query)"
            )),
        }
    }
}

fn column_index<R: Row>(row: &R, name: &str) -> Option<usize> {
    row.columns()
        .iter()
        .position(|c| c.name().eq_ignore_ascii_case(name))
}

/// Builds the record from the query's row.
fn to_record<R: Cells>(
    row: &R,
    normalised: &str,
    claims: &[String],
) -> Result<UserRecord, StoreError> {
    let bad = |col: &str, why: String| {
        StoreError::Unavailable(format!("users.query: column {col:?} {why}"))
    };
    let get = |col: &str, required: bool| -> Result<Value, StoreError> {
        match column_index(row, col) {
            Some(i) => row.cell(i).map_err(|e| bad(col, e)),
            None if required => Err(bad(col, "is not returned by the query".into())),
            None => Ok(Value::Null),
        }
    };
    let password_hash = match get("password_hash", true)? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => return Err(bad("password_hash", format!("must be text, got {other}"))),
    };
    let active = match get("active", true)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Null => false,
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "y" | "yes" => true,
            "0" | "f" | "false" | "n" | "no" | "" => false,
            _ => {
                tracing::warn!(value = %s, "users.query: column \"active\" holds an unrecognised text; the user counts as inactive");
                false
            }
        },
        other => {
            return Err(bad(
                "active",
                format!("must be a boolean or integer, got {other}"),
            ))
        }
    };
    let user_name = match get("user_name", false)? {
        Value::String(s) if !s.is_empty() => s,
        _ => normalised.to_string(),
    };
    let mut map = serde_json::Map::new();
    for claim in claims {
        let v = get(claim, true)?;
        if !v.is_null() {
            map.insert(claim.clone(), v);
        }
    }
    Ok(UserRecord {
        user_name,
        password_hash,
        active,
        claims: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_never_shows_the_password() {
        let s = SqlSettings::new("postgres://gw:s3cret@db/app").unwrap();
        assert!(!SqlStore::new(s).describe().contains("s3cret"));
    }

    /// A SQLite file with an ASP.NET Identity-shaped table.
    async fn sqlite_db(dir: &std::path::Path) -> String {
        let path = dir.join("users.db");
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        for stmt in [
            r#"CREATE TABLE "AspNetUsers" ("Id" TEXT NOT NULL PRIMARY KEY, "UserName" TEXT NULL, "NormalizedUserName" TEXT NULL, "PasswordHash" TEXT NULL, "LockoutEnd" TEXT NULL, "Activo" INTEGER NULL, "Level" INTEGER NULL, "Score" REAL NULL, "Blob" BLOB NULL)"#,
            r#"CREATE UNIQUE INDEX "UserNameIndex" ON "AspNetUsers" ("NormalizedUserName")"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('1', 'jdoe', 'JDOE', 'h1', NULL, 1, 7, 1.5, x'00')"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('2', 'off', 'OFF', 'h2', NULL, 0, NULL, NULL, NULL)"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('3', 'nulls', 'NULLS', NULL, NULL, NULL, NULL, NULL, NULL)"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('4', 'locked', 'LOCKED', 'h4', strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '+1 day'), 1, NULL, NULL, NULL)"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('5', 'was', 'WAS', 'h5', strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '-1 day'), 1, NULL, NULL, NULL)"#,
            r#"INSERT INTO "AspNetUsers" VALUES ('6', 'garbled', 'GARBLED', 'h6', 'not a date', 1, NULL, NULL, NULL)"#,
        ] {
            sqlx::query(stmt).execute(&pool).await.unwrap();
        }
        pool.close().await;
        format!("sqlite://{}", path.display())
    }

    #[tokio::test]
    async fn sqlite_default_query_folds_activo_and_lockout() {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_db(dir.path()).await;
        let store = SqlStore::new(SqlSettings::new(url).unwrap());
        store.ready().await.unwrap();
        let jdoe = store.lookup("JDOE").await.unwrap().unwrap();
        assert_eq!(jdoe.user_name, "jdoe");
        assert_eq!(jdoe.password_hash.as_deref(), Some("h1"));
        assert!(jdoe.active);
        assert!(jdoe.claims.is_empty());
        assert!(!store.lookup("OFF").await.unwrap().unwrap().active);
        let nulls = store.lookup("NULLS").await.unwrap().unwrap();
        assert_eq!(nulls.password_hash, None);
        assert!(!nulls.active);
        assert!(!store.lookup("LOCKED").await.unwrap().unwrap().active);
        assert!(store.lookup("WAS").await.unwrap().unwrap().active);
        // An unreadable LockoutEnd fails closed.
        assert!(!store.lookup("GARBLED").await.unwrap().unwrap().active);
        assert_eq!(store.lookup("NOBODY").await.unwrap(), None);
        // Case matters: the caller normalises.
        assert_eq!(store.lookup("jdoe").await.unwrap(), None);
        let report = store.check().await.unwrap();
        assert!(
            report.contains("user_name, password_hash, active"),
            "{report}"
        );
        assert!(store.open_connections() >= 1);
    }

    #[tokio::test]
    async fn claims_keep_their_json_types_and_nulls_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_db(dir.path()).await;
        let mut s = SqlSettings::new(url).unwrap();
        s.query = r#"SELECT "PasswordHash" AS password_hash, "Activo" AS active, "Level" AS level, "Score" AS score, "UserName" AS display FROM "AspNetUsers" WHERE "NormalizedUserName" = ?"#.into();
        s.claims = vec!["level".into(), "Score".into(), "display".into()];
        let store = SqlStore::new(s);
        let jdoe = store.lookup("JDOE").await.unwrap().unwrap();
        assert_eq!(
            jdoe.user_name, "JDOE",
            "no user_name column: the normalised name"
        );
        assert_eq!(jdoe.claims["level"], 7);
        assert_eq!(jdoe.claims["Score"], 1.5);
        assert_eq!(jdoe.claims["display"], "jdoe");
        let off = store.lookup("OFF").await.unwrap().unwrap();
        assert_eq!(off.claims.len(), 1, "{:?}", off.claims);
        store.check().await.unwrap();
    }

    #[tokio::test]
    async fn query_and_column_problems_are_unavailable_not_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_db(dir.path()).await;
        let with = |q: &str, claims: &[&str]| {
            let mut s = SqlSettings::new(url.clone()).unwrap();
            s.query = q.into();
            s.claims = claims.iter().map(|c| c.to_string()).collect();
            SqlStore::new(s)
        };
        // A blob column is not read silently.
        let blob = with(
            r#"SELECT "PasswordHash" AS password_hash, 1 AS active, "Blob" AS b FROM "AspNetUsers" WHERE "NormalizedUserName" = ?"#,
            &["b"],
        );
        let e = blob.lookup("JDOE").await.unwrap_err().to_string();
        assert!(e.contains("\"b\"") && e.contains("cast it to text"), "{e}");
        // A missing required column.
        let no_active = with(
            r#"SELECT "PasswordHash" AS password_hash FROM "AspNetUsers" WHERE "NormalizedUserName" = ?"#,
            &[],
        );
        assert!(no_active.lookup("JDOE").await.is_err());
        let e = no_active.check().await.unwrap_err().to_string();
        assert!(e.contains("\"active\""), "{e}");
        // Wrong parameter count and a broken query.
        let two = with(
            r#"SELECT "PasswordHash" AS password_hash, 1 AS active FROM "AspNetUsers" WHERE "NormalizedUserName" = ? OR "Id" = ?"#,
            &[],
        );
        let e = two.check().await.unwrap_err().to_string();
        assert!(e.contains("2 bind parameters"), "{e}");
        let broken = with("SELEC nothing", &[]);
        assert!(broken.lookup("JDOE").await.is_err());
        // The file opens read-only: a writing query fails.
        let writer = with(
            r#"UPDATE "AspNetUsers" SET "Activo" = 0 WHERE "NormalizedUserName" = ? RETURNING "PasswordHash" AS password_hash, 1 AS active"#,
            &[],
        );
        let e = writer.lookup("JDOE").await.unwrap_err().to_string();
        assert!(
            e.contains("readonly") || e.contains("read-only") || e.contains("read only"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_missing_database_is_unavailable_and_ready_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("absent.db").display());
        let mut s = SqlSettings::new(url).unwrap();
        s.connect_timeout = Duration::from_millis(300);
        let store = SqlStore::new(s);
        assert!(matches!(
            store.lookup("JDOE").await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(store.ready().await.is_err());
        // The read-only store never creates the file.
        assert!(!dir.path().join("absent.db").exists());
    }
}

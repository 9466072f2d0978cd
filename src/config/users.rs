//! `[users]`: where user records come from (a TOML file or a SQL database) and the SQL store's settings.
//!
//! The SQL settings type lives here rather than in `users::sql` because its defaults (pool size, timeouts,
//! the per-dialect ASP.NET Identity query) are configuration; `users::sql` only runs them.

use super::file::UsersFile;
use super::value::{dur, resolve, secret};
use super::ConfigError;
use crate::credentials::DummyKind;
use crate::defaults;
use crate::protocol::claims::RESERVED_CLAIMS;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where users come from.
#[derive(Clone, Debug)]
pub struct UsersConfig {
    pub store: UserStoreKind,
    pub reload_interval: Duration,
}

/// The configured user store.
#[derive(Clone, Debug)]
pub enum UserStoreKind {
    /// A TOML users file, reloaded when it changes.
    File(PathBuf),
    /// A SQL database queried once per login (`users.store = "sql"`).
    Sql(SqlSettings),
}

// === SQL store settings ===

/// Default `users.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// Default `users.connect_timeout`: the longest a login waits for a database connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default `users.query_timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `users.dummy_hash`: legacy ASP.NET Identity tables hold .NET 7+ V3 hashes (PBKDF2-SHA512, 100k).
pub const DEFAULT_DUMMY: DummyKind = DummyKind::AspNetV3Net7;
/// Column names the store reads itself (never claims).
pub const RESERVED_COLUMNS: [&str; 3] = ["user_name", "password_hash", "active"];

/// Default query for PostgreSQL (ASP.NET Identity via Npgsql: quoted PascalCase names, `timestamptz`).
pub const POSTGRES_DEFAULT_QUERY: &str = r#"SELECT "UserName" AS user_name, "PasswordHash" AS password_hash, ("Activo" AND ("LockoutEnd" IS NULL OR "LockoutEnd" <= now())) IS TRUE AS active FROM "AspNetUsers" WHERE "NormalizedUserName" = $1"#;
/// Default query for MySQL/MariaDB (Pomelo: `tinyint(1)` or `bit(1)` flag, `datetime(6)` in UTC).
pub const MYSQL_DEFAULT_QUERY: &str = "SELECT `UserName` AS user_name, `PasswordHash` AS password_hash, CASE WHEN `Activo` <> 0 AND (`LockoutEnd` IS NULL OR `LockoutEnd` <= UTC_TIMESTAMP(6)) THEN 1 ELSE 0 END AS active FROM `AspNetUsers` WHERE `NormalizedUserName` = ?";
/// Default query for SQLite (EF Core: integer flag, `LockoutEnd` as text like `2030-01-01 00:00:00+00:00`).
pub const SQLITE_DEFAULT_QUERY: &str = r#"SELECT "UserName" AS user_name, "PasswordHash" AS password_hash, CASE WHEN "Activo" <> 0 AND ("LockoutEnd" IS NULL OR julianday("LockoutEnd") <= julianday('now')) THEN 1 ELSE 0 END AS active FROM "AspNetUsers" WHERE "NormalizedUserName" = ?"#;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    MySql,
    /// SQLite (`sqlite:`).
    Sqlite,
}

impl Dialect {
    /// From the URL scheme: `postgres://`/`postgresql://`, `mysql://`/`mariadb://`, `sqlite:`.
    pub fn from_url(url: &str) -> Option<Dialect> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL/MariaDB",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// The default lookup query (ASP.NET Identity `AspNetUsers` plus `Activo`).
    pub fn default_query(self) -> &'static str {
        match self {
            Dialect::Postgres => POSTGRES_DEFAULT_QUERY,
            Dialect::MySql => MYSQL_DEFAULT_QUERY,
            Dialect::Sqlite => SQLITE_DEFAULT_QUERY,
        }
    }
}

/// `users.dummy_hash` names.
pub fn parse_dummy_kind(name: &str) -> Option<DummyKind> {
    match name {
        "argon2id" => Some(DummyKind::Argon2id),
        "aspnet-v3" => Some(DummyKind::AspNetV3Net7),
        "aspnet-v3-sha256" => Some(DummyKind::AspNetV3Net6),
        "aspnet-v2" => Some(DummyKind::AspNetV2),
        _ => None,
    }
}

/// Validated settings of the SQL store.
#[derive(Clone)]
pub struct SqlSettings {
    /// Connection URL; contains the password, so never printed (see `redact_url`).
    pub url: String,
    pub dialect: Dialect,
    pub query: String,
    /// Columns of the query's row that become token claims (named as written here).
    pub claims: Vec<String>,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub dummy: DummyKind,
    pub read_only: bool,
}

impl std::fmt::Debug for SqlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSettings")
            .field("url", &redact_url(&self.url))
            .field("dialect", &self.dialect)
            .field("query", &self.query)
            .field("claims", &self.claims)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("dummy", &self.dummy)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl SqlSettings {
    /// Settings with the defaults for `url` (None when the scheme is not a supported database).
    pub fn new(url: impl Into<String>) -> Option<SqlSettings> {
        let url = url.into();
        let dialect = Dialect::from_url(&url)?;
        Some(SqlSettings {
            url,
            dialect,
            query: dialect.default_query().to_string(),
            claims: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            dummy: DEFAULT_DUMMY,
            read_only: true,
        })
    }

    /// Parses the URL with the driver (no connection); the error never contains the URL.
    pub fn check_url(&self) -> Result<(), String> {
        let r = match self.dialect {
            Dialect::Postgres => PgConnectOptions::from_str(&self.url).map(drop),
            Dialect::MySql => MySqlConnectOptions::from_str(&self.url).map(drop),
            Dialect::Sqlite => SqliteConnectOptions::from_str(&self.url).map(drop),
        };
        r.map_err(|e| format!("not a valid {} URL ({e})", self.dialect.name()))
    }
}

/// The URL with its password (user-info and any `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_string(),
    };
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

// === validation ===

/// Validates `[users]`: the keys of the store not chosen are refused rather than silently ignored.
pub(super) fn validate_users(u: UsersFile, base: &Path) -> Result<UsersConfig, ConfigError> {
    let store = match u.store.as_deref().unwrap_or("file") {
        "file" => file_store(&u, base)?,
        "sql" => UserStoreKind::Sql(sql_store(&u, base)?),
        other => {
            return Err(ConfigError::invalid(
                "users.store",
                format!("{other:?} is not a known store (file, sql)"),
            ))
        }
    };
    Ok(UsersConfig {
        store,
        reload_interval: dur(u.reload_interval, defaults::USERS_RELOAD_INTERVAL),
    })
}

/// `users.store = "file"`: the users file path (resolved against `base`).
fn file_store(u: &UsersFile, base: &Path) -> Result<UserStoreKind, ConfigError> {
    let sql_keys = [
        ("users.url", u.url.is_some()),
        ("users.url_file", u.url_file.is_some()),
        ("users.query", u.query.is_some()),
        ("users.claims", u.claims.is_some()),
        ("users.max_connections", u.max_connections.is_some()),
        ("users.connect_timeout", u.connect_timeout.is_some()),
        ("users.query_timeout", u.query_timeout.is_some()),
        ("users.dummy_hash", u.dummy_hash.is_some()),
        ("users.read_only", u.read_only.is_some()),
    ];
    if let Some((key, _)) = sql_keys.iter().find(|(_, set)| *set) {
        return Err(ConfigError::invalid(
            *key,
            "only used with users.store = \"sql\"",
        ));
    }
    let file = u
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(defaults::USERS_FILE));
    Ok(UserStoreKind::File(resolve(base, &file)))
}

/// `users.store = "sql"`: the URL (a secret) and the keys that override `SqlSettings::new`'s defaults.
fn sql_store(u: &UsersFile, base: &Path) -> Result<SqlSettings, ConfigError> {
    let file_keys = [
        ("users.file", u.file.is_some()),
        ("users.reload_interval", u.reload_interval.is_some()),
    ];
    if let Some((key, _)) = file_keys.iter().find(|(_, set)| *set) {
        return Err(ConfigError::invalid(
            *key,
            "only used with users.store = \"file\"",
        ));
    }
    let mut s = sql_url(u, base)?;
    if let Some(q) = &u.query {
        if q.trim().is_empty() {
            return Err(ConfigError::invalid(
                "users.query",
                "is empty (leave it out for the default ASP.NET Identity query)",
            ));
        }
        s.query = q.clone();
    }
    s.claims = sql_claims(u.claims.as_deref().unwrap_or_default())?;
    if let Some(n) = u.max_connections {
        if n == 0 {
            return Err(ConfigError::invalid(
                "users.max_connections",
                "must be at least 1",
            ));
        }
        s.max_connections = n;
    }
    s.connect_timeout = dur(u.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    s.query_timeout = dur(u.query_timeout, DEFAULT_QUERY_TIMEOUT);
    for (key, d) in [
        ("users.connect_timeout", s.connect_timeout),
        ("users.query_timeout", s.query_timeout),
    ] {
        if d.is_zero() {
            return Err(ConfigError::invalid(key, "must be longer than 0s"));
        }
    }
    if let Some(name) = &u.dummy_hash {
        s.dummy = parse_dummy_kind(name).ok_or_else(|| {
            ConfigError::invalid(
                "users.dummy_hash",
                format!("{name:?} is not one of argon2id, aspnet-v3, aspnet-v3-sha256, aspnet-v2"),
            )
        })?;
    }
    s.read_only = u.read_only.unwrap_or(true);
    Ok(s)
}

/// `users.url` (or `users.url_file`): settings with the defaults of its dialect.
fn sql_url(u: &UsersFile, base: &Path) -> Result<SqlSettings, ConfigError> {
    let url = secret("users.url", u.url.clone(), u.url_file.clone(), base)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ConfigError::invalid(
                "users.url",
                "required when users.store = \"sql\" (or users.url_file, or GATEWAY_USERS__URL)",
            )
        })?;
    let s = SqlSettings::new(url.trim()).ok_or_else(|| {
        // Only the scheme is echoed: the rest may hold a password.
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        ConfigError::invalid(
            "users.url",
            format!(
                "scheme {scheme:?} is not supported (postgres://, mysql://, mariadb:// or sqlite:)"
            ),
        )
    })?;
    s.check_url()
        .map_err(|e| ConfigError::invalid("users.url", e))?;
    Ok(s)
}

/// `users.claims`: columns that become token claims; none may shadow what the gateway reads or sets itself.
fn sql_claims(list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut claims: Vec<String> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let key = format!("users.claims[{i}]");
        let lower = c.to_ascii_lowercase();
        if c.trim().is_empty() {
            return Err(ConfigError::invalid(key, "is empty"));
        }
        if RESERVED_COLUMNS.contains(&lower.as_str()) {
            return Err(ConfigError::invalid(
                key,
                format!("{c:?} is read by the gateway itself and never becomes a claim"),
            ));
        }
        if RESERVED_CLAIMS.contains(&lower.as_str()) {
            return Err(ConfigError::invalid(
                key,
                format!("{c:?} is a registered claim the gateway sets itself (alias the column in users.query)"),
            ));
        }
        if claims.iter().any(|o| o.eq_ignore_ascii_case(c)) {
            return Err(ConfigError::invalid(key, format!("{c:?} is listed twice")));
        }
        claims.push(c.clone());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;
    use super::*;

    #[test]
    fn dialect_comes_from_the_scheme() {
        assert_eq!(
            Dialect::from_url("postgres://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::from_url("PostgreSQL://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::from_url("mysql://u@h/db"), Some(Dialect::MySql));
        assert_eq!(Dialect::from_url("mariadb://u@h/db"), Some(Dialect::MySql));
        assert_eq!(
            Dialect::from_url("sqlite:///var/lib/users.db"),
            Some(Dialect::Sqlite)
        );
        assert_eq!(Dialect::from_url("sqlite:users.db"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::from_url("http://h/"), None);
        assert_eq!(Dialect::from_url("no scheme"), None);
    }

    #[test]
    fn default_queries_have_one_parameter_and_the_three_columns() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let q = d.default_query();
            for col in RESERVED_COLUMNS {
                assert!(q.contains(&format!("AS {col}")), "{d:?}: {col}");
            }
            assert!(q.contains("NormalizedUserName"), "{d:?}");
            assert!(q.contains("LockoutEnd") && q.contains("Activo"), "{d:?}");
        }
        assert!(POSTGRES_DEFAULT_QUERY.ends_with("= $1"));
        assert!(MYSQL_DEFAULT_QUERY.ends_with("= ?"));
        assert!(SQLITE_DEFAULT_QUERY.ends_with("= ?"));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://gw:s3cret@db:5432/app?sslmode=require"),
            "postgres://gw:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=gw&password=s3cret"),
            "postgres://h/db?user=gw&password=***"
        );
        assert_eq!(redact_url("mysql://u:p%40ss@h"), "mysql://u:***@h");
        assert_eq!(redact_url("sqlite:///tmp/u.db"), "sqlite:///tmp/u.db");
        let s = SqlSettings::new("postgres://gw:s3cret@db/app").unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn dummy_kinds_by_name() {
        assert_eq!(parse_dummy_kind("aspnet-v3"), Some(DummyKind::AspNetV3Net7));
        assert_eq!(
            parse_dummy_kind("aspnet-v3-sha256"),
            Some(DummyKind::AspNetV3Net6)
        );
        assert_eq!(parse_dummy_kind("aspnet-v2"), Some(DummyKind::AspNetV2));
        assert_eq!(parse_dummy_kind("argon2id"), Some(DummyKind::Argon2id));
        assert_eq!(parse_dummy_kind("md5"), None);
    }

    fn sql(extra: &str) -> Result<SqlSettings, String> {
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"sql\"\n{extra}"
        ))
        .map_err(|e| e.to_string())?;
        match c.users.store {
            UserStoreKind::Sql(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sql_store_defaults_follow_the_url_scheme() {
        let s = sql("url = \"postgres://gw:pw@db:5432/app\"\n").unwrap();
        assert_eq!(s.dialect, Dialect::Postgres);
        assert_eq!(s.query, Dialect::Postgres.default_query());
        assert_eq!(s.max_connections, 4);
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.query_timeout, Duration::from_secs(2));
        assert_eq!(s.dummy, DummyKind::AspNetV3Net7);
        assert!(s.read_only && s.claims.is_empty());
        assert_eq!(
            sql("url = \"mariadb://root@h/db\"\n").unwrap().dialect,
            Dialect::MySql
        );
        let s = sql("url = \"sqlite:///tmp/x.db\"\nquery = \"SELECT 1\"\nclaims = [\"email\"]\nmax_connections = 9\nconnect_timeout = \"5s\"\nquery_timeout = \"250ms\"\ndummy_hash = \"argon2id\"\nread_only = false\n").unwrap();
        assert_eq!(s.dialect, Dialect::Sqlite);
        assert_eq!(s.query, "SELECT 1");
        assert_eq!(s.claims, ["email"]);
        assert_eq!(s.max_connections, 9);
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.query_timeout, Duration::from_millis(250));
        assert_eq!(s.dummy, DummyKind::Argon2id);
        assert!(!s.read_only);
    }

    #[test]
    fn sql_store_errors_name_the_key_and_hide_the_password() {
        let e = sql("").unwrap_err();
        assert!(e.starts_with("users.url: required"), "{e}");
        let e = sql("url = \"redis://u:hunter2@h\"\n").unwrap_err();
        assert!(
            e.starts_with("users.url:") && e.contains("redis") && !e.contains("hunter2"),
            "{e}"
        );
        let e = sql("url = \"postgres://u:hunter2@h:notaport/db\"\n").unwrap_err();
        assert!(e.starts_with("users.url:") && !e.contains("hunter2"), "{e}");
        let e = sql("url = \"sqlite:x\"\nurl_file = \"/nonexistent\"\n").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        for (extra, key) in [
            ("query = \"  \"", "users.query:"),
            ("claims = [\"Password_Hash\"]", "users.claims[0]:"),
            ("claims = [\"a\", \"sub\"]", "users.claims[1]:"),
            ("claims = [\"a\", \"A\"]", "users.claims[1]:"),
            ("max_connections = 0", "users.max_connections:"),
            ("connect_timeout = \"0s\"", "users.connect_timeout:"),
            ("query_timeout = \"0s\"", "users.query_timeout:"),
            ("dummy_hash = \"sha1\"", "users.dummy_hash:"),
            ("file = \"users.toml\"", "users.file:"),
            ("reload_interval = \"1s\"", "users.reload_interval:"),
        ] {
            let e = sql(&format!("url = \"sqlite:x.db\"\n{extra}\n")).unwrap_err();
            assert!(e.starts_with(key), "{extra}: {e}");
        }
        // SQL keys with the file store are refused too.
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nquery = \"SELECT 1\"\n"
        ));
        assert!(e.starts_with("users.query: only used with"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"ldap\"\n"
        ));
        assert!(e.starts_with("users.store:"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type
    fn sql_url_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "postgres://gw:pw@db/app\n").unwrap();
        let s = sql(&format!("url_file = {:?}\n", f.display().to_string())).unwrap();
        assert_eq!(s.url, "postgres://gw:pw@db/app");
        assert!(!format!("{s:?}").contains(":pw@"));
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gateway.toml",
                &format!("[auth]\nsecret = \"{SECRET}\"\n[users]\nstore = \"sql\"\n"),
            )?;
            jail.set_env("GATEWAY_USERS__URL", "mysql://root@127.0.0.1:3306/app");
            let c = Config::load(Path::new("gateway.toml")).map_err(|e| e.to_string())?;
            match c.users.store {
                UserStoreKind::Sql(s) => {
                    assert_eq!(s.dialect, Dialect::MySql)
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    }
}

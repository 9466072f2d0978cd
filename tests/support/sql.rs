//! SQL test databases: a fresh PostgreSQL schema, MySQL/MariaDB database or SQLite file per test, holding an
//! `AspNetUsers` table shaped like ASP.NET Core Identity's (EF Core migrations for Npgsql, Pomelo and SQLite)
//! plus the legacy `Activo` flag; and a loopback TCP forwarder put between the gateway and a database server,
//! stopped and restarted to simulate an outage without touching the shared server.
//!
//! Server URLs come from `GATEWAY_TEST_POSTGRES_URL` and `GATEWAY_TEST_MYSQL_URL`; when one is unset,
//! `TestDb::create` writes `SKIPPED (<VAR> unset)` straight to stderr (past the test harness's capture) and
//! returns None, and the test passes without running. When it is set, any failure is a test failure.

use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, MySqlPool, PgPool, SqlitePool};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

impl Kind {
    /// The variable holding the server's URL (None: SQLite, embedded).
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Kind::Postgres => Some("GATEWAY_TEST_POSTGRES_URL"),
            Kind::MySql => Some("GATEWAY_TEST_MYSQL_URL"),
            Kind::Sqlite => None,
        }
    }

    /// The server's URL, or None after reporting the skip.
    pub fn server_url(self, test: &str) -> Option<Option<String>> {
        let Some(var) = self.env_var() else {
            return Some(None);
        };
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(Some(v.trim().to_string())),
            _ => {
                // Straight to stderr, in one write: libtest captures print!/eprint!, not direct writes.
                let line = format!("{test}: SKIPPED ({var} unset)\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
                None
            }
        }
    }
}

/// `LockoutEnd` of a test user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// NULL: never locked.
    None,
    /// A day ahead: locked out.
    Future,
    /// A day ago: the lockout is over.
    Past,
}

/// A test user row.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub hash: Option<String>,
    pub activo: Option<bool>,
    pub lockout: Lockout,
    pub phone: Option<String>,
}

impl User {
    /// An active, unlocked user.
    pub fn new(name: &str, hash: &str) -> User {
        User {
            name: name.into(),
            hash: Some(hash.into()),
            activo: Some(true),
            lockout: Lockout::None,
            phone: None,
        }
    }

    pub fn activo(mut self, a: Option<bool>) -> User {
        self.activo = a;
        self
    }

    pub fn lockout(mut self, l: Lockout) -> User {
        self.lockout = l;
        self
    }

    pub fn no_hash(mut self) -> User {
        self.hash = None;
        self
    }

    pub fn phone(mut self, p: &str) -> User {
        self.phone = Some(p.into());
        self
    }
}

enum Admin {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

/// A database (schema) of its own, dropped with this value.
pub struct TestDb {
    pub kind: Kind,
    /// The URL the gateway should use: through `forwarder` for servers.
    pub url: String,
    /// The same database without the forwarder (for the test's own connections).
    pub direct_url: String,
    /// Between the gateway and the server (None for SQLite).
    pub forwarder: Option<Forwarder>,
    /// The schema (Postgres) or database (MySQL) name, or the SQLite file.
    pub name: String,
    admin: Admin,
    server_url: Option<String>,
    dir: Option<tempfile::TempDir>,
}

/// `gw_` and 12 random hex digits.
fn random_name() -> String {
    format!("gw_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl TestDb {
    /// A fresh database with the ASP.NET Identity table; None (skip reported) when the server URL is unset.
    pub async fn create(kind: Kind, test: &str) -> Option<TestDb> {
        Self::create_with(kind, test, None).await
    }

    /// As `create`, with `Activo` declared as `activo_type` instead of the dialect's boolean.
    pub async fn create_with(kind: Kind, test: &str, activo_type: Option<&str>) -> Option<TestDb> {
        let server_url = kind.server_url(test)?;
        let name = random_name();
        let db = match kind {
            Kind::Postgres => {
                let base = server_url.clone().unwrap();
                let root = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&base)
                    .await
                    .expect("GATEWAY_TEST_POSTGRES_URL: cannot connect");
                root.execute(format!("CREATE SCHEMA {name}").as_str())
                    .await
                    .unwrap();
                root.close().await;
                let schema_url = with_param(&base, "options[search_path]", &name);
                let admin = PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&schema_url)
                    .await
                    .unwrap();
                let fwd = Forwarder::start(server_addr(&base, 5432)).await;
                let url = with_authority(&schema_url, fwd.addr);
                TestDb {
                    kind,
                    url,
                    direct_url: schema_url,
                    forwarder: Some(fwd),
                    name,
                    admin: Admin::Pg(admin),
                    server_url,
                    dir: None,
                }
            }
            Kind::MySql => {
                let base = server_url.clone().unwrap();
                let root = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&base)
                    .await
                    .expect("GATEWAY_TEST_MYSQL_URL: cannot connect");
                root.execute(
                    format!(
                        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
                root.close().await;
                let db_url = with_database(&base, &name);
                let admin = MySqlPoolOptions::new()
                    .max_connections(2)
                    .connect(&db_url)
                    .await
                    .unwrap();
                let fwd = Forwarder::start(server_addr(&base, 3306)).await;
                let url = with_authority(&db_url, fwd.addr);
                TestDb {
                    kind,
                    url,
                    direct_url: db_url,
                    forwarder: Some(fwd),
                    name,
                    admin: Admin::My(admin),
                    server_url,
                    dir: None,
                }
            }
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(format!("{name}.db"));
                let mut db = Self::sqlite(&path).await;
                db.dir = Some(dir);
                db
            }
        };
        db.create_table(activo_type).await;
        Some(db)
    }

    /// An SQLite database (with the table) at `path`, opened read-write (WAL, like a live application).
    pub async fn create_sqlite_at(path: &std::path::Path) -> TestDb {
        let db = Self::sqlite(path).await;
        db.create_table(None).await;
        db
    }

    async fn sqlite(path: &std::path::Path) -> TestDb {
        let admin = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        TestDb {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}", path.display()),
            direct_url: format!("sqlite://{}", path.display()),
            forwarder: None,
            name: path.display().to_string(),
            admin: Admin::Lite(admin),
            server_url: None,
            dir: None,
        }
    }

    /// Runs statements (no result).
    pub async fn exec(&self, sql: &str) {
        match &self.admin {
            Admin::Pg(p) => p.execute(sql).await.map(drop),
            Admin::My(p) => p.execute(sql).await.map(drop),
            Admin::Lite(p) => p.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.admin {
            Admin::Pg(p) => match sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await {
                // integer (INT4) columns
                Err(sqlx::Error::ColumnDecode { .. }) => sqlx::query_scalar::<_, i32>(sql)
                    .fetch_one(p)
                    .await
                    .map(i64::from),
                other => other,
            },
            Admin::My(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Admin::Lite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `"Name"` or `` `Name` ``.
    pub fn q(&self, ident: &str) -> String {
        match self.kind {
            Kind::MySql => format!("`{ident}`"),
            _ => format!("\"{ident}\""),
        }
    }

    /// The bind placeholder for parameter `n` (1-based).
    pub fn p(&self, n: usize) -> String {
        match self.kind {
            Kind::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    async fn create_table(&self, activo_type: Option<&str>) {
        let ddl: Vec<String> = match self.kind {
            Kind::Postgres => vec![
                format!(
                    r#"CREATE TABLE "AspNetUsers" (
                    "Id" text NOT NULL,
                    "UserName" character varying(256) NULL,
                    "NormalizedUserName" character varying(256) NULL,
                    "Email" character varying(256) NULL,
                    "NormalizedEmail" character varying(256) NULL,
                    "EmailConfirmed" boolean NOT NULL,
                    "PasswordHash" text NULL,
                    "SecurityStamp" text NULL,
                    "ConcurrencyStamp" text NULL,
                    "PhoneNumber" text NULL,
                    "PhoneNumberConfirmed" boolean NOT NULL,
                    "TwoFactorEnabled" boolean NOT NULL,
                    "LockoutEnd" timestamp with time zone NULL,
                    "LockoutEnabled" boolean NOT NULL,
                    "AccessFailedCount" integer NOT NULL,
                    "Activo" {} NULL,
                    CONSTRAINT "PK_AspNetUsers" PRIMARY KEY ("Id"))"#,
                    activo_type.unwrap_or("boolean")
                ),
                r#"CREATE INDEX "EmailIndex" ON "AspNetUsers" ("NormalizedEmail")"#.into(),
                r#"CREATE UNIQUE INDEX "UserNameIndex" ON "AspNetUsers" ("NormalizedUserName")"#
                    .into(),
            ],
            Kind::MySql => vec![
                format!(
                    r#"CREATE TABLE `AspNetUsers` (
                    `Id` varchar(255) NOT NULL,
                    `UserName` varchar(256) NULL,
                    `NormalizedUserName` varchar(256) NULL,
                    `Email` varchar(256) NULL,
                    `NormalizedEmail` varchar(256) NULL,
                    `EmailConfirmed` tinyint(1) NOT NULL,
                    `PasswordHash` longtext NULL,
                    `SecurityStamp` longtext NULL,
                    `ConcurrencyStamp` longtext NULL,
                    `PhoneNumber` longtext NULL,
                    `PhoneNumberConfirmed` tinyint(1) NOT NULL,
                    `TwoFactorEnabled` tinyint(1) NOT NULL,
                    `LockoutEnd` datetime(6) NULL,
                    `LockoutEnabled` tinyint(1) NOT NULL,
                    `AccessFailedCount` int NOT NULL,
                    `Activo` {} NULL,
                    CONSTRAINT `PK_AspNetUsers` PRIMARY KEY (`Id`)
                ) CHARACTER SET=utf8mb4"#,
                    activo_type.unwrap_or("tinyint(1)")
                ),
                "CREATE INDEX `EmailIndex` ON `AspNetUsers` (`NormalizedEmail`)".into(),
                "CREATE UNIQUE INDEX `UserNameIndex` ON `AspNetUsers` (`NormalizedUserName`)"
                    .into(),
            ],
            Kind::Sqlite => vec![
                format!(
                    r#"CREATE TABLE "AspNetUsers" (
                    "Id" TEXT NOT NULL CONSTRAINT "PK_AspNetUsers" PRIMARY KEY,
                    "UserName" TEXT NULL,
                    "NormalizedUserName" TEXT NULL,
                    "Email" TEXT NULL,
                    "NormalizedEmail" TEXT NULL,
                    "EmailConfirmed" INTEGER NOT NULL,
                    "PasswordHash" TEXT NULL,
                    "SecurityStamp" TEXT NULL,
                    "ConcurrencyStamp" TEXT NULL,
                    "PhoneNumber" TEXT NULL,
                    "PhoneNumberConfirmed" INTEGER NOT NULL,
                    "TwoFactorEnabled" INTEGER NOT NULL,
                    "LockoutEnd" TEXT NULL,
                    "LockoutEnabled" INTEGER NOT NULL,
                    "AccessFailedCount" INTEGER NOT NULL,
                    "Activo" {} NULL)"#,
                    activo_type.unwrap_or("INTEGER")
                ),
                r#"CREATE INDEX "EmailIndex" ON "AspNetUsers" ("NormalizedEmail")"#.into(),
                r#"CREATE UNIQUE INDEX "UserNameIndex" ON "AspNetUsers" ("NormalizedUserName")"#
                    .into(),
            ],
        };
        for stmt in ddl {
            self.exec(&stmt).await;
        }
    }

    /// The SQL expression for a `LockoutEnd` value.
    fn lockout_sql(&self, l: Lockout) -> &'static str {
        match (self.kind, l) {
            (_, Lockout::None) => "NULL",
            (Kind::Postgres, Lockout::Future) => "now() + interval '1 day'",
            (Kind::Postgres, Lockout::Past) => "now() - interval '1 day'",
            (Kind::MySql, Lockout::Future) => "UTC_TIMESTAMP(6) + INTERVAL 1 DAY",
            (Kind::MySql, Lockout::Past) => "UTC_TIMESTAMP(6) - INTERVAL 1 DAY",
            (Kind::Sqlite, Lockout::Future) => {
                "strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '+1 day')"
            }
            (Kind::Sqlite, Lockout::Past) => "strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '-1 day')",
        }
    }

    /// Inserts users as ASP.NET Identity would store them.
    pub async fn insert(&self, users: &[User]) {
        for u in users {
            let normalised = gateway::users::normalise_name(&u.name);
            let email = format!("{}@example.com", u.name.to_lowercase());
            let sql = format!(
                "INSERT INTO {t} ({id}, {un}, {nun}, {em}, {nem}, {emc}, {ph}, {ss}, {cs}, {pn}, {pnc}, {tfa}, {le}, {lee}, {afc}, {ac}) \
                 VALUES ({p1}, {p2}, {p3}, {p4}, {p5}, {f}, {p6}, {p7}, {p8}, {p9}, {f}, {f}, {lockout}, {t_}, 0, {p10})",
                t = self.q("AspNetUsers"),
                id = self.q("Id"),
                un = self.q("UserName"),
                nun = self.q("NormalizedUserName"),
                em = self.q("Email"),
                nem = self.q("NormalizedEmail"),
                emc = self.q("EmailConfirmed"),
                ph = self.q("PasswordHash"),
                ss = self.q("SecurityStamp"),
                cs = self.q("ConcurrencyStamp"),
                pn = self.q("PhoneNumber"),
                pnc = self.q("PhoneNumberConfirmed"),
                tfa = self.q("TwoFactorEnabled"),
                le = self.q("LockoutEnd"),
                lee = self.q("LockoutEnabled"),
                afc = self.q("AccessFailedCount"),
                ac = self.q("Activo"),
                p1 = self.p(1),
                p2 = self.p(2),
                p3 = self.p(3),
                p4 = self.p(4),
                p5 = self.p(5),
                p6 = self.p(6),
                p7 = self.p(7),
                p8 = self.p(8),
                p9 = self.p(9),
                p10 = self.p(10),
                f = if self.kind == Kind::Postgres { "false" } else { "0" },
                t_ = if self.kind == Kind::Postgres { "true" } else { "1" },
                lockout = self.lockout_sql(u.lockout),
            );
            let id = uuid::Uuid::new_v4().to_string();
            let stamp = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
            let concurrency = uuid::Uuid::new_v4().to_string();
            let nemail = gateway::users::normalise_name(&email);
            macro_rules! run {
                ($pool:expr) => {
                    sqlx::query(&sql)
                        .bind(&id)
                        .bind(&u.name)
                        .bind(&normalised)
                        .bind(&email)
                        .bind(&nemail)
                        .bind(u.hash.as_deref())
                        .bind(&stamp)
                        .bind(&concurrency)
                        .bind(u.phone.as_deref())
                        .bind(u.activo)
                        .execute($pool)
                        .await
                        .map(drop)
                };
            }
            match &self.admin {
                Admin::Pg(p) => run!(p),
                Admin::My(p) => run!(p),
                Admin::Lite(p) => run!(p),
            }
            .unwrap_or_else(|e| panic!("insert {}: {e}", u.name));
        }
    }

    /// Adds `n` active users `bulk<i>` (i in 1..=n) whose hash is `hash`, in one statement per dialect.
    pub async fn fill(&self, n: u64, hash: &str) {
        let hash = hash.replace('\'', "''");
        let sql = match self.kind {
            Kind::Postgres => format!(
                r#"INSERT INTO "AspNetUsers" ("Id", "UserName", "NormalizedUserName", "Email", "NormalizedEmail", "EmailConfirmed", "PasswordHash", "SecurityStamp", "ConcurrencyStamp", "PhoneNumberConfirmed", "TwoFactorEnabled", "LockoutEnabled", "AccessFailedCount", "Activo")
                   SELECT 'id-' || g, 'bulk' || g, 'BULK' || g, 'bulk' || g || '@example.com', 'BULK' || g || '@EXAMPLE.COM', false, '{hash}', md5(g::text), md5(g::text), false, false, true, 0, true
                   FROM generate_series(1, {n}) AS g"#
            ),
            Kind::MySql => {
                // Digits cross-joined: portable to MySQL and MariaDB, no recursion limit.
                self.exec("CREATE TABLE digits (d int NOT NULL)").await;
                self.exec("INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)")
                    .await;
                let places = (n.max(1) as f64).log10().ceil().max(1.0) as u32;
                let mut from = Vec::new();
                let mut expr = Vec::new();
                for i in 0..places {
                    from.push(format!("digits d{i}"));
                    expr.push(format!("d{i}.d * {}", 10u64.pow(i)));
                }
                format!(
                    "INSERT INTO `AspNetUsers` (`Id`, `UserName`, `NormalizedUserName`, `Email`, `NormalizedEmail`, `EmailConfirmed`, `PasswordHash`, `SecurityStamp`, `ConcurrencyStamp`, `PhoneNumberConfirmed`, `TwoFactorEnabled`, `LockoutEnabled`, `AccessFailedCount`, `Activo`) \
                     SELECT CONCAT('id-', g), CONCAT('bulk', g), CONCAT('BULK', g), CONCAT('bulk', g, '@example.com'), CONCAT('BULK', g, '@EXAMPLE.COM'), 0, '{hash}', MD5(g), MD5(g), 0, 0, 1, 0, 1 \
                     FROM (SELECT {} + 1 AS g FROM {}) AS s WHERE g <= {n}",
                    expr.join(" + "),
                    from.join(", ")
                )
            }
            Kind::Sqlite => format!(
                r#"INSERT INTO "AspNetUsers" ("Id", "UserName", "NormalizedUserName", "Email", "NormalizedEmail", "EmailConfirmed", "PasswordHash", "SecurityStamp", "ConcurrencyStamp", "PhoneNumberConfirmed", "TwoFactorEnabled", "LockoutEnabled", "AccessFailedCount", "Activo")
                   WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {n})
                   SELECT 'id-' || g, 'bulk' || g, 'BULK' || g, 'bulk' || g || '@example.com', 'BULK' || g || '@EXAMPLE.COM', 0, '{hash}', hex(randomblob(16)), hex(randomblob(16)), 0, 0, 1, 0, 1 FROM seq"#
            ),
        };
        self.exec(&sql).await;
        match self.kind {
            Kind::Postgres => self.exec(r#"ANALYZE "AspNetUsers""#).await,
            Kind::MySql => self.exec("ANALYZE TABLE `AspNetUsers`").await,
            Kind::Sqlite => self.exec("ANALYZE").await,
        }
    }

    /// The `[users]` TOML fragment for this database, plus `extra` keys (which win over the test defaults
    /// `connect_timeout = "1s"`, `query_timeout = "2s"`).
    pub fn users_toml(&self, extra: &str) -> String {
        let mut out = format!("[users]\nstore = \"sql\"\nurl = {:?}\n", self.url);
        for (key, value) in [("connect_timeout", "\"1s\""), ("query_timeout", "\"2s\"")] {
            if !extra.lines().any(|l| l.trim_start().starts_with(key)) {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out.push_str(extra);
        out.push('\n');
        out
    }

    /// The forwarder (panics for SQLite).
    pub fn fwd(&self) -> &Forwarder {
        self.forwarder.as_ref().expect("server database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(base) = self.server_url.clone() else {
            return;
        };
        if let Some(f) = &self.forwarder {
            f.stop();
        }
        let (kind, name) = (self.kind, self.name.clone());
        // Async cleanup from Drop: its own runtime on its own thread.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let r = match kind {
                    Kind::Postgres => {
                        match PgPoolOptions::new().max_connections(1).connect(&base).await {
                            Ok(p) => p
                                .execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
                                .await
                                .map(drop),
                            Err(e) => Err(e),
                        }
                    }
                    Kind::MySql => match MySqlPoolOptions::new()
                        .max_connections(1)
                        .connect(&base)
                        .await
                    {
                        Ok(p) => p
                            .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                            .await
                            .map(drop),
                        Err(e) => Err(e),
                    },
                    Kind::Sqlite => Ok(()),
                };
                if let Err(e) = r {
                    let _ = writeln!(
                        std::io::stderr(),
                        "warning: could not drop test database {name}: {e}"
                    );
                }
            });
        });
        let _ = cleanup.join();
        drop(self.dir.take());
    }
}

/// `url` with `key=value` added to its query string.
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// Splits `scheme://authority/path?query` into (scheme://, authority, path, ?query).
fn split_url(url: &str) -> (&str, &str, &str, &str) {
    let start = url.find("://").map(|i| i + 3).expect("URL with ://");
    let (scheme, rest) = url.split_at(start);
    let (before_query, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    (scheme, authority, path, query)
}

/// `url` with its database (path) replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, authority, _, query) = split_url(url);
    format!("{scheme}{authority}/{db}{query}")
}

/// `url` pointing at `addr` instead of its host and port (user and password kept).
pub fn with_authority(url: &str, addr: SocketAddr) -> String {
    let (scheme, authority, path, query) = split_url(url);
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}{userinfo}{addr}{path}{query}")
}

/// The server address of `url` (loopback only: tests never reach other hosts).
pub fn server_addr(url: &str, default_port: u16) -> SocketAddr {
    let (_, authority, _, _) = split_url(url);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let with_port = if hostport.starts_with('[') {
        if hostport.contains("]:") {
            hostport.to_string()
        } else {
            format!("{hostport}:{default_port}")
        }
    } else if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("{with_port}: {e}"))
        .next()
        .expect("an address");
    assert!(
        addr.ip().is_loopback(),
        "test databases must be on loopback, got {addr}"
    );
    addr
}

#[derive(Default)]
struct FwdState {
    accept: Option<JoinHandle<()>>,
    conns: Vec<AbortHandle>,
    open: usize,
    max_open: usize,
    total: usize,
}

/// A loopback TCP forwarder to one database server; `stop` closes it and every connection through it
/// (the database looks dead to the gateway), `restart` listens again on the same port.
pub struct Forwarder {
    pub addr: SocketAddr,
    target: SocketAddr,
    state: Arc<Mutex<FwdState>>,
}

/// Decrements the open count however the connection task ends (finished or aborted).
struct OpenGuard(Arc<Mutex<FwdState>>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.open -= 1;
        }
    }
}

impl Forwarder {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f = Forwarder {
            addr,
            target,
            state: Arc::new(Mutex::new(FwdState::default())),
        };
        f.serve(listener);
        f
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let target = self.target;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let guard = {
                    let mut s = state.lock().unwrap();
                    s.open += 1;
                    s.total += 1;
                    s.max_open = s.max_open.max(s.open);
                    OpenGuard(state.clone())
                };
                let conn = tokio::spawn(async move {
                    let _guard = guard;
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut s = state.lock().unwrap();
                s.conns.retain(|c| !c.is_finished());
                s.conns.push(conn.abort_handle());
            }
        });
        self.state.lock().unwrap().accept = Some(task);
    }

    /// Stops listening and cuts every forwarded connection.
    pub fn stop(&self) {
        let mut s = self.state.lock().unwrap();
        if let Some(a) = s.accept.take() {
            a.abort();
        }
        for c in s.conns.drain(..) {
            c.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop();
        let mut last = None;
        for _ in 0..50 {
            // The aborted accept task drops its listener asynchronously; retry until the port is free.
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => {
                    self.serve(listener);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("forwarder cannot listen on {} again: {last:?}", self.addr);
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap().open
    }

    /// The most connections ever open at once.
    pub fn max_open(&self) -> usize {
        self.state.lock().unwrap().max_open
    }

    /// Connections accepted so far.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().total
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

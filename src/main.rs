//! `gateway` command line: `serve` (default), `check-config`, `hash-password`, `healthcheck`, `revoke`. No request logic lives here.

use clap::{Parser, Subcommand};
use gateway::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Authenticating reverse proxy for legacy HTTP backends"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "GATEWAY_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Load and validate the configuration, print the effective routes, and exit.
    CheckConfig,
    /// Exit 0 if the gateway's /healthz answers 200 (for container HEALTHCHECKs without curl).
    Healthcheck {
        /// URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Revoke tokens on every instance: all of a user's tokens issued up to now, or one token by its `jti`.
    /// Writes to the shared store when `[shared]` is configured, otherwise asks the running gateway's
    /// operations listener (which needs `metrics.admin_token_file`).
    Revoke {
        /// The user (token `sub`) whose tokens issued up to now stop working.
        #[arg(long, required_unless_present = "jti", conflicts_with_all = ["jti", "exp"])]
        user: Option<String>,
        /// One token's `jti`.
        #[arg(long, requires = "exp")]
        jti: Option<String>,
        /// That token's `exp` (seconds since the epoch): how long it must stay refused.
        #[arg(long, requires = "jti")]
        exp: Option<u64>,
        /// The operations listener to ask (default: `http://` + `metrics.listen`, loopback for 0.0.0.0).
        #[arg(long)]
        admin_url: Option<String>,
    },
    /// Read a password (stdin, or a prompt without echo) and print its argon2id hash for the users file.
    HashPassword {
        /// argon2 memory in KiB (default from [login.hashing], else OWASP's 19456).
        #[arg(long)]
        memory_kib: Option<u32>,
        /// argon2 passes (default 2).
        #[arg(long)]
        iterations: Option<u32>,
        /// argon2 lanes (default 1).
        #[arg(long)]
        parallelism: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => {
            let _logs = gateway::telemetry::init(None);
            check_config(&cli.config)
        }
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Revoke {
            user,
            jti,
            exp,
            admin_url,
        } => {
            let _logs = gateway::telemetry::init(None);
            revoke(&cli.config, user, jti.zip(exp), admin_url)
        }
        Command::HashPassword {
            memory_kib,
            iterations,
            parallelism,
        } => hash_password(&cli.config, memory_kib, iterations, parallelism),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: invalid configuration ({}): {e}", path.display());
        ExitCode::from(2)
    })
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state = match gateway::state::Lasting::new(&config)
        .and_then(|lasting| gateway::state::State::new(&config, &lasting, None))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = gateway::exposure::check(&config, &state) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(file) = &state.users_file {
        match file.len() {
            Some(n) => {
                println!("users: {} ({n} users)", file.path().display());
                let kinds = file.hash_kinds();
                if kinds.len() > 1 {
                    let list: Vec<String> =
                        kinds.iter().map(|(k, n)| format!("{k:?} ×{n}")).collect();
                    println!(
                        "warning: users.file mixes password hash kinds ({}); every failed login is held to the slowest verification seen, so logins of users with cheaper hashes fail as slowly as the most expensive",
                        list.join(", ")
                    );
                }
            }
            None => {
                eprintln!(
                    "error: users.file: {} could not be loaded (see the log above)",
                    file.path().display()
                );
                return ExitCode::from(2);
            }
        }
        if state.login.as_ref().is_some_and(|l| !l.has_captcha()) {
            println!("WARNING: no login.turnstile.secret: every login will fail (401)");
        }
    }
    if let gateway::config::UserStoreKind::Sql(settings) = &config.users.store {
        if config.login.enabled {
            // Connect, prepare the query (one parameter, the needed columns) and run it once.
            let store = gateway::users::sql::SqlStore::new(settings.clone());
            let checked = one_shot_runtime()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(async {
                        let r = store.check().await;
                        store.close().await;
                        r
                    })
                    .map_err(|e| e.to_string())
                });
            match checked {
                Ok(report) => println!("users: OK {report}"),
                Err(e) => {
                    eprintln!("error: users: {}: {e}", store.describe());
                    return ExitCode::from(2);
                }
            }
        }
        if state.login.as_ref().is_some_and(|l| !l.has_captcha()) {
            println!("WARNING: no login.turnstile.secret: every login will fail (401)");
        }
    }
    if let Some(tls) = &config.server.tls {
        if let Err(e) = gateway::tls::server_config(tls) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    println!("configuration OK: {}", path.display());
    println!(
        "listen: {}{}",
        config.server.listen,
        if config.server.tls.is_some() {
            " (https)"
        } else {
            " (http)"
        }
    );
    if config.login.enabled {
        println!("login: POST {}", config.login.path);
    }
    println!("routes ({}):", config.routes.len());
    for r in &config.routes {
        println!(
            "  {:<16} {}{} -> {}{}{}",
            r.name,
            r.host.as_deref().map(|h| h.to_string()).unwrap_or_default(),
            r.prefix,
            r.describe_upstream(),
            if r.public {
                "  [public]"
            } else {
                "  [token required]"
            },
            match &r.rewrite_prefix {
                Some(p) if p.is_empty() => "  [prefix stripped]".to_string(),
                Some(p) => format!("  [prefix -> {p}]"),
                None => String::new(),
            }
        );
    }
    for (inner, outer) in gateway::config::nested_under_public(&config.routes) {
        println!(
            "warning: protected route {:?} ({}) is nested under public route {:?} ({}): legal, but a path the backend reads differently from the gateway would reach it as public; see README, Behaviour choices, Paths",
            inner.name, inner.prefix, outer.name, outer.prefix
        );
    }
    if config.auth.dev_secret {
        println!(
            "WARNING: the development JWT secret is in use; set auth.secret / GATEWAY_AUTH__SECRET"
        );
    }
    ExitCode::SUCCESS
}

/// The runtime of a command that makes a few requests and exits (`check-config`, `healthcheck`, `revoke`).
fn one_shot_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn healthcheck(url: &str) -> ExitCode {
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    let Ok(uri) = url.parse::<http::Uri>() else {
        eprintln!("error: {url:?} is not a URL");
        return ExitCode::from(2);
    };
    let Ok(runtime) = one_shot_runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let client: Client<HttpConnector, http_body_util::Empty<bytes::Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
        match tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await {
            Ok(Ok(res)) if res.status().is_success() => ExitCode::SUCCESS,
            Ok(Ok(res)) => {
                eprintln!("unhealthy: {}", res.status());
                ExitCode::FAILURE
            }
            Ok(Err(e)) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("unhealthy: timeout");
                ExitCode::FAILURE
            }
        }
    })
}

fn revoke(
    path: &std::path::Path,
    user: Option<String>,
    token: Option<(String, u64)>,
    admin_url: Option<String>,
) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = match (&user, &token) {
        (Some(u), _) => gateway::auth::operator::user_body(u),
        (None, Some((jti, exp))) => gateway::auth::operator::token_body(jti, *exp),
        (None, None) => {
            eprintln!("error: give --user NAME or --jti ID --exp UNIX");
            return ExitCode::from(2);
        }
    };
    if let Some(shared) = &config.shared {
        return revoke_shared(&config, shared, user, token);
    }
    let Some(admin) = &config.metrics.admin_token else {
        eprintln!("error: metrics.admin_token_file is not set, so the running gateway serves no revoke endpoint");
        return ExitCode::from(2);
    };
    let base = match admin_url {
        Some(u) => u,
        None => match config.metrics.listen {
            Some(addr) => format!("http://{}", gateway::admin::reachable(addr)),
            None => {
                eprintln!("error: metrics.enabled = false: no operations listener to ask");
                return ExitCode::from(2);
            }
        },
    };
    let Ok(runtime) = one_shot_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(gateway::admin::send_revoke(&base, &admin.0, body)) {
        Ok(()) => {
            match (user, token) {
                (Some(u), _) => println!("revoked: every token of user {u:?} issued up to now"),
                (None, Some((jti, _))) => println!("revoked: token {jti:?}"),
                (None, None) => {}
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {base}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `gateway revoke` with `[shared]`: writes the revocation to the store, which publishes it to every instance.
fn revoke_shared(
    config: &Config,
    shared: &gateway::config::SharedConfig,
    user: Option<String>,
    token: Option<(String, u64)>,
) -> ExitCode {
    use gateway::auth::revocation::{now_secs, Revocation, Revocations};
    let revocation = match (user, token) {
        (Some(sub), _) => Revocation::User {
            sub,
            not_after: now_secs(),
        },
        (None, Some((jti, exp))) => Revocation::Token {
            jti,
            until: exp.saturating_add(config.auth.leeway.as_secs()),
        },
        (None, None) => return ExitCode::from(2),
    };
    let Ok(runtime) = one_shot_runtime() else {
        return ExitCode::FAILURE;
    };
    let outcome = runtime.block_on(async {
        let store = gateway::shared::SharedStore::start(shared, gateway::metrics::Metrics::new())?;
        let remote = gateway::auth::shared_revocations::SharedRevocations::new(store);
        let table = Revocations::new(&config.auth.sessions, config.auth.leeway);
        // The first call also connects, which may take longer than shared.timeout: try a few times.
        let mut last = String::new();
        for _ in 0..5 {
            match remote.publish(&revocation, &table).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(last)
    });
    match outcome {
        Ok(()) => {
            println!("revoked in the shared store: {revocation:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(
    path: &std::path::Path,
    m: Option<u32>,
    t: Option<u32>,
    p: Option<u32>,
) -> ExitCode {
    use gateway::credentials::{hash_password, HashParams};
    use std::io::{BufRead, IsTerminal};
    // The config is optional here: it only supplies default parameters.
    let defaults = Config::load(path).ok().map(|c| c.login.hashing);
    let params = HashParams {
        m_cost_kib: m
            .or(defaults.as_ref().map(|d| d.argon2_memory_kib))
            .unwrap_or(gateway::defaults::ARGON2_MEMORY_KIB),
        t_cost: t
            .or(defaults.as_ref().map(|d| d.argon2_iterations))
            .unwrap_or(gateway::defaults::ARGON2_ITERATIONS),
        p_cost: p
            .or(defaults.as_ref().map(|d| d.argon2_parallelism))
            .unwrap_or(gateway::defaults::ARGON2_PARALLELISM),
    };
    let password = if std::io::stdin().is_terminal() {
        let first = match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot read the password: {e}");
                return ExitCode::FAILURE;
            }
        };
        match rpassword::prompt_password("Again: ") {
            Ok(again) if again == first => first,
            Ok(_) => {
                eprintln!("error: the passwords differ");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot read the password: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("error: cannot read the password from stdin: {e}");
            return ExitCode::FAILURE;
        }
        // Only the line ending is removed; the password is used exactly as typed.
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        eprintln!("error: empty password");
        return ExitCode::FAILURE;
    }
    match hash_password(&password, &params) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _logs = gateway::telemetry::init(Some(&config.log));
    gateway::telemetry::install_panic_hook();
    // Default: one worker per core. GATEWAY_WORKER_THREADS pins it (benchmarks, CPU-limited containers);
    // with 1, a current-thread runtime skips the work-stealing machinery it would not use anyway.
    let workers = std::env::var("GATEWAY_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0);
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    if config.auth.dev_secret {
        tracing::warn!("!!! DEVELOPMENT JWT SECRET IN USE: anyone can mint tokens. Set auth.secret, auth.secret_file or GATEWAY_AUTH__SECRET before exposing this gateway !!!");
    }
    let routes: Vec<String> = config
        .routes
        .iter()
        .map(|r| {
            format!(
                "{}{} -> {}{}",
                r.host.as_deref().unwrap_or(""),
                r.prefix,
                r.describe_upstream(),
                if r.public { " (public)" } else { "" }
            )
        })
        .collect();
    let tls = config.server.tls.is_some();
    let store = match (&config.login.enabled, &config.users.store) {
        (false, _) => "none (login disabled)".to_string(),
        (true, gateway::config::UserStoreKind::File(p)) => format!("file {}", p.display()),
        #[allow(unreachable_patterns)]
        (true, _) => "sql".to_string(),
    };
    let running = match gateway::spawn(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %running.addr,
        tls,
        metrics = ?running.metrics_addr,
        users = %store,
        routes = ?routes,
        "gateway listening"
    );
    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.stop().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

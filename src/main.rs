//! `gateway` command line: `serve` (default), `check-config`, `hash-password`. No request logic lives here.

use clap::{Parser, Subcommand};
use gateway::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gateway", version, about = "Authenticating reverse proxy for legacy HTTP backends")]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, env = "GATEWAY_CONFIG", default_value = "gateway.toml")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::telemetry::init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
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
    if let Err(e) = gateway::state::State::new(&config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
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
        if config.server.tls.is_some() { " (https)" } else { " (http)" }
    );
    if config.login.enabled {
        println!("login: POST {}", config.login.path);
    }
    println!("routes ({}):", config.routes.len());
    for r in &config.routes {
        println!(
            "  {:<16} {}{} -> {}{}{}",
            r.name,
            r.host.as_deref().map(|h| format!("{h}")).unwrap_or_default(),
            r.prefix,
            r.upstream.url,
            if r.public { "  [public]" } else { "  [token required]" },
            match &r.rewrite_prefix {
                Some(p) if p.is_empty() => "  [prefix stripped]".to_string(),
                Some(p) => format!("  [prefix -> {p}]"),
                None => String::new(),
            }
        );
    }
    if config.auth.dev_secret {
        println!("WARNING: the development JWT secret is in use; set auth.secret / GATEWAY_AUTH__SECRET");
    }
    ExitCode::SUCCESS
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    gateway::telemetry::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
    let routes = config.routes.len();
    let tls = config.server.tls.is_some();
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
        routes,
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

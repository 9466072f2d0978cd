//! Logging setup: `tracing` to stderr, filtered by `GATEWAY_LOG` (or `RUST_LOG`), default `info`.
//! `GATEWAY_LOG_FORMAT=json` switches to one JSON object per line for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once from `main`.
pub fn init() {
    let filter = std::env::var("GATEWAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("GATEWAY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Logs panics as bugs; tokio then ends only the task that panicked, never the process.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "BUG: a task panicked; the connection it served was dropped");
        default(info);
    }));
}

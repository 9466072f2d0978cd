//! Logging setup: `tracing` to stderr, filtered by `GATEWAY_LOG` (or `RUST_LOG`), default `info`.
//! `GATEWAY_LOG_FORMAT=json` switches to one JSON object per line for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once from `main`. `GATEWAY_LOG` / `RUST_LOG` override `log.level`,
/// `GATEWAY_LOG_FORMAT=json` overrides `log.format`. Lines go through a non-blocking writer so a slow stderr
/// never stalls request handling (lines are dropped rather than blocking when its buffer is full).
#[must_use = "logs are flushed when the guard drops; keep it until exit"]
pub fn init(cfg: Option<&crate::config::LogConfig>) -> tracing_appender::non_blocking::WorkerGuard {
    let level = std::env::var("GATEWAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .or_else(|| cfg.map(|c| c.level.clone()))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GATEWAY_LOG_FORMAT")
        .map(|f| f.eq_ignore_ascii_case("json"))
        .unwrap_or_else(|_| cfg.is_some_and(|c| c.json));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

/// Logs panics as bugs; tokio then ends only the task that panicked, never the process.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "BUG: a task panicked; the connection it served was dropped");
        default(info);
    }));
}

/// A new request id: a per-process random prefix and a counter (unique, cheap, no syscall per request).
pub fn new_request_id() -> http::HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;
    static PREFIX: LazyLock<u32> = LazyLock::new(|| {
        let id = uuid::Uuid::new_v4();
        let b = id.as_bytes();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    });
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("{:08x}-{n:012x}", *PREFIX);
    http::HeaderValue::from_str(&text).unwrap_or(http::HeaderValue::from_static("-"))
}

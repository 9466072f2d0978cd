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
    // The default channel holds 128,000 lines (a 4 MB allocation); a few thousand lines of slack is plenty.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(4096)
        .finish(std::io::stderr());
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
    // "pppppppp-nnnnnnnnnnnn" written into a stack buffer: no formatting machinery on the request path.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 21];
    let prefix = *PREFIX;
    for (i, slot) in buf[..8].iter_mut().enumerate() {
        *slot = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
    }
    buf[8] = b'-';
    for (i, slot) in buf[9..].iter_mut().enumerate() {
        *slot = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
    }
    http::HeaderValue::from_bytes(&buf).unwrap_or(http::HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_unique_and_well_formed() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        assert_ne!(a, b);
        let text = a.to_str().unwrap();
        assert_eq!(text.len(), 21);
        assert_eq!(&text[8..9], "-");
        assert!(text.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }
}

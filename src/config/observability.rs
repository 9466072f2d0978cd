//! `[log]` and `[metrics]`: the log filter and format, and the separate metrics/health listener.

use super::file::{LogFile, MetricsFile};
use super::value::secret;
use super::ConfigError;
use crate::defaults;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

/// Logging settings.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `gateway=debug` (`GATEWAY_LOG` overrides it).
    pub level: String,
    pub json: bool,
    /// One line per request on target `access`.
    pub access: bool,
}

/// The metrics and health listener.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// None when disabled.
    pub listen: Option<SocketAddr>,
    /// Also answer /healthz and /readyz on the main listener, without a token.
    pub health_on_main_listener: bool,
    /// `/readyz` fails while some route has no upstream target that takes requests.
    pub readyz_requires_upstreams: bool,
    /// The operator token the revoke endpoint requires; None = that endpoint is not served.
    pub admin_token: Option<AdminToken>,
}

/// An operator bearer token (`metrics.admin_token_file`); never printed.
#[derive(Clone)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Validates `[log]`.
pub(super) fn validate_log(l: LogFile) -> Result<LogConfig, ConfigError> {
    let level = l.level.unwrap_or_else(|| "info".to_string());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{level:?} is not a log filter like \"info\" or \"gateway=debug\""),
        ));
    }
    let json = match l.format.as_deref().unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ))
        }
    };
    Ok(LogConfig {
        level,
        json,
        access: l.access.unwrap_or(true),
    })
}

/// Validates `[metrics]`.
pub(super) fn validate_metrics(m: MetricsFile, base: &Path) -> Result<MetricsConfig, ConfigError> {
    let admin_token = secret("metrics.admin_token", None, m.admin_token_file, base)?;
    if let Some(t) = &admin_token {
        // Anyone who can reach the listener may guess it: as strong as an HMAC key.
        if t.len() < defaults::MIN_ADMIN_TOKEN_BYTES || t.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "metrics.admin_token_file",
                format!(
                    "the token must be at least {} bytes without whitespace",
                    defaults::MIN_ADMIN_TOKEN_BYTES
                ),
            ));
        }
    }
    let listen = if m.enabled.unwrap_or(true) {
        let text = m
            .listen
            .unwrap_or_else(|| defaults::METRICS_LISTEN_ADDR.to_string());
        Some(SocketAddr::from_str(&text).map_err(|_| {
            ConfigError::invalid(
                "metrics.listen",
                format!("{text:?} is not an address like 127.0.0.1:9090"),
            )
        })?)
    } else {
        None
    };
    Ok(MetricsConfig {
        listen,
        health_on_main_listener: m.health_on_main_listener.unwrap_or(false),
        readyz_requires_upstreams: m.readyz_requires_upstreams.unwrap_or(false),
        admin_token: admin_token.map(AdminToken),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;

    #[test]
    fn log_format_and_metrics_listen_are_checked() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[log]\nformat = \"xml\"\n"
        ));
        assert!(e.starts_with("log.format:"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[metrics]\nlisten = \"9090\"\n"
        ));
        assert!(e.starts_with("metrics.listen:"), "{e}");
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[metrics]\nenabled = false\n[log]\nformat = \"json\"\n"
        ))
        .unwrap();
        assert!(c.metrics.listen.is_none() && c.log.json);
    }
}

//! `[server]` and `[server.tls]`: the listener address, connection limits, upgraded-connection limits,
//! trusted proxies and HTTPS files.

use super::file::{ServerFile, TlsFile};
use super::value::{dur, resolve};
use super::ConfigError;
use crate::defaults;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Listener settings and limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    /// Time to send the buffered first part of a request body (`routes[].request_buffer_bytes`) → 408.
    pub body_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    /// An upgraded connection with no byte either way for this long is closed. Read per upgrade, so a
    /// reload applies to new upgrades only.
    pub websocket_idle_timeout: Duration,
    /// Upgraded connections one token subject may hold at once. Read per upgrade, like the idle timeout.
    pub max_websockets_per_user: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Option<TlsConfig>,
}

/// HTTPS listener files.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub handshake_timeout: Duration,
}

/// Validates `[server]`; relative TLS paths resolve against `base`.
pub(super) fn validate_server(s: ServerFile, base: &Path) -> Result<ServerConfig, ConfigError> {
    let listen_text = s
        .listen
        .unwrap_or_else(|| defaults::LISTEN_ADDR.to_string());
    let listen = SocketAddr::from_str(&listen_text).map_err(|_| {
        ConfigError::invalid(
            "server.listen",
            format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
        )
    })?;
    let max_header_bytes = s.max_header_bytes.unwrap_or(defaults::MAX_HEADER_BYTES);
    // hyper's read buffer cannot be smaller than 8 KiB.
    if max_header_bytes < 8192 {
        return Err(ConfigError::invalid(
            "server.max_header_bytes",
            "must be at least 8192",
        ));
    }
    let max_connections = s.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ConfigError::invalid(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    let h2_max_concurrent_streams = s
        .h2_max_concurrent_streams
        .unwrap_or(defaults::H2_MAX_CONCURRENT_STREAMS);
    if h2_max_concurrent_streams == 0 {
        return Err(ConfigError::invalid(
            "server.h2_max_concurrent_streams",
            "must be at least 1",
        ));
    }
    let websocket_idle_timeout = dur(s.websocket_idle_timeout, defaults::WEBSOCKET_IDLE_TIMEOUT);
    // Zero would close every upgraded connection the moment it opens.
    if websocket_idle_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "server.websocket_idle_timeout",
            "must be longer than 0s",
        ));
    }
    let max_websockets_per_user = s
        .max_websockets_per_user
        .unwrap_or(defaults::MAX_WEBSOCKETS_PER_USER);
    // Zero would refuse every authenticated upgrade; a route that must not upgrade is not this setting's job.
    if max_websockets_per_user == 0 {
        return Err(ConfigError::invalid(
            "server.max_websockets_per_user",
            "must be at least 1",
        ));
    }
    let trusted_proxies = trusted_proxies(&s.trusted_proxies)?;
    let tls = s.tls.map(|t| validate_tls(t, base)).transpose()?;
    Ok(ServerConfig {
        listen,
        header_read_timeout: dur(s.header_read_timeout, defaults::HEADER_READ_TIMEOUT),
        max_header_bytes,
        idle_timeout: dur(s.idle_timeout, defaults::IDLE_TIMEOUT),
        max_connections,
        drain_timeout: dur(s.drain_timeout, defaults::DRAIN_TIMEOUT),
        body_timeout: dur(s.body_timeout, defaults::BODY_TIMEOUT),
        h2_max_concurrent_streams,
        websocket_idle_timeout,
        max_websockets_per_user,
        trusted_proxies,
        tls,
    })
}

/// `server.trusted_proxies`: CIDR ranges, or single addresses taken as one-address ranges.
fn trusted_proxies(list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            IpNet::from_str(p)
                .or_else(|_| std::net::IpAddr::from_str(p).map(IpNet::from))
                .map_err(|_| {
                    ConfigError::invalid(
                        format!("server.trusted_proxies[{i}]"),
                        format!("{p:?} is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

/// `[server.tls]`: both files must exist now, so a typo fails at start-up rather than at the first handshake.
fn validate_tls(t: TlsFile, base: &Path) -> Result<TlsConfig, ConfigError> {
    let cert = resolve(
        base,
        &t.cert.unwrap_or_else(|| PathBuf::from("certs/gateway.crt")),
    );
    let key = resolve(
        base,
        &t.key.unwrap_or_else(|| PathBuf::from("certs/gateway.key")),
    );
    for (k, p) in [("server.tls.cert", &cert), ("server.tls.key", &key)] {
        if !p.is_file() {
            return Err(ConfigError::invalid(
                k,
                format!("{}: file not found", p.display()),
            ));
        }
    }
    Ok(TlsConfig {
        cert,
        key,
        handshake_timeout: dur(t.handshake_timeout, defaults::TLS_HANDSHAKE_TIMEOUT),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, with_routes, SECRET};

    #[test]
    fn missing_cert_file_is_refused() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server.tls]\ncert = \"/nonexistent.crt\"\n"
        ));
        assert!(e.starts_with("server.tls.cert:"), "{e}");
    }

    #[test]
    fn bad_duration_names_its_key() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\nidle_timeout = \"soon\"\n"
        ));
        assert!(e.contains("idle_timeout") && e.contains("soon"), "{e}");
    }

    #[test]
    fn websocket_limits_default_and_refuse_zero() {
        let c = super::super::Config::from_toml(&with_routes(
            "[[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n",
        ))
        .unwrap();
        assert_eq!(
            c.server.websocket_idle_timeout,
            crate::defaults::WEBSOCKET_IDLE_TIMEOUT
        );
        assert_eq!(
            c.server.max_websockets_per_user,
            crate::defaults::MAX_WEBSOCKETS_PER_USER
        );
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\nwebsocket_idle_timeout = \"0s\"\n"
        ));
        assert!(e.starts_with("server.websocket_idle_timeout:"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\nmax_websockets_per_user = 0\n"
        ));
        assert!(e.starts_with("server.max_websockets_per_user:"), "{e}");
    }

    #[test]
    fn trusted_proxy_must_be_an_address_or_range() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy\"]\n"
        ));
        assert!(e.starts_with("server.trusted_proxies[1]:"), "{e}");
    }
}

//! `[server]` and `[server.tls]`: the listener address, connection limits, trusted proxies and HTTPS files.

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
    use super::super::testing::{err, SECRET};

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
    fn trusted_proxy_must_be_an_address_or_range() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy\"]\n"
        ));
        assert!(e.starts_with("server.trusted_proxies[1]:"), "{e}");
    }
}

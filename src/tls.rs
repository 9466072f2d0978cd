//! TLS termination: PEM loading and the rustls server config (ALPN h2 + http/1.1, TLS 1.2/1.3, ring).

use crate::config::TlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("server.tls.cert: {0}")]
    Cert(String),
    /// The key file is unreadable or holds no private key.
    #[error("server.tls.key: {0}")]
    Key(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("server.tls: {0}")]
    Config(String),
}

/// Loads the certificate chain and key and builds the server config.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| TlsError::Cert(format!("{}: {e}", cfg.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(format!("{}: {e}", cfg.cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(format!(
            "{}: no certificate found",
            cfg.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| TlsError::Key(format!("{}: {e}", cfg.key.display())))?;
    let mut config =
        ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

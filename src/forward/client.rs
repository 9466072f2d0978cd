//! The pooled upstream client: hyper-util's legacy client over HTTP or HTTPS (rustls), one per route so each
//! route's connect timeout applies, with keep-alive pooling.

use crate::config::RouteConfig;
use crate::defaults;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Client that sends a client's streamed body upstream.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, crate::body::ClientBody>;

/// Why an upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("routes: {route}: upstream TLS setup: {reason}")]
pub struct ClientError {
    route: String,
    reason: String,
}

impl ClientError {
    /// A setup failure of `route`'s client.
    pub fn new(route: &str, reason: String) -> ClientError {
        ClientError {
            route: route.to_string(),
            reason,
        }
    }
}

/// Builds the client for one route.
pub fn build(route: &RouteConfig) -> Result<UpstreamClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(route.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match &route.ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = load_certs(path).map_err(|reason| ClientError {
                route: route.name.clone(),
                reason,
            })?;
            for c in certs {
                roots.add(c).map_err(|e| ClientError {
                    route: route.name.clone(),
                    reason: e.to_string(),
                })?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(
                rustls::crypto::ring::default_provider().into(),
            )
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError {
                route: route.name.clone(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        None => builder.with_webpki_roots(),
    };
    // Upstreams get HTTP/1.1, as nginx and HAProxy send by default; legacy backends rarely speak h2.
    let https = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(defaults::UPSTREAM_POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(route.max_idle_connections)
        .set_host(false)
        .build(https))
}

fn load_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

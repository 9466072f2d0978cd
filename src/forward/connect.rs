//! Opening a connection to an upstream target: name resolution, TCP within the route's connect timeout,
//! and TLS (rustls, HTTP/1.1 by ALPN) for `https` targets.

use crate::config::{RouteConfig, Upstream};
use http::uri::Scheme;
use rustls_pki_types::ServerName;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Probes of a kept-alive upstream connection, so one that a firewall dropped is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a route's upstream client could not be set up.
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

/// Why no connection to a target was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Not established within the route's connect timeout (resolution included).
    #[error("connect timeout")]
    Timeout,
    /// Refused, unreachable, unresolvable, or the TLS handshake failed.
    #[error("{0}")]
    Failed(String),
}

/// How one route reaches its targets: the connect timeout and, for `https` targets, the TLS client.
#[derive(Clone)]
pub struct Connector {
    timeout: Duration,
    tls: TlsConnector,
}

impl Connector {
    /// The connector of `route`: its `ca_file` as the only trust anchors when set, else the WebPKI roots.
    pub fn new(route: &RouteConfig) -> Result<Connector, ClientError> {
        let failed = |reason: String| ClientError::new(&route.name, reason);
        let mut roots = rustls::RootCertStore::empty();
        match &route.ca_file {
            Some(path) => {
                for c in load_certs(path).map_err(failed)? {
                    roots.add(c).map_err(|e| failed(e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Upstreams get HTTP/1.1, as nginx and HAProxy send by default; legacy backends rarely speak h2.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Connector {
            timeout: route.connect_timeout,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Opens a connection to `upstream`, trying its addresses in turn, all within the connect timeout.
    pub async fn connect(&self, upstream: &Upstream) -> Result<Stream, ConnectError> {
        tokio::time::timeout(self.timeout, self.open(upstream))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    async fn open(&self, upstream: &Upstream) -> Result<Stream, ConnectError> {
        let tls = upstream.scheme == Scheme::HTTPS;
        // An IPv6 literal keeps its brackets in the authority.
        let host = upstream
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = upstream
            .authority
            .port_u16()
            .unwrap_or(if tls { 443 } else { 80 });
        let tcp = match host.parse::<IpAddr>() {
            Ok(ip) => tcp(SocketAddr::new(ip, port)).await?,
            Err(_) => {
                let addrs = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| ConnectError::Failed(format!("resolve {host}: {e}")))?;
                let mut last = ConnectError::Failed(format!("resolve {host}: no address"));
                let mut made = None;
                for addr in addrs {
                    match tcp(addr).await {
                        Ok(s) => {
                            made = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                made.ok_or(last)?
            }
        };
        if !tls {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| ConnectError::Failed(format!("TLS name {host}: {e}")))?;
        let stream = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Failed(format!("TLS handshake: {e}")))?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, ConnectError> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| ConnectError::Failed(format!("tcp connect error: {addr}: {e}")))?;
    // Requests are written whole; waiting for an ACK before the next small write only adds latency.
    let _ = s.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    let _ = socket2::SockRef::from(&s).set_tcp_keepalive(&keepalive);
    Ok(s)
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

/// An open upstream connection, plain or TLS.
pub enum Stream {
    /// `http` targets.
    Plain(TcpStream),
    /// `https` targets (boxed: the TLS state is large and most targets are plain).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

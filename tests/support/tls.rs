//! TLS material made at run time (rcgen): a self-signed certificate for localhost/127.0.0.1.

use std::path::PathBuf;

/// A certificate and key written to a temporary directory.
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
}

/// Generates a fresh self-signed certificate.
pub fn self_signed() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("gateway.crt");
    let key_path = dir.path().join("gateway.key");
    let cert_pem = ck.cert.pem();
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    TestCert {
        dir,
        cert_path,
        key_path,
        cert_pem,
    }
}

impl TestCert {
    /// The `[server.tls]` fragment for this certificate.
    pub fn server_toml(&self) -> String {
        format!(
            "[server.tls]\ncert = {:?}\nkey = {:?}\nhandshake_timeout = \"1s\"\n",
            self.cert_path.display().to_string(),
            self.key_path.display().to_string()
        )
    }

    /// A client that trusts only this certificate and offers both `h2` and `http/1.1` by ALPN, so the
    /// server's choice decides the version.
    pub fn client_alpn(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    /// A client that trusts only this certificate.
    pub fn client(&self, http2_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap(),
            );
        if http2_only {
            b = b.http2_prior_knowledge();
        } else {
            b = b.http1_only();
        }
        b.build().unwrap()
    }
}

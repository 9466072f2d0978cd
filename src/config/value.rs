//! Small value parsers shared by the sections: durations, relative paths, secrets, header names, URLs.

use super::file::Dur;
use super::ConfigError;
use crate::protocol::headers::is_hop_by_hop;
use http::uri::{Authority, Scheme};
use http::{HeaderName, Uri};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The duration given, or `default` when the key was left out.
pub(super) fn dur(v: Option<Dur>, default: Duration) -> Duration {
    v.map(|d| d.0).unwrap_or(default)
}

/// `p` resolved against the config file's directory unless it is absolute.
pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A secret given inline, by env, or as `<key>_file`; never both.
pub(super) fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(f)) => {
            let path = resolve(base, &f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", path.display()))
            })?;
            // Secret files conventionally end with a newline that is not part of the secret.
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A header name that can carry identity to the upstream (not hop-by-hop, not `Host`).
pub(super) fn header_name(key: &str, value: &str) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_str(value)
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))?;
    if is_hop_by_hop(&name) || name == http::header::HOST {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} is a hop-by-hop or Host header and cannot carry identity"),
        ));
    }
    Ok(name)
}

/// The parts of an absolute http(s) URL the gateway sends requests to.
pub(super) struct HttpUrl {
    pub scheme: Scheme,
    pub authority: Authority,
    pub path: String,
}

/// Parses an absolute `http://` or `https://` URL with a host, an optional numeric port in 1-65535,
/// and no user-info, query or fragment; the error says which rule failed.
///
/// `http::Uri` alone accepts `http://h:notaport` (the port is only parsed when asked for) and drops
/// a fragment silently, so both are checked by hand: a bad port must fail here, not at the first request.
pub(super) fn http_url(text: &str) -> Result<HttpUrl, String> {
    if text.contains('#') {
        return Err("must not contain a fragment".into());
    }
    let uri = Uri::from_str(text).map_err(|_| "not a URL".to_string())?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => Scheme::HTTP,
        Some(s) if s.eq_ignore_ascii_case("https") => Scheme::HTTPS,
        _ => return Err("not an absolute http(s) URL".into()),
    };
    let authority = uri.authority().cloned().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not contain credentials".into());
    }
    if authority.host().is_empty() {
        return Err("has no host".into());
    }
    if let Some(port) = port_text(authority.as_str()) {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("port {port:?} is not a number in 1-65535")),
        }
    }
    if uri.query().is_some() {
        return Err("must not contain a query".into());
    }
    Ok(HttpUrl {
        scheme,
        authority,
        path: uri.path().to_string(),
    })
}

/// The text after the host's `:`, if the authority has one (IPv6 brackets respected).
fn port_text(authority: &str) -> Option<&str> {
    let host_end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.find(':')?
    };
    authority[host_end..].strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_url_accepts_the_usual_forms() {
        for ok in [
            "http://127.0.0.1:9000",
            "https://backend.internal/base/",
            "http://[::1]:8080/x",
            "HTTP://h",
            "http://h:65535",
        ] {
            assert!(http_url(ok).is_ok(), "{ok}");
        }
        let u = http_url("https://h:8443/base/").unwrap();
        assert_eq!(u.scheme, Scheme::HTTPS);
        assert_eq!(u.authority.as_str(), "h:8443");
        assert_eq!(u.path, "/base/");
    }

    #[test]
    fn http_url_refuses_each_bad_form() {
        for (bad, why) in [
            ("http://127.0.0.1:notaport", "port"),
            ("http://h:0", "port"),
            ("http://h:65536", "port"),
            ("http://h:", "port"),
            ("http://h:+80", "port"),
            ("http://[::1]:x", "port"),
            ("ftp://h", "http(s)"),
            ("/relative", "http(s)"),
            ("not a url", "URL"),
            ("http://user:pw@h", "credentials"),
            ("http://h/?a=1", "query"),
            ("http://h/#frag", "fragment"),
            ("http://:80", "host"),
        ] {
            let e = match http_url(bad) {
                Ok(_) => panic!("{bad} accepted"),
                Err(e) => e,
            };
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}

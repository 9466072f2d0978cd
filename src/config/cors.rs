//! `[cors]`: which browser origins may call the gateway, with which methods and headers.

use super::file::CorsFile;
use super::value::dur;
use super::ConfigError;
use crate::defaults;
use http::{HeaderName, Method, Uri};
use std::str::FromStr;
use std::time::Duration;

/// Cross-origin settings.
#[derive(Clone, Debug)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`); `*` allows any origin without credentials.
    pub allowed_origins: Vec<String>,
    pub allow_any_origin: bool,
    pub allowed_methods: Vec<Method>,
    pub allowed_headers: Vec<HeaderName>,
    pub expose_headers: Vec<HeaderName>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

/// Methods allowed when `cors.allowed_methods` is left out.
const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// Request headers allowed when `cors.allowed_headers` is left out.
const DEFAULT_HEADERS: [&str; 3] = ["authorization", "content-type", "x-requested-with"];

/// Validates `[cors]`.
pub(super) fn validate_cors(c: CorsFile) -> Result<CorsConfig, ConfigError> {
    let (allowed_origins, allow_any_origin) = origins(&c.allowed_origins)?;
    if allow_any_origin && c.allow_credentials {
        return Err(ConfigError::invalid(
            "cors.allow_credentials",
            "cannot be true with allowed_origins = [\"*\"] (browsers refuse it)",
        ));
    }
    let methods = c
        .allowed_methods
        .unwrap_or_else(|| DEFAULT_METHODS.iter().map(|s| s.to_string()).collect());
    let mut allowed_methods = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        allowed_methods.push(Method::from_str(&m.to_ascii_uppercase()).map_err(|_| {
            ConfigError::invalid(
                format!("cors.allowed_methods[{i}]"),
                format!("{m:?} is not a method"),
            )
        })?);
    }
    let headers = c
        .allowed_headers
        .unwrap_or_else(|| DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect());
    Ok(CorsConfig {
        allowed_origins,
        allow_any_origin,
        allowed_methods,
        allowed_headers: header_list("cors.allowed_headers", &headers)?,
        expose_headers: header_list("cors.expose_headers", &c.expose_headers)?,
        allow_credentials: c.allow_credentials,
        max_age: dur(c.max_age, defaults::CORS_MAX_AGE),
    })
}

/// The exact origins, lower-cased, and whether `*` was among them.
fn origins(list: &[String]) -> Result<(Vec<String>, bool), ConfigError> {
    let mut allow_any_origin = false;
    let mut allowed_origins = Vec::new();
    for (i, o) in list.iter().enumerate() {
        if o == "*" {
            allow_any_origin = true;
            continue;
        }
        let uri = Uri::from_str(o).ok();
        let ok = uri.as_ref().is_some_and(|u| {
            u.scheme().is_some() && u.authority().is_some() && u.path() == "/" && !o.ends_with('/')
        });
        if !ok {
            return Err(ConfigError::invalid(
                format!("cors.allowed_origins[{i}]"),
                format!("{o:?} is not an origin like https://app.example.com (scheme and host, no path)"),
            ));
        }
        allowed_origins.push(o.to_ascii_lowercase());
    }
    Ok((allowed_origins, allow_any_origin))
}

/// A list of header names; the error names the index at fault.
fn header_list(key: &str, list: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            HeaderName::from_str(h).map_err(|_| {
                ConfigError::invalid(format!("{key}[{i}]"), format!("{h:?} is not a header name"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};

    #[test]
    fn wildcard_origin_with_credentials_is_refused() {
        let e = err(&format!("[auth]\nsecret = \"{SECRET}\"\n[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n"));
        assert!(e.starts_with("cors.allow_credentials:"), "{e}");
    }
}

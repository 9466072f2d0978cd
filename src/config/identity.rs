//! `[identity]`: the headers that tell the upstream who the caller is.

use super::assertion::AssertionConfig;
use super::file::IdentityFile;
use super::value::header_name;
use super::{AuthConfig, ConfigError};
use crate::defaults;
use http::HeaderName;
use std::str::FromStr;

/// Identity headers set for the upstream.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    pub user_header: HeaderName,
    pub name_header: HeaderName,
    /// (claim, header) pairs for extra claims.
    pub claims: Vec<(String, HeaderName)>,
    /// Global switch: false never forwards the client's `Authorization` (routes decide when true).
    pub forward_authorization: bool,
    /// Configured additions to the headers stripped from every request.
    pub strip_headers: Vec<HeaderName>,
    /// Configured additions to the headers stripped from untrusted peers' requests.
    pub strip_untrusted_headers: Vec<HeaderName>,
    /// The signed identity assertion, when `identity.assertion.header` is set.
    pub assertion: Option<AssertionConfig>,
}

/// Validates `[identity]`: every header must be one that can carry identity end to end.
pub(super) fn validate_identity(
    i: IdentityFile,
    auth: &AuthConfig,
    base: &std::path::Path,
) -> Result<IdentityConfig, ConfigError> {
    let user_header = header_name(
        "identity.user_header",
        i.user_header.as_deref().unwrap_or(defaults::USER_HEADER),
    )?;
    let name_header = header_name(
        "identity.name_header",
        i.name_header.as_deref().unwrap_or(defaults::NAME_HEADER),
    )?;
    let mut claims = Vec::new();
    for (claim, header) in i.claims {
        let h = header_name(&format!("identity.claims.{claim}"), &header)?;
        claims.push((claim, h));
    }
    Ok(IdentityConfig {
        user_header,
        name_header,
        claims,
        forward_authorization: i.forward_authorization.unwrap_or(true),
        strip_headers: names("identity.strip_headers", &i.strip_headers)?,
        strip_untrusted_headers: names(
            "identity.strip_untrusted_headers",
            &i.strip_untrusted_headers,
        )?,
        assertion: super::assertion::validate_assertion(i.assertion, auth, base)?,
    })
}

/// Header names of a strip list; the key names the entry that is not one.
fn names(key: &str, list: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(n, v)| {
            HeaderName::from_str(v).map_err(|_| {
                ConfigError::invalid(format!("{key}[{n}]"), format!("{v:?} is not a header name"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};

    #[test]
    fn identity_header_must_not_be_hop_by_hop() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[identity]\nuser_header = \"Connection\"\n"
        ));
        assert!(e.starts_with("identity.user_header:"), "{e}");
    }

    #[test]
    fn strip_lists_name_a_bad_entry() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[identity]\nstrip_untrusted_headers = [\"X-Ok\", \"bad header\"]\n"
        ));
        assert!(e.starts_with("identity.strip_untrusted_headers[1]:"), "{e}");
    }
}

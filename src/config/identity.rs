//! `[identity]`: the headers that tell the upstream who the caller is.

use super::file::IdentityFile;
use super::value::header_name;
use super::ConfigError;
use crate::defaults;
use http::HeaderName;

/// Identity headers set for the upstream.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    pub user_header: HeaderName,
    pub name_header: HeaderName,
    /// (claim, header) pairs for extra claims.
    pub claims: Vec<(String, HeaderName)>,
    pub forward_authorization: bool,
}

/// Validates `[identity]`: every header must be one that can carry identity end to end.
pub(super) fn validate_identity(i: IdentityFile) -> Result<IdentityConfig, ConfigError> {
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
    })
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
}

//! The fixed hop-by-hop header list (RFC 9110 §7.6.1; RFC 2616 §13.5.1 with erratum 4522).
//!
//! These fields describe one connection, never the end-to-end message, so a proxy drops them and
//! configuration must not use them to carry identity.

use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::HeaderName;

/// The fixed hop-by-hop fields (not counting those a `Connection` header names).
pub static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("proxy-authenticate"),
    HeaderName::from_static("proxy-authorization"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// `Gateway-Auth`: set to `required` on every 401 the gateway itself answers, so a browser client can tell
/// "the gateway wants a (new) token" from an upstream's own 401. It never says why. Always exposed to
/// cross-origin scripts (`cors`), and removed from upstream responses (`forward`), so a backend can neither
/// trigger nor hide a re-login.
pub static GATEWAY_AUTH: HeaderName = HeaderName::from_static("gateway-auth");
/// The marker's only value.
pub const GATEWAY_AUTH_REQUIRED: &str = "required";

/// True for the fixed hop-by-hop fields (not counting those a `Connection` header names).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|h| h == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_list_is_exact() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["host", "authorization", "x-auth-user", "content-length"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }
}

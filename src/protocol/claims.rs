//! Registered JWT claim names (RFC 7519 §4.1) plus `name`: the claims the gateway sets itself.

/// Claim names the gateway sets itself; a user's extra claims cannot override them.
pub const RESERVED_CLAIMS: [&str; 8] = ["sub", "name", "iat", "nbf", "exp", "jti", "iss", "aud"];

/// The JOSE `typ` of the gateway's signed identity assertions (RFC 8725 §3.11: explicit typing keeps one kind
/// of JWT from being accepted as another).
pub const ASSERTION_TYP: &str = "assertion+jwt";

/// True when a JOSE `typ` names an identity assertion, in any case and with or without the `application/`
/// prefix RFC 7515 §4.1.9 allows to be left out.
pub fn is_assertion_typ(typ: &str) -> bool {
    let t = typ.trim();
    let t = match t.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
        _ => t,
    };
    t.eq_ignore_ascii_case(ASSERTION_TYP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_typ_is_recognised_in_every_spelling() {
        for t in [
            "assertion+jwt",
            "Assertion+JWT",
            "application/assertion+jwt",
            " APPLICATION/assertion+jwt",
        ] {
            assert!(is_assertion_typ(t), "{t}");
        }
        for t in ["JWT", "at+jwt", "assertion", "application/jwt", ""] {
            assert!(!is_assertion_typ(t), "{t}");
        }
    }
}

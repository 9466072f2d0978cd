//! How an identity becomes header values: which texts can be sent as an identity header, and how a mapped
//! claim is rendered. Shared by token verification (which refuses tokens whose identity cannot be sent, so
//! the verified-token cache never holds one) and forwarding (which sets the headers).

use http::HeaderValue;

/// The header value an identity field (`sub`, `name`, a mapped claim) is sent upstream as, or None when
/// `text` cannot be one.
///
/// Raw UTF-8 passes as opaque bytes (obs-text, RFC 9110 §5.5), so `josé` reaches the upstream as its UTF-8
/// bytes. Refused: control characters other than HTAB, and DEL (an upstream would reject or mis-split the
/// request, and a value left out would reach it as "no user"), and leading or trailing SP/HTAB, which a
/// field value cannot carry: the upstream's parser strips them, so `"bob "` would arrive as `bob`.
pub fn identity_value(text: &str) -> Option<HeaderValue> {
    if text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

/// The text a mapped claim (`[identity.claims]`) is sent as: strings as they are, arrays joined with `,`
/// (string items unquoted), anything else as JSON. None when the claim is absent or `null` (no header).
pub fn claim_text(value: Option<&serde_json::Value>) -> Option<std::borrow::Cow<'_, str>> {
    use serde_json::Value;
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.as_str().into()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(",")
                .into(),
        ),
        other => Some(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_opaque_bytes_without_controls_or_edge_whitespace() {
        assert_eq!(identity_value("bob").unwrap(), "bob");
        assert_eq!(
            identity_value("jos\u{e9}").unwrap().as_bytes(),
            "jos\u{e9}".as_bytes()
        );
        assert_eq!(identity_value("Ann Lee\tX").unwrap(), "Ann Lee\tX");
        assert_eq!(identity_value("").unwrap(), "");
        for bad in [
            "bob\x01",
            "bob\n",
            "bob\r\nX-Admin: 1",
            "bob\x7f",
            "\0",
            " bob",
            "bob ",
            "bob\t",
        ] {
            assert!(identity_value(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn claims_render_as_text() {
        use serde_json::json;
        assert_eq!(claim_text(None), None);
        assert_eq!(claim_text(Some(&json!(null))), None);
        assert_eq!(claim_text(Some(&json!("admin"))).unwrap(), "admin");
        assert_eq!(claim_text(Some(&json!(["a", 2, "c"]))).unwrap(), "a,2,c");
        assert_eq!(claim_text(Some(&json!(7))).unwrap(), "7");
        assert_eq!(
            claim_text(Some(&json!({"k": "v"}))).unwrap(),
            "{\"k\":\"v\"}"
        );
    }
}

//! The `Cookie` request field and `Set-Cookie` response field, read the way browsers write them.
//!
//! A `Cookie` field is `name=value` pairs joined by `; ` (RFC 6265 §4.2.1, §5.4); a client may send several
//! fields (HTTP/2 splits them on purpose, RFC 9113 §8.2.3). Pairs are told apart only by splitting on `;`,
//! and a pair's name is everything before its first `=`, trimmed, compared exactly (names are
//! case-sensitive), so a name that appears inside another cookie's value never matches. Non-UTF-8 bytes are
//! kept as they are.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

/// Splits one field into its trimmed pairs.
fn pairs(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    field
        .split(|b| *b == b';')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
}

/// A pair's name, trimmed (the whole pair when it has no `=`).
fn name_of(pair: &[u8]) -> &[u8] {
    match pair.iter().position(|b| *b == b'=') {
        Some(i) => pair[..i].trim_ascii(),
        None => pair,
    }
}

/// A pair's value, trimmed; None when the pair has no `=`.
fn value_of(pair: &[u8]) -> Option<&[u8]> {
    let i = pair.iter().position(|b| *b == b'=')?;
    Some(pair[i + 1..].trim_ascii())
}

/// Every value sent for cookie `name`, over all `Cookie` fields, in order.
pub fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .filter(|p| name_of(p) == name.as_bytes())
        .filter_map(value_of)
        .collect()
}

/// Removes every `name=…` pair from the `Cookie` fields. Fields without it stay byte for byte; the others
/// keep their remaining pairs joined by `; `, and a field left empty is dropped. True if anything was removed.
pub fn remove(headers: &mut HeaderMap, name: &str) -> bool {
    let fields: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    let touched = fields
        .iter()
        .any(|f| pairs(f.as_bytes()).any(|p| name_of(p) == name.as_bytes()));
    if !touched {
        return false;
    }
    headers.remove(COOKIE);
    for field in fields {
        let bytes = field.as_bytes();
        if !pairs(bytes).any(|p| name_of(p) == name.as_bytes()) {
            headers.append(COOKIE, field);
            continue;
        }
        let kept: Vec<&[u8]> = pairs(bytes)
            .filter(|p| name_of(p) != name.as_bytes())
            .collect();
        if kept.is_empty() {
            continue;
        }
        // The kept pairs come from a valid field value and only lose their edge whitespace, so this holds.
        if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.append(COOKIE, v);
        }
    }
    true
}

/// Removes every `Set-Cookie` that would set cookie `name` (an upstream has no business setting it).
pub fn remove_set_cookie(headers: &mut HeaderMap, name: &str) {
    if !headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| set_cookie_names(v, name))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !set_cookie_names(v, name))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in kept {
        headers.append(SET_COOKIE, v);
    }
}

/// True when a `Set-Cookie` value sets cookie `name` (its first pair, RFC 6265 §5.2).
fn set_cookie_names(v: &HeaderValue, name: &str) -> bool {
    let first = v.as_bytes().split(|b| *b == b';').next().unwrap_or(b"");
    value_of(first.trim_ascii()).is_some() && name_of(first.trim_ascii()) == name.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "__Host-gateway-session";

    fn cookies(fields: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for f in fields {
            h.append(COOKIE, HeaderValue::from_str(f).unwrap());
        }
        h
    }

    fn fields(h: &HeaderMap) -> Vec<&str> {
        h.get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn values_are_found_in_every_field_and_only_by_exact_name() {
        let h = cookies(&[
            "a=1; __Host-gateway-session=tok1",
            "b=__Host-gateway-session=fake;__host-gateway-session=case",
            "  __Host-gateway-session = tok2  ",
        ]);
        assert_eq!(values(&h, NAME), vec![&b"tok1"[..], b"tok2"]);
        assert!(values(&cookies(&["x=1"]), NAME).is_empty());
    }

    #[test]
    fn removal_keeps_every_other_cookie() {
        let mut h = cookies(&[
            "a=1;  __Host-gateway-session=tok ;b=__Host-gateway-session=x",
            "__Host-gateway-session=tok",
            "c=3; d",
        ]);
        assert!(remove(&mut h, NAME));
        assert_eq!(
            fields(&h),
            vec!["a=1; b=__Host-gateway-session=x", "c=3; d"]
        );
        let mut untouched = cookies(&["a=1;b=2", "c=3"]);
        assert!(!remove(&mut untouched, NAME));
        assert_eq!(fields(&untouched), vec!["a=1;b=2", "c=3"]);
        let mut only = cookies(&["__Host-gateway-session=tok"]);
        remove(&mut only, NAME);
        assert!(!only.contains_key(COOKIE));
    }

    #[test]
    fn upstream_set_cookie_of_the_name_is_dropped() {
        let mut h = HeaderMap::new();
        for v in [
            "__Host-gateway-session=evil; Path=/",
            "app=1; Path=/; Comment=__Host-gateway-session=x",
            " __Host-gateway-session =evil2",
        ] {
            h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
        }
        remove_set_cookie(&mut h, NAME);
        let left: Vec<&str> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            left,
            vec!["app=1; Path=/; Comment=__Host-gateway-session=x"]
        );
    }
}

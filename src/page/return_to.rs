//! `return_to`: where the login page sends the browser after signing in. Only a same-origin path is ever
//! used, or the login page would be an open redirect for phishing.
//!
//! Accepted: visible ASCII only, starting with exactly one `/`, no backslash (browsers read `\` as `/`, so
//! `/\evil` is `//evil`), no control characters; the same checks hold after each round of percent-decoding
//! (`/%2F%2Fevil`, `/%5Cevil`), since a backend or a later redirect may decode it. Anything else falls back
//! to `/`.

use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Decoding rounds checked; a value still changing after them is refused as deliberately layered.
const DECODE_ROUNDS: usize = 4;

/// `candidate` when it is a safe same-origin path of at most `max_bytes`, else None.
pub fn safe(candidate: &str, max_bytes: usize) -> Option<&str> {
    if candidate.is_empty()
        || candidate.len() > max_bytes
        || !candidate.bytes().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    let mut current: Cow<'_, str> = Cow::Borrowed(candidate);
    for _ in 0..DECODE_ROUNDS {
        if !local_path(&current) {
            return None;
        }
        let decoded = percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == current {
            return Some(candidate);
        }
        current = Cow::Owned(decoded);
    }
    None
}

/// One layer's check: a single leading `/`, no backslash, no control character.
fn local_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "//evil",
            "https://evil",
            "/\\evil",
            "%2F%2Fevil",
            "/%2F%2Fevil",
            "/%5Cevil",
            "/%255Cevil",
            "/%2f/evil",
            "evil",
            "",
            "/\tevil",
            "/%09/evil",
            "/%0d%0aSet-Cookie:x",
            "/ /evil",
            "/caf\u{e9}",
            "javascript:alert(1)",
            "/%25252525252F",
        ] {
            assert_eq!(safe(bad, 2048), None, "{bad:?}");
        }
    }

    #[test]
    fn local_paths_are_kept() {
        for good in ["/", "/orders?id=5&x=%20y", "/a/b/", "/a%2Fb", "/x#frag"] {
            assert_eq!(safe(good, 2048), Some(good));
        }
        assert_eq!(safe("/abc", 3), None);
    }
}

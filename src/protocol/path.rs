//! Request-path normalisation: the one form in which paths are matched against routes and sent upstream.
//!
//! Contract: two paths that any common backend (IIS/ASP.NET, Tomcat, nginx, Go) would resolve to the same
//! resource normalise to the same string, so `/public/../admin`, `/public/%2e%2e/admin`, `//admin`,
//! `/%61dmin` and `\admin` can never slip past a protected route. Steps (RFC 3986 §6.2.2, §5.2.4):
//! - percent-encoded unreserved characters are decoded (`%61` → `a`, `%2E` → `.`), other escapes are
//!   kept with upper-case hex; `%2F` and `%5C` (encoded slashes) and `\` become `/`, as IIS treats them;
//! - empty segments (`//`) are merged and `.`/`..` segments removed (`..` never climbs above `/`);
//! - a segment that is empty, `.` or `..` once its `;` path parameters are cut off (`..;x`, `.;`, `;x`) counts
//!   as that segment, parameters dropped, because Tomcat/Jetty cut parameters before resolving dot segments:
//!   otherwise `/public/..;/admin` would match `/public` here and resolve to `/admin` there;
//! - a malformed escape, an encoded NUL or a control character is refused (400).
//!
//! The normalised path is what the upstream receives, so it never sees a different path than was matched.

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape")]
    BadEscape,
    /// NUL or another control character, raw or encoded.
    #[error("control character in path")]
    ControlChar,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises a request path (without query), or refuses it.
pub fn normalise(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') && bytes.first() != Some(&b'\\') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path: the common case has nothing to decode and nothing to remove.
    if !needs_work(bytes) {
        return Ok(raw.to_string());
    }
    // First pass: decode escapes into a byte string where '/' is the only separator.
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadEscape),
                };
                let v = h * 16 + l;
                if v < 0x20 || v == 0x7f {
                    return Err(PathError::ControlChar);
                }
                if v == b'/' || v == b'\\' {
                    decoded.push(b'/');
                } else if is_unreserved(v) {
                    decoded.push(v);
                } else {
                    decoded.push(b'%');
                    decoded.extend_from_slice(format!("{v:02X}").as_bytes());
                }
                i += 3;
            }
            b'\\' => {
                decoded.push(b'/');
                i += 1;
            }
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlChar),
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    // Second pass: drop empty and dot segments.
    let trailing_slash = decoded.last() == Some(&b'/');
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut last_was_dot = false;
    for seg in decoded.split(|&c| c == b'/') {
        last_was_dot = false;
        // The segment's name without `;` parameters decides whether it is empty or a dot segment.
        let name = seg.split(|&c| c == b';').next().unwrap_or(seg);
        let seg = if matches!(name, b"" | b"." | b"..") {
            name
        } else {
            seg
        };
        match seg {
            b"" => {}
            b"." => last_was_dot = true,
            b".." => {
                segments.pop();
                last_was_dot = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        // Only ASCII bytes were produced by decoding, and the input was a &str, so this is valid UTF-8.
        out.push_str(std::str::from_utf8(s).map_err(|_| PathError::BadEscape)?);
    }
    // `/a/` keeps its slash; `/a/.` and `/a/..` name a directory too (RFC 3986 §5.2.4).
    if (trailing_slash || last_was_dot) && !segments.is_empty() || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn needs_work(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' | b';' => return true,
            _ if b < 0x20 || b == 0x7f => return true,
            b'/' if prev == b'/' => return true,
            b'.' if prev == b'/' => {
                // "/." followed by end, "/" or ".": a dot segment.
                match bytes.get(i + 1) {
                    None | Some(b'/') => return true,
                    Some(b'.') if matches!(bytes.get(i + 2), None | Some(b'/')) => return true,
                    _ => {}
                }
            }
            _ => {}
        }
        prev = b;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_unchanged() {
        for p in [
            "/",
            "/api",
            "/api/",
            "/api/users/42",
            "/a.b/c..d/.e",
            "/~user/x-y_z",
        ] {
            assert_eq!(normalise(p).unwrap(), p);
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalise("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalise("/a/./b").unwrap(), "/a/b");
        assert_eq!(normalise("/../../admin").unwrap(), "/admin");
        assert_eq!(normalise("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalise("/a/.").unwrap(), "/a/");
        assert_eq!(normalise("/..").unwrap(), "/");
    }

    #[test]
    fn encoded_dots_and_slashes_are_decoded_before_dot_removal() {
        assert_eq!(normalise("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/%2E%2E%2Fadmin").unwrap(), "/admin");
        assert_eq!(normalise("/public%2f..%2fadmin").unwrap(), "/admin");
        assert_eq!(normalise("/public/..%5cadmin").unwrap(), "/admin");
        assert_eq!(normalise("/public\\..\\admin").unwrap(), "/admin");
    }

    #[test]
    fn dot_and_empty_segments_with_path_parameters_are_dot_and_empty_segments() {
        assert_eq!(normalise("/public/..;/admin").unwrap(), "/admin");
        assert_eq!(
            normalise("/public/..;jsessionid=x/admin").unwrap(),
            "/admin"
        );
        assert_eq!(normalise("/public/%2e%2e;/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/;x/../admin").unwrap(), "/admin");
        assert_eq!(normalise("/a/.;x/b").unwrap(), "/a/b");
        assert_eq!(normalise("/api;jsessionid=1").unwrap(), "/api;jsessionid=1");
        assert_eq!(normalise("/a/b;v=1/c").unwrap(), "/a/b;v=1/c");
    }

    #[test]
    fn duplicate_slashes_are_merged() {
        assert_eq!(normalise("//admin").unwrap(), "/admin");
        assert_eq!(normalise("/a///b//").unwrap(), "/a/b/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept_uppercase() {
        assert_eq!(normalise("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalise("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(normalise("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn malformed_and_control_characters_are_refused() {
        assert_eq!(normalise("/a%2").unwrap_err(), PathError::BadEscape);
        assert_eq!(normalise("/a%zz").unwrap_err(), PathError::BadEscape);
        assert_eq!(normalise("/a%00b").unwrap_err(), PathError::ControlChar);
        assert_eq!(normalise("/a%0a").unwrap_err(), PathError::ControlChar);
        assert_eq!(normalise("a/b").unwrap_err(), PathError::NotAbsolute);
        assert_eq!(normalise("").unwrap_err(), PathError::NotAbsolute);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/../b/%2e/c//d", "/%2561", "/x/%2F%2F/..", "/%7euser"] {
            let once = normalise(p).unwrap();
            assert_eq!(normalise(&once).unwrap(), once, "{p}");
        }
    }
}

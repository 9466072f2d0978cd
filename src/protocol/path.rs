//! Request-path normalisation: the one form in which paths are matched against routes and sent upstream.
//!
//! Contract: two paths that any common backend (IIS/ASP.NET, Tomcat, nginx, Go) would resolve to the same
//! resource normalise to the same string, so `/public/../admin`, `/public/%2e%2e/admin`, `//admin`,
//! `/%61dmin` and `\admin` can never slip past a protected route. Steps (RFC 3986 §6.2.2, §5.2.4):
//! - percent-encoded unreserved characters are decoded (`%61` → `a`, `%2E` → `.`), other escapes are
//!   kept with upper-case hex; `%2F` and `%5C` (encoded slashes) and `\` become `/`, as IIS treats them;
//! - empty segments (`//`) are merged and `.`/`..` segments removed (`..` never climbs above `/`);
//! - a segment that is empty, `.` or `..` once its `;` path parameters are cut off (`..;x`, `.;`, `;x`, and
//!   `..%3Bx` for backends that decode before cutting) counts as that segment, parameters dropped, because
//!   Tomcat/Jetty cut parameters before resolving dot segments: otherwise `/public/..;/admin` would match
//!   `/public` here and resolve to `/admin` there;
//! - a malformed escape, an encoded NUL or a control character is refused (400).
//!
//! The normalised path is what the upstream receives, so it never sees a different path than was matched.
//!
//! Normalising is not enough for Windows and Java/.NET backends, which read some names as other names: `screen`
//! refuses those disguises (cookieless `(S(…))` segments, trailing dots and spaces, 8.3 short names, characters
//! that case-fold to ASCII). `;` parameters are allowed or refused per route, so they are not `screen`'s job:
//! routes are chosen on `without_parameters`, and the caller refuses a path that `has_parameters` unless the
//! chosen route allows them.

use std::borrow::Cow;

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
    /// A `;` (raw or `%3B`) inside a segment, on a route that does not allow path parameters.
    #[error("path parameters (;) on a route that does not allow them")]
    Parameters,
    /// A segment like `(S(x))`, which IIS strips as an ASP.NET cookieless session.
    #[error("ASP.NET cookieless segment")]
    Cookieless,
    /// A segment ending in `.` or a space, which Windows drops from file names.
    #[error("segment ends in a dot or space")]
    TrailingDotOrSpace,
    /// A segment like `ADMINI~1`, which Windows may resolve as an 8.3 short name.
    #[error("8.3 short name")]
    ShortName,
    /// A character that .NET or Java case-folds to an ASCII letter (`ı` → `I`, `ſ` → `S`, `K` → `K`, …).
    #[error("character that case-folds to ASCII")]
    CaseFolding,
}

/// Characters whose upper or lower case is an ASCII letter in .NET/Java case-insensitive comparisons, as UTF-8:
/// U+0130 İ, U+0131 ı, U+017F ſ, U+212A Kelvin K, U+212B Ångström Å.
const FOLDS_TO_ASCII: [&[u8]; 5] = [
    b"\xC4\xB0",
    b"\xC4\xB1",
    b"\xC5\xBF",
    b"\xE2\x84\xAA",
    b"\xE2\x84\xAB",
];

/// Where a segment's `;` parameters start: at a `;` or at `%3B` (any case), which backends that decode before
/// cutting parameters read as `;`.
fn parameters_start(seg: &[u8]) -> Option<usize> {
    (0..seg.len()).find(|&i| {
        seg[i] == b';'
            || (seg[i] == b'%'
                && seg.get(i + 1) == Some(&b'3')
                && matches!(seg.get(i + 2), Some(b'B' | b'b')))
    })
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
        let name = &seg[..parameters_start(seg).unwrap_or(seg.len())];
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

/// Refuses a normalised path that a Windows or Java/.NET backend would read as another path, so that no
/// such path is matched against one route here and resolved to another's resource there. Checked on each
/// segment once percent-decoded (`%20`, `%28`, `%C4%B1` are the characters they encode):
/// - a cookieless segment `(X(…))`, any letter X: IIS removes `(S(…))`, `(A(…))`, `(F(…))` before routing;
/// - a segment ending in `.` or space (Windows drops them: `admin.` is `admin`);
/// - `~` followed by a digit after at least one character (`ADMINI~1`, `PROGRA~1.TXT`: 8.3 short names);
///   a leading `~` (`/~user`) is an ordinary name;
/// - U+0130, U+0131, U+017F, U+212A, U+212B, which case-fold to ASCII letters (`adm%C4%B1n` is `ADMIN`).
///
/// `;` parameters are not refused here: that depends on the route (`has_parameters`).
pub fn screen(normal: &str) -> Result<(), PathError> {
    for seg in normal.split('/').filter(|s| !s.is_empty()) {
        let decoded = decode(seg.as_bytes());
        let name = &decoded[..parameters_start_decoded(&decoded)];
        // The name is what Tomcat/Jetty look up, the whole segment what IIS does; either may be disguised.
        for part in [name, &decoded[..]] {
            if is_cookieless(part) {
                return Err(PathError::Cookieless);
            }
            if matches!(part.last(), Some(b'.' | b' ')) && part != b"." && part != b".." {
                return Err(PathError::TrailingDotOrSpace);
            }
        }
        if decoded
            .windows(2)
            .skip(1)
            .any(|w| w[0] == b'~' && w[1].is_ascii_digit())
        {
            return Err(PathError::ShortName);
        }
        if FOLDS_TO_ASCII
            .iter()
            .any(|c| decoded.windows(c.len()).any(|w| w == *c))
        {
            return Err(PathError::CaseFolding);
        }
    }
    Ok(())
}

/// Whether a normalised path has `;` parameters (or `%3B`) in any segment. Normalising already removed the
/// segments that are nothing but parameters, so every one left is inside a named segment.
pub fn has_parameters(normal: &str) -> bool {
    parameters_start(normal.as_bytes()).is_some()
}

/// A normalised path with each segment's `;` parameters removed (`/app;jsessionid=1/page` → `/app/page`):
/// the form routes are chosen on, because Tomcat and Jetty resolve the path without them.
pub fn without_parameters(normal: &str) -> Cow<'_, str> {
    if !has_parameters(normal) {
        return Cow::Borrowed(normal);
    }
    let mut out = String::with_capacity(normal.len());
    for (i, seg) in normal.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&seg[..parameters_start(seg.as_bytes()).unwrap_or(seg.len())]);
    }
    out.into()
}

/// Where the first `view_len` bytes of `without_parameters(normal)` end in `normal`, when `view_len` ends a
/// segment there: after that segment's name, so its parameters stay with what follows.
pub fn parameters_offset(normal: &str, view_len: usize) -> usize {
    let mut seen = 0;
    for (slash, _) in normal.match_indices('/') {
        if seen >= view_len {
            return slash;
        }
        let seg = normal[slash + 1..].split('/').next().unwrap_or("");
        let name_len = parameters_start(seg.as_bytes()).unwrap_or(seg.len());
        seen += 1 + name_len;
        if seen >= view_len {
            return slash + 1 + name_len;
        }
    }
    normal.len()
}

/// A normal-form segment with its escapes decoded (a malformed one, which `normalise` never leaves, is kept).
fn decode(seg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'%' {
            if let (Some(h), Some(l)) = (
                seg.get(i + 1).copied().and_then(hex),
                seg.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(seg[i]);
        i += 1;
    }
    out
}

/// Where a decoded segment's parameters start (its length when it has none).
fn parameters_start_decoded(decoded: &[u8]) -> usize {
    decoded
        .iter()
        .position(|&b| b == b';')
        .unwrap_or(decoded.len())
}

/// `(` + an ASCII letter + `(` … `))`: the form of ASP.NET's cookieless session, anonymous-ID and forms-auth
/// segments (`(S(…))`, `(A(…))`, `(F(…))`, also several in one: `(S(…)A(…))`).
fn is_cookieless(seg: &[u8]) -> bool {
    seg.len() >= 5
        && seg[0] == b'('
        && seg[1].is_ascii_alphabetic()
        && seg[2] == b'('
        && seg.ends_with(b"))")
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

    /// `screen` on the normal form of `raw`.
    fn screened(raw: &str) -> Result<(), PathError> {
        screen(&normalise(raw).unwrap())
    }

    #[test]
    fn cookieless_segments_are_refused_for_any_letter() {
        for p in [
            "/(S(x))/admin/secret",
            "/(A(abc))/admin",
            "/(F(abc))/admin",
            "/(s(x))/admin",
            "/(Z(x))/admin",
            "/(S(abc)A(def))/admin",
            "/app/(S(x))",
            "/%28S%28x%29%29/admin",
            "/(S(x));a/admin",
        ] {
            assert_eq!(screened(p), Err(PathError::Cookieless), "{p}");
        }
    }

    #[test]
    fn segments_ending_in_dot_or_space_are_refused() {
        for p in [
            "/admin./secret",
            "/admin%2e/secret",
            "/admin%20/secret",
            "/admin.%20./secret",
            "/admin...",
            "/a/.../b",
            "/admin.;x/secret",
            "/admin;x./secret",
        ] {
            assert_eq!(screened(p), Err(PathError::TrailingDotOrSpace), "{p}");
        }
    }

    #[test]
    fn short_names_are_refused() {
        for p in [
            "/ADMINI~1/secret",
            "/PROGRA~1.TXT",
            "/a~0",
            "/x/abcdefgh~12",
            "/admini%7E1/secret",
        ] {
            assert_eq!(screened(p), Err(PathError::ShortName), "{p}");
        }
    }

    #[test]
    fn characters_that_fold_to_ascii_are_refused() {
        for p in [
            "/adm%C4%B1n/secret",
            "/adm%c4%b1n",
            "/%C4%B0ndex",
            "/%C5%BFecret",
            "/%E2%84%AAey",
            "/%E2%84%ABngstrom",
            "/adm\u{131}n",
        ] {
            assert_eq!(screened(p), Err(PathError::CaseFolding), "{p}");
        }
    }

    #[test]
    fn legal_near_misses_pass_the_screen() {
        for p in [
            "/",
            "/~user",
            "/~user/x",
            "/~1",
            "/a.b/c",
            "/file.txt",
            "/.hidden",
            "/x~y",
            "/x~",
            "/(foo)",
            "/(S)",
            "/(S(x)",
            "/((x))",
            "/a%20b",
            "/caf%C3%A9",
            "/%C4%B2",
            "/app;jsessionid=ABC/page",
            "/a/./b/../c/",
        ] {
            assert_eq!(screened(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn parameters_are_found_and_removed_per_segment() {
        assert!(!has_parameters("/api/admin"));
        assert!(has_parameters("/api;/admin/users"));
        assert!(has_parameters("/api%3Bx/admin"));
        assert!(has_parameters("/api/users;v=1"));
        assert_eq!(without_parameters("/api/admin"), "/api/admin");
        assert_eq!(without_parameters("/api;/admin/users"), "/api/admin/users");
        assert_eq!(without_parameters("/app;jsessionid=ABC/page"), "/app/page");
        assert_eq!(without_parameters("/a;x=1;y/b%3Bz/"), "/a/b/");
        assert_eq!(without_parameters("/a;x"), "/a");
    }

    #[test]
    fn encoded_semicolon_cuts_dot_segments_like_a_raw_one() {
        assert_eq!(normalise("/public/..%3Bx/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/%3bx/../admin").unwrap(), "/admin");
        assert_eq!(normalise("/a%3Bb/c").unwrap(), "/a%3Bb/c");
    }

    #[test]
    fn parameters_offset_maps_a_matched_view_back_to_the_path() {
        let p = "/api;x/v2;y/z";
        assert_eq!(parameters_offset(p, 0), 0);
        assert_eq!(&p[..parameters_offset(p, 4)], "/api");
        assert_eq!(&p[..parameters_offset(p, 7)], "/api;x/v2");
        assert_eq!(parameters_offset(p, 9), p.len());
        assert_eq!(parameters_offset("/a/b", 2), 2);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/../b/%2e/c//d", "/%2561", "/x/%2F%2F/..", "/%7euser"] {
            let once = normalise(p).unwrap();
            assert_eq!(normalise(&once).unwrap(), once, "{p}");
        }
    }
}

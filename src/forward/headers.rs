//! Header surgery for forwarding, in one place: hop-by-hop removal, identity stripping, X-Forwarded-*.
//!
//! - RFC 9110 §7.6.1: drop `Connection` and every field it names, plus the fixed hop-by-hop list (the RFC 2616
//!   §13.5.1 list with erratum 4522, as Go's httputil and most Rust proxies use). An upgrade keeps `Upgrade`.
//!   Dropping the fields named by `Connection` also defeats `Connection: X-Auth-User` tricks.
//! - Identity headers the client sent are removed in any case and with `_` for `-`, because CGI/WSGI-style
//!   upstreams read `X_Auth_User` as `X-Auth-User`.
//! - `X-Forwarded-For` is appended to only when the peer is a trusted proxy, otherwise replaced, so a
//!   client cannot forge its address (RFC 7239 §8.1 reasoning). `Forwarded` and `X-Real-IP` from
//!   untrusted peers are dropped for the same reason.

use crate::protocol::headers::{GATEWAY_AUTH, HOP_BY_HOP};
use http::header::{CONNECTION, COOKIE, FORWARDED, HOST, UPGRADE, VIA};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`.
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// True when the request asks for a WebSocket upgrade (`Connection: upgrade` with `Upgrade: websocket`).
///
/// Only WebSocket is relayed: any other protocol (notably `h2c`) would hand the client a raw HTTP
/// connection to the upstream after the single checked request, on which it could send further requests
/// with forged identity headers and paths the gateway never saw ("h2c smuggling"). Such an `Upgrade` is
/// dropped as hop-by-hop instead.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    list_has(headers, &UPGRADE, "websocket") && list_has(headers, &CONNECTION, "upgrade")
}

fn list_has(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Removes hop-by-hop fields; with `upgrade`, keeps `Upgrade` and re-sets `Connection: upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the fields present (a handful) rather than one hash lookup per hop-by-hop name.
    let mut present = 0u16;
    for key in headers.keys() {
        if let Some(i) = hop_by_hop_index(key.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        remove_connection_named(headers, upgrade);
    }
    let upgrade_value = if upgrade {
        headers.remove(UPGRADE)
    } else {
        None
    };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if let Some(v) = upgrade_value {
        headers.insert(UPGRADE, v);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The position of a fixed hop-by-hop name in `HOP_BY_HOP` (`connection` first); a `match` on the
/// lower-case name, so a request's ordinary fields are told apart by length and a compare or two.
fn hop_by_hop_index(name: &str) -> Option<usize> {
    match name {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "te" => Some(5),
        "trailer" => Some(6),
        "transfer-encoding" => Some(7),
        "upgrade" => Some(8),
        _ => None,
    }
}

/// Removes the fields `Connection` names. The usual `Connection: keep-alive` names only a fixed hop-by-hop
/// field, which the caller removes anyway: such names are neither parsed nor collected.
fn remove_connection_named(headers: &mut HeaderMap, upgrade: bool) {
    let mut named: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for t in s.split(',').map(str::trim) {
            if HOP_BY_HOP
                .iter()
                .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(t.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        if !(upgrade && name == UPGRADE) {
            headers.remove(&name);
        }
    }
}

fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// True when `sent` names `ours` up to case and `_`/`-` spelling.
pub fn same_header(sent: &str, ours: &str) -> bool {
    sent.len() == ours.len()
        && sent
            .bytes()
            .zip(ours.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

/// Headers that name a user or override the request's target for some backend or framework (IIS URL
/// Rewrite and PHP frameworks route by `X-Original-URL`/`X-Rewrite-URL`; `Remote-User` and the
/// oauth2-proxy-style `X-Forwarded-User/Email/…` are read as an authenticated identity). Only the gateway
/// speaks for the caller, so they are removed from every request, whoever sent it (a trusted load balancer
/// passes its clients' headers through).
pub static ALWAYS_STRIPPED: [HeaderName; 8] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("remote-user"),
    HeaderName::from_static("x-remote-user"),
    HeaderName::from_static("x-forwarded-user"),
    HeaderName::from_static("x-forwarded-email"),
    HeaderName::from_static("x-forwarded-preferred-username"),
    HeaderName::from_static("x-forwarded-groups"),
];

/// Headers that claim the client's address or the public URL's shape. Believable from a trusted proxy
/// (which set them), forged from anyone else.
pub static UNTRUSTED_STRIPPED: [HeaderName; 7] = [
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-server"),
];

/// Removes every client-sent copy of the given identity headers, whatever their spelling.
pub fn strip_identity(headers: &mut HeaderMap, identity: &[HeaderName]) {
    // A spelling has the length of the name it spells: fields of no listed length (most of a request's) are
    // ruled out by one bit test instead of a compare with every name.
    let lengths = identity
        .iter()
        .fold(0u64, |mask, n| mask | length_bit(n.as_str()));
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            lengths & length_bit(k) != 0
                && identity.iter().any(|ours| same_header(k, ours.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// A bit for a name's length (lengths of 63 and more share the last).
fn length_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

/// What the gateway knows about the hop it received the request on.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The peer is a configured trusted proxy.
    pub trusted: bool,
    /// The client connected over TLS.
    pub tls: bool,
    /// The request's host (Host header or :authority), if any.
    pub host: Option<&'a HeaderValue>,
    /// `Via` protocol label: "1.1" or "2".
    pub via: &'static str,
}

/// Sets `X-Forwarded-For/Proto/Host` and appends `Via` (RFC 9110 §7.6.3).
pub fn set_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    // Which forwarding fields the client sent, from one pass over the names present: most requests carry
    // none, and removing an absent field still hashes its name and probes the map.
    let mut sent = Sent::default();
    for key in headers.keys() {
        match key.as_str() {
            "x-forwarded-for" => sent.xff = true,
            "x-forwarded-proto" => sent.proto = true,
            "x-forwarded-host" => sent.host = true,
            "forwarded" => sent.forwarded = true,
            "x-real-ip" => sent.real_ip = true,
            _ => {}
        }
    }
    let mut text = IpText::new();
    let peer = text.write(hop.peer);
    let trusted_xff = if sent.xff && hop.trusted {
        headers.get(&X_FORWARDED_FOR)
    } else {
        None
    };
    let xff = match trusted_xff {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + peer.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer);
            HeaderValue::from_bytes(&v).ok()
        }
        None => None,
    };
    let xff = xff.unwrap_or_else(|| {
        HeaderValue::from_bytes(peer).unwrap_or(HeaderValue::from_static("unknown"))
    });
    // A trusted proxy may send several XFF lines; they were folded into one above, so drop the rest.
    if sent.xff {
        headers.remove(&X_FORWARDED_FOR);
    }
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    if !(hop.trusted && sent.proto) {
        let proto = if hop.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(hop.trusted && sent.host) {
        match hop.host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None if sent.host => {
                headers.remove(&X_FORWARDED_HOST);
            }
            None => {}
        }
    }
    if !hop.trusted {
        if sent.forwarded {
            headers.remove(FORWARDED);
        }
        if sent.real_ip {
            headers.remove(&X_REAL_IP);
        }
    }
    let via = if hop.via == "2" {
        "2 gateway"
    } else {
        "1.1 gateway"
    };
    headers.append(VIA, HeaderValue::from_static(via));
}

/// The forwarding fields a request arrived with.
#[derive(Default)]
struct Sent {
    xff: bool,
    proto: bool,
    host: bool,
    forwarded: bool,
    real_ip: bool,
}

/// An address as text, on the stack: every proxied request writes its peer into `X-Forwarded-For`, and the
/// formatting machinery plus a `String` cost more than the rest of that header's work.
struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl IpText {
    fn new() -> IpText {
        IpText {
            buf: [0; 64],
            len: 0,
        }
    }

    /// The address in its usual text form (as `Display` writes it).
    fn write(&mut self, ip: IpAddr) -> &[u8] {
        self.len = 0;
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.push(b'.');
                    }
                    if octet >= 100 {
                        self.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        self.push(b'0' + octet / 10 % 10);
                    }
                    self.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
                // 64 bytes hold any IPv6 text (at most 45), so this cannot fail.
                let _ = write!(cursor, "{v6}");
                self.len = cursor.position() as usize;
            }
        }
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }
}

/// Joins the `Cookie` fields an HTTP/2 client may send separately into one, as an HTTP/1.1 hop needs
/// (RFC 9113 §8.2.3: "MUST be concatenated ... using the two-octet delimiter of 0x3b, 0x20").
pub fn join_cookies(headers: &mut HeaderMap) {
    let values: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if values.len() < 2 {
        return;
    }
    if let Ok(v) = HeaderValue::from_bytes(&values.join(&b"; "[..])) {
        headers.insert(COOKIE, v);
    }
}

/// Removes from an upstream's response what only the gateway may say: its 401 marker (`Gateway-Auth`), so
/// a backend can neither send a browser client to log in again nor hide the gateway's own request for it.
pub fn strip_response(headers: &mut HeaderMap) {
    headers.remove(&GATEWAY_AUTH);
}

/// Sets the Host header sent upstream.
pub fn set_host(headers: &mut HeaderMap, host: HeaderValue) {
    headers.insert(HOST, host);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_index_matches_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index("host"), None);
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, x-auth-user"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-auth-user", "mallory"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn upgrade_keeps_upgrade_and_connection() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "1"),
        ]);
        assert!(is_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("keep-alive"));
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        let h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ]);
        assert!(!is_upgrade(&h));
        assert!(is_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let mut h = map(&[
            ("x-auth-user", "a"),
            ("X_Auth_User", "b"),
            ("x_auth-user", "c"),
            ("x-auth-name", "d"),
            ("x-auth-username", "kept"),
        ]);
        strip_identity(
            &mut h,
            &[
                HeaderName::from_static("x-auth-user"),
                HeaderName::from_static("x-auth-name"),
            ],
        );
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-auth-username"));
    }

    #[test]
    fn long_identity_names_are_stripped_too() {
        let ours = format!("x-{}", "a-".repeat(35));
        let sent = ours.replace('-', "_").to_uppercase();
        let other = format!("x-{}", "b".repeat(80));
        let mut h = map(&[(sent.as_str(), "forged"), (other.as_str(), "kept")]);
        strip_identity(&mut h, &[HeaderName::from_bytes(ours.as_bytes()).unwrap()]);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(other.as_str()));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.0.0.7",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new().write(ip), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn forwarded_for_is_replaced_for_untrusted_and_appended_for_trusted_peers() {
        let host = HeaderValue::from_static("app.example");
        let hop = |trusted| Hop {
            peer: "10.0.0.7".parse().unwrap(),
            trusted,
            tls: true,
            host: Some(&host),
            via: "1.1",
        };
        let sent = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=6.6.6.6"),
        ];
        let mut h = map(&sent);
        set_forwarded(&mut h, &hop(false));
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-host"], "app.example");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h["via"], "1.1 gateway");
        let mut h = map(&sent);
        set_forwarded(&mut h, &hop(true));
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.0.0.7");
        assert_eq!(h["x-forwarded-host"], "evil");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
}

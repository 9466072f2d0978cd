//! Forwarding header surgery on arbitrary request heads ("name: value" lines): never panics; afterwards no
//! hop-by-hop field and no field named by Connection remains (except Upgrade/Connection on a WebSocket
//! upgrade), no client copy of an identity header in any spelling remains, and exactly one
//! X-Forwarded-For (the peer's, for an untrusted peer) is set.
#![no_main]

use gateway::forward::headers::{self, Hop};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut h = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(name, value);
    }
    let named_by_connection: Vec<String> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let upgrade = headers::is_upgrade(&h);
    headers::remove_hop_by_hop(&mut h, upgrade);
    let identity = [
        HeaderName::from_static("x-auth-user"),
        HeaderName::from_static("x-auth-name"),
        HeaderName::from_static("x-auth-role"),
    ];
    headers::strip_identity(&mut h, &identity);
    let host = h.get(http::header::HOST).cloned();
    let trusted = flags & 1 == 1;
    let hop = Hop {
        peer: "10.0.0.7".parse().unwrap(),
        trusted,
        tls: flags & 2 == 2,
        host: host.as_ref(),
        via: if flags & 4 == 4 { "2" } else { "1.1" },
    };
    headers::set_forwarded(&mut h, &hop);
    headers::join_cookies(&mut h);

    for name in h.keys() {
        let upgrade_pair =
            upgrade && (name == http::header::UPGRADE || name == http::header::CONNECTION);
        if !upgrade_pair {
            assert!(!gateway::protocol::headers::is_hop_by_hop(name), "{name} survived");
            let ours = [
                "via",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "host",
            ];
            if !ours.contains(&name.as_str()) {
                assert!(
                    !named_by_connection.iter().any(|n| n == name.as_str()),
                    "{name} named by Connection survived"
                );
            }
        }
        for id in &identity {
            assert!(
                !headers::same_header(name.as_str(), id.as_str()),
                "{name} survived"
            );
        }
    }
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    if !trusted {
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
    }
    assert!(h.get_all(http::header::COOKIE).iter().count() <= 1);
});

//! Path normalisation and routing on arbitrary request paths: never panics; an accepted path is
//! idempotent, free of dot segments, `//`, backslashes and control characters; a path routed to the
//! protected `/admin` route really is under `/admin` once its `;` parameters are removed (routes are
//! chosen on that form); screening never panics.
#![no_main]

use gateway::protocol::path::{normalise, screen, without_parameters};
use gateway::routing::{Routed, Router};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn router() -> &'static Router {
    static R: OnceLock<Router> = OnceLock::new();
    R.get_or_init(|| {
        let cfg = gateway::config::Config::from_toml(
            "[auth]\nsecret = \"fuzz-secret-NOT-REAL-0123456789abcdef\"\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\n\
             [[routes]]\nprefix = \"/public\"\nupstream = \"http://127.0.0.1:2\"\npublic = true\n\
             [[routes]]\nprefix = \"/admin\"\nupstream = \"http://127.0.0.1:3\"\n\
             [[routes]]\nprefix = \"/api/v2\"\nupstream = \"http://127.0.0.1:4/base\"\nrewrite_prefix = \"/v2\"\n",
        )
        .expect("fuzz config");
        Router::new(cfg.routes, Some("/api/Auth"), false)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(out) = normalise(raw) else {
        return;
    };
    assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
    assert!(!out.contains("//"), "{raw:?} -> {out:?}");
    assert!(!out.contains('\\'), "{raw:?} -> {out:?}");
    assert!(
        !out.bytes().any(|b| b < 0x20 || b == 0x7f),
        "{raw:?} -> {out:?}"
    );
    for seg in out.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or(seg);
        assert!(name != "." && name != "..", "{raw:?} -> {out:?}");
    }
    assert_eq!(
        normalise(&out).as_deref(),
        Ok(out.as_str()),
        "not idempotent: {raw:?}"
    );

    let _ = screen(&out);
    let view = without_parameters(&out).to_ascii_lowercase();
    for seg in view.split('/').skip(1) {
        assert!(seg != "." && seg != "..", "{raw:?} -> {out:?} routes as {view:?}");
    }

    for host in [None, Some("gateway.test"), Some("GATEWAY.test:8080")] {
        match router().route(host, &out) {
            Routed::Upstream {
                route,
                upstream_path,
                ..
            } => {
                if route.prefix == "/admin" {
                    assert!(
                        view == "/admin" || view.starts_with("/admin/"),
                        "{raw:?} -> {out:?} routed to /admin"
                    );
                }
                if route.prefix == "/public" {
                    assert!(
                        view == "/public" || view.starts_with("/public/"),
                        "{raw:?} -> {out:?} routed to /public"
                    );
                }
                assert!(upstream_path.starts_with('/'), "{upstream_path:?}");
                assert!(!upstream_path.contains("/../"), "{upstream_path:?}");
            }
            Routed::Login
            | Routed::Logout
            | Routed::Jwks
            | Routed::AssertionJwks
            | Routed::NotFound => {}
        }
    }
});

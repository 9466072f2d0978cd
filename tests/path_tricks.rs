//! Paths a Windows or Java backend reads differently from the gateway (issue 12, item 1): `;` path parameters,
//! ASP.NET cookieless segments, trailing dots and spaces, 8.3 short names and characters that case-fold to
//! ASCII. With a public route above a protected one, each is refused with 400 before authentication and
//! never forwarded; `routes[].allow_path_parameters` lets `;jsessionid=` through, routed without it.
//! Requests go out as raw bytes (`support::raw_get`), so no client rewrites the path first.

mod support;

use support::process::gateway_command;
use support::upstream::Upstream;
use support::{raw_get, route, tokens, TestGateway};

/// The paths of the issue that reached a protected upstream without a token, and close variants.
const DISGUISED: [&str; 14] = [
    "/api;/admin/users",
    "/api%3B/admin/users",
    "/admin;x/secret",
    "/(S(x))/admin/secret",
    "/(A(x))/api/admin/users",
    "/%28F%28x%29%29/admin/secret",
    "/admin./secret",
    "/admin%2E/secret",
    "/admin%20/secret",
    "/api/admin%20./users",
    "/ADMINI~1/secret",
    "/api/ADMIN~1/users",
    "/adm%C4%B1n/secret",
    "/api/%E2%84%AAeys",
];

fn auth(user: &str) -> String {
    format!("Authorization: Bearer {}\r\n", tokens::valid(user))
}

/// Public `/` and `/api`, protected `/admin` and `/api/admin`, each on its own upstream; `extra` is added to
/// every route.
async fn nested_routes(extra: &str) -> (TestGateway, [Upstream; 4]) {
    let ups = [
        Upstream::echo().await,
        Upstream::echo().await,
        Upstream::echo().await,
        Upstream::echo().await,
    ];
    let gw = TestGateway::start_routes(&[
        route("/", &ups[0].url(), &format!("public = true\n{extra}")),
        route("/api", &ups[1].url(), &format!("public = true\n{extra}")),
        route("/admin", &ups[2].url(), extra),
        route("/api/admin", &ups[3].url(), extra),
    ])
    .await;
    (gw, ups)
}

fn received(ups: &[Upstream]) -> Vec<String> {
    ups.iter().flat_map(|u| u.seen()).map(|s| s.path).collect()
}

#[tokio::test]
async fn disguised_paths_are_refused_with_400_and_never_forwarded() {
    let (gw, ups) = nested_routes("").await;
    for target in DISGUISED {
        let (status, answer) = raw_get(gw.addr, target, "").await;
        assert_eq!(status, 400, "{target} without a token: {answer}");
        // A token changes nothing: the path is refused before authentication.
        let (status, answer) = raw_get(gw.addr, target, &auth("alice")).await;
        assert_eq!(status, 400, "{target} with a token: {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("www-authenticate"),
            "{target}: {answer}"
        );
    }
    assert!(received(&ups).is_empty(), "forwarded: {:?}", received(&ups));
    gw.stop().await;
}

#[tokio::test]
async fn near_misses_and_normal_paths_still_work() {
    let (gw, ups) = nested_routes("").await;
    for (target, up) in [
        ("/~user/x", 0),
        ("/x~y/file.txt", 0),
        ("/a.b/c", 0),
        ("/(foo)/bar", 0),
        ("/api/users", 1),
        ("/api/admin.html", 1),
    ] {
        let (status, answer) = raw_get(gw.addr, target, "").await;
        assert_eq!(status, 200, "{target}: {answer}");
        assert_eq!(ups[up].last().path, target);
    }
    // The protected routes still ask for a token, and take one.
    for (target, up) in [("/admin/secret", 2), ("/api/admin/users", 3)] {
        assert_eq!(raw_get(gw.addr, target, "").await.0, 401, "{target}");
        assert_eq!(raw_get(gw.addr, target, &auth("alice")).await.0, 200);
        assert_eq!(ups[up].last().path, target);
        assert_eq!(ups[up].count(), 1, "{target}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn allowed_path_parameters_are_forwarded_but_routed_without() {
    let (gw, ups) = nested_routes("allow_path_parameters = true").await;
    let (status, answer) = raw_get(gw.addr, "/app;jsessionid=ABC/page", "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ups[0].last().path, "/app;jsessionid=ABC/page");
    // `/api;/admin/users` is `/api/admin/users` to a Java backend, so it is the protected route here too.
    let (status, answer) = raw_get(gw.addr, "/api;/admin/users", "").await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(ups[1].count(), 0, "the public /api upstream was reached");
    assert_eq!(ups[3].count(), 0);
    let (status, answer) = raw_get(gw.addr, "/api;/admin/users", &auth("alice")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ups[3].last().path, "/api;/admin/users");
    // Allowing parameters does not let the other disguises through.
    for target in ["/(S(x))/admin/secret", "/admin./secret", "/ADMINI~1/secret"] {
        assert_eq!(raw_get(gw.addr, target, "").await.0, 400, "{target}");
    }
    assert_eq!(ups[2].count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn parameters_are_refused_when_the_chosen_route_does_not_allow_them() {
    // Only the public routes allow parameters: `/api;/admin/users` routes to the protected `/api/admin`, which
    // does not, so it is refused rather than forwarded to either.
    let ups = [Upstream::echo().await, Upstream::echo().await];
    let gw = TestGateway::start_routes(&[
        route(
            "/api",
            &ups[0].url(),
            "public = true\nallow_path_parameters = true",
        ),
        route("/api/admin", &ups[1].url(), ""),
    ])
    .await;
    assert_eq!(raw_get(gw.addr, "/api;jsessionid=1/x", "").await.0, 200);
    assert_eq!(ups[0].last().path, "/api;jsessionid=1/x");
    for headers in [String::new(), auth("alice")] {
        let (status, answer) = raw_get(gw.addr, "/api;/admin/users", &headers).await;
        assert_eq!(status, 400, "{answer}");
    }
    assert_eq!(ups[0].count(), 1);
    assert_eq!(ups[1].count(), 0);
    gw.stop().await;
}

/// `gateway check-config` on `routes`; returns its stdout.
fn check_config(routes: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nsecret = \"{}\"\n[login]\nenabled = false\n{routes}",
            support::SECRET
        ),
    )
    .unwrap();
    let out = gateway_command()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn check_config_warns_about_a_protected_route_under_a_public_one() {
    let nested = check_config(
        "[[routes]]\nname = \"site\"\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:9000\"\npublic = true\n\
         [[routes]]\nname = \"backoffice\"\nprefix = \"/api/admin\"\nupstream = \"http://127.0.0.1:9001\"\n",
    );
    let warning = nested
        .lines()
        .find(|l| l.starts_with("warning: protected route"))
        .unwrap_or_else(|| panic!("no warning:\n{nested}"));
    assert!(
        warning.contains("\"backoffice\" (/api/admin)") && warning.contains("\"site\" (/api)"),
        "{warning}"
    );
    // Siblings, and a protected route above a public one, are not nested that way.
    let flat = check_config(
        "[[routes]]\nname = \"site\"\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:9000\"\npublic = true\n\
         [[routes]]\nname = \"backoffice\"\nprefix = \"/admin\"\nupstream = \"http://127.0.0.1:9001\"\n\
         [[routes]]\nname = \"root\"\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9002\"\n",
    );
    assert!(!flat.contains("nested under public"), "{flat}");
}

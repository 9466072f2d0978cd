//! `/metrics` answers in the format its content type declares (issue 12 item 10): OpenMetrics 1.0 when the
//! scraper asks for it, Prometheus text 0.0.4 otherwise. Each answer is read by the official Python client's
//! parser for that format (`prometheus_client.openmetrics.parser` / `prometheus_client.parser`), two
//! independent implementations of the formats, and every family must keep its type, labels and values.
//!
//! Needs `python3` with `prometheus-client` (`python3 -m pip install prometheus-client`, done by `.ci/run`);
//! without it the test fails, it does not skip.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use support::metrics::MetricsScene;
use support::{client, tokens, TestGateway};

const PASSWORD: &str = "metrics-format-password-FIXTURE";

/// What Prometheus 2.x/3.x sends when it scrapes (default `scrape_protocols`, no protobuf).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses an exposition with the Python client and prints its families as JSON.
const PARSE_PY: &str = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
    from prometheus_client.parser import text_string_to_metric_families as text
except ImportError as e:
    sys.stderr.write("prometheus_client cannot be imported (%s); install it: python3 -m pip install prometheus-client\n" % e)
    sys.exit(3)
parse = openmetrics if sys.argv[1] == "openmetrics" else text
with open(sys.argv[2], encoding="utf-8") as f:
    body = f.read()
families = []
for fam in parse(body):
    families.append({
        "name": fam.name,
        "type": fam.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples],
    })
print(json.dumps(families))
"#;

/// One family as the Python parser saw it.
#[derive(Debug)]
struct Family {
    kind: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Parses `body` with the Python client's `parser` ("openmetrics" or "text"); panics with the parser's
/// error if it refuses the body.
fn parse(parser: &str, body: &str) -> BTreeMap<String, Family> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(body.as_bytes()).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PARSE_PY)
        .arg(parser)
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run ({e}); it is needed to check /metrics"));
    assert!(
        out.status.success(),
        "the {parser} parser refused the exposition ({}):\n{}\n--- body ---\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    families
        .into_iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels = s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    (
                        s["name"].as_str().unwrap().to_string(),
                        labels,
                        s["value"].as_f64().unwrap(),
                    )
                })
                .collect();
            let family = Family {
                kind: f["type"].as_str().unwrap().to_string(),
                samples,
            };
            (f["name"].as_str().unwrap().to_string(), family)
        })
        .collect()
}

/// The value of the sample `sample` with exactly `labels` in family `family`.
fn value(
    families: &BTreeMap<String, Family>,
    family: &str,
    sample: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family} in {families:#?}"));
    f.samples
        .iter()
        .find(|(name, l, _)| name == sample && *l == want)
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no sample {sample}{labels:?} in {family}: {f:#?}"))
}

fn kind<'a>(families: &'a BTreeMap<String, Family>, family: &str) -> &'a str {
    &families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family} in {families:#?}"))
        .kind
}

/// Scrapes `/metrics` with the given `Accept` (none: reqwest's default `*/*`); returns content type and body.
async fn scrape(
    gw: &TestGateway,
    accept: Option<&str>,
) -> (String, String, reqwest::header::HeaderMap) {
    let addr = gw.running.metrics_addr.expect("metrics listener on");
    let mut req = client().get(format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    let ctype = headers["content-type"].to_str().unwrap().to_string();
    (ctype, res.text().await.unwrap(), headers)
}

/// The checks both formats must pass after the traffic of the test below.
fn check_families(format: &str, fams: &BTreeMap<String, Family>) {
    let app = |method, status| [("route", "app"), ("method", method), ("status", status)];
    for (family, want) in [
        ("gateway_requests", "counter"),
        ("gateway_logins", "counter"),
        ("gateway_upstream_errors", "counter"),
        ("gateway_siteverify_failures", "counter"),
        ("gateway_request_duration_seconds", "histogram"),
        ("gateway_upstream_duration_seconds", "histogram"),
        ("gateway_siteverify_duration_seconds", "histogram"),
        ("gateway_open_connections", "gauge"),
        ("gateway_hash_pool_queue", "gauge"),
    ] {
        assert_eq!(kind(fams, family), want, "{format}: type of {family}");
    }
    // Nothing the parser could not place in a declared family (families without samples yet, such as
    // `gateway_config_reloads`, are not exported at all).
    for (name, f) in fams {
        assert_ne!(f.kind, "unknown", "{format}: {name} lost its type: {f:#?}");
    }
    let requests =
        |labels: &[(&str, &str)]| value(fams, "gateway_requests", "gateway_requests_total", labels);
    assert_eq!(requests(&app("GET", "2xx")), 3.0, "{format}");
    assert_eq!(requests(&app("GET", "4xx")), 2.0, "{format}");
    let login = [("route", "login"), ("method", "POST"), ("status", "4xx")];
    assert_eq!(requests(&login), 2.0, "{format}");
    let dead = [("route", "dead"), ("method", "GET"), ("status", "5xx")];
    assert_eq!(requests(&dead), 1.0, "{format}");
    let errors = "gateway_upstream_errors";
    let connect = [("kind", "connect")];
    assert_eq!(
        value(fams, errors, &format!("{errors}_total"), &connect),
        1.0,
        "{format}"
    );
    let failures = "gateway_siteverify_failures";
    let rejected = [("kind", "rejected")];
    assert_eq!(
        value(fams, failures, &format!("{failures}_total"), &rejected),
        1.0,
        "{format}"
    );
    let logins = |outcome| {
        value(
            fams,
            "gateway_logins",
            "gateway_logins_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(logins("success"), 1.0, "{format}");
    assert_eq!(logins("bad_credentials"), 1.0, "{format}");
    assert_eq!(logins("captcha_failed"), 1.0, "{format}");
    let duration = "gateway_request_duration_seconds";
    let route = [("route", "app")];
    assert_eq!(
        value(fams, duration, &format!("{duration}_count"), &route),
        5.0,
        "{format}"
    );
    assert_eq!(
        value(
            fams,
            duration,
            &format!("{duration}_bucket"),
            &[("route", "app"), ("le", "+Inf")]
        ),
        5.0,
        "{format}"
    );
    assert!(value(fams, duration, &format!("{duration}_sum"), &route) > 0.0);
    assert_eq!(
        value(
            fams,
            "gateway_siteverify_duration_seconds",
            "gateway_siteverify_duration_seconds_count",
            &[]
        ),
        3.0,
        "{format}"
    );
    assert_eq!(
        value(
            fams,
            "gateway_hash_pool_queue",
            "gateway_hash_pool_queue",
            &[]
        ),
        0.0,
        "{format}"
    );
    assert!(
        value(
            fams,
            "gateway_open_connections",
            "gateway_open_connections",
            &[]
        ) >= 0.0,
        "{format}"
    );
}

#[tokio::test]
async fn metrics_are_served_in_the_format_their_content_type_names() {
    // Bound, not `..`: the upstream and the users file must live as long as the gateway.
    let MetricsScene {
        gw,
        fake,
        up: _up,
        users: _users,
    } = MetricsScene::start(PASSWORD).await;

    // Known traffic: three 200s, two 401s, one 502 (upstream refuses), one login that succeeds, one with a
    // wrong password, one with a captcha siteverify rejects.
    let c = client();
    let token = tokens::valid("alice");
    for _ in 0..3 {
        let res = c
            .get(gw.url("/a"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(c.get(gw.url("/a")).send().await.unwrap().status(), 401);
    }
    let res = c
        .get(gw.url("/dead/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    for (password, captcha_ok, want) in [
        (PASSWORD, true, 200),
        ("wrong", true, 401),
        (PASSWORD, false, 401),
    ] {
        let captcha = format!("0.metrics-format-{password}-{captcha_ok}");
        if captcha_ok {
            fake.add_valid_token(captcha.clone());
        }
        let body = json!({"UserName": "jdoe", "Password": password, "CaptchaToken": captcha});
        let res = c
            .post(gw.url("/api/Auth"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "login with {password:?}");
    }

    // Prometheus asks for OpenMetrics and gets it.
    let (ctype, om, headers) = scrape(&gw, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(ctype, OPENMETRICS_TYPE);
    assert_eq!(headers["vary"], "accept");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE gateway_requests counter\n"), "{om}");
    check_families("openmetrics", &parse("openmetrics", &om));

    // Any other scraper (reqwest sends `Accept: */*`, as curl does) gets Prometheus text 0.0.4.
    for accept in [
        None,
        Some("text/plain;version=0.0.4"),
        Some("application/json"),
    ] {
        let (ctype, text, headers) = scrape(&gw, accept).await;
        assert_eq!(ctype, TEXT_TYPE, "Accept {accept:?}");
        assert_eq!(headers["vary"], "accept");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("_created"), "{text}");
        assert!(
            text.contains("# HELP gateway_requests_total ")
                && text.contains("# TYPE gateway_requests_total counter\n"),
            "{text}"
        );
        check_families("text 0.0.4", &parse("text", &text));
    }

    // The bug this guards against, seen through the same parser: OpenMetrics read as 0.0.4 leaves the
    // declared counter family empty and its samples untyped. So the checks above can tell the formats apart.
    let misread = parse("text", &om);
    assert!(
        misread
            .get("gateway_requests_total")
            .is_some_and(|f| f.kind == "unknown"),
        "{misread:#?}"
    );
}

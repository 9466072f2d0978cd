//! The deployment files of `deploy/` (issue 14), checked against the gateway itself: the configuration the
//! Kubernetes manifests mount runs, and every metric and label the Grafana dashboard and the alert rules use
//! exists in `/metrics` after known traffic, so neither can rot when a metric is renamed. The schemas
//! (Kubernetes, Compose), HAProxy's config and PromQL syntax are checked by `deploy/validate.sh`.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::fixtures::{captcha, ASPNET_PASSWORD};
use support::process::GatewayProcess;
use support::sql::{Kind, TestDb};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::wait::eventually;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML document of `deploy/<rel>`.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let path = deploy().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The resource of `kind` named `name` among the Kubernetes manifests.
fn resource(file: &str, kind: &str, name: &str) -> Yaml {
    yaml_docs(&format!("kubernetes/{file}"))
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("kubernetes/{file}: no {kind} {name}"))
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn str_of(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

/// What the Deployment mounts into the gateway container.
struct Pod {
    /// The `--config` path.
    config_path: String,
    /// Mount path of the ConfigMap volume and the ConfigMap's name.
    config_mount: (String, String),
    /// Mount path of each Secret volume, with the Secret's name.
    secret_mounts: Vec<(String, String)>,
    /// The container's environment.
    env: Vec<(String, String)>,
}

fn gateway_pod() -> Pod {
    let deployment = resource("deployment.yaml", "Deployment", "gateway");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = list(&spec["containers"])
        .iter()
        .find(|c| c["name"].as_str() == Some("gateway"))
        .expect("a gateway container");
    let args: Vec<&str> = list(&container["args"]).iter().map(str_of).collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].to_string())
        .expect("serve --config <path>");
    let volumes: BTreeMap<&str, &Yaml> = list(&spec["volumes"])
        .iter()
        .map(|v| (str_of(&v["name"]), v))
        .collect();
    let mut config_mount = None;
    let mut secret_mounts = Vec::new();
    for m in list(&container["volumeMounts"]) {
        let volume = volumes[str_of(&m["name"])];
        let at = str_of(&m["mountPath"]).to_string();
        assert!(
            m["subPath"].is_badvalue(),
            "no subPath mounts: they never see ConfigMap/Secret updates"
        );
        if let Some(name) = volume["configMap"]["name"].as_str() {
            config_mount = Some((at, name.to_string()));
        } else if let Some(name) = volume["secret"]["secretName"].as_str() {
            secret_mounts.push((at, name.to_string()));
        }
    }
    let env = list(&container["env"])
        .iter()
        .map(|e| {
            (
                str_of(&e["name"]).to_string(),
                str_of(&e["value"]).to_string(),
            )
        })
        .collect();
    Pod {
        config_path,
        config_mount: config_mount.expect("the ConfigMap is mounted"),
        secret_mounts,
        env,
    }
}

/// The gateway.toml the pods read: the ConfigMap entry the `--config` path names.
fn mounted_config(pod: &Pod) -> toml::Table {
    let (dir, map) = &pod.config_mount;
    let key = pod
        .config_path
        .strip_prefix(&format!("{dir}/"))
        .expect("--config points into the ConfigMap mount");
    let cm = resource("configmap.yaml", "ConfigMap", map);
    let text = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {map} has no {key}"));
    text.parse().expect("the ConfigMap's gateway.toml is TOML")
}

/// Keys of a Secret in `secrets.example.yaml`.
fn secret_keys(name: &str) -> BTreeSet<String> {
    let secret = resource("secrets.example.yaml", "Secret", name);
    secret["stringData"]
        .as_hash()
        .expect("stringData")
        .keys()
        .map(|k| str_of(k).to_string())
        .collect()
}

/// Every `<key>_file` value of the config, with its dotted key.
fn file_keys(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => file_keys(t, &format!("{key}."), out),
            toml::Value::String(s) if k.ends_with("_file") => out.push((key, s.clone())),
            _ => {}
        }
    }
}

#[test]
fn the_mounted_config_reads_every_secret_from_the_mounted_secret_files() {
    let pod = gateway_pod();
    let config = mounted_config(&pod);
    let mut files = Vec::new();
    file_keys(&config, "", &mut files);
    assert!(!files.is_empty());
    let mut used = BTreeSet::new();
    for (key, path) in &files {
        let (dir, secret) = pod
            .secret_mounts
            .iter()
            .find(|(dir, _)| path.starts_with(&format!("{dir}/")))
            .unwrap_or_else(|| panic!("{key} = {path:?} is not in a mounted Secret"));
        let name = &path[dir.len() + 1..];
        assert!(
            secret_keys(secret).contains(name),
            "{key}: Secret {secret} has no key {name}"
        );
        used.insert(name.to_string());
    }
    for must in [
        "jwt_secret",
        "turnstile_secret",
        "users_db_url",
        "redis_url",
    ] {
        assert!(used.contains(must), "the config reads {must}: {used:?}");
    }
    // No secret inline in the ConfigMap, no development setting.
    let text = toml::to_string(&config).unwrap();
    assert!(!text.contains("DEVELOPMENT-ONLY"));
    assert!(!text.contains(gateway::exposure::ALWAYS_PASS_TURNSTILE_SECRET));
    for (section, key) in [("auth", "secret"), ("login", "secret"), ("users", "url")] {
        assert!(
            config.get(section).and_then(|s| s.get(key)).is_none(),
            "{section}.{key} inline"
        );
    }
}

#[test]
fn the_deployment_probes_the_operations_port_which_no_service_exposes() {
    let pod = gateway_pod();
    let config = mounted_config(&pod);
    let ops_port: u16 = config["metrics"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let deployment = resource("deployment.yaml", "Deployment", "gateway");
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(3));
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(spec["enableServiceLinks"].as_bool(), Some(false));
    let container = &spec["containers"][0];
    let port_named = |name: &str| {
        list(&container["ports"])
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            port_named(str_of(&get["port"])),
            i64::from(ops_port),
            "{probe} on the operations port"
        );
    }
    let service = resource("service.yaml", "Service", "gateway");
    for p in list(&service["spec"]["ports"]) {
        let target = p["targetPort"]
            .as_str()
            .map(port_named)
            .or_else(|| p["targetPort"].as_i64())
            .unwrap();
        assert_ne!(
            target,
            i64::from(ops_port),
            "the Service exposes the operations port"
        );
    }
    let public: u16 = config["server"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(port_named("http"), i64::from(public));
}

/// A `redis-server` of this test's own on a free loopback port, so the test can stop it.
struct Redis {
    child: std::process::Child,
    url: String,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).unwrap_or(0) > 0 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, url }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Prometheus text: for each sample name, the label sets of its samples.
type Samples = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn parse_samples(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let close = line.rfind('}').expect("closing brace");
            for m in split_matchers(&line[name_end + 1..close]) {
                let (k, v) = m.split_once('=').expect("label=value");
                labels.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        out.entry(name.to_string()).or_default().push(labels);
    }
    out
}

/// Splits `a="x",b=~"y|z"` on the commas outside quotes.
fn split_matchers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// One label matcher of a selector.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// What one PromQL expression references: metric selectors and the labels of `by (...)`/`without (...)`.
#[derive(Debug, Default)]
struct References {
    metrics: Vec<(String, Vec<Matcher>)>,
    grouping: Vec<String>,
}

/// Reads metric names and label matchers out of a PromQL expression, crudely but without guessing: an
/// identifier followed by `{` is a selector, a bare `gateway_…` identifier is a metric, and the list after
/// `by`/`without` names labels. String literals are skipped.
fn references(expr: &str) -> References {
    let b = expr.as_bytes();
    let mut refs = References::default();
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') || (i > 0 && ident(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if word == "by" || word == "without" {
            let open = j;
            assert_eq!(b.get(open), Some(&b'('), "{expr}: {word} without a list");
            let close = expr[open..].find(')').unwrap() + open;
            refs.grouping.extend(
                expr[open + 1..close]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
            i = close + 1;
        } else if b.get(j) == Some(&b'{') {
            let mut k = j + 1;
            let mut quoted = false;
            while k < b.len() && (quoted || b[k] != b'}') {
                if b[k] == b'"' && b[k - 1] != b'\\' {
                    quoted = !quoted;
                }
                k += 1;
            }
            let matchers = split_matchers(&expr[j + 1..k])
                .into_iter()
                .map(|m| {
                    let at = m.find(['=', '!']).unwrap_or_else(|| panic!("{expr}: {m}"));
                    let op_end = at + m[at..].find('"').unwrap_or_else(|| panic!("{expr}: {m}"));
                    Matcher {
                        label: m[..at].trim().to_string(),
                        op: m[at..op_end].trim().to_string(),
                        value: m[op_end..].trim().trim_matches('"').to_string(),
                    }
                })
                .collect();
            refs.metrics.push((word.to_string(), matchers));
            i = k + 1;
        } else if word.starts_with("gateway_") {
            refs.metrics.push((word.to_string(), Vec::new()));
        }
    }
    refs
}

/// Every PromQL expression of the dashboard (panel targets and template variables) and the alert rules,
/// each with where it comes from.
fn dashboard_and_alert_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/gateway.json")).unwrap(),
    )
    .unwrap();
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((
                    format!("dashboard panel {:?}", p["title"].as_str().unwrap()),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push((format!("dashboard variable {}", v["name"]), q.to_string()));
        }
    }
    let alerts = yaml_docs("prometheus/alerts.yml");
    for group in list(&alerts[0]["groups"]) {
        for rule in list(&group["rules"]) {
            out.push((
                format!("alert {}", str_of(&rule["alert"])),
                str_of(&rule["expr"]).to_string(),
            ));
        }
    }
    out
}

/// Labels Prometheus attaches when it scrapes (never in `/metrics` itself).
const TARGET_LABELS: &[&str] = &["job", "instance"];
/// Metrics the rules read from elsewhere: kube-state-metrics' pod readiness (for readiness flapping).
const EXTERNAL_METRICS: &[(&str, &[&str])] =
    &[("kube_pod_status_ready", &["condition", "pod", "namespace"])];
/// Label values the dashboard and alerts use that this test's traffic cannot produce: `busy` needs a full
/// hashing pool or siteverify queue, `shared_store_error` needs `shared.on_failure = "closed"` (the
/// manifests use "local"). Each must still be a value the gateway's source emits.
const NOT_PRODUCED_HERE: &[&str] = &["busy", "shared_store_error"];

/// Checks every reference against the scraped samples; returns the problems found.
fn unknown_references(samples: &Samples) -> Vec<String> {
    let mut problems = Vec::new();
    let src = source_text();
    for value in NOT_PRODUCED_HERE {
        if !src.contains(&format!("\"{value}\"")) {
            problems.push(format!("{value:?} is no value the gateway emits"));
        }
    }
    let exprs = dashboard_and_alert_exprs();
    assert!(exprs.len() > 20, "found the expressions: {exprs:?}");
    for (origin, expr) in exprs {
        let refs = references(&expr);
        let mut labels_seen: BTreeSet<String> =
            TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        if refs.metrics.is_empty() {
            problems.push(format!("{origin}: no metric in {expr}"));
        }
        for (name, matchers) in &refs.metrics {
            if let Some((_, labels)) = EXTERNAL_METRICS.iter().find(|(n, _)| n == name) {
                labels_seen.extend(labels.iter().map(|s| s.to_string()));
                for m in matchers {
                    if !labels.contains(&m.label.as_str()) {
                        problems.push(format!("{origin}: {name} has no label {}", m.label));
                    }
                }
                continue;
            }
            if !name.starts_with("gateway_") {
                problems.push(format!("{origin}: {name} is not a gateway metric"));
                continue;
            }
            let Some(series) = samples.get(name) else {
                problems.push(format!("{origin}: no {name} in /metrics"));
                continue;
            };
            for s in series {
                labels_seen.extend(s.keys().cloned());
            }
            for m in matchers {
                if TARGET_LABELS.contains(&m.label.as_str()) {
                    continue;
                }
                if !series.iter().any(|s| s.contains_key(&m.label)) {
                    problems.push(format!("{origin}: {name} has no label {}", m.label));
                    continue;
                }
                let wanted: Vec<&str> = match m.op.as_str() {
                    "=" => vec![m.value.as_str()],
                    "=~" if m
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_|".contains(c)) =>
                    {
                        m.value.split('|').collect()
                    }
                    // Negative or open-ended matchers: the label is enough.
                    _ => Vec::new(),
                };
                for v in wanted {
                    let seen = series
                        .iter()
                        .any(|s| s.get(&m.label).map(String::as_str) == Some(v));
                    if !seen && !NOT_PRODUCED_HERE.contains(&v) {
                        problems.push(format!(
                            "{origin}: no {name}{{{}=\"{v}\"}} in /metrics",
                            m.label
                        ));
                    }
                }
            }
        }
        for l in &refs.grouping {
            if l != "le" && !labels_seen.contains(l) {
                problems.push(format!(
                    "{origin}: grouped by {l}, which none of its metrics has"
                ));
            }
        }
    }
    problems
}

/// All of `src/`, for the check that label values not produced here are real.
fn source_text() -> String {
    fn read(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                read(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = String::new();
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn the_promql_reader_finds_names_matchers_and_groupings() {
    let r = references(
        r#"histogram_quantile(0.95, sum by (route, le) (rate(gateway_request_duration_seconds_bucket{job=~"$job",status="5xx"}[5m]))) / gateway_hash_pool_queue and on() vector(1)"#,
    );
    let names: Vec<&str> = r.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "gateway_request_duration_seconds_bucket",
            "gateway_hash_pool_queue"
        ]
    );
    let m = &r.metrics[0].1;
    assert_eq!(
        (m[1].label.as_str(), m[1].op.as_str(), m[1].value.as_str()),
        ("status", "=", "5xx")
    );
    assert_eq!((m[0].label.as_str(), m[0].op.as_str()), ("job", "=~"));
    assert_eq!(r.grouping, ["route", "le"]);
    // A name inside a string is not a metric.
    assert!(
        references(r#"label_replace(up, "x", "gateway_fake", "", "")"#)
            .metrics
            .iter()
            .all(|(n, _)| n != "gateway_fake")
    );

    // The checker refuses what is missing.
    let samples = parse_samples(
        "gateway_requests_total{route=\"app\",method=\"GET\",status=\"2xx\"} 1\ngateway_hash_pool_queue 0\n",
    );
    assert_eq!(samples["gateway_requests_total"][0]["status"], "2xx");
    assert!(!unknown_references(&samples).is_empty());
}

/// `http://<addr><path>`.
fn url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn login(addr: std::net::SocketAddr, body: &Value) -> reqwest::Response {
    support::client()
        .post(url(addr, "/api/Auth"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn creds(user: &str, password: &str, captcha: &str) -> Value {
    json!({"UserName": user, "Password": password, "CaptchaToken": captcha})
}

async fn scrape(ops: std::net::SocketAddr) -> String {
    support::client()
        .get(url(ops, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn count(samples: &Samples, name: &str, label: &str, value: &str) -> usize {
    samples
        .get(name)
        .into_iter()
        .flatten()
        .filter(|s| s.get(label).map(String::as_str) == Some(value))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mounted_config_serves_and_every_dashboard_and_alert_metric_exists() {
    const TEST: &str = "the_mounted_config_serves_and_every_dashboard_and_alert_metric_exists";
    let Some(db) = TestDb::create(Kind::Postgres, TEST).await else {
        return;
    };
    // The compose stack's init SQL builds the users table, so that example stays loadable too.
    db.exec(r#"DROP TABLE "AspNetUsers""#).await;
    db.exec(
        &std::fs::read_to_string(deploy().join("compose/postgres/01-aspnetusers.sql")).unwrap(),
    )
    .await;
    let mut redis = Redis::start();
    let mut up = Some(Upstream::echo().await);
    let fake = FakeTurnstile::start().await;

    // The pod's file system under a temporary root: the ConfigMap's gateway.toml and the Secret files at
    // their mount paths. Only addresses, ports and the service URLs (user database, Redis, upstream,
    // siteverify) differ from a pod's.
    let pod = gateway_pod();
    let mut config = mounted_config(&pod);
    let root = tempfile::tempdir().unwrap();
    let under_root = |p: &str| root.path().join(p.trim_start_matches('/'));
    let mut files = Vec::new();
    file_keys(&config, "", &mut files);
    for (key, path) in &files {
        let value = match Path::new(path).file_name().unwrap().to_str().unwrap() {
            "jwt_secret" => "deploy-test-jwt-secret-0123456789abcdefghijklmnop".to_string(),
            // The fake siteverify accepts its tokens for any secret starting with 1x (not Cloudflare's
            // always-pass test secret, which the gateway refuses off loopback).
            "turnstile_secret" => "1x-deploy-test-turnstile-secret".to_string(),
            "users_db_url" => db.url.clone(),
            "redis_url" => redis.url.clone(),
            "admin_token" => "deploy-test-admin-token-0123456789".to_string(),
            other => panic!("{key}: no test value for secret {other}"),
        };
        let file = under_root(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, format!("{value}\n")).unwrap();
        set_key(&mut config, key, file.display().to_string());
    }
    let echo = up.as_ref().unwrap().url();
    for r in config["routes"].as_array_mut().unwrap() {
        r["upstream"] = toml::Value::String(echo.clone());
    }
    let config_file = under_root(&pod.config_path);
    std::fs::create_dir_all(config_file.parent().unwrap()).unwrap();
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();

    let siteverify = fake.url();
    let mut env: Vec<(&str, &str)> = pod
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("GATEWAY_SERVER__LISTEN", "127.0.0.1:0"),
        ("GATEWAY_METRICS__LISTEN", "127.0.0.1:0"),
        (
            "GATEWAY_LOGIN__TURNSTILE__SITEVERIFY_URL",
            siteverify.as_str(),
        ),
    ]);
    let mut gw = GatewayProcess::serve(&config_file, &env);
    let addr = gw.wait_listening();
    let line = gw
        .seen
        .iter()
        .find(|l| l.contains("gateway listening"))
        .unwrap()
        .clone();
    let ops: std::net::SocketAddr = line
        .split("Some(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no operations address in {line}"));
    let c = support::client();

    assert!(
        eventually(
            Duration::from_secs(15),
            Duration::from_millis(100),
            || async {
                c.get(url(ops, "/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        )
        .await,
        "ready with the user store and Redis up:\n{}",
        gw.log()
    );
    assert_eq!(
        c.get(url(ops, "/healthz")).send().await.unwrap().status(),
        200
    );

    // Known traffic: a login, a proxied request, and one of each failure the panels count.
    let res = login(addr, &creds("alice", ASPNET_PASSWORD, &captcha(&fake))).await;
    assert_eq!(res.status(), 200, "alice logs in");
    let token = support::http::token_of(res).await;
    let res = c
        .get(url(addr, "/some/page"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        up.as_ref().unwrap().last().one("x-auth-user").as_deref(),
        Some("alice")
    );
    assert_eq!(c.get(url(addr, "/")).send().await.unwrap().status(), 401);
    let r = login(addr, &creds("bob", ASPNET_PASSWORD, &captcha(&fake))).await;
    assert_eq!(r.status(), 401, "bob is inactive");
    let r = login(
        addr,
        &creds("alice", ASPNET_PASSWORD, "not-a-token-the-fake-knows"),
    )
    .await;
    assert_eq!(r.status(), 401, "captcha refused");
    let r = c
        .post(url(addr, "/api/Auth"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Wrong passwords until the per-account throttle answers.
    let user_limit = config["login"]
        .get("throttle")
        .and_then(|t| t.get("user_max_failures"))
        .and_then(toml::Value::as_integer)
        .unwrap_or(10) as usize;
    for _ in 0..=user_limit {
        let r = login(addr, &creds("alice", "wrong password", &captcha(&fake))).await;
        assert_eq!(r.status(), 401);
    }
    let s = parse_samples(&scrape(ops).await);
    assert_eq!(
        count(&s, "gateway_logins_total", "outcome", "throttled"),
        1,
        "throttled"
    );
    // A reload.
    gw.signal("HUP");
    assert!(
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                count(
                    &parse_samples(&scrape(ops).await),
                    "gateway_config_reloads_total",
                    "outcome",
                    "ok",
                ) == 1
            }
        )
        .await,
        "SIGHUP reloads:\n{}",
        gw.log()
    );
    // The upstream goes away: 502.
    drop(up.take());
    let status = c
        .get(url(addr, "/some/page"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 502);
    // Redis goes away: logins carry on with this instance's own tables (on_failure = "local").
    redis.stop();
    let r = login(addr, &creds("nobody", "x", &captcha(&fake))).await;
    assert_eq!(r.status(), 401, "logins go on without Redis");
    // The user database goes away: 503.
    db.fwd().stop();
    let r = login(addr, &creds("carol", "x", &captcha(&fake))).await;
    assert_eq!(r.status(), 503, "store failure is 503");

    let text = scrape(ops).await;
    let samples = parse_samples(&text);
    for (outcome, what) in [
        ("success", "alice"),
        ("inactive", "bob"),
        ("captcha_failed", "unknown captcha"),
        ("bad_request", "broken JSON"),
        ("bad_credentials", "wrong password"),
        ("store_error", "database gone"),
    ] {
        assert_eq!(
            count(&samples, "gateway_logins_total", "outcome", outcome),
            1,
            "{what}"
        );
    }
    let problems = unknown_references(&samples);
    assert!(
        problems.is_empty(),
        "the dashboard or the alerts reference what /metrics lacks:\n{}\n\n/metrics:\n{text}",
        problems.join("\n")
    );
}

/// Sets the string at a dotted key (`users.url_file`).
fn set_key(table: &mut toml::Table, dotted: &str, value: String) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().unwrap();
    let mut t = table;
    for p in parts {
        t = t.get_mut(p).and_then(toml::Value::as_table_mut).unwrap();
    }
    t.insert(last.to_string(), toml::Value::String(value));
}

/// `<<: *anchor` merged into a compose service (yaml-rust2 keeps merge keys as plain keys).
fn merged(service: &Yaml, key: &str) -> Yaml {
    let own = &service[key];
    if own.is_badvalue() {
        service
            .as_hash()
            .and_then(|h| h.get(&Yaml::String("<<".into())))
            .map(|base| base[key].clone())
            .unwrap_or(Yaml::BadValue)
    } else {
        own.clone()
    }
}

#[test]
fn the_compose_stack_balances_three_replicas_on_one_loadable_config() {
    let compose = yaml_docs("compose/compose.yaml").remove(0);
    let services = compose["services"].as_hash().unwrap();
    let gateways: Vec<&str> = services
        .keys()
        .map(str_of)
        .filter(|n| n.starts_with("gateway-"))
        .collect();
    assert_eq!(gateways.len(), 3, "three replicas: {gateways:?}");

    // Every replica reads the same gateway.toml, with the secrets it names.
    let toml_text = std::fs::read_to_string(deploy().join("compose/gateway.toml")).unwrap();
    let config: toml::Table = toml_text.parse().unwrap();
    let mut files = Vec::new();
    file_keys(&config, "", &mut files);
    let top_secrets = compose["secrets"].as_hash().unwrap();
    for name in &gateways {
        let svc = &compose["services"][*name];
        let command = merged(svc, "command");
        let command: Vec<&str> = list(&command).iter().map(str_of).collect();
        let path = command
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| w[1])
            .expect("--config");
        let mounts: Vec<String> = list(&merged(svc, "volumes"))
            .iter()
            .map(|v| str_of(v).to_string())
            .collect();
        assert!(
            mounts.contains(&format!("./gateway.toml:{path}:ro")),
            "{name} mounts gateway.toml at {path}: {mounts:?}"
        );
        let secrets = merged(svc, "secrets");
        let secrets: Vec<&str> = list(&secrets).iter().map(str_of).collect();
        for (key, file) in &files {
            let secret = file
                .strip_prefix("/run/secrets/")
                .unwrap_or_else(|| panic!("{key} = {file:?} is not a compose secret"));
            assert!(secrets.contains(&secret), "{name} lacks secret {secret}");
            assert!(
                top_secrets.contains_key(&Yaml::String(secret.into())),
                "no top-level secret {secret}"
            );
        }
    }

    // HAProxy balances exactly these replicas on the public port and checks them on the operations port.
    let port_of = |addr: &str| addr.rsplit(':').next().unwrap().to_string();
    let public = port_of(config["server"]["listen"].as_str().unwrap());
    let ops = port_of(config["metrics"]["listen"].as_str().unwrap());
    let cfg = std::fs::read_to_string(deploy().join("compose/haproxy.cfg")).unwrap();
    let servers: Vec<(String, String)> = cfg
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut w| match (w.next(), w.next(), w.next()) {
            (Some("server"), Some(name), Some(addr)) => Some((name.to_string(), addr.to_string())),
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String)> = gateways
        .iter()
        .map(|g| (g.to_string(), format!("{g}:{public}")))
        .collect();
    assert_eq!(servers, expected);
    assert!(
        cfg.contains(&format!("check port {ops}")),
        "health checks on {ops}"
    );
    assert!(cfg.contains("uri /readyz"));

    // The gateways trust X-Forwarded-For from HAProxy's address, and only from it.
    let haproxy_ip = compose["services"]["haproxy"]["networks"]["edge"]["ipv4_address"]
        .as_str()
        .unwrap()
        .to_string();
    let trusted: Vec<&str> = config["server"]["trusted_proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(trusted, [haproxy_ip.as_str()]);

    // And the gateway accepts the file, given secret files where compose mounts them.
    let root = tempfile::tempdir().unwrap();
    let mut config = config;
    for (key, file) in &files {
        let at = root.path().join(file.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        let value = match Path::new(file).file_name().unwrap().to_str().unwrap() {
            "users_db_url" => "postgres://gateway_ro:pw@postgres:5432/gateway",
            "redis_url" => "redis://:pw@redis:6379/0",
            _ => "compose-test-secret-value-0123456789abcdef",
        };
        std::fs::write(&at, format!("{value}\n")).unwrap();
        set_key(&mut config, key, at.display().to_string());
    }
    let fig = figment::Figment::from(figment::providers::Serialized::defaults(config));
    let loaded = gateway::config::Config::from_figment(fig, root.path())
        .unwrap_or_else(|e| panic!("compose gateway.toml: {e}"));
    assert_eq!(loaded.routes.len(), 1);
}

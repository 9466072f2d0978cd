//! A real browser for the integration tests: Debian's Chromium, headless, driven over WebDriver
//! (`chromedriver`, through the fantoccini crate), and a local stand-in for Cloudflare's Turnstile script.
//!
//! - `Browser::start()` finds `chromium` and `chromedriver` on the PATH (never downloads one). When either is
//!   missing it prints `SKIPPED (GATEWAY_TEST_BROWSER: chromium not found)` and returns None; `.ci/run`
//!   installs both and fails on that line. Each browser gets its own chromedriver on port 0 and a temporary
//!   profile; at most one browser runs at a time per test binary (they are heavy on a shared machine).
//! - `TurnstileStandIn::start()` serves `/turnstile/v0/api.js`, a script with the same entry points as
//!   Cloudflare's (`turnstile.render/reset/remove/getResponse`, `?onload=`), that "solves" the challenge at
//!   once with Cloudflare's dummy test token. Point the page's configurable script URL at `script_url()`.
//!   It also serves an empty page (`page_url()`), for scripts that must run on another origin than the
//!   gateway's.

use bytes::Bytes;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

/// The line a test prints instead of running when no browser is installed (`.ci/run` greps for it).
pub const SKIPPED: &str = "SKIPPED (GATEWAY_TEST_BROWSER: chromium not found)";

/// How long a single wait for the page (an element, a text) may take before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// One browser at a time per test binary: each Chromium takes hundreds of MB and a core while starting.
static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// The first executable called `name` on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A headless Chromium session; dropping it ends the session's chromedriver.
pub struct Browser {
    /// The WebDriver session.
    pub page: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver takes its Chromium down with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or prints [`SKIPPED`] and returns None when either
    /// is not installed.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(driver)) = (on_path("chromium"), on_path("chromedriver")) else {
            println!("{SKIPPED}");
            return None;
        };
        let slot = ONE_AT_A_TIME.acquire().await.expect("semaphore open");
        let (driver, port) = spawn_driver(&driver);
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Tests run as root in containers, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--window-size=1024,768",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let page = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        Some(Browser {
            page,
            driver,
            _profile: profile,
            _slot: slot,
        })
    }

    /// Opens `url` and waits for the document to load.
    pub async fn open(&self, url: &str) {
        self.page.goto(url).await.expect("navigate");
    }

    /// Waits until an element matches `css` and returns it.
    pub async fn find(&self, css: &str) -> Element {
        self.page
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} within {PAGE_WAIT:?}: {e}"))
    }

    /// The visible text of the first element matching `css` (waiting for it to exist).
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Waits until `script` (a function body returning a value) returns something truthy, and returns
    /// that value; panics naming `what` when it never does.
    pub async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let v = self.eval(script).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: not reached within {PAGE_WAIT:?} (last value {v})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` as a function body in the page and returns its (JSON) result.
    pub async fn eval(&self, script: &str) -> Value {
        self.page
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` as an async function body (it may `await`) and returns what it resolves to.
    pub async fn eval_async(&self, script: &str) -> Value {
        // WebDriver's executeAsync passes a completion callback as the last argument.
        let wrapped = format!(
            "const done = arguments[arguments.length - 1];\n(async () => {{ {script} }})().then(\
             v => done({{ok: v === undefined ? null : v}}), e => done({{error: String(e && e.message || e)}}));"
        );
        let v = self
            .page
            .execute_async(&wrapped, vec![])
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"));
        if let Some(err) = v.get("error") {
            panic!("async script threw: {err}\n{script}");
        }
        v.get("ok").cloned().unwrap_or(Value::Null)
    }

    /// Ends the WebDriver session (closing Chromium) and chromedriver.
    pub async fn close(self) {
        let _ = self.page.clone().close().await;
    }
}

/// Starts chromedriver on a free port (it picks one for `--port=0` and prints it) and returns the port.
fn spawn_driver(driver: &std::path::Path) -> (Child, u16) {
    let mut child = Command::new(driver)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let marker = "started successfully on port ";
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("chromedriver exited before saying its port");
        };
        if let Some(rest) = line.split(marker).nth(1) {
            break rest
                .trim_end_matches('.')
                .trim()
                .parse::<u16>()
                .expect("chromedriver port");
        }
    };
    // Keep draining its output so chromedriver never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, port)
}

/// The token Cloudflare's test sitekeys emit, and the only one its test secrets accept.
pub const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";

/// A local stand-in for `https://challenges.cloudflare.com/turnstile/v0/api.js`.
pub struct TurnstileStandIn {
    pub addr: SocketAddr,
    loads: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TurnstileStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stand-in script. Widgets solve themselves right after rendering (as Cloudflare's always-pass test
/// sitekey does) and show a marker element the tests can look for.
const STAND_IN_JS: &str = r#"(function () {
  "use strict";
  var widgets = {};
  var next = 0;
  var renders = 0;
  function solve(id) {
    var w = widgets[id];
    if (!w) return;
    w.token = "__TOKEN__";
    w.box.setAttribute("data-solved", "true");
    if (typeof w.opts.callback === "function") w.opts.callback(w.token);
  }
  window.turnstile = {
    render: function (el, opts) {
      var host = typeof el === "string" ? document.querySelector(el) : el;
      var id = "stand-in-" + next++;
      renders++;
      var box = document.createElement("div");
      box.className = "turnstile-stand-in";
      box.setAttribute("data-sitekey", (opts && opts.sitekey) || "");
      box.textContent = "Turnstile stand-in";
      host.appendChild(box);
      widgets[id] = { opts: opts || {}, box: box, token: null };
      setTimeout(function () { solve(id); }, 0);
      return id;
    },
    reset: function (id) {
      var w = widgets[id];
      if (!w) return;
      w.token = null;
      w.box.removeAttribute("data-solved");
      setTimeout(function () { solve(id); }, 0);
    },
    remove: function (id) {
      var w = widgets[id];
      if (w && w.box.parentNode) w.box.parentNode.removeChild(w.box);
      delete widgets[id];
    },
    getResponse: function (id) {
      var w = widgets[id];
      return w ? w.token || undefined : undefined;
    },
    isExpired: function () { return false; },
    renders: function () { return renders; }
  };
  // Cloudflare calls the global function named by ?onload= once the script has run.
  var me = document.currentScript && document.currentScript.src;
  var onload = me && new URL(me).searchParams.get("onload");
  if (onload && typeof window[onload] === "function") setTimeout(window[onload], 0);
})();
"#;

impl TurnstileStandIn {
    /// Serves the stand-in script whose widgets hand out Cloudflare's dummy token.
    pub async fn start() -> TurnstileStandIn {
        Self::with_token(DUMMY_TOKEN).await
    }

    /// Serves the stand-in script whose widgets hand out `token`.
    pub async fn with_token(token: &str) -> TurnstileStandIn {
        let script = Bytes::from(STAND_IN_JS.replace("__TOKEN__", token));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let counter = loads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let script = script.clone();
                        let counter = counter.clone();
                        async move {
                            let res = if req.uri().path() == "/blank.html" {
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                                    .body(Full::new(Bytes::from_static(
                                        b"<!doctype html><title>another origin</title>",
                                    )))
                            } else if req.uri().path() == "/turnstile/v0/api.js" {
                                counter.fetch_add(1, Ordering::SeqCst);
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "text/javascript; charset=utf-8")
                                    .header(header::CACHE_CONTROL, "no-store")
                                    .body(Full::new(script))
                            } else {
                                Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::new()))
                            };
                            Ok::<_, Infallible>(res.expect("response"))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        TurnstileStandIn { addr, loads, task }
    }

    /// The script URL to configure in place of Cloudflare's.
    pub fn script_url(&self) -> String {
        format!("http://{}/turnstile/v0/api.js", self.addr)
    }

    /// An empty page on the stand-in's origin: a page of another origin than the gateway's.
    pub fn page_url(&self) -> String {
        format!("http://{}/blank.html", self.addr)
    }

    /// How many times a page loaded the script.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

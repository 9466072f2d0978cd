//! The login page for server-rendered apps: an HTML form with the Turnstile widget that signs the browser in
//! with the session cookie, its embedded assets, and the logout form's target.
//!
//! Contract: the page carries no inline script or style, and a `Content-Security-Policy` that allows only its
//! own origin and Turnstile's; every failure shows the same "could not sign you in" (the cause is in the log
//! and metrics only, as for the API); after signing in the browser goes to a `return_to` that passed
//! [`return_to::safe`], else to `/`. Everything user-supplied that appears in the HTML is escaped.

pub mod return_to;

use crate::auth::login::Issued;
use crate::auth::session;
use crate::body::ResBody;
use crate::config::LoginPageConfig;
use crate::response;
use bytes::Bytes;
use http::header::{
    CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, RETRY_AFTER, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

const SCRIPT: &str = include_str!("assets/login.js");
const STYLE: &str = include_str!("assets/login.css");
/// The one message every failed sign-in shows.
pub const FAILURE_TEXT: &str = "Could not sign you in.";

/// What a request under the page's path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageTarget {
    /// The page itself: GET shows it, POST signs in.
    Page,
    /// `<path>/logout`: POST signs out.
    Logout,
    /// `<path>/assets/login.js`.
    Script,
    /// `<path>/assets/login.css`.
    Style,
    /// `<path>/assets/logo`, when a logo is configured.
    Logo,
}

/// The login page, rendered from its configuration.
pub struct LoginPage {
    cfg: LoginPageConfig,
    lower_path: String,
    cookie_name: String,
    site_key: String,
    csp: HeaderValue,
}

impl LoginPage {
    /// Builds the page; `site_key` is the Turnstile widget's, `cookie_name` the session cookie's.
    pub fn new(cfg: &LoginPageConfig, site_key: &str, cookie_name: &str) -> LoginPage {
        let ts = &cfg.turnstile_origin;
        let csp = format!(
            "default-src 'none'; script-src 'self' {ts}; frame-src {ts}; connect-src 'self' {ts}; \
             style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        LoginPage {
            lower_path: cfg.path.to_ascii_lowercase(),
            cfg: cfg.clone(),
            cookie_name: cookie_name.to_string(),
            site_key: site_key.to_string(),
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
        }
    }

    /// The page's path.
    pub fn path(&self) -> &str {
        &self.cfg.path
    }

    /// Which part of the page a normalised path asks for, if any (any ASCII case, like routes).
    pub fn target(&self, path: &str) -> Option<PageTarget> {
        let lower = path.to_ascii_lowercase();
        let rest = lower.strip_prefix(&self.lower_path)?;
        Some(match rest {
            "" | "/" => PageTarget::Page,
            "/logout" => PageTarget::Logout,
            "/assets/login.js" => PageTarget::Script,
            "/assets/login.css" => PageTarget::Style,
            "/assets/logo" if self.cfg.logo.is_some() => PageTarget::Logo,
            _ => return None,
        })
    }

    /// Where to go after signing in: `candidate` when safe, else `/`; never back to the page itself.
    pub fn return_to<'a>(&self, candidate: Option<&'a str>) -> &'a str {
        candidate
            .and_then(|c| return_to::safe(c, self.cfg.max_return_to_bytes))
            .filter(|c| {
                self.target(c.split(['?', '#']).next().unwrap_or(""))
                    .is_none()
            })
            .unwrap_or("/")
    }

    /// The page's URL with `return_to` set to `target` (a request's path and query), for the redirect a
    /// browser navigation without a session gets. Too long a target is left out.
    pub fn sign_in_location(&self, target: &str) -> HeaderValue {
        let mut location = self.cfg.path.clone();
        if target != "/" && target.len() <= self.cfg.max_return_to_bytes {
            location.push_str("?return_to=");
            location.extend(utf8_percent_encode(target, NON_ALPHANUMERIC));
        }
        HeaderValue::from_str(&location).unwrap_or_else(|_| HeaderValue::from_static("/"))
    }

    /// The page with the form; `failed` shows the one failure message.
    pub fn render(&self, status: StatusCode, return_to: &str, failed: bool) -> Response<ResBody> {
        let html = match &self.cfg.template {
            Some(t) => t.replace("{{title}}", &escape(&self.cfg.title)).replacen(
                "{{form}}",
                &self.form(return_to, failed),
                1,
            ),
            None => self.default_page(return_to, failed),
        };
        let mut res = response::with_type(status, Bytes::from(html), "text/html; charset=utf-8");
        let h = res.headers_mut();
        h.insert(CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        res
    }

    /// The page again after a failed sign-in: the status and `Retry-After` of `refusal` (decided in
    /// `crate::error`), the body of the page with the one failure message.
    pub fn failed(&self, refusal: Response<ResBody>, return_to: &str) -> Response<ResBody> {
        let mut res = self.render(refusal.status(), return_to, true);
        if let Some(v) = refusal.headers().get(RETRY_AFTER) {
            res.headers_mut().insert(RETRY_AFTER, v.clone());
        }
        res
    }

    /// After a successful sign-in: 303 to `return_to` with the session cookie.
    pub fn signed_in(&self, issued: &Issued, return_to: &str) -> Response<ResBody> {
        let mut res = see_other(return_to);
        if let Some(c) = session::set_cookie(
            &self.cookie_name,
            &issued.token,
            issued.expires_in.as_secs(),
        ) {
            res.headers_mut().insert(SET_COOKIE, c);
        }
        res
    }

    /// After signing out: 303 to the page, with the cookie cleared.
    pub fn signed_out(&self) -> Response<ResBody> {
        let mut res = see_other(&self.cfg.path);
        if let Some(c) = session::clear_cookie(&self.cookie_name) {
            res.headers_mut().insert(SET_COOKIE, c);
        }
        res
    }

    /// An embedded asset (None for a logo that is not configured).
    pub fn asset(&self, target: PageTarget) -> Option<Response<ResBody>> {
        let (body, content_type) = match target {
            PageTarget::Script => (
                Bytes::from_static(SCRIPT.as_bytes()),
                "text/javascript; charset=utf-8",
            ),
            PageTarget::Style => (
                Bytes::from_static(STYLE.as_bytes()),
                "text/css; charset=utf-8",
            ),
            PageTarget::Logo => self.cfg.logo.clone()?,
            PageTarget::Page | PageTarget::Logout => return None,
        };
        let mut res = response::with_type(StatusCode::OK, body, content_type);
        res.headers_mut()
            .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        Some(res)
    }

    fn default_page(&self, return_to: &str, failed: bool) -> String {
        let title = escape(&self.cfg.title);
        let path = escape(&self.cfg.path);
        let logo = if self.cfg.logo.is_some() {
            format!("<img class=\"logo\" src=\"{path}/assets/logo\" alt=\"\">\n")
        } else {
            String::new()
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<link rel=\"stylesheet\" href=\"{path}/assets/login.css\">\n</head>\n\
             <body>\n<main>\n{logo}<h1>{title}</h1>\n{form}</main>\n</body>\n</html>\n",
            form = self.form(return_to, failed)
        )
    }

    /// The form, the widget and the two scripts: what `{{form}}` stands for in a template.
    fn form(&self, return_to: &str, failed: bool) -> String {
        let path = escape(&self.cfg.path);
        let error = if failed {
            format!("<p class=\"error\" role=\"alert\">{FAILURE_TEXT}</p>\n")
        } else {
            String::new()
        };
        format!(
            "<form id=\"gateway-login\" method=\"post\" action=\"{path}\">\n{error}\
             <input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\n\
             <label for=\"user_name\">User name</label>\n\
             <input id=\"user_name\" name=\"user_name\" autocomplete=\"username\" required>\n\
             <label for=\"password\">Password</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
             <div class=\"cf-turnstile\" data-sitekey=\"{key}\"></div>\n\
             <input type=\"hidden\" name=\"cf-turnstile-response\" value=\"\">\n\
             <button type=\"submit\">Sign in</button>\n</form>\n\
             <script src=\"{path}/assets/login.js\" defer></script>\n\
             <script src=\"{ts}\" defer></script>\n",
            rt = escape(return_to),
            key = escape(&self.site_key),
            // Explicit rendering, started by login.js (deferred scripts run in order), so the page decides
            // where the token goes: exactly one `cf-turnstile-response` field.
            ts = escape(&format!(
                "{}?render=explicit&onload=gatewayLoginTurnstile",
                self.cfg.turnstile_script_url
            )),
        )
    }
}

/// True for a browser navigation: GET or HEAD whose `Accept` takes `text/html` (q above 0). `fetch()` and
/// API clients do not ask for HTML, so they keep the bare 401.
pub fn is_navigation(method: &http::Method, headers: &http::HeaderMap) -> bool {
    if method != http::Method::GET && method != http::Method::HEAD {
        return false;
    }
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// 303 See Other to `location` (a path that passed the checks above).
fn see_other(location: &str) -> Response<ResBody> {
    let mut res = response::empty(StatusCode::SEE_OTHER);
    res.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    res
}

/// HTML-escapes text for element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn page(extra: &str) -> LoginPage {
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[auth.cookie]\n\
             [login.turnstile]\nsite_key = \"test-site-key\"\n[login.page]\n{extra}"
        ))
        .unwrap();
        // Config refuses such a site key; the page must escape whatever it is handed all the same.
        LoginPage::new(c.page.as_ref().unwrap(), "key\"<x>", "sid")
    }

    #[test]
    fn navigations_ask_for_html() {
        let h = |accept: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            m
        };
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(is_navigation(&http::Method::GET, &h(chrome)));
        assert!(is_navigation(&http::Method::HEAD, &h("TEXT/HTML")));
        assert!(!is_navigation(&http::Method::POST, &h(chrome)));
        assert!(!is_navigation(&http::Method::GET, &h("*/*")));
        assert!(!is_navigation(&http::Method::GET, &h("application/json")));
        assert!(!is_navigation(&http::Method::GET, &h("text/html;q=0")));
        assert!(!is_navigation(&http::Method::GET, &http::HeaderMap::new()));
    }

    #[test]
    fn targets_under_the_path() {
        let p = page("");
        assert_eq!(p.target("/login"), Some(PageTarget::Page));
        assert_eq!(p.target("/LOGIN/"), Some(PageTarget::Page));
        assert_eq!(p.target("/login/logout"), Some(PageTarget::Logout));
        assert_eq!(p.target("/login/assets/login.js"), Some(PageTarget::Script));
        assert_eq!(p.target("/login/assets/logo"), None);
        assert_eq!(p.target("/loginx"), None);
        assert_eq!(p.target("/login/other"), None);
    }

    #[test]
    fn return_to_falls_back_to_the_root_and_never_loops() {
        let p = page("");
        assert_eq!(p.return_to(Some("/orders?id=1")), "/orders?id=1");
        assert_eq!(p.return_to(Some("//evil")), "/");
        assert_eq!(p.return_to(Some("/login?return_to=/x")), "/");
        assert_eq!(p.return_to(None), "/");
        assert_eq!(
            p.sign_in_location("/orders?id=1"),
            "/login?return_to=%2Forders%3Fid%3D1"
        );
    }

    #[test]
    fn everything_shown_is_escaped_and_nothing_is_inline() {
        let p = page("title = \"<b>Corp</b>\"\n");
        let res = p.render(StatusCode::OK, "/a\"><script>", true);
        let csp = res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self' https://challenges.cloudflare.com;"),
            "{csp}"
        );
        let html = p.form("/a\"><script>", true) + &p.default_page("/", false);
        assert!(!html.contains("<b>") && html.contains("&lt;b&gt;Corp"));
        assert!(html.contains("value=\"/a&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("data-sitekey=\"key&quot;&lt;x&gt;\""));
        assert!(html.contains(FAILURE_TEXT));
        // Every <script> has a src: nothing inline for the CSP to allow.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count()
        );
        assert!(!html.contains(" style=") && !html.contains("<style"));
    }
}

//! `[login.page]`: the HTML login page for server-rendered apps (off unless the table is present).

use super::file::PageFile;
use super::value::{http_url, resolve};
use super::ConfigError;
use crate::defaults;
use bytes::Bytes;
use std::path::Path;
use std::str::FromStr;

/// The login page's settings.
#[derive(Clone, Debug)]
pub struct LoginPageConfig {
    /// Where the page is served (exact, any ASCII case); its assets and logout live below it.
    pub path: String,
    pub title: String,
    /// The logo's bytes and content type, served from `<path>/assets/logo`.
    pub logo: Option<(Bytes, &'static str)>,
    /// An operator's HTML page with a `{{form}}` placeholder (and optionally `{{title}}`).
    pub template: Option<String>,
    pub turnstile_script_url: String,
    /// The script URL's origin: the only one the page's `Content-Security-Policy` allows besides its own.
    pub turnstile_origin: String,
    pub max_return_to_bytes: usize,
}

/// Validates `[login.page]`; None when it is off. Files resolve against `base`.
pub(super) fn validate_page(
    p: Option<PageFile>,
    base: &Path,
) -> Result<Option<LoginPageConfig>, ConfigError> {
    let Some(p) = p else { return Ok(None) };
    if p.enabled == Some(false) {
        return Ok(None);
    }
    let path = p
        .path
        .unwrap_or_else(|| defaults::LOGIN_PAGE_PATH.to_string());
    let path_ok = path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if !path_ok {
        return Err(ConfigError::invalid(
            "login.page.path",
            format!(
                "{path:?} must be a plain path like /login (letters, digits, - . _ ~ and /; not /)"
            ),
        ));
    }
    let title = p
        .title
        .unwrap_or_else(|| defaults::LOGIN_PAGE_TITLE.to_string());
    if title.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            "login.page.title",
            "must not contain control characters",
        ));
    }
    let logo = match p.logo_file {
        None => None,
        Some(f) => {
            let path = resolve(base, &f);
            let content_type = image_type(&path).ok_or_else(|| {
                ConfigError::invalid(
                    "login.page.logo_file",
                    format!(
                        "{}: not a .png, .jpg, .gif, .webp, .svg or .ico file",
                        path.display()
                    ),
                )
            })?;
            Some((
                Bytes::from(read_small("login.page.logo_file", &path)?),
                content_type,
            ))
        }
    };
    let template = match p.template_file {
        None => None,
        Some(f) => {
            let path = resolve(base, &f);
            let text = String::from_utf8(read_small("login.page.template_file", &path)?).map_err(
                |_| {
                    ConfigError::invalid(
                        "login.page.template_file",
                        format!("{}: not UTF-8", path.display()),
                    )
                },
            )?;
            if text.matches("{{form}}").count() != 1 {
                return Err(ConfigError::invalid(
                    "login.page.template_file",
                    format!("{}: must contain {{{{form}}}} exactly once", path.display()),
                ));
            }
            Some(text)
        }
    };
    let turnstile_script_url = p
        .turnstile_script_url
        .unwrap_or_else(|| defaults::TURNSTILE_SCRIPT_URL.to_string());
    http_url(&turnstile_script_url).map_err(|reason| {
        ConfigError::invalid(
            "login.page.turnstile_script_url",
            format!("{turnstile_script_url:?}: {reason}"),
        )
    })?;
    let uri = http::Uri::from_str(&turnstile_script_url)
        .map_err(|e| ConfigError::invalid("login.page.turnstile_script_url", e.to_string()))?;
    let turnstile_origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
    .to_ascii_lowercase();
    let max_return_to_bytes = p
        .max_return_to_bytes
        .unwrap_or(defaults::MAX_RETURN_TO_BYTES);
    if max_return_to_bytes == 0 {
        return Err(ConfigError::invalid(
            "login.page.max_return_to_bytes",
            "must be at least 1",
        ));
    }
    Ok(Some(LoginPageConfig {
        path,
        title,
        logo,
        template,
        turnstile_script_url,
        turnstile_origin,
        max_return_to_bytes,
    }))
}

/// The content type of an image file, by its extension.
fn image_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// A file's bytes, refused beyond `MAX_PAGE_FILE_BYTES`.
fn read_small(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    if meta.len() > defaults::MAX_PAGE_FILE_BYTES {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{}: larger than {} bytes",
                path.display(),
                defaults::MAX_PAGE_FILE_BYTES
            ),
        ));
    }
    std::fs::read(path).map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))
}

/// The rules the page sets for other sections: it needs cookie sessions and the login code, and its path
/// (with everything below it) belongs to the gateway.
pub(super) fn check_rules(config: &super::Config) -> Result<(), ConfigError> {
    let Some(page) = &config.page else {
        return Ok(());
    };
    if config.cookie.is_none() {
        return Err(ConfigError::invalid(
            "login.page",
            "needs [auth.cookie]: the page signs users in with the session cookie",
        ));
    }
    if !config.login.enabled {
        return Err(ConfigError::invalid(
            "login.page",
            "needs login.enabled = true (the page uses the same login as the API)",
        ));
    }
    if config.login.turnstile.site_key.is_none() {
        return Err(ConfigError::invalid(
            "login.turnstile.site_key",
            "required by [login.page]: the page shows the Turnstile widget",
        ));
    }
    let lower = page.path.to_ascii_lowercase();
    let login = config.login.path.trim_end_matches('/').to_ascii_lowercase();
    if lower == login || login.starts_with(&format!("{lower}/")) {
        return Err(ConfigError::invalid(
            "login.page.path",
            format!(
                "{:?} overlaps login.path {:?}",
                page.path, config.login.path
            ),
        ));
    }
    for (i, r) in config.routes.iter().enumerate() {
        let prefix = r.prefix.to_ascii_lowercase();
        if prefix == lower || prefix.starts_with(&format!("{lower}/")) {
            return Err(ConfigError::invalid(
                format!("routes[{i}].prefix"),
                format!(
                    "{:?} is answered by the login page at login.page.path {:?}",
                    r.prefix, page.path
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;

    fn with(extra: &str) -> String {
        format!("[auth]\nsecret = \"{SECRET}\"\n[auth.cookie]\n[login.turnstile]\nsite_key = \"1x00000000000000000000AA\"\n[login.page]\n{extra}")
    }

    #[test]
    fn defaults_and_the_csp_origin() {
        let c = Config::from_toml(&with("")).unwrap();
        let p = c.page.unwrap();
        assert_eq!(p.path, "/login");
        assert_eq!(p.turnstile_origin, "https://challenges.cloudflare.com");
        let c = Config::from_toml(&with(
            "turnstile_script_url = \"http://127.0.0.1:9/api.js\"\n",
        ))
        .unwrap();
        assert_eq!(c.page.unwrap().turnstile_origin, "http://127.0.0.1:9");
    }

    #[test]
    fn needs_cookie_mode_and_a_free_path() {
        let e = err(&format!("[auth]\nsecret = \"{SECRET}\"\n[login.page]\n"));
        assert!(
            e.starts_with("login.page:") && e.contains("auth.cookie"),
            "{e}"
        );
        let e = err(&(with("") + "[[routes]]\nprefix = \"/LOGIN/x\"\nupstream = \"http://a\"\n"));
        assert!(e.starts_with("routes[0].prefix:"), "{e}");
        let e = err(&with("path = \"/api\"\n"));
        assert!(e.starts_with("login.page.path:"), "{e}");
        for bad in ["/", "login", "/a?b", "/a/", "/a b"] {
            let e = err(&with(&format!("path = {bad:?}\n")));
            assert!(e.starts_with("login.page.path:"), "{bad}: {e}");
        }
    }

    #[test]
    fn template_needs_the_form_placeholder_and_logos_are_images() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t.html");
        std::fs::write(&t, "<html>no form</html>").unwrap();
        let e = err(&with(&format!(
            "template_file = {:?}\n",
            t.display().to_string()
        )));
        assert!(e.starts_with("login.page.template_file:"), "{e}");
        let l = dir.path().join("logo.txt");
        std::fs::write(&l, "x").unwrap();
        let e = err(&with(&format!(
            "logo_file = {:?}\n",
            l.display().to_string()
        )));
        assert!(e.starts_with("login.page.logo_file:"), "{e}");
    }
}

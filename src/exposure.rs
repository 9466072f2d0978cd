//! Development settings must never face a network. The shipped `gateway.toml` and `users.toml` make the first
//! start easy (a public JWT secret, a demo user), and Cloudflare publishes a Turnstile secret that passes every
//! token; any of them on a reachable address lets anyone mint tokens or skip the captcha. On loopback they are
//! fine; on any other address the gateway refuses to start and says what to set.

use crate::config::Config;
use crate::credentials::{self, Verdict};
use crate::state::State;

/// Cloudflare's published test secret that passes every token (its other test secrets only ever fail).
pub const ALWAYS_PASS_TURNSTILE_SECRET: &str = "1x0000000000000000000000000000000AA";
/// Cloudflare's published test site keys whose widgets always pass (visible and invisible).
const ALWAYS_PASS_SITE_KEYS: [&str; 2] = ["1x00000000000000000000AA", "1x00000000000000000000BB"];
/// The shipped demo user's name and password (`users.toml`, a labelled development fixture).
const DEMO_USER: (&str, &str) = ("demo", "demo-password");

/// The development settings in force, each with what to set instead.
pub fn development_settings(config: &Config, state: &State) -> Vec<String> {
    let mut found = Vec::new();
    if config.auth.dev_secret {
        found.push(
            "the development JWT secret: set auth.secret_file or GATEWAY_AUTH__SECRET(_FILE)"
                .to_string(),
        );
    }
    if config.login.enabled
        && config.login.turnstile.secret.as_deref() == Some(ALWAYS_PASS_TURNSTILE_SECRET)
    {
        found.push("Cloudflare's always-pass Turnstile test secret: set login.turnstile.secret(_file) to your widget's secret".to_string());
    }
    if config
        .identity
        .assertion
        .as_ref()
        .is_some_and(|a| a.key.is_none())
    {
        found.push("an ephemeral identity assertion key: set identity.assertion.key_file to a PKCS#8 PEM private key (EdDSA or ES256) of its own".to_string());
    }
    if config.login.enabled
        && config
            .login
            .turnstile
            .site_key
            .as_deref()
            .is_some_and(|k| ALWAYS_PASS_SITE_KEYS.contains(&k))
    {
        found.push("Cloudflare's always-pass Turnstile test site key: set login.turnstile.site_key to your widget's site key".to_string());
    }
    for r in &config.routes {
        // The example app is a demonstration; a public echo shows anyone the headers the gateway adds
        // (addresses of trusted proxies, the request id). A protected echo only shows callers their own.
        let dev = match r.local {
            Some(crate::config::LocalTarget::ExampleSpa) => Some("the example app"),
            Some(crate::config::LocalTarget::Echo) if r.public => Some("a public echo upstream"),
            _ => None,
        };
        if let Some(what) = dev {
            found.push(format!(
                "{what} (route {:?}, upstream = {:?}): point it at your own upstream",
                r.name, r.upstream.url
            ));
        }
    }
    if let Some(file) = &state.users_file {
        let demo = file
            .lookup(&crate::users::normalise_name(DEMO_USER.0))
            .ok()
            .flatten();
        let known_password = demo
            .and_then(|u| u.password_hash)
            .is_some_and(|h| matches!(credentials::verify(&h, DEMO_USER.1), Verdict::Match { .. }));
        if known_password {
            found.push(format!(
                "the demo user with its published password in {}: remove it from the users file",
                file.path().display()
            ));
        }
    }
    found
}

/// The non-loopback addresses the gateway would listen on.
pub fn exposed_addresses(config: &Config) -> Vec<std::net::SocketAddr> {
    std::iter::once(config.server.listen)
        .chain(config.metrics.listen)
        .filter(|a| !a.ip().is_loopback())
        .collect()
}

/// An error naming every development setting when any address is exposed, else Ok.
pub fn check(config: &Config, state: &State) -> Result<(), String> {
    let exposed = exposed_addresses(config);
    if exposed.is_empty() {
        return Ok(());
    }
    let found = development_settings(config, state);
    if found.is_empty() {
        return Ok(());
    }
    let at: Vec<String> = exposed.iter().map(ToString::to_string).collect();
    Err(format!(
        "refusing to listen on {} with development settings in force: {}",
        at.join(", "),
        found.join("; ")
    ))
}

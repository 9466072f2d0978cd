//! The provider layers under `Config::figment`: which `GATEWAY_*` variables are configuration, and how a
//! secret given by the environment replaces the file's.
//!
//! Only `GATEWAY_<SECTION>__<KEY>` for a section in `file::SECTIONS`, and `GATEWAY_ROUTES`, are read as
//! configuration. `GATEWAY_CONFIG`, `GATEWAY_LOG`, `GATEWAY_LOG_FORMAT` and `GATEWAY_WORKER_THREADS` are
//! read elsewhere (CLI, telemetry, runtime) and `GATEWAY_TEST_*` belongs to the test suites. Every other
//! `GATEWAY_*` name is ignored: platforms inject their own (Kubernetes adds `GATEWAY_PORT=tcp://…`,
//! `GATEWAY_SERVICE_HOST`, … for a Service named `gateway`), and those must not stop the gateway.

use super::file::SECTIONS;
use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Error, Figment, Metadata, Profile, Provider};

/// Variable prefix of every gateway setting.
const PREFIX: &str = "GATEWAY_";

/// Top-level `GATEWAY_*` names that are not config keys (read by the CLI, telemetry and the runtime).
const NOT_CONFIG: [&str; 4] = ["config", "log", "log_format", "worker_threads"];

/// Keys that hold secrets; each can also be given as `<key>_file` (see `value::secret`).
pub(super) const SECRET_KEYS: [&str; 4] = [
    "auth.secret",
    "login.turnstile.secret",
    "users.url",
    "shared.url",
];

/// What a `GATEWAY_*` variable is, by its key after the prefix (lower case, `__` already turned into `.`).
#[derive(Debug, PartialEq, Eq)]
enum EnvKey {
    /// A configuration key.
    Config,
    /// A documented name read elsewhere, or reserved for tests.
    Reserved,
    /// Not ours (platform-injected or a mistake): ignored and debug-logged.
    Ignored,
}

fn classify(key: &str) -> EnvKey {
    if key == "routes" {
        return EnvKey::Config;
    }
    if NOT_CONFIG.contains(&key) || key.starts_with("test_") {
        return EnvKey::Reserved;
    }
    match key.split_once('.') {
        Some((section, rest)) if !rest.is_empty() && SECTIONS.contains(&section) => EnvKey::Config,
        _ => EnvKey::Ignored,
    }
}

/// `GATEWAY_SECTION__KEY` variables of the known sections, plus `GATEWAY_ROUTES`.
pub(super) fn env() -> Env {
    Env::prefixed(PREFIX)
        .split("__")
        .filter(|k| classify(&k.as_str().to_ascii_lowercase()) == EnvKey::Config)
}

/// Debug-logs the names (never the values: they may be secrets) of the `GATEWAY_*` variables left out.
pub(super) fn log_ignored_env() {
    let ignored: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.strip_prefix(PREFIX).is_some_and(|rest| {
                classify(&rest.to_ascii_lowercase().replace("__", ".")) == EnvKey::Ignored
            })
        })
        .collect();
    if !ignored.is_empty() {
        tracing::debug!(
            names = ?ignored,
            "ignoring GATEWAY_* environment variables that are not configuration keys"
        );
    }
}

/// `base` merged with `over`, where a secret that `over` gives in either form (`key` or `key_file`)
/// replaces both forms in `base`: the environment wins over the file as a whole, while both forms given
/// within one layer stay an error (`value::secret`).
pub(super) fn merge_replacing_secrets<B, O>(base: B, over: O) -> Figment
where
    B: Provider + 'static,
    O: Provider + Clone,
{
    let given = Figment::from(over.clone());
    let replaced: Vec<String> = SECRET_KEYS
        .iter()
        .filter(|k| given.contains(k) || given.contains(&format!("{k}_file")))
        .map(|k| k.to_string())
        .collect();
    Figment::from(Without {
        inner: base,
        secrets: replaced,
    })
    .merge(over)
}

/// A provider with the named secrets (both forms) left out of its data.
struct Without<P> {
    inner: P,
    secrets: Vec<String>,
}

impl<P: Provider> Provider for Without<P> {
    fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut data = self.inner.data()?;
        for dict in data.values_mut() {
            for key in &self.secrets {
                remove(dict, key);
                remove(dict, &format!("{key}_file"));
            }
        }
        Ok(data)
    }

    fn profile(&self) -> Option<Profile> {
        self.inner.profile()
    }
}

/// Removes the dotted key `path` from `dict`, if present.
fn remove(dict: &mut Dict, path: &str) {
    match path.split_once('.') {
        None => {
            dict.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Dict(_, inner)) = dict.get_mut(head) {
                remove(inner, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    #[test]
    fn variables_are_classified_by_section() {
        for k in [
            "server.listen",
            "auth.secret",
            "log.level",
            "metrics.listen",
            "routes",
        ] {
            assert_eq!(classify(k), EnvKey::Config, "{k}");
        }
        for k in [
            "config",
            "log",
            "log_format",
            "worker_threads",
            "test_postgres_url",
        ] {
            assert_eq!(classify(k), EnvKey::Reserved, "{k}");
        }
        for k in [
            "port",
            "service_host",
            "service_port",
            "port_8080_tcp_addr",
            "server",
            "serverx.listen",
            "routes.0",
        ] {
            assert_eq!(classify(k), EnvKey::Ignored, "{k}");
        }
    }

    #[test]
    fn remove_takes_out_nested_keys_only() {
        let toml = "[auth]\nsecret = \"a\"\nsecret_file = \"b\"\nissuer = \"i\"\n";
        let data = Toml::string(toml).data().unwrap();
        let mut dict = data.into_values().next().unwrap();
        remove(&mut dict, "auth.secret");
        remove(&mut dict, "users.url");
        let auth = dict["auth"].as_dict().unwrap();
        assert!(!auth.contains_key("secret"));
        assert!(auth.contains_key("secret_file") && auth.contains_key("issuer"));
    }
}

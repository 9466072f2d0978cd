//! Small value parsers shared by the sections: durations, relative paths, secrets, header names.

use super::file::Dur;
use super::ConfigError;
use crate::protocol::headers::is_hop_by_hop;
use http::HeaderName;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The duration given, or `default` when the key was left out.
pub(super) fn dur(v: Option<Dur>, default: Duration) -> Duration {
    v.map(|d| d.0).unwrap_or(default)
}

/// `p` resolved against the config file's directory unless it is absolute.
pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A secret given inline, by env, or as `<key>_file`; never both.
pub(super) fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(f)) => {
            let path = resolve(base, &f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", path.display()))
            })?;
            // Secret files conventionally end with a newline that is not part of the secret.
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A header name that can carry identity to the upstream (not hop-by-hop, not `Host`).
pub(super) fn header_name(key: &str, value: &str) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_str(value)
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))?;
    if is_hop_by_hop(&name) || name == http::header::HOST {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} is a hop-by-hop or Host header and cannot carry identity"),
        ));
    }
    Ok(name)
}

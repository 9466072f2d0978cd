//! `ConfigError`: why a configuration was refused, always naming the key at fault.

/// A configuration that cannot be used; the gateway never starts half-configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value the gateway cannot use.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    /// The file or the environment could not be parsed into the expected shape (unknown key, wrong type).
    #[error("{0}")]
    Parse(Box<figment::Error>),
    /// The config file given explicitly does not exist.
    #[error("config file {0}: not found")]
    Missing(String),
}

impl ConfigError {
    /// Shorthand for an invalid key.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Parse(Box::new(e))
    }
}

//! User stores: where the login endpoint finds a user's password hash, active flag and extra claims.
//!
//! Names are looked up by their normalised form, as ASP.NET Identity's `NormalizedUserName`: Unicode NFC, then
//! upper case one character at a time (like .NET's `ToUpperInvariant`, which never expands `ß` to `SS`).
//! A store answers "no such user" with `Ok(None)`; `Err` means the store itself failed (503, not 401).

pub mod file;
pub mod sql;

use crate::credentials::DummyKind;
use unicode_normalization::UnicodeNormalization;

/// What the login needs to know about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The user name as stored (goes into `sub` and `name`).
    pub user_name: String,
    /// Password hash (argon2 PHC or ASP.NET Identity base64); None never matches.
    pub password_hash: Option<String>,
    /// The legacy `Activo` flag; inactive users are refused like a wrong password.
    pub active: bool,
    /// Extra claims added to the token.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store has no usable data (file missing or broken at start, database down).
    #[error("user store unavailable: {0}")]
    Unavailable(String),
}

/// A configured user store.
pub enum UserStore {
    /// The TOML users file.
    File(std::sync::Arc<file::FileStore>),
    /// A SQL database (PostgreSQL, MySQL/MariaDB, SQLite).
    Sql(std::sync::Arc<sql::SqlStore>),
}

impl UserStore {
    /// Looks up a user by normalised name.
    pub async fn lookup(&self, normalised: &str) -> Result<Option<UserRecord>, StoreError> {
        match self {
            UserStore::File(f) => f.lookup(normalised),
            UserStore::Sql(s) => s.lookup(normalised).await,
        }
    }

    /// The dummy hash whose cost matches this store's users, for unknown-user timing.
    pub fn dummy_kind(&self) -> DummyKind {
        match self {
            UserStore::File(f) => f.dummy_kind(),
            UserStore::Sql(s) => s.dummy_kind(),
        }
    }

    /// A short description for the start-up log (never contains a password).
    pub fn describe(&self) -> String {
        match self {
            UserStore::File(f) => format!("file {}", f.path().display()),
            UserStore::Sql(s) => s.describe(),
        }
    }

    /// Readiness: the file is loaded; the database answers `SELECT 1` within the configured timeouts.
    pub async fn ready(&self) -> Result<(), StoreError> {
        match self {
            UserStore::File(f) => match f.len() {
                Some(_) => Ok(()),
                None => f.lookup("").map(drop),
            },
            UserStore::Sql(s) => s.ready().await,
        }
    }
}

/// ASP.NET Identity's normalisation of a user name: NFC, then per-character upper case.
pub fn normalise_name(name: &str) -> String {
    name.nfc()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                // .NET maps each UTF-16 unit to exactly one; multi-character expansions keep the original.
                _ => c,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normalise_name;

    #[test]
    fn names_normalise_like_aspnet_identity() {
        assert_eq!(normalise_name("jdoe"), "JDOE");
        assert_eq!(normalise_name("JDoe@Example.com"), "JDOE@EXAMPLE.COM");
        assert_eq!(normalise_name("straße"), "STRAßE");
        // "é" written as e + combining acute equals the precomposed form.
        assert_eq!(normalise_name("Jose\u{301}"), normalise_name("José"));
        assert_eq!(normalise_name("José"), "JOSÉ");
    }
}

//! The users file store: a TOML file of users, held in memory and swapped atomically when the file changes.
//!
//! File shape:
//! ```toml
//! [[users]]
//! name = "jdoe"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # or an ASP.NET Identity V2/V3 hash
//! active = true                                            # default true
//! claims = { role = "admin", display_name = "J. Doe" }     # optional, added to the token
//! ```
//! A file that cannot be read or parsed never replaces the last good copy; the reason is logged. If there was
//! never a good copy (missing at start), lookups fail with `StoreError::Unavailable` (503) until it appears.

use super::{normalise_name, StoreError, UserRecord};
use crate::credentials::{self, DummyKind};
use arc_swap::ArcSwapOption;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersDoc {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_hash: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// Loaded users, by normalised name.
struct Users {
    by_name: HashMap<String, UserRecord>,
    dummy: DummyKind,
    /// How many users have each hash kind.
    kinds: Vec<(DummyKind, usize)>,
    stamp: Option<Stamp>,
}

/// The file-backed store.
pub struct FileStore {
    path: PathBuf,
    users: ArcSwapOption<Users>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl FileStore {
    /// Loads the file; a failure is logged and leaves the store unavailable until a reload succeeds.
    pub fn open(path: &Path) -> FileStore {
        let store = FileStore {
            path: path.to_path_buf(),
            users: ArcSwapOption::empty(),
            last_error: std::sync::Mutex::new(None),
        };
        if let Err(e) = store.reload() {
            tracing::error!(path = %path.display(), error = %e, "users file not loaded; logins answer 503 until it is fixed");
        }
        store
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of users loaded, or None when no good copy exists.
    pub fn len(&self) -> Option<usize> {
        self.users.load().as_ref().map(|u| u.by_name.len())
    }

    /// True when loaded and empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Looks up a normalised name.
    pub fn lookup(&self, normalised: &str) -> Result<Option<UserRecord>, StoreError> {
        let guard = self.users.load();
        let users = guard.as_ref().ok_or_else(|| {
            StoreError::Unavailable(
                self.last_error
                    .lock()
                    .map(|e| e.clone().unwrap_or_default())
                    .unwrap_or_default(),
            )
        })?;
        Ok(users.by_name.get(normalised).cloned())
    }

    /// The dummy hash kind most users' hashes resemble.
    pub fn dummy_kind(&self) -> DummyKind {
        self.users
            .load()
            .as_ref()
            .map_or(DummyKind::Argon2id, |u| u.dummy)
    }

    /// The hash kinds the loaded users have, with how many users have each (most common first).
    pub fn hash_kinds(&self) -> Vec<(DummyKind, usize)> {
        self.users
            .load()
            .as_ref()
            .map_or_else(Vec::new, |u| u.kinds.clone())
    }

    /// Re-reads the file now; on error the previous copy stays.
    pub fn reload(&self) -> Result<usize, String> {
        let result = load(&self.path);
        match result {
            Ok(users) => {
                let n = users.by_name.len();
                self.users.store(Some(Arc::new(users)));
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                Ok(n)
            }
            Err(e) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Reloads if the file's modification time or size changed since the last good load.
    pub fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        let known = self.users.load().as_ref().and_then(|u| u.stamp);
        if now.is_some() && now == known {
            return;
        }
        // Don't log the same failure every poll.
        let prev_error = self.last_error.lock().ok().and_then(|e| e.clone());
        match self.reload() {
            Ok(n) => tracing::info!(path = %self.path.display(), users = n, "users file reloaded"),
            Err(e) if Some(&e) != prev_error.as_ref() => {
                tracing::error!(path = %self.path.display(), error = %e, "users file refused; keeping the last good copy")
            }
            Err(_) => {}
        }
    }
}

/// A file's modification time and size, as the reload watcher compares them.
pub type Stamp = (SystemTime, u64);

/// A file's modification time and size, to notice changes by polling (None if it cannot be read).
pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn load(path: &Path) -> Result<Users, String> {
    let before = stamp(path);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: UsersDoc = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut by_name = HashMap::with_capacity(doc.users.len());
    let mut kinds: HashMap<DummyKind, usize> = HashMap::new();
    for (i, u) in doc.users.into_iter().enumerate() {
        if u.name.is_empty() {
            return Err(format!("{}: users[{i}].name is empty", path.display()));
        }
        let key = normalise_name(&u.name);
        if let Some(h) = &u.password_hash {
            let kind = credentials::dummy_kind_of(h);
            *kinds.entry(kind).or_default() += 1;
            if !credentials::is_known_format(h) {
                tracing::warn!(user = %u.name, "password hash format not recognised; this user cannot log in");
            }
        }
        let record = UserRecord {
            user_name: u.name,
            password_hash: u.password_hash,
            active: u.active,
            claims: u.claims,
        };
        if by_name.insert(key, record).is_some() {
            return Err(format!(
                "{}: users[{i}].name duplicates another user's (names compare case-insensitively)",
                path.display()
            ));
        }
    }
    let mut kinds: Vec<(DummyKind, usize)> = kinds.into_iter().collect();
    kinds.sort_by_key(|(k, n)| (std::cmp::Reverse(*n), format!("{k:?}")));
    let dummy = kinds.first().map_or(DummyKind::Argon2id, |(k, _)| *k);
    Ok(Users {
        by_name,
        dummy,
        kinds,
        stamp: before,
    })
}

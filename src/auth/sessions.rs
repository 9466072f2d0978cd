//! Ending sessions: one revocation, recorded where every instance will see it.
//!
//! `Sessions::revoke` is the only way a revocation is made (logout, the operations endpoint, the
//! `auth.recheck_active` task): with a shared store it is written there first (and published to every
//! instance), and only then lands in the local table that the request path reads; if the store fails,
//! nothing is revoked and the caller answers 503.

use super::revocation::{Revocation, Revocations, TableFull};
use super::shared_revocations::SharedRevocations;
use crate::shared::{SharedError, SharedStore};
use std::sync::Arc;

/// Why a revocation was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The local table is full of live entries.
    #[error(transparent)]
    Full(#[from] TableFull),
    /// The shared store did not take it.
    #[error(transparent)]
    Shared(#[from] SharedError),
}

/// The revocation table and where revocations are published.
pub struct Sessions {
    table: Arc<Revocations>,
    remote: Option<Arc<SharedRevocations>>,
}

impl Sessions {
    /// Sessions over `table`, shared through `store` when there is one.
    pub fn new(table: Arc<Revocations>, store: Option<Arc<SharedStore>>) -> Sessions {
        Sessions {
            table,
            remote: store.map(|s| Arc::new(SharedRevocations::new(s))),
        }
    }

    /// The revocations in the shared store, when configured.
    pub fn remote(&self) -> Option<&Arc<SharedRevocations>> {
        self.remote.as_ref()
    }

    /// Readiness: with a shared store, its complete revocation set has been loaded once.
    pub fn ready(&self) -> Result<(), String> {
        self.remote.as_ref().map_or(Ok(()), |r| r.ready())
    }

    /// The local table the request path reads.
    pub fn table(&self) -> &Arc<Revocations> {
        &self.table
    }

    /// Records `r`.
    pub async fn revoke(&self, r: &Revocation) -> Result<(), RevokeError> {
        if let Some(remote) = &self.remote {
            remote.publish(r, &self.table).await?;
        }
        self.table.apply_revocation(r)?;
        Ok(())
    }
}

/// How often expired revocations are dropped (a full table also sweeps at once).
const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// Drops expired revocations every minute, until its task is aborted.
pub async fn sweep(sessions: Arc<Sessions>) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sessions.table().sweep(super::revocation::now_secs());
    }
}

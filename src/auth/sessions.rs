//! Ending sessions: one revocation, recorded where every instance will see it.
//!
//! `Sessions::revoke` is the only way a revocation is made (logout, the operations endpoint, the
//! `auth.recheck_active` task): it lands in the local table that the request path reads.

use super::revocation::{Revocation, Revocations, TableFull};
use std::sync::Arc;

/// Why a revocation was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The local table is full of live entries.
    #[error(transparent)]
    Full(#[from] TableFull),
}

/// The revocation table and where revocations are published.
pub struct Sessions {
    table: Arc<Revocations>,
}

impl Sessions {
    /// Sessions over `table`, local to this process.
    pub fn new(table: Arc<Revocations>) -> Sessions {
        Sessions { table }
    }

    /// The local table the request path reads.
    pub fn table(&self) -> &Arc<Revocations> {
        &self.table
    }

    /// Records `r`.
    pub async fn revoke(&self, r: &Revocation) -> Result<(), RevokeError> {
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

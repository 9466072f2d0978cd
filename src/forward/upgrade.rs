//! Where an upgraded (WebSocket) stream lives once the HTTP exchange is over.
//!
//! The spliced stream outlives the request and its connection task, yet it must still count against the
//! listener's connection cap and be force-closed at the drain timeout. The listener owns that machinery; it
//! hands it down to forwarding as an [`UpgradeHost`] in the request's extensions, so forwarding never reaches
//! up into the listener.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// An upgraded stream's copy loop, boxed because it crosses the listener/forward boundary.
pub type UpgradedWork = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs an upgraded stream's copy loop under the connection it came from.
pub trait RunUpgraded: Send + Sync {
    /// Runs `work` until it ends or the host closes it (drain timeout).
    fn run_upgraded(self: Arc<Self>, work: UpgradedWork);
}

/// The host of a request's upgraded stream, inserted into upgrade requests' extensions by the listener.
#[derive(Clone)]
pub struct UpgradeHost(pub Arc<dyn RunUpgraded>);

/// Runs `work` on `host`, or as a plain task when the request came without one (tests, in-process callers).
pub fn run(host: Option<UpgradeHost>, work: UpgradedWork) {
    match host {
        Some(UpgradeHost(h)) => h.run_upgraded(work),
        None => {
            tokio::spawn(work);
        }
    }
}

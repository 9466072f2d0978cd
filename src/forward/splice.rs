//! The splice: once the upstream answers 101, bytes are copied both ways between the client and upstream
//! connections until either side closes, the token that authorised the upgrade expires or is revoked, or no
//! byte has moved either way for `server.websocket_idle_timeout`.
//!
//! Ending the splice drops both streams, so the client and the upstream each see their TCP connection end.
//! No WebSocket close frame is sent: the gateway copies bytes without parsing WebSocket framing, so it does
//! not know where the frame the upstream is in the middle of sending ends, and a close frame written there
//! would land inside that frame and corrupt the stream rather than close it cleanly. Clients treat the
//! abrupt end as close code 1006 (abnormal closure) and reconnect, which is also when they must present a
//! fresh token.

use super::seats::Seat;
use super::upgrade::{self, UpgradeHost};
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How long an upgraded connection may live, decided when the upgrade request is accepted.
pub struct UpgradeTerms {
    /// Closed after this long with no byte in either direction.
    pub idle_timeout: Duration,
    /// Closed at this moment: when the token that authorised the upgrade stops being accepted. None on
    /// public routes (no token) and for a token whose expiry is beyond the clock's range.
    pub expires: Option<SystemTime>,
    /// The caller's per-user seat, given back when the splice ends. None on public routes, which are
    /// bounded by `server.max_connections` alone.
    pub seat: Option<Seat>,
    /// Completes when the token that authorised the upgrade is revoked. None on public routes.
    pub revoked: Option<Revoked>,
}

impl std::fmt::Debug for UpgradeTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeTerms")
            .field("idle_timeout", &self.idle_timeout)
            .field("expires", &self.expires)
            .field("seat", &self.seat)
            .field("revoked", &self.revoked.is_some())
            .finish()
    }
}

/// A future that completes when a token is revoked; built by the caller, so forwarding stays unaware of
/// how revocations are kept.
pub type Revoked = Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Why a splice ended, for the debug log.
#[derive(Debug)]
enum Ended {
    /// One side closed (or both did).
    Closed,
    /// A side failed while copying.
    Error(io::Error),
    /// The client or upstream connection was not handed over after the 101.
    UpgradeFailed(hyper::Error),
    /// The token that authorised the upgrade expired.
    Expired,
    /// The token that authorised the upgrade was revoked.
    Revoked,
    /// No byte moved either way for the idle timeout.
    Idle,
}

/// Splices the two upgraded connections under `host` (which counts them against `max_connections` and
/// force-closes them at the drain timeout), within `terms`.
pub(super) fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    host: Option<UpgradeHost>,
    terms: UpgradeTerms,
) {
    let work = async move {
        let UpgradeTerms {
            idle_timeout,
            expires,
            seat,
            revoked,
        } = terms;
        let ended = run(client, upstream, idle_timeout, expires, revoked).await;
        match &ended {
            Ended::Error(e) => {
                tracing::debug!(error = %e, "upgraded connection closed with an error")
            }
            Ended::UpgradeFailed(e) => tracing::debug!(error = %e, "upgrade failed"),
            Ended::Closed | Ended::Expired | Ended::Revoked | Ended::Idle => {
                tracing::debug!(reason = ?ended, "upgraded connection ended")
            }
        }
        // Given back only now that both streams are dropped (inside `run`), so a user never holds more
        // live connections than seats.
        drop(seat);
    };
    upgrade::run(host, Box::pin(work));
}

async fn run(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle_timeout: Duration,
    expires: Option<SystemTime>,
    revoked: Option<Revoked>,
) -> Ended {
    let expired = async {
        match expires.and_then(instant_of) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let revoked = async {
        match revoked {
            Some(r) => r.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(revoked);
    let (client, upstream) = tokio::select! {
        r = async { tokio::try_join!(client, upstream) } => match r {
            Ok(pair) => pair,
            Err(e) => return Ended::UpgradeFailed(e),
        },
        _ = &mut expired => return Ended::Expired,
        _ = &mut revoked => return Ended::Revoked,
        // Nothing moves until both sides are handed over, so this wait is idle time too.
        _ = tokio::time::sleep(idle_timeout) => return Ended::Idle,
    };
    let activity = Arc::new(Activity::new());
    // Wrapping the client side sees both directions: reads are client→upstream bytes, writes are
    // upstream→client bytes.
    let mut client = Touch {
        inner: TokioIo::new(client),
        activity: activity.clone(),
    };
    let mut upstream = TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    let idle_check = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle_check);
    // One iteration per idle check; the check re-arms to the earliest moment the connection could have been
    // idle long enough, so a busy connection wakes this loop about once per idle timeout, not per byte.
    // The loop ends with the copy, at expiry or revocation, or at the first check that finds it idle.
    loop {
        tokio::select! {
            r = &mut copy => return match r {
                Ok(_) => Ended::Closed,
                Err(e) => Ended::Error(e),
            },
            _ = &mut expired => return Ended::Expired,
            _ = &mut revoked => return Ended::Revoked,
            _ = &mut idle_check => {
                let quiet = activity.idle_for();
                if quiet >= idle_timeout {
                    return Ended::Idle;
                }
                idle_check.as_mut().reset(Instant::now() + (idle_timeout - quiet));
            }
        }
    }
}

/// `at` on the tokio clock; None when it is too far ahead to represent (it never comes).
fn instant_of(at: SystemTime) -> Option<Instant> {
    // A moment already passed is now: the connection closes at once.
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_add(left)
}

/// When bytes last moved through a spliced connection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last byte moved.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// An IO wrapper that records in [`Activity`] when bytes are read or written.
struct Touch<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Touch<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Touch<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_the_past_are_now_and_beyond_the_clock_never() {
        let before = Instant::now();
        let past = instant_of(SystemTime::now() - Duration::from_secs(60)).unwrap();
        assert!(past >= before && past <= Instant::now());
        let soon = instant_of(SystemTime::now() + Duration::from_secs(60)).unwrap();
        assert!(soon > Instant::now() + Duration::from_secs(59));
        // The far future a u64 `exp` can name must not panic.
        if let Some(far) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 4)) {
            let _ = instant_of(far);
        }
    }
}

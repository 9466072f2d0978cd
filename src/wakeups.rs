//! Telling a task's wake-ups apart: a connection task is woken by its socket several times per request, and
//! by its timers and shutdown signals almost never. Polling those on every wake-up (as `select!` does)
//! cost every request a timer poll, two cancellation-token polls and an interval poll. Side futures polled
//! with a [`SideWaker`] instead are polled again only when one of them woke the task.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

/// A waker for a task's side futures: it marks that one of them woke the task, then wakes the task.
pub struct SideWaker {
    state: Arc<SideState>,
    waker: Waker,
}

struct SideState {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SideState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl SideWaker {
    /// A side waker whose futures are due for their first poll.
    pub fn new() -> SideWaker {
        let state = Arc::new(SideState {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(state.clone());
        SideWaker { state, waker }
    }

    /// A context for polling the side futures if one of them woke the task since the last call (or if they
    /// were never polled, or `again` was called), else None. Remembers the task's own waker first, so a
    /// side wake-up racing this call still wakes the task.
    pub fn due(&self, cx: &Context<'_>) -> Option<Context<'_>> {
        self.state.task.register(cx.waker());
        self.state
            .woken
            .swap(false, Ordering::AcqRel)
            .then(|| Context::from_waker(&self.waker))
    }

    /// Marks the side futures due again (after one of them was ready and must be polled to re-arm).
    pub fn again(&self) {
        self.state.woken.store(true, Ordering::Release);
    }
}

impl Default for SideWaker {
    fn default() -> Self {
        SideWaker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    #[tokio::test]
    async fn side_futures_are_polled_only_when_they_woke_the_task() {
        let side = SideWaker::new();
        let mut timer = pin!(tokio::time::sleep(Duration::from_millis(30)));
        let mut polls = 0;
        let mut own_wakes = 0;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Keeps the channel open past the timer.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(())) = rx.poll_recv(cx) {
                own_wakes += 1;
            }
            if let Some(mut scx) = side.due(cx) {
                polls += 1;
                if timer.as_mut().poll(&mut scx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
        sender.abort();
        assert_eq!(own_wakes, 5, "the task's own wake-ups all arrived");
        // The first poll arms the timer; the timer's wake-up is the only other one that polls it.
        assert_eq!(polls, 2, "the timer was polled on the task's own wake-ups");
    }
}

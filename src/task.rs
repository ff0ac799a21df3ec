//! Small helpers shared by the producer and consumer tasks' select loops.

use crate::channel as mpsc;
use tokio::time::Instant;

use crate::error::ConnectionError;

/// How many queued commands or events a task handles in one turn of its select loop before it
/// looks at its timers again: enough to spread the cost of re-arming them over many messages,
/// few enough that a deadline is never late by more than a moment.
pub(crate) const DRAIN: usize = 256;

/// tokio's timers fire on the first millisecond tick at or after their deadline, and the
/// driver's wait rounds up to a millisecond too: measured on Linux, a timer fires about 1.2 ms
/// late at the median and 2 ms late at the 99th percentile. Timers that bound a wait the user
/// configured (the batching delay) are set this much early, so that the wait is at most what
/// was configured rather than at least.
pub(crate) const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(2);

/// `at`, the end of a wait of `wait`, brought forward by [`TIMER_SLACK`] or a fifth of `wait`,
/// whichever is less.
pub(crate) fn early(at: Instant, wait: std::time::Duration) -> Instant {
    at.checked_sub(TIMER_SLACK.min(wait / 5)).unwrap_or(at)
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next event of the connection the task is attached to; pending forever while detached.
/// `closed` stands for a connection whose channel ended.
pub(crate) async fn next_event<T>(
    events: &mut Option<mpsc::UnboundedReceiver<T>>,
    closed: impl FnOnce(ConnectionError) -> T,
) -> T {
    match events {
        Some(rx) => match rx.recv().await {
            Some(ev) => ev,
            None => closed(ConnectionError::Closed),
        },
        None => std::future::pending().await,
    }
}

/// The next event already queued on the attached connection's channel, without waiting: how
/// a task takes the rest of a turn's events after [`next_event`] gave it the first.
pub(crate) fn queued_event<T>(events: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    events.as_mut().and_then(|rx| rx.try_recv().ok())
}

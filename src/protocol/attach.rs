//! The attachment of one producer or consumer to a broker connection, as a state machine shared
//! by both: when to (re)attach, with what backoff, when to give up, and which attempt is current.
//!
//! ```text
//!                 poll_attach(now), retry time reached
//!   Detached ----------------------------------------> Attaching(epoch)
//!     ^  ^                                               |      |
//!     |  |  attached(epoch, Err(transient))              |      | attached(epoch, Ok)
//!     |  +-----------------------------------------------+      v
//!     |        lost(now): connection gone, closed by broker   Attached(epoch)
//!     +-------------------------------------------------------- |
//!
//!   attached(epoch, Err(permanent)), or a transient error past the first attach's
//!   deadline ---> Failed             close() from any state ---> Closed
//! ```
//!
//! Each attempt has an epoch; the result of an attempt that is no longer current (the
//! attachment was lost or closed meanwhile) is reported [`AttachOutcome::Stale`], so its
//! connection can be dropped. Time is an input: nothing here reads a clock.
//!
//! The first attach (creating the producer, subscribing) retries transient errors with backoff
//! until the operation timeout, then fails with the last error, as the Java client does; an
//! error no retry can fix (a non-retriable broker error, too many redirects, an invalid URL)
//! fails it at once. Once
//! attached, the attachment retries without end, except on a permanent error.

use std::time::{Duration, Instant};

use crate::error::{Error, ServerErrorCode};
use crate::protocol::backoff::Backoff;

/// Where an attachment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachState {
    /// Not attached; the next attempt starts at `retry_at`.
    Detached {
        /// When the next attempt may start.
        retry_at: Instant,
    },
    /// An attempt (lookup, then PRODUCER or SUBSCRIBE) is in flight.
    Attaching {
        /// The attempt's epoch.
        epoch: u64,
    },
    /// Attached to a connection.
    Attached {
        /// The epoch of the attempt that attached.
        epoch: u64,
    },
    /// Gave up: a permanent error, or the first attach ran out of time.
    Failed,
    /// Closed by the application.
    Closed,
}

/// What an attempt's result did to the attachment.
#[derive(Debug, Clone)]
pub enum AttachOutcome {
    /// Now attached.
    Attached,
    /// Failed for now: the next attempt starts after `retry_in`.
    Retry {
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// Gave up with this error.
    Failed(Error),
    /// The attempt is not the current one (lost or closed meanwhile): drop its connection.
    Stale,
}

/// One producer's or consumer's attachment. See the [module docs](self).
#[derive(Debug)]
pub struct Attachment {
    state: AttachState,
    backoff: Backoff,
    epoch: u64,
    /// Until when the first attach keeps retrying; `None` once attached.
    first_deadline: Option<Instant>,
    /// Server error codes that end the attachment, beyond [`is_permanent`]'s.
    permanent: &'static [ServerErrorCode],
}

impl Attachment {
    /// A detached attachment whose first attempt may start at `now`, retrying transient
    /// failures until `now + operation_timeout`.
    pub fn new(
        now: Instant,
        operation_timeout: Duration,
        backoff: Backoff,
        permanent: &'static [ServerErrorCode],
    ) -> Self {
        Attachment {
            state: AttachState::Detached { retry_at: now },
            backoff,
            epoch: 0,
            first_deadline: Some(now + operation_timeout),
            permanent,
        }
    }

    /// The state.
    pub fn state(&self) -> AttachState {
        self.state
    }

    /// The current epoch when attached.
    pub fn attached_epoch(&self) -> Option<u64> {
        match self.state {
            AttachState::Attached { epoch } => Some(epoch),
            _ => None,
        }
    }

    /// Whether attached.
    pub fn is_attached(&self) -> bool {
        matches!(self.state, AttachState::Attached { .. })
    }

    /// Whether the attachment has ended (failed or closed).
    pub fn is_over(&self) -> bool {
        matches!(self.state, AttachState::Failed | AttachState::Closed)
    }

    /// Whether it was ever attached (the first attach succeeded).
    pub fn ever_attached(&self) -> bool {
        self.first_deadline.is_none()
    }

    /// Starts an attempt when one is due: returns its epoch.
    pub fn poll_attach(&mut self, now: Instant) -> Option<u64> {
        match self.state {
            AttachState::Detached { retry_at } if retry_at <= now => {
                self.epoch += 1;
                self.state = AttachState::Attaching { epoch: self.epoch };
                Some(self.epoch)
            }
            _ => None,
        }
    }

    /// The result of the attempt of `epoch`.
    pub fn attached(
        &mut self,
        epoch: u64,
        now: Instant,
        result: Result<(), &Error>,
    ) -> AttachOutcome {
        if self.state != (AttachState::Attaching { epoch }) {
            return AttachOutcome::Stale;
        }
        match result {
            Ok(()) => {
                self.state = AttachState::Attached { epoch };
                self.first_deadline = None;
                self.backoff.reset();
                AttachOutcome::Attached
            }
            Err(e) if is_permanent(e, self.permanent) => {
                self.state = AttachState::Failed;
                AttachOutcome::Failed(e.clone())
            }
            Err(e) => {
                let retry_in = self.backoff.next_delay_random();
                let retry_at = now + retry_in;
                if let Some(deadline) = self.first_deadline {
                    if retry_at >= deadline || !e.is_retriable() {
                        self.state = AttachState::Failed;
                        return AttachOutcome::Failed(e.clone());
                    }
                }
                self.state = AttachState::Detached { retry_at };
                AttachOutcome::Retry { retry_in }
            }
        }
    }

    /// The connection was lost, or the broker closed this producer or consumer: attach again
    /// after the backoff. Returns whether it was attached (or attaching).
    pub fn lost(&mut self, now: Instant) -> bool {
        match self.state {
            AttachState::Attached { .. } | AttachState::Attaching { .. } => {
                self.state = AttachState::Detached {
                    retry_at: now + self.backoff.next_delay_random(),
                };
                true
            }
            _ => false,
        }
    }

    /// Detaches (if attached) and attaches again at once: to re-create the producer after a
    /// send error, or to resubscribe after a seek.
    pub fn reattach_now(&mut self, now: Instant) {
        if !self.is_over() {
            self.state = AttachState::Detached { retry_at: now };
        }
    }

    /// Gives up for good with this error (the application sees it).
    pub fn fail(&mut self) {
        if !self.is_over() {
            self.state = AttachState::Failed;
        }
    }

    /// Closed by the application: no more attempts.
    pub fn close(&mut self) {
        self.state = AttachState::Closed;
    }

    /// When the next attempt is due, while detached.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            AttachState::Detached { retry_at } => Some(retry_at),
            _ => None,
        }
    }
}

/// Whether re-attaching after this error is pointless: the topic, the credentials or the
/// request itself are wrong, beyond the codes a caller treats so (`extra`).
pub fn is_permanent(e: &Error, extra: &[ServerErrorCode]) -> bool {
    match e.server_error() {
        Some(s) => {
            matches!(
                s.code,
                ServerErrorCode::TopicNotFound
                    | ServerErrorCode::AuthorizationError
                    | ServerErrorCode::AuthenticationError
                    | ServerErrorCode::InvalidTopicName
                    | ServerErrorCode::IncompatibleSchema
                    | ServerErrorCode::NotAllowedError
            ) || extra.contains(&s.code)
        }
        None => matches!(
            e,
            Error::Closed(_) | Error::InvalidTopic(_) | Error::InvalidConfig(_)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConnectionError, ServerError};

    fn server(code: ServerErrorCode) -> Error {
        Error::Server {
            operation: "subscribe",
            error: ServerError {
                code,
                message: "test".into(),
            },
        }
    }

    fn attachment(now: Instant) -> Attachment {
        Attachment::new(
            now,
            Duration::from_secs(30),
            Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(60), 7),
            &[ServerErrorCode::SubscriptionNotFound],
        )
    }

    #[test]
    fn first_attempt_at_once_then_attached() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        assert_eq!(a.poll_timeout(), Some(t0));
        let epoch = a.poll_attach(t0).unwrap();
        assert_eq!(a.poll_attach(t0), None, "one attempt at a time");
        assert!(matches!(
            a.attached(epoch, t0, Ok(())),
            AttachOutcome::Attached
        ));
        assert_eq!(a.attached_epoch(), Some(epoch));
        assert!(a.ever_attached());
    }

    #[test]
    fn transient_errors_retry_with_backoff_until_the_first_deadline() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let mut now = t0;
        let busy = server(ServerErrorCode::ServiceNotReady);
        let mut retries = 0;
        loop {
            let epoch = a.poll_attach(now).expect("due");
            match a.attached(epoch, now, Err(&busy)) {
                AttachOutcome::Retry { retry_in } => {
                    retries += 1;
                    now += retry_in;
                    assert_eq!(a.poll_attach(now - Duration::from_nanos(1)), None);
                }
                AttachOutcome::Failed(e) => {
                    assert_eq!(
                        e.server_error().map(|s| s.code),
                        Some(ServerErrorCode::ServiceNotReady)
                    );
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        // 0, 0.1, 0.2, ... 12.8 s: 9 retries fit in 30 s, the 10th would end past it.
        assert!((8..=10).contains(&retries), "{retries} retries");
        assert!(now <= t0 + Duration::from_secs(30));
        assert_eq!(a.state(), AttachState::Failed);
    }

    #[test]
    fn permanent_errors_fail_at_once_even_after_attaching() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let e = a.poll_attach(t0).unwrap();
        a.attached(e, t0, Ok(()));
        assert!(a.lost(t0));
        let retry = a.poll_timeout().unwrap();
        let e = a.poll_attach(retry).unwrap();
        let gone = server(ServerErrorCode::SubscriptionNotFound);
        assert!(matches!(
            a.attached(e, retry, Err(&gone)),
            AttachOutcome::Failed(_)
        ));
        assert!(a.is_over());
        assert_eq!(a.poll_attach(retry + Duration::from_secs(100)), None);
    }

    #[test]
    fn once_attached_transient_errors_retry_forever() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let e = a.poll_attach(t0).unwrap();
        a.attached(e, t0, Ok(()));
        a.lost(t0);
        let down = Error::Connection(ConnectionError::ClosedByBroker);
        let mut now = t0;
        for _ in 0..100 {
            now = a.poll_timeout().unwrap();
            let e = a.poll_attach(now).unwrap();
            assert!(matches!(
                a.attached(e, now, Err(&down)),
                AttachOutcome::Retry { .. }
            ));
        }
        assert!(now > t0 + Duration::from_secs(600));
    }

    #[test]
    fn a_result_for_an_old_attempt_is_stale() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let first = a.poll_attach(t0).unwrap();
        a.lost(t0);
        a.reattach_now(t0);
        let second = a.poll_attach(t0).unwrap();
        assert!(matches!(
            a.attached(first, t0, Ok(())),
            AttachOutcome::Stale
        ));
        assert!(matches!(
            a.attached(second, t0, Ok(())),
            AttachOutcome::Attached
        ));
        a.close();
        assert!(matches!(
            a.attached(second, t0, Ok(())),
            AttachOutcome::Stale
        ));
    }

    #[test]
    fn an_error_no_retry_can_fix_fails_the_first_attach_at_once() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let e = a.poll_attach(t0).unwrap();
        let endless = Error::TooManyRedirects {
            topic: "t".into(),
            max: 20,
        };
        assert!(matches!(
            a.attached(e, t0, Err(&endless)),
            AttachOutcome::Failed(_)
        ));
    }

    #[test]
    fn a_non_retriable_server_error_fails_the_first_attach_at_once() {
        let t0 = Instant::now();
        let mut a = attachment(t0);
        let e = a.poll_attach(t0).unwrap();
        let bad = server(ServerErrorCode::UnsupportedVersionError);
        assert!(matches!(
            a.attached(e, t0, Err(&bad)),
            AttachOutcome::Failed(_)
        ));
    }
}

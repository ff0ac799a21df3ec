//! Interceptors (the Java client's `ProducerInterceptor` and `ConsumerInterceptor`) and the
//! message listener of a callback consumer ([`MessageListener`]).
//!
//! Interceptors are registered on the builders
//! ([`ProducerBuilder::interceptor`](crate::ProducerBuilder::interceptor),
//! [`ConsumerBuilder::interceptor`](crate::ConsumerBuilder::interceptor)); several may be, and
//! they are called in the order they were added. Every method has a no-op default.
//!
//! A panicking interceptor does not take the client down: as the Java client catches an
//! interceptor's exception, logs it and goes on, the panic is caught, logged (at warn), and the
//! next interceptor is called. A message an interceptor was changing when it panicked goes on
//! as that interceptor left it.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::consumer::Consumer;
use crate::error::Error;
use crate::message::{Message, ProducerMessage};
use crate::wire::MessageId;

/// Sees (and may change) every message a producer sends, and its outcome.
pub trait ProducerInterceptor: Send + Sync {
    /// Called for every message given to `send`, before it is routed to a partition and
    /// encoded: it may change the payload, the properties, the key. A changed key routes.
    fn before_send(&self, msg: &mut ProducerMessage) {
        let _ = msg;
    }

    /// Called once for every message [`before_send`](Self::before_send) saw, with the message
    /// as sent and its id, or the error that failed it (refused at once, send timeout, broker
    /// error, producer closed).
    fn on_send_acknowledgement(&self, msg: &ProducerMessage, result: Result<&MessageId, &Error>) {
        let _ = (msg, result);
    }
}

/// Sees (and may change) every message a consumer hands the application, and the
/// acknowledgements and redeliveries that follow.
pub trait ConsumerInterceptor: Send + Sync {
    /// Called for every message before the application gets it (from `receive`, the stream,
    /// `batch_receive` or the message listener); it may change it.
    fn before_consume(&self, msg: &mut Message) {
        let _ = msg;
    }

    /// Called for every individual acknowledgement the application makes, with its outcome.
    fn on_acknowledge(&self, id: &MessageId, result: Result<(), &Error>) {
        let _ = (id, result);
    }

    /// Called for every cumulative acknowledgement the application makes, with its outcome.
    fn on_acknowledge_cumulative(&self, id: &MessageId, result: Result<(), &Error>) {
        let _ = (id, result);
    }

    /// Called when negatively acknowledged messages are asked for again (after the
    /// negative-ack delay), with their ids.
    fn on_negative_acks_send(&self, ids: &[MessageId]) {
        let _ = ids;
    }

    /// Called when messages are asked for again because their ack timeout passed, with the
    /// ids of their entries (partition set, no batch index).
    fn on_ack_timeout_send(&self, ids: &[MessageId]) {
        let _ = ids;
    }
}

/// Interceptors of one producer or consumer, in the order they were added.
pub(crate) struct Interceptors<T: ?Sized>(Vec<Arc<T>>);

impl<T: ?Sized> Clone for Interceptors<T> {
    fn clone(&self) -> Self {
        Interceptors(self.0.clone())
    }
}

impl<T: ?Sized> Default for Interceptors<T> {
    fn default() -> Self {
        Interceptors(Vec::new())
    }
}

impl<T: ?Sized> fmt::Debug for Interceptors<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interceptors({})", self.0.len())
    }
}

impl<T: ?Sized> Interceptors<T> {
    /// Adds one, called after those already there.
    pub fn push(&mut self, interceptor: Arc<T>) {
        self.0.push(interceptor);
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls `f` on each in order; a panic is caught and logged, and the next one is called.
    pub fn each(&self, what: &'static str, mut f: impl FnMut(&T)) {
        for (index, i) in self.0.iter().enumerate() {
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                tracing::warn!(
                    interceptor = index,
                    method = what,
                    "an interceptor panicked: ignored"
                );
            }
        }
    }
}

/// The producer interceptors.
pub(crate) type ProducerInterceptors = Interceptors<dyn ProducerInterceptor>;
/// The consumer interceptors.
pub(crate) type ConsumerInterceptors = Interceptors<dyn ConsumerInterceptor>;

impl ConsumerInterceptors {
    /// Tells each of an acknowledgement's outcome.
    pub fn acknowledged(&self, id: &MessageId, cumulative: bool, result: &crate::Result<()>) {
        if self.is_empty() {
            return;
        }
        let result = result.as_ref().map(|_| ());
        if cumulative {
            self.each("on_acknowledge_cumulative", |i| {
                i.on_acknowledge_cumulative(id, result)
            });
        } else {
            self.each("on_acknowledge", |i| i.on_acknowledge(id, result));
        }
    }
}

/// The callback of a consumer with a message listener
/// ([`ConsumerBuilder::message_listener`](crate::ConsumerBuilder::message_listener)): called for
/// every message, one at a time, in the order the consumer receives them (so in order per
/// partition), on a task of the consumer's.
///
/// The listener acknowledges (or negatively acknowledges) the message through `consumer`. A
/// message it leaves unacknowledged is treated as any other: redelivered after the ack timeout
/// if one is set, or when the consumer closes. The next message is not delivered before the
/// future returned for the previous one completes.
///
/// A listener that panics does not stop the consumer: as the Java client catches a listener's
/// exception, the panic is caught and logged, the message is negatively acknowledged (the
/// broker redelivers it after the negative-ack delay, and the dead-letter policy counts it),
/// and the next message is delivered.
pub trait MessageListener: Send + Sync + 'static {
    /// Handles one message.
    fn received(&self, consumer: &Consumer, msg: Message) -> impl Future<Output = ()> + Send;
}

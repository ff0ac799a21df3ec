//! The unbounded channel between handles and tasks (a producer's or consumer's commands, a
//! connection's events, a consumer's deliveries): tokio's `mpsc::unbounded_channel` API, on a
//! queue that holds no memory until something is sent.
//!
//! tokio's channel allocates a block of 32 slots when it is made; with commands of a few
//! hundred bytes that is 6 to 22 KiB for each idle producer or consumer, several times what
//! all the rest of one costs. This one is a `VecDeque` behind a mutex, allocated on the first
//! send, and given back when a receiver that had grown it past [`KEEP`] finds it empty and
//! waits: an idle producer holds a few dozen bytes of channel, a busy one no allocation per
//! message.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The capacity a waiting receiver keeps; a queue grown past it is given back when the
/// receiver finds it empty and waits.
const KEEP: usize = 64;

/// Errors of the channel, named as tokio's.
pub(crate) mod error {
    /// The receiver is gone (or closed): the value comes back.
    #[derive(Debug, PartialEq, Eq)]
    pub struct SendError<T>(pub T);

    /// Why [`try_recv`](super::UnboundedReceiver::try_recv) returned nothing.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum TryRecvError {
        /// Nothing queued; senders remain.
        Empty,
        /// Nothing queued and no sender remains (or the receiver closed the channel).
        Disconnected,
    }
}

use error::{SendError, TryRecvError};

#[derive(Debug)]
struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    /// The receiver closed the channel or is gone: sends fail.
    closed: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue as it was: go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half; clones send to the same receiver.
#[derive(Debug)]
pub(crate) struct UnboundedSender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half.
#[derive(Debug)]
pub(crate) struct UnboundedReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// A new channel, holding no queue memory until the first send.
pub(crate) fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            closed: false,
            waker: None,
        }),
    });
    (
        UnboundedSender {
            shared: shared.clone(),
        },
        UnboundedReceiver { shared },
    )
}

impl<T> UnboundedSender<T> {
    /// Queues `value` for the receiver, or gives it back when the receiver is gone or closed.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let waker = {
            let mut s = self.shared.lock();
            if s.closed {
                return Err(SendError(value));
            }
            s.queue.push_back(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone or closed the channel.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        UnboundedSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.shared.lock();
            s.senders -= 1;
            if s.senders == 0 {
                s.waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> UnboundedReceiver<T> {
    /// The next value; `None` once every sender is gone (or the channel was closed) and
    /// nothing is queued.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut s = self.shared.lock();
        match s.queue.pop_front() {
            Some(v) => Ok(v),
            None if s.senders == 0 || s.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Polls for the next value (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.shared.lock();
        if let Some(v) = s.queue.pop_front() {
            return Poll::Ready(Some(v));
        }
        if s.senders == 0 || s.closed {
            return Poll::Ready(None);
        }
        if s.queue.capacity() > KEEP {
            s.queue = VecDeque::new();
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }

    /// Closes the channel: sends fail from now on; what is queued can still be received.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
    }
}

impl<T> Drop for UnboundedReceiver<T> {
    fn drop(&mut self) {
        // The queued values are dropped with the receiver (as tokio's), outside the lock.
        let queued = {
            let mut s = self.shared.lock();
            s.closed = true;
            s.waker = None;
            std::mem::take(&mut s.queue)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn context() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn values_come_out_in_order_and_the_end_after_the_last_sender() {
        let (tx, mut rx) = unbounded_channel();
        let tx2 = tx.clone();
        tx.send(1).expect("open");
        tx2.send(2).expect("open");
        assert_eq!(rx.try_recv(), Ok(1));
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "one sender left");
        drop(tx2);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        let (count, waker) = context();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_drop() {
        let (tx, mut rx) = unbounded_channel::<u8>();
        let (count, waker) = context();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.send(7).expect("open");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn sends_fail_with_their_value_once_the_receiver_closes_or_goes() {
        let (tx, mut rx) = unbounded_channel();
        tx.send("kept").expect("open");
        rx.close();
        assert!(tx.is_closed());
        assert_eq!(tx.send("refused"), Err(SendError("refused")));
        assert_eq!(
            rx.try_recv(),
            Ok("kept"),
            "what was queued is still received"
        );
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        let (tx, rx) = unbounded_channel();
        drop(rx);
        assert_eq!(tx.send(1), Err(SendError(1)));
    }

    #[test]
    fn no_queue_memory_until_a_send_and_a_big_one_given_back_when_drained() {
        let (tx, mut rx) = unbounded_channel::<[u8; 400]>();
        assert_eq!(rx.shared.lock().queue.capacity(), 0, "made without a queue");
        for _ in 0..1000 {
            tx.send([0; 400]).expect("open");
        }
        assert!(rx.shared.lock().queue.capacity() >= 1000);
        let (_, waker) = context();
        let mut cx = Context::from_waker(&waker);
        while let Poll::Ready(Some(_)) = rx.poll_recv(&mut cx) {}
        assert_eq!(
            rx.shared.lock().queue.capacity(),
            0,
            "given back when drained"
        );
        // A small queue is kept for the next messages.
        for _ in 0..10 {
            tx.send([0; 400]).expect("open");
        }
        while let Poll::Ready(Some(_)) = rx.poll_recv(&mut cx) {}
        assert!(rx.shared.lock().queue.capacity() >= 10);
    }
}

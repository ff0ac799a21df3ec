//! Transactions (PIP-31): [`Transaction`] groups sends and acknowledgements that take effect
//! together on [`commit`](Transaction::commit) or not at all on
//! [`abort`](Transaction::abort).
//!
//! The coordinators are the partitions of
//! `persistent://pulsar/system/transaction_coordinator_assign`: each is served by the broker
//! that owns that partition. The client finds them on its first transaction, opens a session
//! with each (TC_CLIENT_CONNECT) on the owner's connection, and spreads new transactions over
//! them; a transaction's later requests go to the coordinator that opened it (its id's
//! `most_bits`). A request that meets a coordinator not ready, moved, or a dropped connection
//! is retried on a fresh lookup until the operation timeout.
//!
//! The bookkeeping (state, timeout, what has been added, the operations in flight, whether a
//! commit must abort) is the sans-IO [`TxnCore`]; this module runs its requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OnceCell};
use tracing::debug;

use crate::connection::Connection;
use crate::error::{Error, Result, ServerErrorCode};
use crate::protocol::backoff::Backoff;
use crate::protocol::commands;
use crate::protocol::topic::TopicName;
use crate::protocol::transaction::{EndAction, EndOutcome, NotOpen, TxnCore};
pub use crate::protocol::transaction::{TxnId, TxnState};
use crate::session::Session;
use crate::wire::proto::BaseCommand;

/// The topic whose partitions are the transaction coordinators.
pub(crate) const COORDINATOR_TOPIC: &str =
    "persistent://pulsar/system/transaction_coordinator_assign";

/// The Java client's default transaction timeout.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

impl From<NotOpen> for Error {
    fn from(e: NotOpen) -> Self {
        Error::TransactionNotOpen {
            txn: e.txn,
            state: e.state,
        }
    }
}

/// Whether a coordinator request may succeed on another attempt (after a fresh lookup).
fn coordinator_retriable(e: &Error) -> bool {
    match e.server_error().map(|s| s.code) {
        Some(ServerErrorCode::TransactionCoordinatorNotFound) => true,
        Some(code) => code.is_retriable(),
        None => matches!(e, Error::Connection(_)),
    }
}

/// The coordinators of a cluster and the connection to each.
#[derive(Debug)]
pub(crate) struct Coordinators {
    slots: Vec<tokio::sync::Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

impl Coordinators {
    /// Finds the coordinators: the partitions of the assign topic.
    async fn discover(session: &Session) -> Result<Coordinators> {
        let topic = TopicName::parse(COORDINATOR_TOPIC)?;
        let n = match session.partitioned_metadata(&topic).await {
            Ok(n) => n,
            Err(e) if e.server_error().is_some() => {
                return Err(Error::TransactionsUnavailable(format!(
                    "the coordinator topic {COORDINATOR_TOPIC} cannot be looked up: {e}"
                )))
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(Error::TransactionsUnavailable(format!(
                "{COORDINATOR_TOPIC} has no partitions, so there is no coordinator"
            )));
        }
        debug!(coordinators = n, "transaction coordinators found");
        Ok(Coordinators {
            slots: (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(rand_start()),
        })
    }

    /// The coordinator for the next new transaction (round robin).
    fn pick(&self) -> u64 {
        (self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len().max(1)) as u64
    }

    /// The connection to coordinator `tc`, with its TC_CLIENT_CONNECT done.
    async fn connection(&self, session: &Session, tc: u64) -> Result<Connection> {
        let slot = self.slots.get(tc as usize).ok_or_else(|| Error::Server {
            operation: "transaction",
            error: crate::error::ServerError {
                code: ServerErrorCode::TransactionCoordinatorNotFound,
                message: format!(
                    "coordinator {tc} does not exist (this cluster has {})",
                    self.slots.len()
                ),
            },
        })?;
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let topic = TopicName::parse(COORDINATOR_TOPIC)?.partition(tc as u32);
        let conn = session.lookup(&topic).await?;
        let id = session.next_id();
        conn.request(
            id,
            "transaction coordinator connect",
            commands::tc_client_connect(id, tc),
            Some(session.operation_timeout),
        )
        .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn forget(&self, tc: u64) {
        if let Some(slot) = self.slots.get(tc as usize) {
            *slot.lock().await = None;
        }
    }

    /// A request to coordinator `tc`, retried (with a fresh lookup) while the coordinator is
    /// not ready, moved or unreachable, until the operation timeout.
    async fn request(
        &self,
        session: &Session,
        tc: u64,
        operation: &'static str,
        make: impl Fn(u64) -> BaseCommand,
    ) -> Result<BaseCommand> {
        let deadline = tokio::time::Instant::now() + session.operation_timeout;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let attempt = async {
                let conn = self.connection(session, tc).await?;
                let id = session.next_id();
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                conn.request(id, operation, make(id), Some(left)).await
            };
            match attempt.await {
                Ok(resp) => return Ok(resp),
                Err(e) if coordinator_retriable(&e) => {
                    self.forget(tc).await;
                    let delay = backoff.next_delay_random();
                    if tokio::time::Instant::now() + delay >= deadline || session.is_closed() {
                        return Err(e);
                    }
                    debug!(error = %e, operation, tc, ?delay, "coordinator request failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn rand_start() -> usize {
    // Spread clients over the coordinators without a random number crate.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    t ^ (std::process::id() as usize)
}

/// The session's coordinators, found on first use.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorCell(OnceCell<Arc<Coordinators>>);

impl CoordinatorCell {
    async fn get(&self, session: &Session) -> Result<Arc<Coordinators>> {
        self.0
            .get_or_try_init(|| async { Coordinators::discover(session).await.map(Arc::new) })
            .await
            .cloned()
    }
}

/// Builds a [`Transaction`]: `client.new_transaction().timeout(..).build().await`.
#[derive(Debug)]
pub struct TransactionBuilder {
    session: Arc<Session>,
    timeout: Duration,
}

impl TransactionBuilder {
    pub(crate) fn new(session: Arc<Session>) -> Self {
        TransactionBuilder {
            session,
            timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }

    /// How long the transaction may stay open (default one minute, as the Java client): past
    /// it, sends, acknowledgements and commit fail, and the broker aborts the transaction.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the transaction on a coordinator (NEW_TXN). The first transaction of a client
    /// also finds the coordinators. Fails with [`Error::TransactionsUnavailable`] when the
    /// cluster has no transaction coordinator.
    pub async fn build(self) -> Result<Transaction> {
        if self.timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "a transaction timeout must be above zero".into(),
            ));
        }
        if self.session.is_closed() {
            return Err(Error::Closed("client"));
        }
        let coordinators = self.session.coordinators.get(&self.session).await?;
        let tc = coordinators.pick();
        let ttl = self.timeout.as_millis().min(u64::MAX as u128) as u64;
        let started = Instant::now();
        let resp = coordinators
            .request(&self.session, tc, "new transaction", |id| {
                commands::new_txn(id, tc, ttl)
            })
            .await?;
        let r = resp.new_txn_response.ok_or_else(|| {
            Error::Connection(crate::error::ConnectionError::Protocol(
                "NEW_TXN answered without its body".into(),
            ))
        })?;
        let id = TxnId {
            most_bits: r.txnid_most_bits.unwrap_or(tc),
            least_bits: r.txnid_least_bits.unwrap_or(0),
        };
        debug!(txn = %id, "transaction opened");
        Ok(Transaction {
            inner: Arc::new(TxnInner {
                session: self.session,
                coordinators,
                core: Mutex::new(TxnCore::new(id, started + self.timeout)),
                changed: Notify::new(),
                registrations: Mutex::new(HashMap::new()),
                id,
            }),
        })
    }
}

/// What is added to a transaction: a partition, or (with its subscription) a subscription.
type Registration = (String, Option<String>);

#[derive(Debug)]
struct TxnInner {
    id: TxnId,
    session: Arc<Session>,
    coordinators: Arc<Coordinators>,
    core: Mutex<TxnCore>,
    /// Woken when an operation finishes (the end may be waiting for it).
    changed: Notify,
    /// One registration per partition (Some(subscription): per subscription), shared by the
    /// concurrent first operations on it.
    registrations: Mutex<HashMap<Registration, Arc<OnceCell<()>>>>,
}

impl TxnInner {
    fn core(&self) -> MutexGuard<'_, TxnCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An open transaction. Cheap to clone; clones are the same transaction (and compare equal).
///
/// Send in it with [`ProducerMessage::transaction`](crate::ProducerMessage::transaction),
/// acknowledge in it with [`Consumer::ack_with_transaction`](crate::Consumer::ack_with_transaction)
/// (and its cumulative twin), then [`commit`](Transaction::commit) or
/// [`abort`](Transaction::abort). A transaction dropped without either is aborted by the broker
/// at its timeout.
#[derive(Debug, Clone)]
pub struct Transaction {
    inner: Arc<TxnInner>,
}

impl PartialEq for Transaction {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

/// One send or acknowledgement in flight in a transaction: its outcome is reported with
/// [`TxnOp::finish`]; dropped unfinished, it counts as failed.
#[derive(Debug)]
pub(crate) struct TxnOp {
    txn: Option<Arc<TxnInner>>,
}

impl TxnOp {
    /// The operation ended, well or not.
    pub(crate) fn finish(mut self, ok: bool) {
        if let Some(txn) = self.txn.take() {
            txn.core().op_finished(ok);
            txn.changed.notify_waiters();
        }
    }
}

impl Drop for TxnOp {
    fn drop(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.core().op_finished(false);
            txn.changed.notify_waiters();
        }
    }
}

impl Transaction {
    /// The transaction's id.
    pub fn id(&self) -> TxnId {
        self.inner.id
    }

    /// Where the transaction is in its life.
    pub fn state(&self) -> TxnState {
        self.inner.core().state(Instant::now())
    }

    /// Starts an operation in the transaction: commit and abort wait for it.
    pub(crate) fn start_op(&self) -> Result<TxnOp> {
        self.inner.core().op_started(Instant::now())?;
        Ok(TxnOp {
            txn: Some(self.inner.clone()),
        })
    }

    /// Adds `partition` (a full topic name) to the transaction, once, before its first send.
    pub(crate) async fn add_partition(&self, partition: &str) -> Result<()> {
        if !self
            .inner
            .core()
            .needs_partition(partition, Instant::now())?
        {
            return Ok(());
        }
        let cell = self.registration(partition, None);
        let txn = self.inner.id;
        cell.get_or_try_init(|| async {
            let name = partition.to_owned();
            self.inner
                .coordinators
                .request(
                    &self.inner.session,
                    txn.most_bits,
                    "add partition to transaction",
                    |id| commands::add_partition_to_txn(id, txn, vec![name.clone()]),
                )
                .await
                .map(|_| ())
        })
        .await?;
        self.inner.core().partition_added(partition);
        Ok(())
    }

    /// Adds `subscription` of `topic` to the transaction, once, before its first
    /// acknowledgement.
    pub(crate) async fn add_subscription(&self, topic: &str, subscription: &str) -> Result<()> {
        if !self
            .inner
            .core()
            .needs_subscription(topic, subscription, Instant::now())?
        {
            return Ok(());
        }
        let cell = self.registration(topic, Some(subscription));
        let txn = self.inner.id;
        cell.get_or_try_init(|| async {
            self.inner
                .coordinators
                .request(
                    &self.inner.session,
                    txn.most_bits,
                    "add subscription to transaction",
                    |id| commands::add_subscription_to_txn(id, txn, topic, subscription),
                )
                .await
                .map(|_| ())
        })
        .await?;
        self.inner.core().subscription_added(topic, subscription);
        Ok(())
    }

    fn registration(&self, topic: &str, subscription: Option<&str>) -> Arc<OnceCell<()>> {
        self.inner
            .registrations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((topic.to_owned(), subscription.map(str::to_owned)))
            .or_default()
            .clone()
    }

    /// Commits: once every send and acknowledgement made in the transaction has its outcome,
    /// its messages become visible and its acknowledgements take effect. If one of them
    /// failed, the transaction is aborted instead and this fails with
    /// [`Error::TransactionAborted`]. Fails with [`Error::TransactionNotOpen`] if the
    /// transaction was already ended or timed out.
    pub async fn commit(&self) -> Result<()> {
        self.end(EndAction::Commit).await
    }

    /// Aborts: its messages are never delivered, and its acknowledgements are undone (the
    /// broker delivers those messages again). Allowed on an open transaction, and after a
    /// timeout or a failed end.
    pub async fn abort(&self) -> Result<()> {
        self.end(EndAction::Abort).await
    }

    async fn end(&self, action: EndAction) -> Result<()> {
        self.inner.core().begin_end(action, Instant::now())?;
        let plan = loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(plan) = self.inner.core().poll_end() {
                break plan;
            }
            changed.await;
        };
        let txn = self.inner.id;
        let commit = plan.action == EndAction::Commit;
        let result = self
            .inner
            .coordinators
            .request(
                &self.inner.session,
                txn.most_bits,
                if commit {
                    "commit transaction"
                } else {
                    "abort transaction"
                },
                |id| commands::end_txn(id, txn, commit),
            )
            .await;
        let outcome = match &result {
            Ok(_) => EndOutcome::Done,
            Err(e)
                if e.server_error().map(|s| s.code)
                    == Some(ServerErrorCode::TransactionNotFound)
                    && Instant::now() >= self.inner.core().deadline() =>
            {
                EndOutcome::TimedOut
            }
            Err(_) => EndOutcome::Failed,
        };
        self.inner.core().end_finished(plan.action, outcome);
        match result {
            Err(e) => Err(e),
            Ok(_) if plan.failed_ops > 0 => Err(Error::TransactionAborted {
                txn,
                failed: plan.failed_ops,
            }),
            Ok(_) => Ok(()),
        }
    }
}

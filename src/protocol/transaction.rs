//! The state of one transaction (PIP-31), as pure data: which partitions and subscriptions the
//! coordinator has been told of, how many sends and acknowledgements are still in flight, and
//! whether it may still be used, committed or aborted. Time is an input; the tokio shell
//! (`crate::transaction`) runs the coordinator requests this core asks for.
//!
//! The rules follow the Java client's `TransactionImpl`:
//! - a transaction is used only while Open and before its timeout;
//! - a partition is added to the transaction (ADD_PARTITION_TO_TXN) before its first send in
//!   it, a subscription (ADD_SUBSCRIPTION_TO_TXN) before its first acknowledgement, each once;
//! - commit and abort first wait for every send and acknowledgement made in the transaction;
//! - a commit after a failed operation aborts instead, and says so.

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

/// A transaction's id, as the coordinator gave it: `most_bits` names the coordinator (its
/// partition of `transaction_coordinator_assign`), `least_bits` the transaction in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId {
    /// The coordinator's id.
    pub most_bits: u64,
    /// The transaction's number within its coordinator.
    pub least_bits: u64,
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.most_bits, self.least_bits)
    }
}

/// Where a transaction is in its life (the Java client's `Transaction.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxnState {
    /// Sends and acknowledgements may be made in it.
    Open,
    /// A commit was asked for and has not been answered yet.
    Committing,
    /// An abort was asked for and has not been answered yet.
    Aborting,
    /// Committed: its messages are visible and its acknowledgements in force.
    Committed,
    /// Aborted: its messages will never be delivered, its acknowledgements are undone.
    Aborted,
    /// The coordinator refused to end it, or could not be reached: its outcome is the
    /// broker's (it aborts a transaction left open past its timeout).
    Errored,
    /// Its timeout passed before it was ended: the broker aborts it.
    TimedOut,
}

impl TxnState {
    /// Whether the transaction has reached its end (nothing can change it any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TxnState::Committed | TxnState::Aborted | TxnState::Errored | TxnState::TimedOut
        )
    }

    /// What a user can do about a transaction in this state.
    pub(crate) fn advice(self) -> &'static str {
        match self {
            TxnState::Open => "it is open",
            TxnState::Committing | TxnState::Aborting => {
                "it is being ended: wait for commit() or abort()"
            }
            TxnState::Committed | TxnState::Aborted => "it has ended: start a new transaction",
            TxnState::Errored => {
                "its end failed: the broker aborts it at its timeout; start a new transaction"
            }
            TxnState::TimedOut => {
                "its timeout passed and the broker aborts it: start a new transaction (with a longer timeout)"
            }
        }
    }
}

/// Why the core refuses an operation (turned into the public `Error` by the shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotOpen {
    /// The transaction.
    pub txn: TxnId,
    /// Its state when it was asked.
    pub state: TxnState,
}

/// How an end request must go to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndAction {
    /// END_TXN with COMMIT.
    Commit,
    /// END_TXN with ABORT.
    Abort,
}

/// What the core says once the operations in flight are done and the end may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndPlan {
    /// What to send.
    pub action: EndAction,
    /// A commit turned into an abort: this many operations failed.
    pub failed_ops: usize,
}

/// One transaction's bookkeeping.
#[derive(Debug)]
pub(crate) struct TxnCore {
    id: TxnId,
    state: TxnState,
    deadline: Instant,
    partitions: HashSet<String>,
    subscriptions: HashSet<(String, String)>,
    in_flight: usize,
    failed: usize,
    /// Set by `begin_end`: what the application asked for.
    asked: Option<EndAction>,
}

// With `unstable` the module is public but the core is not: some accessors serve only the
// tests and the client's other builds.
#[cfg_attr(feature = "unstable", allow(dead_code))]
impl TxnCore {
    /// A transaction the coordinator has just opened at `now`, timing out at `deadline`.
    pub fn new(id: TxnId, deadline: Instant) -> Self {
        TxnCore {
            id,
            state: TxnState::Open,
            deadline,
            partitions: HashSet::new(),
            subscriptions: HashSet::new(),
            in_flight: 0,
            failed: 0,
            asked: None,
        }
    }

    /// The id.
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// The state, as of `now` (an open transaction past its deadline has timed out).
    pub fn state(&mut self, now: Instant) -> TxnState {
        self.handle_timeout(now);
        self.state
    }

    /// When the transaction's timeout passes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the transaction times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == TxnState::Open).then_some(self.deadline)
    }

    /// Moves an open transaction past its deadline to TimedOut.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == TxnState::Open && now >= self.deadline {
            self.state = TxnState::TimedOut;
        }
    }

    fn check_open(&mut self, now: Instant) -> Result<(), NotOpen> {
        self.handle_timeout(now);
        if self.state == TxnState::Open {
            Ok(())
        } else {
            Err(NotOpen {
                txn: self.id,
                state: self.state,
            })
        }
    }

    /// Whether a send to `partition` must first add it to the transaction; fails when the
    /// transaction is not open.
    pub fn needs_partition(&mut self, partition: &str, now: Instant) -> Result<bool, NotOpen> {
        self.check_open(now)?;
        Ok(!self.partitions.contains(partition))
    }

    /// The coordinator added `partition`.
    pub fn partition_added(&mut self, partition: &str) {
        self.partitions.insert(partition.to_owned());
    }

    /// Whether an acknowledgement on `subscription` of `topic` must first add it to the
    /// transaction; fails when the transaction is not open.
    pub fn needs_subscription(
        &mut self,
        topic: &str,
        subscription: &str,
        now: Instant,
    ) -> Result<bool, NotOpen> {
        self.check_open(now)?;
        Ok(!self
            .subscriptions
            .contains(&(topic.to_owned(), subscription.to_owned())))
    }

    /// The coordinator added the subscription.
    pub fn subscription_added(&mut self, topic: &str, subscription: &str) {
        self.subscriptions
            .insert((topic.to_owned(), subscription.to_owned()));
    }

    /// The partitions added so far (sorted, for logs and tests).
    pub fn partitions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.partitions.iter().cloned().collect();
        v.sort();
        v
    }

    /// A send or acknowledgement starts in the transaction; fails when it is not open.
    pub fn op_started(&mut self, now: Instant) -> Result<(), NotOpen> {
        self.check_open(now)?;
        self.in_flight += 1;
        Ok(())
    }

    /// A send or acknowledgement of the transaction has its outcome.
    pub fn op_finished(&mut self, ok: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !ok {
            self.failed += 1;
        }
    }

    /// Operations still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Operations that failed.
    pub fn failed_ops(&self) -> usize {
        self.failed
    }

    /// The application asks to commit or abort. A commit needs the transaction open (and not
    /// timed out); an abort is also allowed after a timeout or a failed end, to clean up.
    pub fn begin_end(&mut self, action: EndAction, now: Instant) -> Result<(), NotOpen> {
        self.handle_timeout(now);
        let allowed = match action {
            EndAction::Commit => self.state == TxnState::Open,
            EndAction::Abort => matches!(
                self.state,
                TxnState::Open | TxnState::TimedOut | TxnState::Errored
            ),
        };
        if !allowed {
            return Err(NotOpen {
                txn: self.id,
                state: self.state,
            });
        }
        self.asked = Some(action);
        self.state = match action {
            EndAction::Commit => TxnState::Committing,
            EndAction::Abort => TxnState::Aborting,
        };
        Ok(())
    }

    /// Once nothing is in flight: what to send to the coordinator. None while operations are
    /// still in flight, or when no end was asked.
    pub fn poll_end(&mut self) -> Option<EndPlan> {
        let asked = self.asked?;
        if self.in_flight > 0 {
            return None;
        }
        Some(match asked {
            EndAction::Commit if self.failed > 0 => {
                // The Java client's TransactionHasOperationFailedException: a commit with a
                // failed operation would publish half of the work.
                self.state = TxnState::Aborting;
                EndPlan {
                    action: EndAction::Abort,
                    failed_ops: self.failed,
                }
            }
            action => EndPlan {
                action,
                failed_ops: 0,
            },
        })
    }

    /// The coordinator's answer to the end request.
    pub fn end_finished(&mut self, action: EndAction, outcome: EndOutcome) {
        self.asked = None;
        self.state = match (outcome, action) {
            (EndOutcome::Done, EndAction::Commit) => TxnState::Committed,
            (EndOutcome::Done, EndAction::Abort) => TxnState::Aborted,
            (EndOutcome::TimedOut, _) => TxnState::TimedOut,
            (EndOutcome::Failed, _) => TxnState::Errored,
        };
    }
}

/// How an END_TXN ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndOutcome {
    /// The coordinator ended the transaction as asked.
    Done,
    /// The coordinator no longer knows the transaction past its timeout: the broker aborted it.
    TimedOut,
    /// Refused or unreachable.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn txn(now: Instant) -> TxnCore {
        TxnCore::new(
            TxnId {
                most_bits: 1,
                least_bits: 7,
            },
            now + Duration::from_secs(60),
        )
    }

    #[test]
    fn a_partition_and_a_subscription_are_added_once() {
        let now = Instant::now();
        let mut t = txn(now);
        assert_eq!(t.needs_partition("p-0", now), Ok(true));
        t.partition_added("p-0");
        assert_eq!(t.needs_partition("p-0", now), Ok(false));
        assert_eq!(t.needs_partition("p-1", now), Ok(true));
        assert_eq!(t.needs_subscription("p-0", "s", now), Ok(true));
        t.subscription_added("p-0", "s");
        assert_eq!(t.needs_subscription("p-0", "s", now), Ok(false));
        assert_eq!(t.needs_subscription("p-0", "other", now), Ok(true));
        assert_eq!(t.partitions(), vec!["p-0".to_string()]);
    }

    #[test]
    fn the_end_waits_for_the_operations_in_flight() {
        let now = Instant::now();
        let mut t = txn(now);
        t.op_started(now).unwrap();
        t.op_started(now).unwrap();
        t.begin_end(EndAction::Commit, now).unwrap();
        assert_eq!(t.state(now), TxnState::Committing);
        assert_eq!(t.poll_end(), None);
        // No new operation once the end is asked for.
        assert_eq!(
            t.op_started(now),
            Err(NotOpen {
                txn: t.id(),
                state: TxnState::Committing
            })
        );
        t.op_finished(true);
        assert_eq!(t.poll_end(), None);
        t.op_finished(true);
        assert_eq!(
            t.poll_end(),
            Some(EndPlan {
                action: EndAction::Commit,
                failed_ops: 0
            })
        );
        t.end_finished(EndAction::Commit, EndOutcome::Done);
        assert_eq!(t.state(now), TxnState::Committed);
        assert!(t.state(now).is_final());
        assert!(t.begin_end(EndAction::Abort, now).is_err());
        assert!(t.begin_end(EndAction::Commit, now).is_err());
    }

    #[test]
    fn a_commit_after_a_failed_operation_aborts_instead() {
        let now = Instant::now();
        let mut t = txn(now);
        t.op_started(now).unwrap();
        t.op_started(now).unwrap();
        t.op_finished(false);
        t.op_finished(true);
        t.begin_end(EndAction::Commit, now).unwrap();
        assert_eq!(
            t.poll_end(),
            Some(EndPlan {
                action: EndAction::Abort,
                failed_ops: 1
            })
        );
        assert_eq!(t.state(now), TxnState::Aborting);
        t.end_finished(EndAction::Abort, EndOutcome::Done);
        assert_eq!(t.state(now), TxnState::Aborted);
    }

    #[test]
    fn past_its_timeout_a_transaction_takes_no_operation_and_no_commit_but_an_abort() {
        let now = Instant::now();
        let mut t = txn(now);
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(60)));
        let later = now + Duration::from_secs(61);
        assert_eq!(
            t.op_started(later),
            Err(NotOpen {
                txn: t.id(),
                state: TxnState::TimedOut
            })
        );
        assert!(t.needs_partition("p", later).is_err());
        assert!(t.needs_subscription("p", "s", later).is_err());
        assert!(t.begin_end(EndAction::Commit, later).is_err());
        assert_eq!(t.poll_timeout(), None);
        t.begin_end(EndAction::Abort, later).unwrap();
        assert_eq!(t.poll_end().map(|p| p.action), Some(EndAction::Abort));
    }

    #[test]
    fn a_failed_end_leaves_the_transaction_errored_and_abortable() {
        let now = Instant::now();
        let mut t = txn(now);
        t.begin_end(EndAction::Commit, now).unwrap();
        let plan = t.poll_end().unwrap();
        t.end_finished(plan.action, EndOutcome::Failed);
        assert_eq!(t.state(now), TxnState::Errored);
        assert!(t.begin_end(EndAction::Commit, now).is_err());
        t.begin_end(EndAction::Abort, now).unwrap();
        t.end_finished(EndAction::Abort, EndOutcome::TimedOut);
        assert_eq!(t.state(now), TxnState::TimedOut);
    }

    #[test]
    fn the_id_prints_as_the_java_client_does() {
        let id = TxnId {
            most_bits: 3,
            least_bits: 42,
        };
        assert_eq!(id.to_string(), "(3,42)");
    }
}

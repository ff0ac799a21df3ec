//! The connection's protocol state, without I/O: handshake phase, the request table with its
//! deadlines, keepalive, and the routing of every inbound command.
//!
//! ```text
//!  AwaitingConnected --CONNECTED--> Ready --(error, EOF, keepalive timeout, close)--> Closed
//!          |  ^                       | ^
//!          |  | AUTH_CHALLENGE        | | AUTH_CHALLENGE (refresh)
//!          v  |  -> AUTH_RESPONSE     v |  -> AUTH_RESPONSE
//! ```
//!
//! The driver task feeds it decoded frames ([`ConnectionCore::handle_frame`]) and the clock
//! ([`ConnectionCore::handle_timeout`]), sleeps until [`ConnectionCore::poll_timeout`], and writes
//! what [`ConnectionCore::poll_transmit`] hands out. `T` is whatever the driver uses to answer a
//! request (a oneshot sender); the core only stores it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::error::{ConnectionError, ServerError};
use crate::protocol::commands;
use crate::wire::proto::{
    base_command::Type, command_lookup_topic_response, command_partitioned_topic_metadata_response,
    command_topic_migrated, BaseCommand, CommandAuthChallenge, CommandConnected, CommandMessage,
};
use crate::wire::{Frame, MessageId, Payload};

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// CONNECT sent, waiting for CONNECTED.
    AwaitingConnected,
    /// CONNECTED received: requests may flow.
    Ready,
    /// The connection is over.
    Closed,
}

/// What a producer is told by its connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ProducerEvent {
    /// SEND_RECEIPT.
    Receipt {
        /// First sequence id of the receipted send.
        sequence_id: u64,
        /// Highest sequence id of the receipted send, when the broker gave one.
        highest_sequence_id: Option<u64>,
        /// Where the broker stored it; (−1, −1) when it dropped a duplicate.
        message_id: MessageId,
    },
    /// SEND_ERROR.
    SendError {
        /// The sequence id the error is for.
        sequence_id: u64,
        /// The broker's error.
        error: ServerError,
    },
    /// CLOSE_PRODUCER from the broker: reconnect, to the assigned broker if one is named.
    Closed {
        /// `assignedBrokerServiceUrl`, when the broker transfers the topic.
        assigned_broker_url: Option<String>,
    },
    /// TOPIC_MIGRATED: the topic moved to another cluster.
    Migrated {
        /// The new cluster's broker URL.
        broker_url: Option<String>,
    },
    /// The connection is gone: reconnect.
    ConnectionClosed(ConnectionError),
}

/// What a consumer is told by its connection.
// Moved once into a channel; boxing the message would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerEvent {
    /// MESSAGE with its payload section.
    Message {
        /// The command (message id, redelivery count, ack set).
        command: CommandMessage,
        /// Metadata and payload.
        payload: Payload,
    },
    /// REACHED_END_OF_TOPIC: the topic is terminated and everything was delivered.
    ReachedEndOfTopic,
    /// ACTIVE_CONSUMER_CHANGE (Failover): whether this consumer is now the active one.
    ActiveConsumerChange(bool),
    /// CLOSE_CONSUMER from the broker: resubscribe, to the assigned broker if one is named.
    Closed {
        /// `assignedBrokerServiceUrl`, when the broker transfers the topic.
        assigned_broker_url: Option<String>,
    },
    /// TOPIC_MIGRATED: the topic moved to another cluster.
    Migrated {
        /// The new cluster's broker URL.
        broker_url: Option<String>,
    },
    /// The connection is gone: resubscribe.
    ConnectionClosed(ConnectionError),
}

/// A change of the topics a topic-list watcher follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListUpdate {
    /// Topics that appeared.
    pub new_topics: Vec<String>,
    /// Topics that went away.
    pub deleted_topics: Vec<String>,
    /// The hash of the whole list now.
    pub topics_hash: String,
}

/// What an inbound frame means for the driver.
// Transient: built and consumed in one driver turn.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound<T> {
    /// The handshake completed.
    Connected(CommandConnected),
    /// The broker wants fresh credentials; answer with [`commands::auth_response`].
    AuthChallenge(CommandAuthChallenge),
    /// The answer to a request: the successful response, or the broker's error.
    Reply {
        /// The requester's reply handle.
        reply: T,
        /// The request's operation name.
        operation: &'static str,
        /// The response command, or the error it carried.
        result: Result<BaseCommand, ServerError>,
    },
    /// For the producer with this id.
    Producer(u64, ProducerEvent),
    /// For the consumer with this id.
    Consumer(u64, ConsumerEvent),
    /// For the topic-list watcher with this id (WATCH_TOPIC_UPDATE).
    Watcher(u64, TopicListUpdate),
    /// Nothing for anyone (a PONG, a queued PING answer, or something logged and dropped).
    Nothing,
    /// Dropped, with the reason to log.
    Ignored(String),
}

struct PendingRequest<T> {
    operation: &'static str,
    reply: T,
    deadline: Option<Instant>,
}

/// The protocol state of one connection.
pub struct ConnectionCore<T> {
    phase: Phase,
    requests: HashMap<u64, PendingRequest<T>>,
    deadlines: BTreeSet<(Instant, u64)>,
    keepalive: Duration,
    next_keepalive: Instant,
    ping_outstanding: bool,
    transmit: VecDeque<BaseCommand>,
    max_message_size: Option<usize>,
    server_version: Option<String>,
    protocol_version: i32,
    topic_watchers: bool,
}

impl<T> std::fmt::Debug for ConnectionCore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCore")
            .field("phase", &self.phase)
            .field("pending_requests", &self.requests.len())
            .field("ping_outstanding", &self.ping_outstanding)
            .finish_non_exhaustive()
    }
}

impl<T> ConnectionCore<T> {
    /// A core that has just sent CONNECT at `now`, pinging every `keepalive`.
    pub fn new(now: Instant, keepalive: Duration) -> Self {
        ConnectionCore {
            phase: Phase::AwaitingConnected,
            requests: HashMap::new(),
            deadlines: BTreeSet::new(),
            keepalive,
            next_keepalive: now + keepalive,
            ping_outstanding: false,
            transmit: VecDeque::new(),
            max_message_size: None,
            server_version: None,
            protocol_version: 0,
            topic_watchers: false,
        }
    }

    /// The handshake phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The broker's max message size from CONNECTED, when it sent one.
    pub fn max_message_size(&self) -> Option<usize> {
        self.max_message_size
    }

    /// The broker's version string from CONNECTED.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// Whether the broker offers topic-list watchers (CONNECTED's feature flags).
    pub fn supports_topic_watchers(&self) -> bool {
        self.topic_watchers
    }

    /// The protocol version agreed in CONNECTED.
    pub fn protocol_version(&self) -> i32 {
        self.protocol_version
    }

    /// How many requests await an answer.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Records a request sent with `request_id`, to be answered through `reply`, failing at
    /// `deadline` if given.
    pub fn register_request(
        &mut self,
        request_id: u64,
        operation: &'static str,
        reply: T,
        deadline: Option<Instant>,
    ) {
        if let Some(old) = self.requests.insert(
            request_id,
            PendingRequest {
                operation,
                reply,
                deadline,
            },
        ) {
            if let Some(d) = old.deadline {
                self.deadlines.remove(&(d, request_id));
            }
        }
        if let Some(d) = deadline {
            self.deadlines.insert((d, request_id));
        }
    }

    fn take_request(&mut self, request_id: u64) -> Option<PendingRequest<T>> {
        let pending = self.requests.remove(&request_id)?;
        if let Some(d) = pending.deadline {
            self.deadlines.remove(&(d, request_id));
        }
        Some(pending)
    }

    /// Queues a command to write.
    pub fn queue(&mut self, command: BaseCommand) {
        self.transmit.push_back(command);
    }

    /// The next command to write.
    pub fn poll_transmit(&mut self) -> Option<BaseCommand> {
        self.transmit.pop_front()
    }

    /// When [`ConnectionCore::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let first_deadline = self.deadlines.iter().next().map(|(d, _)| *d);
        Some(match first_deadline {
            Some(d) if d < self.next_keepalive => d,
            _ => self.next_keepalive,
        })
    }

    /// Advances the clock: returns the requests that timed out (their entries are removed), or
    /// the keepalive failure that ends the connection.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
    ) -> Result<Vec<(T, &'static str)>, ConnectionError> {
        let mut expired = Vec::new();
        while let Some(&(deadline, request_id)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, request_id));
            if let Some(pending) = self.requests.remove(&request_id) {
                expired.push((pending.reply, pending.operation));
            }
        }
        if now >= self.next_keepalive && self.phase == Phase::Ready {
            if self.ping_outstanding {
                return Err(ConnectionError::KeepaliveTimeout(self.keepalive));
            }
            self.ping_outstanding = true;
            self.queue(commands::ping());
        }
        while self.next_keepalive <= now {
            self.next_keepalive += self.keepalive;
        }
        Ok(expired)
    }

    /// Ends the connection: returns every pending request, to be failed with the reason.
    pub fn close(&mut self) -> Vec<(T, &'static str)> {
        self.phase = Phase::Closed;
        self.deadlines.clear();
        self.transmit.clear();
        self.requests
            .drain()
            .map(|(_, p)| (p.reply, p.operation))
            .collect()
    }

    /// Interprets one inbound frame.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<Inbound<T>, ConnectionError> {
        // Any inbound frame shows the broker is alive.
        self.ping_outstanding = false;
        let Frame { command, payload } = frame;
        let Ok(kind) = Type::try_from(command.r#type) else {
            return Ok(Inbound::Ignored(format!(
                "unknown command type {}",
                command.r#type
            )));
        };
        if self.phase == Phase::AwaitingConnected {
            return self.handle_handshake(kind, command);
        }
        Ok(match kind {
            Type::Ping => {
                self.queue(commands::pong());
                Inbound::Nothing
            }
            Type::Pong => Inbound::Nothing,
            Type::Connected => Inbound::Ignored("CONNECTED after the handshake".into()),
            Type::AuthChallenge => match command.auth_challenge {
                Some(c) => Inbound::AuthChallenge(*c),
                None => missing(kind),
            },
            Type::SendReceipt => match command.send_receipt {
                Some(r) => Inbound::Producer(
                    r.producer_id,
                    ProducerEvent::Receipt {
                        sequence_id: r.sequence_id,
                        highest_sequence_id: r.highest_sequence_id,
                        message_id: r
                            .message_id
                            .as_ref()
                            .map(MessageId::from_proto)
                            .unwrap_or(MessageId::new(-1, -1)),
                    },
                ),
                None => missing(kind),
            },
            Type::SendError => match command.send_error {
                Some(e) => Inbound::Producer(
                    e.producer_id,
                    ProducerEvent::SendError {
                        sequence_id: e.sequence_id,
                        error: ServerError::new(e.error, e.message),
                    },
                ),
                None => missing(kind),
            },
            Type::CloseProducer => match command.close_producer {
                Some(c) => Inbound::Producer(
                    c.producer_id,
                    ProducerEvent::Closed {
                        assigned_broker_url: c.assigned_broker_service_url,
                    },
                ),
                None => missing(kind),
            },
            Type::Message => match (command.message, payload) {
                (Some(m), Some(payload)) => Inbound::Consumer(
                    m.consumer_id,
                    ConsumerEvent::Message {
                        command: m,
                        payload,
                    },
                ),
                _ => missing(kind),
            },
            Type::CloseConsumer => match command.close_consumer {
                Some(c) => Inbound::Consumer(
                    c.consumer_id,
                    ConsumerEvent::Closed {
                        assigned_broker_url: c.assigned_broker_service_url,
                    },
                ),
                None => missing(kind),
            },
            Type::ActiveConsumerChange => match command.active_consumer_change {
                Some(c) => Inbound::Consumer(
                    c.consumer_id,
                    ConsumerEvent::ActiveConsumerChange(c.is_active.unwrap_or(false)),
                ),
                None => missing(kind),
            },
            Type::ReachedEndOfTopic => match command.reached_end_of_topic {
                Some(c) => Inbound::Consumer(c.consumer_id, ConsumerEvent::ReachedEndOfTopic),
                None => missing(kind),
            },
            Type::TopicMigrated => match command.topic_migrated {
                Some(m) => {
                    let broker_url = m.broker_service_url.clone();
                    if m.resource_type == command_topic_migrated::ResourceType::Producer as i32 {
                        Inbound::Producer(m.resource_id, ProducerEvent::Migrated { broker_url })
                    } else {
                        Inbound::Consumer(m.resource_id, ConsumerEvent::Migrated { broker_url })
                    }
                }
                None => missing(kind),
            },
            Type::WatchTopicUpdate => match command.watch_topic_update {
                Some(u) => Inbound::Watcher(
                    u.watcher_id,
                    TopicListUpdate {
                        new_topics: u.new_topics,
                        deleted_topics: u.deleted_topics,
                        topics_hash: u.topics_hash,
                    },
                ),
                None => missing(kind),
            },
            // Answers matched by request id.
            Type::Success
            | Type::Error
            | Type::ProducerSuccess
            | Type::LookupResponse
            | Type::PartitionedMetadataResponse
            | Type::GetLastMessageIdResponse
            | Type::GetTopicsOfNamespaceResponse
            | Type::GetSchemaResponse
            | Type::GetOrCreateSchemaResponse
            | Type::AckResponse
            | Type::ConsumerStatsResponse
            | Type::WatchTopicListSuccess
            | Type::NewTxnResponse
            | Type::AddPartitionToTxnResponse
            | Type::AddSubscriptionToTxnResponse
            | Type::EndTxnResponse
            | Type::EndTxnOnPartitionResponse
            | Type::EndTxnOnSubscriptionResponse
            | Type::TcClientConnectResponse => self.reply(kind, command),
            // Commands only a client sends: a broker sending them is confused, not fatal.
            Type::Connect
            | Type::Subscribe
            | Type::Producer
            | Type::Send
            | Type::Ack
            | Type::Flow
            | Type::Unsubscribe
            | Type::RedeliverUnacknowledgedMessages
            | Type::PartitionedMetadata
            | Type::Lookup
            | Type::ConsumerStats
            | Type::Seek
            | Type::GetLastMessageId
            | Type::GetTopicsOfNamespace
            | Type::GetSchema
            | Type::AuthResponse
            | Type::GetOrCreateSchema
            | Type::NewTxn
            | Type::AddPartitionToTxn
            | Type::AddSubscriptionToTxn
            | Type::EndTxn
            | Type::EndTxnOnPartition
            | Type::EndTxnOnSubscription
            | Type::TcClientConnectRequest
            | Type::WatchTopicList
            | Type::WatchTopicListClose => Inbound::Ignored(format!(
                "{kind:?} is a client command; a broker should not send it"
            )),
        })
    }

    fn handle_handshake(
        &mut self,
        kind: Type,
        command: BaseCommand,
    ) -> Result<Inbound<T>, ConnectionError> {
        match kind {
            Type::Connected => {
                let connected = command.connected.unwrap_or_default();
                self.phase = Phase::Ready;
                self.max_message_size = connected
                    .max_message_size
                    .and_then(|s| usize::try_from(s).ok())
                    .filter(|s| *s > 0);
                self.server_version = Some(connected.server_version.clone());
                self.protocol_version = connected.protocol_version.unwrap_or(0);
                self.topic_watchers = connected
                    .feature_flags
                    .as_ref()
                    .and_then(|f| f.supports_topic_watchers)
                    .unwrap_or(false);
                Ok(Inbound::Connected(*connected))
            }
            Type::AuthChallenge => match command.auth_challenge {
                Some(c) => Ok(Inbound::AuthChallenge(*c)),
                None => Ok(missing(kind)),
            },
            Type::Error => {
                let e = command.error.unwrap_or_default();
                self.phase = Phase::Closed;
                Err(ConnectionError::Handshake(ServerError::new(
                    e.error, e.message,
                )))
            }
            Type::Ping => {
                self.queue(commands::pong());
                Ok(Inbound::Nothing)
            }
            other => {
                self.phase = Phase::Closed;
                Err(ConnectionError::Protocol(format!(
                    "expected CONNECTED, got {other:?}"
                )))
            }
        }
    }

    fn reply(&mut self, kind: Type, command: BaseCommand) -> Inbound<T> {
        let Some((request_id, error)) = response_id_and_error(kind, &command) else {
            return missing(kind);
        };
        if kind == Type::ProducerSuccess {
            let ready = command
                .producer_success
                .as_ref()
                .and_then(|p| p.producer_ready)
                .unwrap_or(true);
            if !ready {
                // Queued for exclusive access: keep waiting, with no timeout, for a second
                // PRODUCER_SUCCESS with the same request id.
                if let Some(mut pending) = self.take_request(request_id) {
                    pending.deadline = None;
                    self.requests.insert(request_id, pending);
                }
                return Inbound::Ignored(format!(
                    "producer request {request_id} waits for exclusive access"
                ));
            }
        }
        match self.take_request(request_id) {
            Some(pending) => Inbound::Reply {
                reply: pending.reply,
                operation: pending.operation,
                result: match error {
                    Some(e) => Err(e),
                    None => Ok(command),
                },
            },
            None => Inbound::Ignored(format!(
                "{kind:?} for request {request_id}, which is not pending (timed out or never sent)"
            )),
        }
    }
}

fn missing<T>(kind: Type) -> Inbound<T> {
    Inbound::Ignored(format!("{kind:?} without its command body"))
}

/// The request id a response answers, and the error it carries, if any.
fn response_id_and_error(kind: Type, c: &BaseCommand) -> Option<(u64, Option<ServerError>)> {
    use command_lookup_topic_response::LookupType;
    use command_partitioned_topic_metadata_response::LookupType as MetaType;
    let err = |code: Option<i32>, message: Option<&String>| {
        Some(ServerError::new(
            code.unwrap_or(0),
            message.cloned().unwrap_or_default(),
        ))
    };
    // An error only when the code is there.
    let coded =
        |code: Option<i32>, message: Option<&String>| code.and_then(|c| err(Some(c), message));
    Some(match kind {
        Type::Success => (c.success.as_ref()?.request_id, None),
        Type::Error => {
            let e = c.error.as_ref()?;
            (
                e.request_id,
                Some(ServerError::new(e.error, e.message.clone())),
            )
        }
        Type::ProducerSuccess => (c.producer_success.as_ref()?.request_id, None),
        Type::LookupResponse => {
            let r = c.lookup_topic_response.as_ref()?;
            let failed = r.response == Some(LookupType::Failed as i32) || r.response.is_none();
            (
                r.request_id,
                if failed {
                    err(r.error, r.message.as_ref())
                } else {
                    None
                },
            )
        }
        Type::PartitionedMetadataResponse => {
            let r = c.partition_metadata_response.as_ref()?;
            let failed = r.response == Some(MetaType::Failed as i32) || r.error.is_some();
            (
                r.request_id,
                if failed {
                    err(r.error, r.message.as_ref())
                } else {
                    None
                },
            )
        }
        Type::GetLastMessageIdResponse => {
            (c.get_last_message_id_response.as_ref()?.request_id, None)
        }
        Type::GetTopicsOfNamespaceResponse => (
            c.get_topics_of_namespace_response.as_ref()?.request_id,
            None,
        ),
        Type::GetSchemaResponse => {
            let r = c.get_schema_response.as_ref()?;
            (
                r.request_id,
                r.error_code
                    .and_then(|code| err(Some(code), r.error_message.as_ref())),
            )
        }
        Type::GetOrCreateSchemaResponse => {
            let r = c.get_or_create_schema_response.as_ref()?;
            (
                r.request_id,
                r.error_code
                    .and_then(|code| err(Some(code), r.error_message.as_ref())),
            )
        }
        Type::AckResponse => {
            let r = c.ack_response.as_ref()?;
            (
                r.request_id.unwrap_or(0),
                r.error.and_then(|code| err(Some(code), r.message.as_ref())),
            )
        }
        Type::ConsumerStatsResponse => {
            let r = c.consumer_stats_response.as_ref()?;
            (
                r.request_id,
                r.error_code
                    .and_then(|code| err(Some(code), r.error_message.as_ref())),
            )
        }
        Type::WatchTopicListSuccess => (c.watch_topic_list_success.as_ref()?.request_id, None),
        // The transaction responses: an error code, with the coordinator's message.
        Type::NewTxnResponse => {
            let r = c.new_txn_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::AddPartitionToTxnResponse => {
            let r = c.add_partition_to_txn_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::AddSubscriptionToTxnResponse => {
            let r = c.add_subscription_to_txn_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::EndTxnResponse => {
            let r = c.end_txn_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::EndTxnOnPartitionResponse => {
            let r = c.end_txn_on_partition_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::EndTxnOnSubscriptionResponse => {
            let r = c.end_txn_on_subscription_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        Type::TcClientConnectResponse => {
            let r = c.tc_client_connect_response.as_ref()?;
            (r.request_id, coded(r.error, r.message.as_ref()))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! The connection core in simulated time: keepalive and request deadlines, with the
    //! instants given, no socket and no sleep.
    use super::*;
    use crate::wire::proto;

    fn connected(core: &mut ConnectionCore<u32>) {
        let frame = Frame {
            command: BaseCommand {
                r#type: Type::Connected as i32,
                connected: Some(Box::new(proto::CommandConnected {
                    server_version: "test".into(),
                    protocol_version: Some(21),
                    ..Default::default()
                })),
                ..Default::default()
            },
            payload: None,
        };
        assert!(matches!(
            core.handle_frame(frame),
            Ok(Inbound::Connected(_))
        ));
    }

    fn pong() -> Frame {
        Frame {
            command: commands::pong(),
            payload: None,
        }
    }

    fn pings(core: &mut ConnectionCore<u32>) -> usize {
        std::iter::from_fn(|| core.poll_transmit())
            .filter(|c| c.r#type == Type::Ping as i32)
            .count()
    }

    #[test]
    fn a_ping_each_interval_and_a_missed_pong_ends_the_connection() {
        let t0 = Instant::now();
        let keepalive = Duration::from_secs(30);
        let mut core = ConnectionCore::<u32>::new(t0, keepalive);
        connected(&mut core);
        assert_eq!(core.poll_timeout(), Some(t0 + keepalive));
        assert!(core.handle_timeout(t0 + keepalive).is_ok());
        assert_eq!(pings(&mut core), 1);
        // Answered: the next interval pings again.
        assert!(matches!(core.handle_frame(pong()), Ok(Inbound::Nothing)));
        assert!(core.handle_timeout(t0 + keepalive * 2).is_ok());
        assert_eq!(pings(&mut core), 1);
        // Not answered within an interval: the connection is over.
        assert_eq!(
            core.handle_timeout(t0 + keepalive * 3).err(),
            Some(ConnectionError::KeepaliveTimeout(keepalive))
        );
    }

    #[test]
    fn any_inbound_frame_counts_as_an_answer() {
        let t0 = Instant::now();
        let keepalive = Duration::from_secs(1);
        let mut core = ConnectionCore::<u32>::new(t0, keepalive);
        connected(&mut core);
        for i in 1..100u32 {
            assert!(
                core.handle_timeout(t0 + keepalive * i).is_ok(),
                "interval {i}"
            );
            // A broker PING (answered with PONG) shows it is alive, as any frame does.
            let ping = Frame {
                command: commands::ping(),
                payload: None,
            };
            assert!(core.handle_frame(ping).is_ok());
        }
    }

    #[test]
    fn a_request_times_out_at_its_deadline_and_only_it() {
        let t0 = Instant::now();
        let mut core = ConnectionCore::<u32>::new(t0, Duration::from_secs(30));
        connected(&mut core);
        core.register_request(1, "lookup", 10, Some(t0 + Duration::from_secs(5)));
        core.register_request(2, "subscribe", 20, Some(t0 + Duration::from_secs(8)));
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        let expired = core
            .handle_timeout(t0 + Duration::from_secs(5))
            .expect("alive");
        assert_eq!(expired, vec![(10, "lookup")]);
        assert_eq!(core.pending_requests(), 1);
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(8)));
    }
}

//! Dead letters and retries, as the Java client does them: a message redelivered more than the
//! policy allows goes to the dead-letter topic (with `REAL_TOPIC` and `ORIGIN_MESSAGE_ID`) and
//! is acknowledged; `reconsume_later` republishes a message to the retry topic with a delay.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::error::Result;
use crate::message::{Message, ProducerMessage};
use crate::producer::Producer;
use crate::producer::ProducerBuilder;
use crate::protocol::topic::TopicName;
use crate::session::Session;
use crate::wire::MessageId;

/// Property: the topic the message was first published to.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Property: the message's id on that topic (`ledger:entry:partition[:batch]`).
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Property: the subscription the message was dead-lettered or retried from.
pub const REAL_SUBSCRIPTION: &str = "REAL_SUBSCRIPTION";
/// Property: the old (misspelt) name of [`ORIGIN_MESSAGE_ID`], which the Java client still
/// writes too, with the same value.
pub const ORIGIN_MESSAGE_ID_LEGACY: &str = "ORIGIN_MESSAGE_IDY_TIME";
/// Property: how many times the message was reconsumed through the retry topic.
pub const RECONSUME_TIMES: &str = "RECONSUMETIMES";
/// Property: the delay asked for on the last reconsume, in milliseconds.
pub const DELAY_TIME: &str = "DELAY_TIME";

/// When messages go to a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPolicy {
    /// A message delivered more than this many times again (redelivery count above it) is sent
    /// to the dead-letter topic instead of to the application.
    pub max_redeliver_count: u32,
    /// The dead-letter topic; default `<topic>-<subscription>-DLQ`.
    pub dead_letter_topic: Option<String>,
    /// The retry topic for `reconsume_later`; default `<topic>-<subscription>-RETRY`.
    pub retry_letter_topic: Option<String>,
    /// A subscription created on the dead-letter topic with its producer, so that nothing sent
    /// there is lost before someone subscribes.
    pub initial_subscription_name: Option<String>,
}

impl DeadLetterPolicy {
    /// Dead letters after `max_redeliver_count` redeliveries, with the default topic names.
    pub fn new(max_redeliver_count: u32) -> Self {
        DeadLetterPolicy {
            max_redeliver_count,
            dead_letter_topic: None,
            retry_letter_topic: None,
            initial_subscription_name: None,
        }
    }
}

/// The id as the Java client prints it: `ledger:entry:partition`, plus `:batch` for a batch.
pub fn java_message_id(id: &MessageId) -> String {
    if id.is_batch() {
        format!(
            "{}:{}:{}:{}",
            id.ledger_id, id.entry_id, id.partition, id.batch_index
        )
    } else {
        format!("{}:{}:{}", id.ledger_id, id.entry_id, id.partition)
    }
}

/// The dead-letter and retry producers of one consumer, created on first use.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    session: std::sync::Arc<Session>,
    subscription: String,
    pub policy: DeadLetterPolicy,
    producers: Mutex<HashMap<String, Producer>>,
}

impl DeadLetters {
    pub fn new(
        session: std::sync::Arc<Session>,
        subscription: String,
        policy: DeadLetterPolicy,
    ) -> Self {
        DeadLetters {
            session,
            subscription,
            policy,
            producers: Mutex::new(HashMap::new()),
        }
    }

    fn base_topic(msg: &Message) -> String {
        TopicName::parse(msg.topic())
            .map(|t| t.base().full_name().to_owned())
            .unwrap_or_else(|_| msg.topic().to_owned())
    }

    /// The topic the message originally came from (a retried message names it).
    fn origin_topic(msg: &Message) -> String {
        msg.properties()
            .get(REAL_TOPIC)
            .cloned()
            .unwrap_or_else(|| Self::base_topic(msg))
    }

    fn dlq_topic(&self, msg: &Message) -> String {
        let origin = TopicName::parse(&Self::origin_topic(msg))
            .map(|t| t.base().full_name().to_owned())
            .unwrap_or_else(|_| Self::base_topic(msg));
        self.policy
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{origin}-{}-DLQ", self.subscription))
    }

    /// The retry topic of a consumer on `topic`.
    pub fn retry_topic(&self, topic: &str) -> String {
        self.policy.retry_letter_topic.clone().unwrap_or_else(|| {
            let base = TopicName::parse(topic)
                .map(|t| t.base().full_name().to_owned())
                .unwrap_or_else(|_| topic.to_owned());
            format!("{base}-{}-RETRY", self.subscription)
        })
    }

    /// Fixes the one retry topic of the subscription (the consumer subscribes to it), as the
    /// Java client does: every retried message goes there, whatever topic it came from.
    pub fn set_retry_topic(&mut self, topic: String) {
        self.policy.retry_letter_topic = Some(topic);
    }

    async fn producer(&self, topic: &str, initial_subscription: Option<&str>) -> Result<Producer> {
        let mut producers = self.producers.lock().await;
        if let Some(p) = producers.get(topic) {
            return Ok(p.clone());
        }
        let mut builder = ProducerBuilder::new(self.session.clone(), topic.to_owned())
            .batching(false)
            .block_if_queue_full(true);
        if let Some(sub) = initial_subscription {
            builder = builder.initial_subscription_name(sub);
        }
        let p = builder.create().await?;
        producers.insert(topic.to_owned(), p.clone());
        Ok(p)
    }

    /// The message with its origin recorded, ready to republish: the properties the Java
    /// client adds (`ConsumerImpl.getPropertiesMap`), each unless the message has it already.
    /// `custom` properties are added over the message's own (the Java client's
    /// `reconsumeLater(message, customProperties, ...)`).
    fn republish(&self, msg: &Message, custom: &HashMap<String, String>) -> ProducerMessage {
        let mut out = ProducerMessage::new(msg.payload().clone());
        out.properties = msg.properties().clone();
        out.properties
            .extend(custom.iter().map(|(k, v)| (k.clone(), v.clone())));
        let origin = java_message_id(&msg.id());
        for (key, value) in [
            (REAL_TOPIC, msg.topic()),
            (ORIGIN_MESSAGE_ID_LEGACY, &origin),
            (ORIGIN_MESSAGE_ID, &origin),
            (REAL_SUBSCRIPTION, &self.subscription),
        ] {
            out.properties
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        out.partition_key = msg.partition_key().map(str::to_owned);
        out.ordering_key = msg.ordering_key().map(bytes::Bytes::copy_from_slice);
        out.event_time = msg.event_time();
        out
    }

    /// Sends `msg` to the dead-letter topic and waits for the receipt.
    pub async fn send_to_dlq(&self, msg: &Message) -> Result<MessageId> {
        self.send_to_dlq_with(msg, &HashMap::new()).await
    }

    /// [`send_to_dlq`](Self::send_to_dlq) with `custom` properties added.
    pub async fn send_to_dlq_with(
        &self,
        msg: &Message,
        custom: &HashMap<String, String>,
    ) -> Result<MessageId> {
        let topic = self.dlq_topic(msg);
        let producer = self
            .producer(&topic, self.policy.initial_subscription_name.as_deref())
            .await?;
        producer.send(self.republish(msg, custom)).await
    }

    /// Sends `msg` to the retry topic, to be delivered again after `delay`.
    /// `custom` properties are added over the message's; the reconsume count and the delay
    /// are set after them.
    pub async fn send_to_retry(
        &self,
        msg: &Message,
        delay: Duration,
        custom: &HashMap<String, String>,
    ) -> Result<MessageId> {
        let mut out = self.republish(msg, custom);
        let times = out
            .properties
            .get(RECONSUME_TIMES)
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let topic = self.retry_topic(&Self::origin_topic(msg));
        let producer = self.producer(&topic, None).await?;
        out.properties
            .insert(RECONSUME_TIMES.to_owned(), times.to_string());
        out.properties
            .insert(DELAY_TIME.to_owned(), delay.as_millis().to_string());
        producer.send(out.deliver_after(delay)).await
    }

    /// How many times the message went through the retry topic.
    pub fn reconsume_times(msg: &Message) -> u32 {
        msg.properties()
            .get(RECONSUME_TIMES)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_the_java_client_prints_them() {
        assert_eq!(java_message_id(&MessageId::new(5, 7)), "5:7:-1");
        assert_eq!(
            java_message_id(&MessageId::new(5, 7).with_partition(2).with_batch(3, 10)),
            "5:7:2:3"
        );
    }
}

//! Dead letters and retries against the local broker: a message redelivered past the policy's
//! limit lands on `<topic>-<subscription>-DLQ` with REAL_TOPIC and ORIGIN_MESSAGE_ID, and
//! `reconsume_later` goes through `<topic>-<subscription>-RETRY`.

mod support;

use std::time::Duration;

use pulsar_wire::{java_message_id, ORIGIN_MESSAGE_ID, REAL_TOPIC, RECONSUME_TIMES};
use pulsar_wire::{DeadLetterPolicy, InitialPosition, PulsarClient, SubscriptionType};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_message_nacked_past_the_limit_goes_to_the_dead_letter_topic() {
    let client = client();
    let topic = support::unique_topic("dlq");
    let dlq_topic = format!("{topic}-s-DLQ");
    let mut dlq = client
        .consumer(&dlq_topic)
        .subscription("check")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe dlq");
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .dead_letter_policy(DeadLetterPolicy::new(2))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    let id = producer
        .send(pulsar_wire::ProducerMessage::new("poison").property("k", "v"))
        .await
        .expect("send");
    // Delivered with redelivery counts 0, 1 and 2; the nack of the last one sends it away.
    for expected in 0..=2 {
        let m = tokio::time::timeout(Duration::from_secs(10), c.receive())
            .await
            .expect("delivered")
            .expect("receive");
        assert_eq!(m.redelivery_count(), expected);
        c.nack(&m).await.expect("nack");
    }
    let dead = tokio::time::timeout(Duration::from_secs(10), dlq.receive())
        .await
        .expect("on the dead-letter topic")
        .expect("receive");
    assert_eq!(dead.payload_str(), Some("poison"));
    assert_eq!(dead.properties()["k"], "v");
    assert_eq!(dead.properties()[REAL_TOPIC], topic);
    assert_eq!(dead.properties()[ORIGIN_MESSAGE_ID], java_message_id(&id));
    let more = c
        .receive_timeout(Duration::from_millis(600))
        .await
        .expect("receive");
    assert!(
        more.is_none(),
        "acknowledged on the original topic: {more:?}"
    );
}

#[tokio::test]
async fn reconsume_later_goes_through_the_retry_topic_then_to_the_dead_letters() {
    let client = client();
    let topic = support::unique_topic("retry");
    let mut dlq = client
        .consumer(format!("{topic}-s-DLQ"))
        .subscription("check")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe dlq");
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .enable_retry(true)
        .dead_letter_policy(DeadLetterPolicy::new(2))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("again").await.expect("send");
    for times in 0..=2u32 {
        let m = tokio::time::timeout(Duration::from_secs(10), c.receive())
            .await
            .expect("delivered")
            .expect("receive");
        assert_eq!(m.payload_str(), Some("again"));
        let seen = m
            .properties()
            .get(RECONSUME_TIMES)
            .map_or(0, |t| t.parse::<u32>().expect("a number"));
        assert_eq!(seen, times);
        if times > 0 {
            assert!(m.topic().ends_with("-s-RETRY"), "{}", m.topic());
            assert_eq!(m.properties()[REAL_TOPIC], topic);
        }
        c.reconsume_later(&m, Duration::from_millis(50))
            .await
            .expect("reconsume later");
    }
    let dead = tokio::time::timeout(Duration::from_secs(10), dlq.receive())
        .await
        .expect("on the dead-letter topic")
        .expect("receive");
    assert_eq!(dead.payload_str(), Some("again"));
    assert_eq!(dead.properties()[REAL_TOPIC], topic);
}

#[tokio::test]
async fn a_consumer_of_several_topics_retries_through_its_one_retry_topic() {
    // Before: a message from the second topic was republished to `<second>-s-RETRY`, which
    // nobody subscribed to, and never came back.
    let client = client();
    let first = support::unique_topic("retry-first");
    let second = support::unique_topic("retry-second");
    let mut c = client
        .consumer(&first)
        .topic(&second)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .enable_retry(true)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&second).create().await.expect("producer");
    producer.send("from the second").await.expect("send");
    let m = tokio::time::timeout(Duration::from_secs(10), c.receive())
        .await
        .expect("delivered")
        .expect("receive");
    c.reconsume_later(&m, Duration::from_millis(50))
        .await
        .expect("reconsume later");
    let again = tokio::time::timeout(Duration::from_secs(10), c.receive())
        .await
        .expect("back from the retry topic")
        .expect("receive");
    assert_eq!(again.payload_str(), Some("from the second"));
    assert_eq!(again.topic(), format!("{first}-s-RETRY"));
    assert_eq!(again.properties()[REAL_TOPIC], second);
    assert_eq!(again.properties()[RECONSUME_TIMES], "1");
}

#[tokio::test]
async fn the_stream_sends_a_message_past_the_limit_to_the_dead_letters() {
    // Before: only `receive` checked the dead-letter policy; the Stream handed the message
    // out however often it had come back.
    use futures_util::StreamExt as _;
    let client = client();
    let topic = support::unique_topic("dlq-stream");
    let mut dlq = client
        .consumer(format!("{topic}-s-DLQ"))
        .subscription("check")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe dlq");
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        // Not acknowledged: redelivered by the ack timeout, with a growing count.
        .ack_timeout(Duration::from_secs(1))
        .dead_letter_policy(DeadLetterPolicy::new(1))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("poison").await.expect("send");
    let mut counts = Vec::new();
    let dead = loop {
        tokio::select! {
            m = c.next() => {
                let m = m.expect("open").expect("message");
                counts.push(m.redelivery_count());
            }
            d = dlq.receive() => break d.expect("dead letter"),
            _ = tokio::time::sleep(Duration::from_secs(20)) => panic!("no dead letter; deliveries {counts:?}"),
        }
    };
    assert_eq!(dead.payload_str(), Some("poison"));
    assert!(
        counts.iter().all(|c| *c <= 1),
        "past the limit it is not handed out: {counts:?}"
    );
}

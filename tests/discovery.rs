//! Topic discovery: pattern subscriptions over a namespace (against the scripted peer, since
//! pulsar-lite never answers GET_TOPICS_OF_NAMESPACE), partitions added later, and several
//! topics in one consumer (against the local broker).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsar_wire::wire::proto::{self, base_command::Type};
use pulsar_wire::{InitialPosition, PulsarClient, SubscriptionType};
use support::peer::{self, Peer};

fn topics_response(request_id: u64, topics: &[&str]) -> bytes::Bytes {
    let mut cmd = peer::command(Type::GetTopicsOfNamespaceResponse);
    cmd.get_topics_of_namespace_response =
        Some(Box::new(proto::CommandGetTopicsOfNamespaceResponse {
            request_id,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }));
    peer::encode(&cmd)
}

async fn subscribed_topic(peer: &mut Peer) -> (String, u64) {
    let s = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .expect("body");
    (s.topic, s.consumer_id)
}

#[tokio::test]
async fn a_pattern_subscription_follows_the_namespace() {
    let mut peer = Peer::start().await;
    let listing: Arc<Mutex<Vec<&'static str>>> = Arc::new(Mutex::new(vec![
        "persistent://public/default/orders-a",
        "persistent://public/default/orders-b-partition-0",
        "persistent://public/default/payments",
    ]));
    let seen_requests = Arc::new(Mutex::new(Vec::new()));
    {
        let listing = listing.clone();
        let seen = seen_requests.clone();
        peer.set_handler(move |_, frame| {
            let req = frame.command.get_topics_of_namespace.as_ref()?;
            seen.lock().unwrap().push((req.namespace.clone(), req.mode));
            let topics = listing.lock().unwrap().clone();
            Some(vec![topics_response(req.request_id, &topics)])
        });
    }
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let consumer = client
        .pattern_consumer("persistent://public/default/orders-.*")
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .auto_discovery_period(Duration::from_millis(200))
        .subscribe()
        .await
        .expect("subscribe");
    let mut first = [
        subscribed_topic(&mut peer).await,
        subscribed_topic(&mut peer).await,
    ];
    first.sort();
    assert_eq!(first[0].0, "persistent://public/default/orders-a");
    assert_eq!(first[1].0, "persistent://public/default/orders-b");
    assert_eq!(consumer.subscribed_topics(), 2);
    let (namespace, mode) = seen_requests.lock().unwrap()[0].clone();
    assert_eq!(namespace, "public/default");
    assert_eq!(
        mode,
        Some(proto::command_get_topics_of_namespace::Mode::Persistent as i32)
    );

    // A new matching topic appears and orders-a goes away.
    *listing.lock().unwrap() = vec![
        "persistent://public/default/orders-b-partition-0",
        "persistent://public/default/orders-c",
        "persistent://public/default/payments",
    ];
    // The old topic's consumer closes and the new one subscribes, in either order.
    let orders_a = first
        .iter()
        .find(|(t, _)| t.ends_with("orders-a"))
        .expect("a")
        .1;
    let (mut closed, mut subscribed) = (None, None);
    while closed.is_none() || subscribed.is_none() {
        let (_, frame) = peer.next_frame().await;
        if let Some(c) = frame.command.close_consumer {
            closed = Some(c.consumer_id);
        }
        if let Some(s) = frame.command.subscribe {
            subscribed = Some(s.topic);
        }
    }
    assert_eq!(closed, Some(orders_a));
    assert_eq!(
        subscribed.as_deref(),
        Some("persistent://public/default/orders-c")
    );
}

#[tokio::test]
async fn partitions_added_later_are_consumed() {
    let mut peer = Peer::start().await;
    peer.set_partitions(2);
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let consumer = client
        .consumer("persistent://public/default/grows")
        .subscription("s")
        .auto_discovery_period(Duration::from_millis(200))
        .subscribe()
        .await
        .expect("subscribe");
    let mut topics = vec![
        subscribed_topic(&mut peer).await.0,
        subscribed_topic(&mut peer).await.0,
    ];
    topics.sort();
    assert_eq!(
        topics,
        vec![
            "persistent://public/default/grows-partition-0".to_string(),
            "persistent://public/default/grows-partition-1".to_string()
        ]
    );
    peer.set_partitions(3);
    let (topic, _) = subscribed_topic(&mut peer).await;
    assert_eq!(topic, "persistent://public/default/grows-partition-2");
    for _ in 0..100 {
        if consumer.subscribed_topics() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(consumer.subscribed_topics(), 3);
}

#[tokio::test]
async fn one_consumer_reads_several_topics() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    let (a, b) = (
        support::unique_topic("multi-a"),
        support::unique_topic("multi-b"),
    );
    let mut consumer = client
        .consumer(&a)
        .topic(&b)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    for (topic, text) in [(&a, "from a"), (&b, "from b")] {
        client
            .producer(topic)
            .create()
            .await
            .expect("producer")
            .send(text)
            .await
            .expect("send");
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("a message")
            .expect("receive");
        consumer.ack(&m).await.expect("ack");
        got.push((
            m.topic().to_owned(),
            m.payload_str().unwrap_or_default().to_owned(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![(a, "from a".to_string()), (b, "from b".to_string())]
    );
}

#[tokio::test]
async fn the_topic_list_watcher_pushes_new_and_deleted_topics() {
    let mut peer = Peer::start().await;
    let listing = vec![
        "persistent://public/default/orders-a",
        "persistent://public/default/payments",
    ];
    peer.set_handler(move |_, frame| {
        let c = &frame.command;
        if c.connect.is_some() {
            let mut connected = peer::connected_command(None);
            if let Some(ok) = connected.connected.as_mut() {
                ok.feature_flags = Some(proto::FeatureFlags {
                    supports_topic_watchers: Some(true),
                    ..Default::default()
                });
            }
            return Some(vec![peer::encode(&connected)]);
        }
        if let Some(req) = &c.get_topics_of_namespace {
            return Some(vec![topics_response(req.request_id, &listing)]);
        }
        if let Some(w) = &c.watch_topic_list {
            let mut ok = peer::command(Type::WatchTopicListSuccess);
            ok.watch_topic_list_success = Some(Box::new(proto::CommandWatchTopicListSuccess {
                request_id: w.request_id,
                watcher_id: w.watcher_id,
                topic: listing.iter().map(|t| t.to_string()).collect(),
                topics_hash: "h1".into(),
            }));
            return Some(vec![peer::encode(&ok)]);
        }
        None
    });
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let consumer = client
        .pattern_consumer("persistent://public/default/orders-.*")
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        // Polling would take an hour: only the watcher can make the changes below happen.
        .auto_discovery_period(Duration::from_secs(3600))
        .subscribe()
        .await
        .expect("subscribe");
    let (first, first_id) = subscribed_topic(&mut peer).await;
    assert_eq!(first, "persistent://public/default/orders-a");
    let watch = peer
        .expect(Type::WatchTopicList)
        .await
        .command
        .watch_topic_list
        .expect("body");
    assert_eq!(watch.namespace, "public/default");
    assert_eq!(
        watch.topics_pattern,
        "persistent://public/default/orders-.*"
    );

    let mut update = peer::command(Type::WatchTopicUpdate);
    update.watch_topic_update = Some(Box::new(proto::CommandWatchTopicUpdate {
        watcher_id: watch.watcher_id,
        new_topics: vec!["persistent://public/default/orders-b".into()],
        deleted_topics: vec!["persistent://public/default/orders-a".into()],
        topics_hash: "h2".into(),
    }));
    peer.push(peer::encode(&update));
    let (mut closed, mut subscribed) = (None, None);
    while closed.is_none() || subscribed.is_none() {
        let (_, frame) = peer.next_frame().await;
        if let Some(c) = frame.command.close_consumer {
            closed = Some(c.consumer_id);
        }
        if let Some(s) = frame.command.subscribe {
            subscribed = Some(s.topic);
        }
    }
    assert_eq!(closed, Some(first_id));
    assert_eq!(
        subscribed.as_deref(),
        Some("persistent://public/default/orders-b")
    );
    drop(consumer);
    let close = peer.expect(Type::WatchTopicListClose).await;
    assert_eq!(
        close.command.watch_topic_list_close.map(|c| c.watcher_id),
        Some(watch.watcher_id)
    );
}

#[tokio::test]
async fn the_watcher_applies_its_initial_list_and_reopens_with_its_connection() {
    // Before: the list in WATCH_TOPIC_LIST_SUCCESS was ignored (a topic created between the
    // first listing and the watch was missed until the next poll), and a watcher whose
    // connection dropped was opened again only after the next poll.
    let mut peer = Peer::start().await;
    peer.set_handler(move |_, frame| {
        let c = &frame.command;
        if c.connect.is_some() {
            let mut connected = peer::connected_command(None);
            if let Some(ok) = connected.connected.as_mut() {
                ok.feature_flags = Some(proto::FeatureFlags {
                    supports_topic_watchers: Some(true),
                    ..Default::default()
                });
            }
            return Some(vec![peer::encode(&connected)]);
        }
        if let Some(req) = &c.get_topics_of_namespace {
            return Some(vec![topics_response(
                req.request_id,
                &["persistent://public/default/orders-a"],
            )]);
        }
        if let Some(w) = &c.watch_topic_list {
            let mut ok = peer::command(Type::WatchTopicListSuccess);
            ok.watch_topic_list_success = Some(Box::new(proto::CommandWatchTopicListSuccess {
                request_id: w.request_id,
                watcher_id: w.watcher_id,
                topic: vec![
                    "persistent://public/default/orders-a".into(),
                    "persistent://public/default/orders-c-partition-0".into(),
                    "persistent://public/default/payments".into(),
                ],
                topics_hash: "h1".into(),
            }));
            return Some(vec![peer::encode(&ok)]);
        }
        None
    });
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let _consumer = client
        .pattern_consumer("persistent://public/default/orders-.*")
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        // Polling would take an hour: only the watcher can make the changes below happen.
        .auto_discovery_period(Duration::from_secs(3600))
        .subscribe()
        .await
        .expect("subscribe");
    let (first, _) = subscribed_topic(&mut peer).await;
    assert_eq!(first, "persistent://public/default/orders-a");
    let (conn, watch) = peer.expect_on(Type::WatchTopicList).await;
    assert_eq!(
        watch.command.watch_topic_list.and_then(|w| w.topics_hash),
        None,
        "no hash known at the first watch"
    );
    // The topic the first listing did not have.
    let (added, _) = subscribed_topic(&mut peer).await;
    assert_eq!(added, "persistent://public/default/orders-c");

    peer.disconnect(conn);
    // The peer reports the close of that connection, and the watcher comes again on a new one
    // (in either order: the client may reconnect before the peer's close event is read).
    let mut closed = false;
    let mut again = None;
    while !closed || again.is_none() {
        match peer.next_event().await {
            peer::Event::Closed(c) if c == conn => closed = true,
            peer::Event::Frame(_, f) if f.command.r#type == Type::WatchTopicList as i32 => {
                again = f.command.watch_topic_list;
            }
            peer::Event::Frame(..) | peer::Event::Accepted(_) => {}
            other => panic!("expected the close and a new WatchTopicList, got {other:?}"),
        }
    }
    let again = again.expect("body");
    assert_eq!(
        again.topics_hash.as_deref(),
        Some("h1"),
        "the last hash is sent"
    );
}

//! Table views: the latest value of every key of a topic, kept current, as the Java client's
//! `TableView`.
//!
//! See [`TableView`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::protocol::topic::TopicName;
use crate::reader::{Reader, ReaderBuilder};
use crate::schema::{BytesSchema, Schema};
use crate::session::Session;
use crate::wire::MessageId;

/// Builds a [`TableView`]: [`PulsarClient::table_view`](crate::PulsarClient::table_view), then
/// [`create`](Self::create).
#[derive(Debug)]
pub struct TableViewBuilder<S: Schema = BytesSchema> {
    session: Arc<Session>,
    topic: String,
    schema: S,
    subscription_name: Option<String>,
    partitions_interval: Duration,
}

impl TableViewBuilder<BytesSchema> {
    pub(crate) fn new(session: Arc<Session>, topic: String) -> Self {
        TableViewBuilder {
            session,
            topic,
            schema: BytesSchema,
            subscription_name: None,
            partitions_interval: Duration::from_secs(60),
        }
    }
}

impl<S: Schema> TableViewBuilder<S> {
    /// The schema that decodes the values (default [`BytesSchema`]: the payloads as they are).
    pub fn schema<T: Schema>(self, schema: T) -> TableViewBuilder<T> {
        TableViewBuilder {
            session: self.session,
            topic: self.topic,
            schema,
            subscription_name: self.subscription_name,
            partitions_interval: self.partitions_interval,
        }
    }

    /// The name of the reader's (non-durable) subscription (default `reader-<random>`).
    pub fn subscription_name(mut self, name: impl Into<String>) -> Self {
        self.subscription_name = Some(name.into());
        self
    }

    /// How often a partitioned topic is checked for new partitions (default 60 s, as the Java
    /// client; at least 100 ms).
    pub fn auto_update_partitions_interval(mut self, period: Duration) -> Self {
        self.partitions_interval = period;
        self
    }

    /// Creates the view (its values must be `Sync`: they are shared with the background
    /// task): reads the topic from its start up to its last message now (the
    /// latest value per key of a compacted topic, then what follows it), then keeps reading in
    /// the background. Fails if the reader cannot be created or the topic cannot be read up to
    /// its end (the reader is closed then).
    pub async fn create(self) -> Result<TableView<S>>
    where
        S::Value: Sync,
    {
        let topic = TopicName::parse(&self.topic)?;
        let persistent = topic.domain().is_persistent();
        let session = self.session.clone();
        let mut builder = ReaderBuilder::new(self.session, self.topic.clone())
            .start_message_id(MessageId::EARLIEST)
            .read_compacted(persistent)
            .auto_update_partitions_interval(self.partitions_interval);
        if let Some(name) = self.subscription_name {
            builder = builder.reader_name(name);
        }
        let mut reader = builder.create().await?;
        let shared = Arc::new(Shared {
            session,
            writers: Default::default(),
            topic: self.topic,
            schema: self.schema,
            data: RwLock::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            decode_failures: AtomicU64::new(0),
            without_key: AtomicU64::new(0),
            last_error: Mutex::new(None),
            running: AtomicBool::new(true),
        });
        if persistent {
            let started = Instant::now();
            match load(&shared, &mut reader).await {
                Ok(read) => tracing::info!(
                    topic = %shared.topic,
                    messages = read,
                    keys = shared.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "table view loaded"
                ),
                Err(e) => {
                    let _ = reader.close().await;
                    return Err(e);
                }
            }
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(tail(shared.clone(), reader, stopped));
        Ok(TableView {
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// Reads until the reader has nothing more published before now; returns how many messages.
async fn load<S: Schema>(shared: &Shared<S>, reader: &mut Reader) -> Result<u64> {
    let mut read = 0;
    while reader.has_message_available().await? {
        match reader.next().await {
            Ok(msg) => {
                read += 1;
                shared.apply(msg).await;
            }
            Err(e @ Error::Closed(_)) => return Err(e),
            // One message could not be delivered (say, it is encrypted): reported, not fatal.
            Err(e) => shared.record(e),
        }
    }
    Ok(read)
}

/// The background task: applies every message until the view is closed or dropped, or the
/// reader ends. Closes the reader.
async fn tail<S: Schema>(
    shared: Arc<Shared<S>>,
    mut reader: Reader,
    mut stopped: oneshot::Receiver<()>,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            next = reader.next() => match next {
                Ok(msg) => shared.apply(msg).await,
                Err(e @ Error::Closed(_)) => {
                    shared.record(e);
                    shared.running.store(false, Ordering::Release);
                    return Ok(());
                }
                Err(e) => shared.record(e),
            },
        }
    }
    shared.running.store(false, Ordering::Release);
    reader.close().await
}

/// A listener: told every update; returns whether it stays registered.
type Listener<V> = Box<dyn FnMut(&str, Option<&Arc<V>>) -> bool + Send>;

/// What the view and its task share.
struct Shared<S: Schema> {
    session: Arc<Session>,
    writers: crate::consumer::typed::Writers,
    topic: String,
    schema: S,
    data: RwLock<HashMap<String, Arc<S::Value>>>,
    /// Held while an update is applied and told, and while `for_each_and_listen` walks the
    /// table and registers: a listener sees every update after its snapshot, once.
    listeners: Mutex<Vec<Listener<S::Value>>>,
    decode_failures: AtomicU64,
    without_key: AtomicU64,
    last_error: Mutex<Option<Error>>,
    running: AtomicBool,
}

/// Locks, ignoring poison: a panic in a listener is caught and never poisons the lock, and
/// the data stays consistent (every write is one map operation).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Schema> Shared<S> {
    fn len(&self) -> usize {
        self.data
            .read()
            .map_or_else(|p| p.into_inner().len(), |d| d.len())
    }

    fn record(&self, error: Error) {
        tracing::warn!(topic = %self.topic, error = %error, "table view: reading failed");
        *lock(&self.last_error) = Some(error);
    }

    /// Applies one message to the table and tells the listeners. Values are decoded here
    /// only, with the writer's schema from the registry where the schema wants it.
    async fn apply(&self, msg: Message) {
        let Some(key) = msg.partition_key().map(str::to_owned) else {
            self.without_key.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                topic = %self.topic,
                id = %msg.id(),
                "table view: message without a key skipped"
            );
            return;
        };
        let key = key.as_str();
        let id = msg.id();
        let value = if msg.payload().is_empty() {
            None
        } else {
            match crate::consumer::typed::decode(&self.session, &self.writers, &self.schema, msg)
                .await
            {
                Ok(v) => Some(Arc::new(v.into_value())),
                Err(e) => {
                    self.decode_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        topic = %self.topic,
                        key,
                        id = %id,
                        error = %e,
                        "table view: cannot decode the value; the key keeps its previous value"
                    );
                    return;
                }
            }
        };
        let mut listeners = lock(&self.listeners);
        {
            let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
            match &value {
                Some(v) => {
                    data.insert(key.to_owned(), v.clone());
                }
                None => {
                    data.remove(key);
                }
            }
        }
        listeners.retain_mut(|listener| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                listener(key, value.as_ref())
            })) {
                Ok(keep) => keep,
                Err(_) => {
                    tracing::error!(
                        topic = %self.topic,
                        key,
                        "table view listener panicked; it stays registered"
                    );
                    true
                }
            }
        });
    }
}

/// The latest value of every key of a topic, kept current by a background task.
///
/// A table view reads its topic (every partition of a partitioned one) from the start with a
/// reader on the compacted view ([`ReaderBuilder::read_compacted`]), so that a compacted topic
/// is loaded from its latest value per key instead of its whole history.
/// [`TableViewBuilder::create`] returns once everything published before it is loaded; a
/// background task then applies every new message until the view is closed or dropped.
///
/// What a message does to the table:
///
/// - a message with a key and a payload sets the key to the value the schema decodes;
/// - a message with a key and an empty payload (a tombstone, which compaction also honours)
///   removes the key;
/// - a message without a key is skipped (counted by [`TableView::messages_without_key`]);
/// - a payload the schema cannot decode leaves the key as it was; it is logged (a `tracing`
///   warning with the topic, the key and the message id) and counted by
///   [`TableView::decode_failures`], never dropped silently.
///
/// Non-persistent topics keep no history: as the Java client, a table view of one reads only
/// what is published after it was created.
///
/// New partitions of a partitioned topic are found by the reader's partition discovery (every
/// 60 s by default, [`TableViewBuilder::auto_update_partitions_interval`]) and read from their
/// start.
///
/// Values are held as `Arc<S::Value>`: [`get`](Self::get) and the snapshots share them
/// instead of copying. Listeners ([`listen`](Self::listen),
/// [`for_each_and_listen`](Self::for_each_and_listen)) run on the background task, in the
/// order of the messages: they must be quick and must not block, nor register listeners
/// themselves (that would deadlock); reading the view from them is fine.
///
/// Errors of the background reader (a partition's subscription is gone, a message could not
/// be delivered) do not stop the view: the latest is kept for [`last_error`](Self::last_error).
/// [`is_running`](Self::is_running) turns false when the reader has ended for good (the client
/// was closed); the table then stays as it was.
pub struct TableView<S: Schema = BytesSchema> {
    shared: Arc<Shared<S>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl<S: Schema> std::fmt::Debug for TableView<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableView")
            .field("topic", &self.shared.topic)
            .field("keys", &self.shared.len())
            .field("running", &self.is_running())
            .finish()
    }
}

impl<S: Schema> TableView<S> {
    /// The topic, as given.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<S::Value>>> {
        self.shared.data.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Arc<S::Value>> {
        self.data().get(key).cloned()
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.data().contains_key(key)
    }

    /// How many keys have a value.
    pub fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    /// The keys that have a value now (in no particular order).
    pub fn keys(&self) -> Vec<String> {
        self.data().keys().cloned().collect()
    }

    /// A snapshot of the table: every key and its value now.
    pub fn snapshot(&self) -> HashMap<String, Arc<S::Value>> {
        self.data().clone()
    }

    /// A snapshot of the entries, to iterate over (in no particular order).
    pub fn iter(&self) -> std::collections::hash_map::IntoIter<String, Arc<S::Value>> {
        self.snapshot().into_iter()
    }

    /// Calls `action` with every key and its value now (on a snapshot: `action` may read the
    /// view).
    pub fn for_each(&self, mut action: impl FnMut(&str, &S::Value)) {
        for (k, v) in self.snapshot() {
            action(&k, &v);
        }
    }

    /// Calls `listener` on every update from now on, in order: the key and its new value, or
    /// `None` when a tombstone removed it.
    pub fn listen(&self, mut listener: impl FnMut(&str, Option<&S::Value>) + Send + 'static) {
        lock(&self.shared.listeners).push(Box::new(move |k, v| {
            listener(k, v.map(|v| &**v));
            true
        }));
    }

    /// Calls `listener` with every key and its value now, then on every update after them
    /// (Java's `forEachAndListen`): no update is missed or told twice in between.
    pub fn for_each_and_listen(
        &self,
        mut listener: impl FnMut(&str, Option<&S::Value>) + Send + 'static,
    ) {
        let mut listeners = lock(&self.shared.listeners);
        for (k, v) in self.data().iter() {
            listener(k, Some(v));
        }
        listeners.push(Box::new(move |k, v| {
            listener(k, v.map(|v| &**v));
            true
        }));
    }

    /// The updates from now on, as a stream (and [`TableUpdates::next`]); it ends when the view
    /// is closed. Updates queue up until taken.
    pub fn updates(&self) -> TableUpdates<S::Value>
    where
        S::Value: Sync,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.listeners).push(Box::new(move |k, v| {
            tx.send(TableUpdate {
                key: k.to_owned(),
                value: v.cloned(),
            })
            .is_ok()
        }));
        TableUpdates { rx }
    }

    /// How many values the schema could not decode (each was logged; its key kept its
    /// previous value).
    pub fn decode_failures(&self) -> u64 {
        self.shared.decode_failures.load(Ordering::Relaxed)
    }

    /// How many messages were skipped because they had no key.
    pub fn messages_without_key(&self) -> u64 {
        self.shared.without_key.load(Ordering::Relaxed)
    }

    /// The latest error of the background reader, if any (it goes on reading after most
    /// errors; see [`is_running`](Self::is_running)).
    pub fn last_error(&self) -> Option<Error> {
        lock(&self.shared.last_error).clone()
    }

    /// Whether the background reader still runs (false once the view is closed, or the reader
    /// ended: then [`last_error`](Self::last_error) says why).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Stops the background reader and closes it on the broker. The table keeps its content.
    pub async fn close(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => task.await.unwrap_or(Err(Error::Closed("table view"))),
            None => Ok(()),
        };
        // Streams of updates end.
        lock(&self.shared.listeners).clear();
        result
    }
}

impl<S: Schema> Drop for TableView<S> {
    fn drop(&mut self) {
        // The task sees the sender gone, stops and closes its reader.
        self.stop.take();
    }
}

/// One update of a [`TableView`]: a key's new value, or `None` when it was removed.
#[derive(Debug)]
pub struct TableUpdate<V> {
    /// The key.
    pub key: String,
    /// Its new value, or `None` for a tombstone.
    pub value: Option<Arc<V>>,
}

impl<V> Clone for TableUpdate<V> {
    fn clone(&self) -> Self {
        TableUpdate {
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

/// The updates of a [`TableView`] ([`TableView::updates`]), as a `futures_core::Stream`.
#[derive(Debug)]
pub struct TableUpdates<V> {
    rx: mpsc::UnboundedReceiver<TableUpdate<V>>,
}

impl<V> TableUpdates<V> {
    /// The next update; `None` once the view is closed and every update was taken.
    pub async fn next(&mut self) -> Option<TableUpdate<V>> {
        self.rx.recv().await
    }
}

impl<V> futures_core::Stream for TableUpdates<V> {
    type Item = TableUpdate<V>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

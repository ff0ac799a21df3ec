//! Topic discovery for consumers: the partitions added to a partitioned topic, and, for a
//! pattern subscription, the topics of the namespace that match (GET_TOPICS_OF_NAMESPACE,
//! polled every minute as the Go and C++ clients do). New ones get a partition task; topics
//! that disappear from a pattern's namespace have theirs closed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use regex::Regex;
use tokio::sync::oneshot;

use crate::channel as mpsc;
use tracing::{info, warn};

use super::partition::{self, ChildConfig, ChildHandle, Delivery};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::protocol::commands;
use crate::protocol::connection::TopicListUpdate;
use crate::protocol::topic::{Domain, TopicName};
use crate::session::Session;
use crate::task::sleep_until_opt;

/// The partition tasks of a consumer; indexes are stable (closed ones stay in place).
pub(crate) type Children = Arc<RwLock<Vec<ChildHandle>>>;

/// A topic pattern: `persistent://tenant/ns/<regex>` (or `tenant/ns/<regex>`).
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    source: String,
    namespace: String,
    persistent: bool,
    regex: Regex,
}

impl TopicPattern {
    /// Parses a pattern; the regex must match whole topic names, domain included.
    pub fn parse(pattern: &str) -> Result<Self> {
        let (domain, rest) = match pattern.split_once("://") {
            Some((d, r)) => (d, r),
            None => ("persistent", pattern),
        };
        let persistent = match domain {
            "persistent" => true,
            "non-persistent" => false,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "topic pattern {pattern:?}: unknown domain {other:?}"
                )))
            }
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(tenant), Some(ns), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::InvalidConfig(format!(
                "topic pattern {pattern:?}: expected persistent://tenant/namespace/<regex>"
            )));
        };
        let full = format!("^{domain}://{rest}$");
        let regex = Regex::new(&full)
            .map_err(|e| Error::InvalidConfig(format!("topic pattern {pattern:?}: {e}")))?;
        Ok(TopicPattern {
            source: format!("{domain}://{rest}"),
            namespace: format!("{tenant}/{ns}"),
            persistent,
            regex,
        })
    }

    /// `<domain>://<tenant>/<namespace>/<subscription>-<suffix>`: the Java client's name for a
    /// retry or dead-letter topic of a subscription that has no first topic to name it after.
    pub fn legacy_topic(&self, subscription: &str, suffix: &str) -> String {
        let domain = if self.persistent {
            "persistent"
        } else {
            "non-persistent"
        };
        format!("{domain}://{}/{subscription}-{suffix}", self.namespace)
    }

    /// Whether the pattern is over persistent topics.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The pattern as given (with its domain).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a topic (partition suffix removed) matches.
    pub fn matches(&self, topic: &TopicName) -> bool {
        let persistent = topic.domain() == Domain::Persistent;
        persistent == self.persistent && self.regex.is_match(topic.base().full_name())
    }

    /// The matching topics of the namespace now (partitions folded into their topic).
    pub async fn list(&self, session: &Session) -> Result<Vec<TopicName>> {
        let namespace = self.namespace.clone();
        let persistent = self.persistent;
        let names = session.topics_of_namespace(&namespace, persistent).await?;
        Ok(self.matching(names))
    }

    /// The topics of a listing that match (partitions folded into their topic), sorted.
    fn matching(&self, names: Vec<String>) -> Vec<TopicName> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for name in names {
            let Ok(topic) = TopicName::parse(&name) else {
                continue;
            };
            let base = topic.base();
            if self.matches(&base) && seen.insert(base.full_name().to_owned()) {
                out.push(base);
            }
        }
        out.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        out
    }
}

/// Everything needed to start partition tasks after subscribing.
pub(crate) struct Discovery {
    pub session: Arc<Session>,
    pub config: ChildConfig,
    pub out: mpsc::UnboundedSender<Delivery>,
    pub children: Weak<RwLock<Vec<ChildHandle>>>,
    /// Topic (base name) → partition count (0: not partitioned) and the children serving it.
    pub topics: HashMap<String, (u32, Vec<usize>)>,
    pub pattern: Option<TopicPattern>,
    /// Topics subscribed by name beside a pattern (the retry topic): never closed by it.
    pub fixed: HashSet<String>,
    pub period: Duration,
}

impl Discovery {
    /// Starts the tasks of one topic's partitions `from..to` (or of the topic itself).
    pub async fn start_topic(
        &mut self,
        children: &Children,
        topic: &TopicName,
        partitions: u32,
        from: u32,
    ) -> Result<()> {
        let targets: Vec<(TopicName, i32)> = if partitions == 0 {
            vec![(
                topic.clone(),
                topic.partition_index().map_or(-1, |i| i as i32),
            )]
        } else {
            (from..partitions)
                .map(|i| (topic.partition(i), i as i32))
                .collect()
        };
        for (t, partition) in targets {
            let index = children.read().map(|c| c.len()).unwrap_or(0);
            let child = partition::start(
                self.session.clone(),
                t,
                partition,
                index,
                self.config.clone(),
                self.out.clone(),
            )
            .await?;
            if let Ok(mut c) = children.write() {
                c.push(child);
            }
            let entry = self
                .topics
                .entry(topic.full_name().to_owned())
                .or_insert((partitions, Vec::new()));
            entry.0 = partitions;
            entry.1.push(index);
        }
        Ok(())
    }

    /// Closes the tasks of a topic that went away.
    async fn close_topic(&mut self, children: &Children, topic: &str) {
        if let Some((_, indexes)) = self.topics.remove(topic) {
            info!(%topic, "topic gone from the pattern: closing its consumer");
            let handles: Vec<ChildHandle> = children
                .read()
                .map(|c| indexes.iter().filter_map(|i| c.get(*i).cloned()).collect())
                .unwrap_or_default();
            for h in handles {
                let _ = h.close().await;
            }
        }
    }

    /// Subscribes to a topic that appeared, if it matches and is new.
    async fn add_topic(&mut self, children: &Children, topic: &TopicName) {
        let topic = topic.base();
        let matches = self.pattern.as_ref().is_some_and(|p| p.matches(&topic));
        if !matches || self.topics.contains_key(topic.full_name()) {
            return;
        }
        let count = match self.session.partitioned_metadata(&topic).await {
            Ok(n) => n,
            Err(e) => {
                warn!(topic = %topic, error = %e, "cannot subscribe to a new topic yet");
                return;
            }
        };
        info!(topic = %topic, partitions = count, "new topic matches the pattern: subscribing");
        if let Err(e) = self.start_topic(children, &topic, count, 0).await {
            warn!(topic = %topic, error = %e, "cannot subscribe to a new topic yet");
        }
    }

    /// Opens a topic-list watcher when the broker offers them: new and deleted topics are then
    /// pushed at once instead of found by the next poll. Returns it with the matching topics
    /// of its answer (the whole list now), or `Err(true)` when the broker has no watchers
    /// (polling alone then), `Err(false)` when it failed for now.
    async fn start_watch(
        &self,
        hash: Option<&str>,
    ) -> std::result::Result<(Watch, Vec<TopicName>), bool> {
        let Some(pattern) = self.pattern.as_ref() else {
            return Err(true);
        };
        let inner = self.session.clone();
        // With an HTTP service URL there is no broker to watch on: polling alone.
        if inner.is_http() {
            return Err(true);
        }
        let conn = inner.any_connection().await.map_err(|_| false)?;
        if !conn.supports_topic_watchers() {
            return Err(true);
        }
        let watcher_id = inner.next_id();
        let (tx, updates) = mpsc::unbounded_channel();
        conn.register_watcher(watcher_id, tx).map_err(|_| false)?;
        let request_id = inner.next_id();
        let command = commands::watch_topic_list(
            request_id,
            watcher_id,
            &pattern.namespace,
            &pattern.source,
            hash.map(str::to_owned),
        );
        match conn
            .request(
                request_id,
                "watch topic list",
                command,
                Some(inner.operation_timeout),
            )
            .await
        {
            Ok(resp) => {
                let success = resp.watch_topic_list_success.unwrap_or_default();
                let topics = pattern.matching(success.topic);
                Ok((
                    Watch {
                        conn,
                        watcher_id,
                        updates,
                        hash: success.topics_hash,
                    },
                    topics,
                ))
            }
            Err(e) => {
                warn!(error = %e, "the topic-list watcher was refused; polling instead");
                conn.unregister_watcher(watcher_id);
                Err(e.server_error().is_some())
            }
        }
    }

    /// Opens the watcher and applies the list of its answer (topics created or deleted while
    /// it was not watching).
    async fn open_watch(&mut self, hash: Option<&str>) -> std::result::Result<Watch, bool> {
        let (watch, topics) = self.start_watch(hash).await?;
        if let Some(children) = self.children.upgrade() {
            self.reconcile(&children, topics).await;
        }
        Ok(watch)
    }

    /// One discovery round.
    async fn round(&mut self, children: &Children) {
        let wanted = match &self.pattern {
            Some(pattern) => match pattern.list(&self.session).await {
                Ok(list) => list,
                Err(e) => {
                    warn!(error = %e, "topic discovery failed; retrying next round");
                    return;
                }
            },
            None => self
                .topics
                .keys()
                .filter_map(|t| TopicName::parse(t).ok())
                .collect(),
        };
        self.reconcile(children, wanted).await;
    }

    /// Subscribes to what is wanted and new (topics, or partitions added), and closes the
    /// topics a pattern no longer matches.
    async fn reconcile(&mut self, children: &Children, wanted: Vec<TopicName>) {
        if self.pattern.is_some() {
            let wanted_names: HashSet<&str> = wanted.iter().map(|t| t.full_name()).collect();
            let gone: Vec<String> = self
                .topics
                .keys()
                .filter(|t| !wanted_names.contains(t.as_str()) && !self.fixed.contains(*t))
                .cloned()
                .collect();
            for topic in gone {
                self.close_topic(children, &topic).await;
            }
        }
        for topic in wanted {
            let known = self.topics.get(topic.full_name()).map(|(n, _)| *n);
            if known.is_some_and(|n| n == 0) || topic.is_partition() {
                continue;
            }
            let count = match self.session.partitioned_metadata(&topic).await {
                Ok(n) => n,
                Err(_) => continue,
            };
            let from = match known {
                Some(n) if count > n => n,
                Some(_) => continue,
                None => 0,
            };
            if known.is_none() && count == 0 {
                info!(topic = %topic, "new topic matches the pattern: subscribing");
            } else {
                info!(topic = %topic, partitions = count, "subscribing to new partitions");
            }
            if let Err(e) = self.start_topic(children, &topic, count, from).await {
                warn!(topic = %topic, error = %e, "cannot subscribe to a discovered topic yet");
            }
        }
    }

    /// Runs rounds every period until the consumer goes away, and applies the watcher's
    /// updates as they come. A watcher whose connection drops is opened again at once (then
    /// with backoff), sending the last hash it had.
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut hash: Option<String> = None;
        let mut backoff = self.session.reconnect_backoff();
        let mut watch = None;
        // When to (re)open the watcher; None: it is open, or the broker has none.
        let mut reopen_at = self.pattern.as_ref().map(|_| tokio::time::Instant::now());
        let mut next_round = tokio::time::Instant::now() + self.period;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_round) => {
                    next_round = tokio::time::Instant::now() + self.period;
                    let Some(children) = self.children.upgrade() else { break };
                    self.round(&children).await;
                }
                _ = &mut stop => break,
                _ = sleep_until_opt(reopen_at) => {
                    reopen_at = None;
                    match self.open_watch(hash.as_deref()).await {
                        Ok(w) => {
                            backoff.reset();
                            hash = Some(w.hash.clone());
                            watch = Some(w);
                        }
                        // No watchers on this broker: polling alone.
                        Err(true) => {}
                        Err(false) => {
                            reopen_at = Some(tokio::time::Instant::now() + backoff.next_delay_random());
                        }
                    }
                }
                update = next_update(&mut watch) => {
                    let Some(children) = self.children.upgrade() else { break };
                    match update {
                        Some(update) => {
                            for t in &update.deleted_topics {
                                if let Ok(topic) = TopicName::parse(t) {
                                    self.close_topic(&children, topic.base().full_name()).await;
                                }
                            }
                            for t in &update.new_topics {
                                if let Ok(topic) = TopicName::parse(t) {
                                    self.add_topic(&children, &topic).await;
                                }
                            }
                            hash = Some(update.topics_hash);
                        }
                        // The watcher's connection is gone: open it again.
                        None => {
                            info!("the topic-list watcher's connection closed: opening it again");
                            watch = None;
                            reopen_at = Some(tokio::time::Instant::now() + backoff.next_delay_random());
                        }
                    }
                }
            }
        }
        if let Some(w) = watch {
            let id = self.session.next_id();
            let _ = w
                .conn
                .send(commands::watch_topic_list_close(id, w.watcher_id));
            w.conn.unregister_watcher(w.watcher_id);
        }
    }
}

/// An open topic-list watcher.
struct Watch {
    conn: Connection,
    watcher_id: u64,
    updates: mpsc::UnboundedReceiver<TopicListUpdate>,
    /// The hash of the list as the broker last told it.
    hash: String,
}

async fn next_update(watch: &mut Option<Watch>) -> Option<TopicListUpdate> {
    match watch {
        Some(w) => w.updates.recv().await,
        None => std::future::pending().await,
    }
}

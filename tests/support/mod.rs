//! Test support shared by the integration test binaries (each `tests/*.rs` does `mod support;`).
//!
//! # Which broker a test gets
//!
//! Each test says which broker it needs:
//!
//! - [`broker()`]: the binary's default broker, shared by its tests: the broker at `PULSAR_URL`
//!   when set (nothing is started); else Apache Pulsar when `PULSAR_WIRE_BROKER=apache`, or
//!   Apache Pulsar behind the Pulsar proxy when `PULSAR_WIRE_BROKER=apache-proxy` (the tests'
//!   clients get the proxy's URL); else a local pulsar-lite (the fast default) started once on
//!   a free loopback port with a fresh database in a temporary directory;
//! - [`apache()`] / [`apache_with`]: Apache Pulsar always (plain, or with token auth, TLS and
//!   broker.conf keys), for Apache-specific tests;
//! - [`Broker::start_private`]: a private broker for fault tests that kill -9 and restart it:
//!   pulsar-lite, or Apache Pulsar with `PULSAR_WIRE_BROKER=apache` (kill is
//!   `apache-pulsar.sh kill9`, restart is `start` again on the same directory), or Apache
//!   Pulsar and its proxy with `PULSAR_WIRE_BROKER=apache-proxy` (kill and restart both);
//! - [`Broker::start_local`]: pulsar-lite always, for pulsar-lite-specific tests (its config
//!   file, its log lines).
//!
//! Apache Pulsar is a standalone started through `scripts/apache-pulsar.sh` (see
//! [`apache`](mod@apache)), one per set of options per test binary.
//!
//! The pulsar-lite binary is `PULSAR_LITE_BIN`, or the one `scripts/setup-broker.sh` installs
//! in `.venv/`; Apache Pulsar needs `scripts/apache-pulsar.sh install`. When the broker a test
//! needs is missing the test fails with a message saying how to get it; it never skips.
//!
//! # Cleanup
//!
//! Test binaries do not run destructors of statics, so a local broker (pulsar-lite or Apache
//! Pulsar; their directories are named `pulsar-wire-test-broker-...`, which `.ci/run`'s leak
//! check looks for in every command line) is stopped two ways:
//!
//! - on a normal exit of the test binary (Linux), an exit hook in `.fini_array` kills the
//!   broker, waits for it and removes its temporary directory before the process is gone;
//! - in every other case (a crash, a signal, `kill -9` of the test binary) a watchdog `sh`
//!   process, started with the broker, reads a pipe whose only writer is the test process. The
//!   kernel closes that pipe when the test process dies, however it dies; the watchdog then kills
//!   the broker whose pid is in `broker.pid` (after checking that its command line is
//!   pulsar-lite's, or Apache Pulsar's `PulsarStandaloneStarter`) and removes the temporary
//!   directory.
//!
//! # What pulsar-lite does not do
//!
//! pulsar-lite 0.2.0 is a small independent broker, not Apache Pulsar. Tests of the following
//! must use a scripted peer (a fake broker speaking frames over a socket) or Apache Pulsar
//! ([`apache()`]; tests/real_broker.rs and tests/apache_security.rs do):
//!
//! - no TLS (it reads a TLS ClientHello as a frame);
//! - tokens are accepted but never checked (no authentication failures, no auth challenge);
//! - no deduplication: `last_sequence_id` in PRODUCER_SUCCESS is always -1;
//! - no delayed delivery: `deliver_at_time` messages are delivered at once;
//! - no regex topic lookup: GET_TOPICS_OF_NAMESPACE is never answered;
//! - no schema registry: GET_SCHEMA is never answered;
//! - producer access modes (Exclusive, WaitForExclusive, ExclusiveWithFencing) are ignored;
//! - transactions are never answered;
//! - most errors are answered by closing the TCP connection, not by a CommandError (a second
//!   Exclusive consumer, an oversize message, seek to earliest, GetLastMessageId on a
//!   non-persistent topic), which drops every other producer and consumer of that connection;
//! - commands it does not implement are never answered at all: the client waits for its
//!   operation timeout;
//! - seek moves the cursor, but a live consumer sees it only after it resubscribes;
//! - GetLastMessageId on an empty topic is an error;
//! - MESSAGE frames come without the `0x0e01` magic and checksum;
//! - Exclusive and Failover subscriptions on persistent topics may deliver one entry many times
//!   while a producer sends unbatched messages: count distinct message ids, or use Shared;
//! - subscribing to `t-partition-0` of a partitioned topic creates nested partitions;
//! - CONNECTED says protocol 20 and carries no `max_message_size` and no feature flags.
#![allow(dead_code)]

pub mod apache;
pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod crypto;
pub mod faultproxy;
pub mod java;
pub mod oauth2;
pub mod peer;
pub mod tap;

pub use apache::ApacheOptions;

pub mod tls;
pub mod txn;

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a broker may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);
/// What to do when the binary is missing.
const HOW_TO_GET_IT: &str =
    "run scripts/setup-broker.sh (or set PULSAR_URL to a running Apache Pulsar)";

/// The pulsar-lite config: metrics off (otherwise it binds 0.0.0.0:8080), no default partitions.
const BROKER_TOML: &str = "\
default_partitions = 0
max_message_size_bytes = 5242880
keep_alive_interval_secs = 30
[metrics]
enabled = false
";

/// The watchdog: `sh -c WATCHDOG sh DIR MARKER...` (see [`spawn_watchdog`]). Its stdin is a
/// pipe held only by the test process, so `read` sees end of file as soon as the test process
/// is gone. It then kills an `apache-pulsar.sh start` still running (`DIR/start.pid`) and every
/// process named in another `DIR/*.pid` whose command line still contains one of the MARKERs
/// (`pulsar-lite`; `PulsarStandaloneStarter` and the proxy's class for Apache Pulsar;
/// `org.apache.pulsar.` for a cluster), and removes `DIR`. It looks a few times: a start script
/// killed mid-way may just have forked the JVM.
const WATCHDOG: &str = r#"
trap '' INT HUP
while read -r _; do :; done
dir=$1
shift
round=0
while [ "$round" -lt 5 ]; do
    spid=$(cat "$dir/start.pid" 2>/dev/null)
    if [ -n "$spid" ] && grep -aq apache-pulsar.sh "/proc/$spid/cmdline" 2>/dev/null; then
        kill -9 "$spid" 2>/dev/null
    fi
    left=
    for f in "$dir"/*.pid; do
        [ -f "$f" ] && [ "$f" != "$dir/start.pid" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [ -n "$pid" ] || continue
        match=
        for marker in "$@"; do
            [ -n "$marker" ] || continue
            grep -aq -- "$marker" "/proc/$pid/cmdline" 2>/dev/null && match=1
        done
        [ -n "$match" ] || continue
        left=1
        kill -9 "$pid" 2>/dev/null
        i=0
        # Gone, or a zombie nobody has reaped yet (it holds no files any more).
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
            state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
            [ "$state" = Z ] && break
            sleep 0.1; i=$((i + 1))
        done
    done
    [ -z "$spid" ] && [ -z "$left" ] && break
    round=$((round + 1))
    sleep 0.2
done
rm -rf "$dir"
"#;

/// Starts the [`WATCHDOG`] of `dir`: when the test process goes (even by SIGKILL), it kills
/// what `dir`'s pid files name whose command line has one of `markers`, then removes `dir`.
/// Keep the child: dropping its stdin (or the process ending) sets it off.
pub(crate) fn spawn_watchdog(dir: &Path, markers: &[&str]) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(dir)
        .args(markers)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

static SHARED: OnceLock<Result<Broker, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Which broker the tests get by default: `PULSAR_URL` when set, else `PULSAR_WIRE_BROKER`
/// (`lite`, the default, or `apache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The broker at `PULSAR_URL` (nothing is started).
    External(String),
    /// pulsar-lite (the fast default).
    Lite,
    /// Apache Pulsar started by `scripts/apache-pulsar.sh` (`PULSAR_WIRE_BROKER=apache`).
    Apache,
    /// The same behind the Pulsar proxy, whose URL the clients get
    /// (`PULSAR_WIRE_BROKER=apache-proxy`). Suites whose tap rewrites LOOKUP answers
    /// ([`tap::Tap::start`]) cannot run so: the client would no longer name the broker to the
    /// proxy.
    ApacheProxy,
}

/// The default broker selection of this run (see [`Selection`]).
pub fn selection() -> Selection {
    if let Some(url) = external_url() {
        return Selection::External(url);
    }
    match std::env::var("PULSAR_WIRE_BROKER")
        .unwrap_or_default()
        .trim()
    {
        "" | "lite" | "pulsar-lite" => Selection::Lite,
        "apache" => Selection::Apache,
        "apache-proxy" => Selection::ApacheProxy,
        other => {
            panic!("PULSAR_WIRE_BROKER={other}: use lite (the default), apache or apache-proxy")
        }
    }
}

/// The broker of this test binary: `PULSAR_URL` when set; else Apache Pulsar with
/// `PULSAR_WIRE_BROKER=apache` (as [`apache()`]); else a local pulsar-lite started on first use.
/// A started broker is stopped when the test binary ends.
///
/// Tests share it and run in parallel: do not kill or restart it; use
/// [`Broker::start_private`] for that.
pub fn broker() -> &'static Broker {
    match selection() {
        Selection::Apache => return apache(),
        Selection::ApacheProxy => return apache::shared(&ApacheOptions::plain().via_proxy()),
        _ => {}
    }
    let shared = SHARED.get_or_init(|| match external_url() {
        Some(url) => Ok(Broker::external(url)),
        None => std::panic::catch_unwind(Broker::start_local).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the local broker failed to start".to_string())
        }),
    });
    match shared {
        Ok(broker) => broker,
        Err(message) => panic!("{message}"),
    }
}

/// Apache Pulsar, always (whatever `PULSAR_URL` and `PULSAR_WIRE_BROKER` say): a plain
/// standalone shared by the tests of this binary. Fails, saying how to install it, when
/// `scripts/apache-pulsar.sh install` has not been run.
pub fn apache() -> &'static Broker {
    apache::shared(&ApacheOptions::plain())
}

/// Apache Pulsar started with `options` (token auth, TLS, broker.conf keys), shared by the
/// tests of this binary that ask for the same options. Use one set of options per test binary:
/// each is a JVM of its own.
pub fn apache_with(options: &ApacheOptions) -> &'static Broker {
    apache::shared(options)
}

/// A client of `url` with a 10 s operation timeout (the suites' usual one).
pub fn client(url: &str) -> pulsar_wire::PulsarClient {
    pulsar_wire::PulsarClient::builder(url)
        .operation_timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The next message of `c`, failing the test after 15 s.
pub async fn receive(c: &mut pulsar_wire::Consumer) -> pulsar_wire::Message {
    tokio::time::timeout(std::time::Duration::from_secs(15), c.receive())
        .await
        .expect("a message within 15 s")
        .expect("receive")
}

/// A payload of exactly `len` bytes starting `m<i>-`.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut p = format!("m{i}-").into_bytes();
    p.resize(len, b'x');
    p
}

/// A topic name no other test (or earlier run) uses:
/// `persistent://public/default/<prefix>-<pid>-<counter>-<nanos>`.
pub fn unique_topic(prefix: &str) -> String {
    format!("persistent://public/default/{}", unique_name(prefix))
}

/// `<prefix>-<pid>-<counter>-<nanos>`: a name unique across tests, test binaries and runs.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `PULSAR_URL`, when set and not empty.
pub fn external_url() -> Option<String> {
    std::env::var("PULSAR_URL")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A broker the tests talk to: an external one (`PULSAR_URL`) or a local pulsar-lite.
#[derive(Debug)]
pub struct Broker {
    url: String,
    addr: String,
    local: Option<Local>,
    apache: Option<apache::Apache>,
}

/// A broker a test owns or shares (see [`Broker::partitioned`]).
#[derive(Debug)]
pub enum BrokerRef {
    Owned(Box<Broker>),
    Shared(&'static Broker),
}

impl std::ops::Deref for BrokerRef {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        match self {
            BrokerRef::Owned(b) => b,
            BrokerRef::Shared(b) => b,
        }
    }
}

/// A pulsar-lite process, its files and its watchdog.
#[derive(Debug)]
struct Local {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    config: PathBuf,
    db: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
}

impl Broker {
    fn external(url: String) -> Broker {
        let addr = addr_of_url(&url);
        Broker {
            url,
            addr,
            local: None,
            apache: None,
        }
    }

    /// A private broker for a test that kills and restarts it: pulsar-lite, or Apache Pulsar
    /// with `PULSAR_WIRE_BROKER=apache` (one private Apache Pulsar at a time per test binary;
    /// others wait). With `PULSAR_URL` it is pulsar-lite.
    ///
    /// The private Apache Pulsar persists every acknowledgement at once
    /// (`managedLedgerDefaultMarkDeleteRateLimit=0`): by default a cursor's position is written
    /// at most once a second (`ManagedCursorImpl`'s mark-delete rate limiter), so a kill -9
    /// forgets up to a second of acknowledgements and redelivers those messages, which the
    /// fault tests would take for acknowledgements the client lost.
    pub fn start_private() -> Broker {
        match selection() {
            Selection::Apache => apache::private(
                ApacheOptions::plain().config("managedLedgerDefaultMarkDeleteRateLimit", "0"),
            ),
            Selection::ApacheProxy => apache::private(
                ApacheOptions::plain()
                    .via_proxy()
                    .config("managedLedgerDefaultMarkDeleteRateLimit", "0"),
            ),
            _ => Broker::start_local(),
        }
    }

    /// A private Apache Pulsar started with `options`, for a test that kills and restarts it.
    pub fn start_apache(options: ApacheOptions) -> Broker {
        apache::private(options)
    }

    /// A broker on which [`Broker::partitioned_topic`] makes topics of `partitions` partitions:
    /// a private pulsar-lite whose every new topic has them (its only way to make partitioned
    /// topics), or the shared Apache Pulsar with `PULSAR_WIRE_BROKER=apache`.
    pub fn partitioned(partitions: u32) -> BrokerRef {
        match selection() {
            Selection::Apache => BrokerRef::Shared(apache()),
            Selection::ApacheProxy => BrokerRef::Shared(broker()),
            _ => BrokerRef::Owned(Box::new(Broker::start_local_partitioned(partitions))),
        }
    }

    /// A new topic name with `partitions` partitions on this broker: created through the admin
    /// API on Apache Pulsar; on pulsar-lite the broker's `default_partitions` makes them (see
    /// [`Broker::partitioned`]).
    pub fn partitioned_topic(&self, prefix: &str, partitions: u32) -> String {
        let topic = unique_topic(prefix);
        if let Some(apache) = &self.apache {
            let local = topic.trim_start_matches("persistent://");
            let (status, body) = apache.admin(
                "PUT",
                &format!("/admin/v2/persistent/{local}/partitions"),
                Some(&partitions.to_string()),
            );
            assert!(
                (200..300).contains(&status),
                "creating {topic} with {partitions} partitions: HTTP {status} {body}"
            );
        }
        topic
    }

    /// Whether this is an Apache Pulsar the tests started.
    pub fn is_apache(&self) -> bool {
        self.apache.is_some()
    }

    /// The Apache Pulsar the tests started (panics for any other broker).
    pub fn apache(&self) -> &apache::Apache {
        match &self.apache {
            Some(a) => a,
            None => panic!("this test needs an Apache Pulsar started by the tests"),
        }
    }

    /// A `NAME=value` line `scripts/apache-pulsar.sh start` printed (`PULSAR_TOKEN`,
    /// `PULSAR_TLS_URL`, `PULSAR_CA`, `PULSAR_CLIENT_CERT`, ...), for an Apache Pulsar.
    pub fn env(&self, name: &str) -> &str {
        match self.apache().env(name) {
            Some(v) => v,
            None => panic!("the broker has no {name} (was it started with the option for it?)"),
        }
    }

    /// Starts a new private pulsar-lite (whatever `PULSAR_URL` says) on a free loopback port
    /// with a fresh database, and waits until it accepts connections. Dropping it kills it and
    /// removes its files. Panics, with the log tail, if it does not come up within 30 s.
    pub fn start_local() -> Broker {
        let bin = find_binary();
        let dir = std::env::temp_dir().join(format!("pulsar-wire-test-{}", unique_name("broker")));
        if let Err(e) = fs::create_dir(&dir) {
            panic!("cannot create the broker directory {}: {e}", dir.display());
        }
        let config = dir.join("broker.toml");
        if let Err(e) = fs::write(&config, BROKER_TOML) {
            panic!("cannot write {}: {e}", config.display());
        }
        let watchdog = match spawn_watchdog(&dir, &["pulsar-lite"]) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("cannot start the broker watchdog (sh): {e}");
            }
        };
        let local = Local {
            bin,
            port: 0,
            config,
            db: dir.join("db"),
            log: dir.join("broker.log"),
            pid_file: dir.join("broker.pid"),
            dir,
            child: Mutex::new(None),
            watchdog: Mutex::new(Some(watchdog)),
        };
        let mut broker = Broker {
            url: String::new(),
            addr: String::new(),
            local: Some(local),
            apache: None,
        };
        // Another process may take the free port between the probe and the broker's bind: then
        // the broker exits with "Address already in use" and a new port is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            if let Some(local) = broker.local.as_mut() {
                local.port = port;
            }
            broker.addr = format!("127.0.0.1:{port}");
            broker.url = format!("pulsar://127.0.0.1:{port}");
            match broker.local().launch() {
                Ok(()) => return broker,
                Err(Failure::AddrInUse) if attempts < 5 => continue,
                Err(failure) => {
                    let message = broker.local().failure_message("start", failure);
                    drop(broker);
                    panic!("{message}");
                }
            }
        }
    }

    /// The service URL: `pulsar://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for `TcpStream::connect`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The first socket address `addr()` resolves to.
    pub fn socket_addr(&self) -> SocketAddr {
        match self.addr.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => panic!("{} resolves to no address", self.addr),
            Err(e) => panic!("cannot resolve {}: {e}", self.addr),
        }
    }

    /// Whether this is a broker the tests started (false with `PULSAR_URL`).
    pub fn is_local(&self) -> bool {
        self.local.is_some() || self.apache.is_some()
    }

    /// Whether this is a pulsar-lite the tests started.
    pub fn is_lite(&self) -> bool {
        self.local.is_some()
    }

    /// The local broker's port.
    pub fn port(&self) -> Option<u16> {
        self.local.as_ref().map(|l| l.port)
    }

    /// The local pulsar-lite's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.log.as_path())
    }

    /// The `--db-path` prefix of the local broker (`<prefix>.rocksdb/`, `<prefix>.metadata.json`).
    pub fn db_path(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.db.as_path())
    }

    /// The local broker's config file.
    pub fn config_path(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.config.as_path())
    }

    /// The local broker's temporary directory (removed when it stops).
    pub fn dir(&self) -> Option<&Path> {
        match (&self.local, &self.apache) {
            (Some(l), _) => Some(l.dir.as_path()),
            (None, Some(a)) => Some(a.dir()),
            (None, None) => None,
        }
    }

    /// The last `lines` lines of the local broker's log ("" for an external broker).
    pub fn log_tail(&self, lines: usize) -> String {
        match (&self.local, &self.apache) {
            (Some(l), _) => tail(&l.log, lines),
            (None, Some(a)) => tail(&a.log(), lines),
            (None, None) => String::new(),
        }
    }

    /// Whether the local broker process is running (always true for an external broker).
    pub fn is_running(&self) -> bool {
        if let Some(a) = &self.apache {
            return a.is_running();
        }
        match &self.local {
            None => true,
            Some(l) => match lock(&l.child).as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            },
        }
    }

    /// Kills the local broker with SIGKILL (like `kill -9`) and waits until it is gone. Its
    /// database and port stay for [`Broker::restart`]. Panics for an external broker.
    pub fn kill(&self) {
        if let Some(a) = &self.apache {
            return a.kill();
        }
        self.local().kill();
    }

    /// Starts the local broker again on the same port with the same database (killing it
    /// first if it runs) and waits until it accepts connections. Panics for an external broker,
    /// or with the log tail if it does not come up within 30 s.
    pub fn restart(&self) {
        if let Some(a) = &self.apache {
            return a.restart();
        }
        let local = self.local();
        local.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match local.launch() {
                Ok(()) => return,
                // The port can stay busy for a moment after the kill: try again.
                Err(Failure::AddrInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(failure) => panic!("{}", local.failure_message("restart", failure)),
            }
        }
    }

    fn local(&self) -> &Local {
        match &self.local {
            Some(local) => local,
            None => panic!(
                "this test needs a local broker to kill or restart, but the broker is \
                 PULSAR_URL={}; use Broker::start_private()",
                self.url
            ),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(local) = &self.local {
            local.shutdown();
        }
        if let Some(apache) = &self.apache {
            apache.shutdown();
        }
    }
}

/// Why a broker did not come up.
#[derive(Debug)]
enum Failure {
    AddrInUse,
    Exited(String),
    Timeout,
    Spawn(String),
}

impl Local {
    /// Spawns the broker and waits until it is ready.
    fn launch(&self) -> Result<(), Failure> {
        let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Failure::Spawn(format!("cannot open {}: {e}", self.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Failure::Spawn(format!("cannot clone the log handle: {e}")))?;
        let addr = format!("127.0.0.1:{}", self.port);
        let child = Command::new(&self.bin)
            .arg("--addr")
            .arg(&addr)
            .arg("--db-path")
            .arg(&self.db)
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Failure::Spawn(format!("cannot run {}: {e}", self.bin.display())))?;
        let pid = child.id();
        *lock(&self.child) = Some(child);
        self.write_pid(Some(pid));

        let socket: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                self.write_pid(None);
                let log = read_from(&self.log, log_start);
                return Err(
                    if log.contains("AddrInUse") || log.contains("already in use") {
                        Failure::AddrInUse
                    } else {
                        Failure::Exited(status)
                    },
                );
            }
            // Ready: our process still runs, says it listens, and the port accepts. (The log
            // line guards against a foreign listener that took the port before our bind.)
            if read_from(&self.log, log_start).contains("listening on")
                && TcpStream::connect_timeout(&socket, Duration::from_secs(1)).is_ok()
                && self.exit_status().is_none()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(Failure::Timeout);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The exit status if the broker process has exited.
    fn exit_status(&self) -> Option<String> {
        match lock(&self.child).as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("unknown ({e})")),
            None => Some("not started".to_string()),
        }
    }

    fn kill(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.write_pid(None);
    }

    /// Records the broker pid for the watchdog (written whole, then renamed into place).
    fn write_pid(&self, pid: Option<u32>) {
        let tmp = self.dir.join("broker.pid.tmp");
        let text = pid.map(|p| p.to_string()).unwrap_or_default();
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| fs::rename(&tmp, &self.pid_file));
        if let Err(e) = written {
            eprintln!("cannot write {}: {e}", self.pid_file.display());
        }
    }

    fn failure_message(&self, what: &str, failure: Failure) -> String {
        let why = match failure {
            Failure::AddrInUse => format!("port {} stayed in use", self.port),
            Failure::Exited(status) => format!("it exited with {status}"),
            Failure::Timeout => format!(
                "it did not accept connections on 127.0.0.1:{} within {}s",
                self.port,
                START_TIMEOUT.as_secs()
            ),
            Failure::Spawn(e) => e,
        };
        format!(
            "pulsar-lite ({}) failed to {what}: {why}\n--- log tail ({}) ---\n{}",
            self.bin.display(),
            self.log.display(),
            tail(&self.log, 40)
        )
    }

    /// Kills the broker, removes its directory and lets the watchdog go. Never blocks on a lock
    /// and never panics: it also runs from the exit hook.
    fn shutdown(&self) {
        if let Ok(mut child) = self.child.try_lock() {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        } else {
            // Someone holds the lock (a test thread cut short by the exit): leave the broker to
            // the watchdog, which reads the pid file once the process is gone.
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Ok(mut watchdog) = self.watchdog.try_lock() {
            if let Some(mut watchdog) = watchdog.take() {
                drop(watchdog.stdin.take());
                let _ = watchdog.wait();
            }
        }
    }
}

/// The exit hook: `.fini_array` entries run in `exit()`, after `main` returns, while the process
/// and its children are still there, so the shared broker is gone before the test binary is.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".fini_array")]
static STOP_SHARED_BROKER_AT_EXIT: extern "C" fn() = stop_shared_broker_at_exit;

#[cfg(target_os = "linux")]
extern "C" fn stop_shared_broker_at_exit() {
    if let Some(Ok(broker)) = SHARED.get() {
        if let Some(local) = &broker.local {
            local.shutdown();
        }
    }
    apache::stop_shared();
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `PULSAR_LITE_BIN`, or the binary `scripts/setup-broker.sh` installs in `.venv/`.
fn find_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("PULSAR_LITE_BIN").filter(|s| !s.is_empty()) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return bin;
        }
        panic!(
            "PULSAR_LITE_BIN={} does not exist: {HOW_TO_GET_IT}",
            bin.display()
        );
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("pulsar_lite")
                .join("bin")
                .join("pulsar-lite")
        })
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    match found.pop() {
        Some(bin) => bin,
        None => panic!(
            "the pulsar-lite broker binary is missing (not in .venv/lib/python3*/site-packages/\
             pulsar_lite/bin/ and PULSAR_LITE_BIN is not set): {HOW_TO_GET_IT}"
        ),
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free loopback port: {e}"),
    }
}

/// `host:port` of a `pulsar://host:port[/...]` URL (the first host of a multi-host URL).
pub(crate) fn addr_of_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostport = rest.split(['/', ',']).next().unwrap_or(rest);
    if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:6650")
    }
}

/// The file's text from byte `offset` on ("" if unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The last `lines` lines of a file.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = read_from(path, 0);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Broker {
    /// Sends a signal (`STOP`, `CONT`, ...) to the local broker process: `STOP` makes a broker
    /// that keeps its connections open but answers nothing. Panics for an external broker.
    pub fn signal(&self, sig: &str) {
        let dir = self
            .dir()
            .unwrap_or_else(|| panic!("signals need a local broker, not PULSAR_URL"));
        let pid = fs::read_to_string(dir.join("broker.pid"))
            .unwrap_or_else(|e| panic!("cannot read the broker's pid file: {e}"));
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.trim())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{sig} failed");
    }
}

impl Broker {
    /// A private pulsar-lite on which every new topic has `partitions` partitions (the only way
    /// pulsar-lite makes partitioned topics).
    pub fn start_local_partitioned(partitions: u32) -> Broker {
        let broker = Broker::start_local();
        let config = broker
            .config_path()
            .unwrap_or_else(|| panic!("a local broker has a config"));
        let toml = format!(
            "default_partitions = {partitions}\nmax_message_size_bytes = 5242880\n\
             keep_alive_interval_secs = 30\n[metrics]\nenabled = false\n"
        );
        if let Err(e) = fs::write(config, toml) {
            panic!("cannot write the broker config: {e}");
        }
        broker.restart();
        // pulsar-lite falls back to its defaults on a config it cannot read: check it did not.
        let log = broker.log_tail(400);
        assert!(
            log.contains(&format!("Default partitions: {partitions}")),
            "the broker did not take default_partitions = {partitions}:\n{log}"
        );
        broker
    }
}

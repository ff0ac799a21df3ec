//! A private two-broker Apache Pulsar cluster for the chaos tests: `scripts/apache-pulsar.sh
//! start --brokers 2 DIR` (one JVM with ZooKeeper and a bookie, one JVM per broker, all on
//! loopback), in a temporary directory named `pulsar-wire-test-broker-cluster-...` (the prefix
//! `.ci/run`'s leak check looks for; every JVM's command line has it).
//!
//! Every process stops when the [`Cluster`] is dropped (also while a test panics), when the test
//! binary exits normally (an exit hook, for clusters kept in a `static`), and otherwise (a
//! crash, `kill -9` of the test binary) through a watchdog that sees the test process go.
//!
//! The brokers run the modular load manager without shedding: a bundle moves only when it is
//! unloaded ([`Cluster::unload_bundle`] names the other broker as its destination). A topic
//! unload ([`Cluster::unload_topic`]) closes the topic and its producers and consumers
//! (CLOSE_PRODUCER, CLOSE_CONSUMER); Pulsar takes no destination for it, and the topic comes back
//! on the broker that owns its bundle. Deduplication is on (`brokerDeduplicationEnabled`).

use std::collections::HashMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::apache::{run_start_script, topic_path, HOW_TO_GET_APACHE};
use super::{lock, spawn_watchdog, tail, unique_name};

/// The directories of the clusters alive in this test binary, for the exit hook.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The exit hook: a cluster kept in a `static` is never dropped; its JVMs go before the test
/// binary does.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".fini_array")]
static STOP_CLUSTERS_AT_EXIT: extern "C" fn() = stop_clusters_at_exit;

#[cfg(target_os = "linux")]
extern "C" fn stop_clusters_at_exit() {
    let Ok(live) = LIVE.try_lock() else { return };
    for dir in live.iter() {
        let _ = Command::new("bash")
            .arg(script())
            .arg("kill9")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(dir);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/apache-pulsar.sh")
}

fn classpath_file() -> PathBuf {
    let cache = std::env::var_os("PULSAR_WIRE_CACHE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apache-pulsar/target")
        });
    cache.join("pulsar-classpath.txt")
}

/// A two-broker Apache Pulsar cluster (see the module docs). Stops every process on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    env: HashMap<String, String>,
    brokers: usize,
    watchdog: Mutex<Option<Child>>,
    stopped: Mutex<bool>,
}

impl Cluster {
    /// Starts a private two-broker cluster (`apache-pulsar.sh start --brokers 2 DIR`) and waits
    /// until both brokers serve and see each other. Panics with the logs' tails if it does not
    /// come up, and saying how to install Apache Pulsar when it is not installed.
    pub fn start() -> Cluster {
        let cp = classpath_file();
        if !cp.is_file() {
            panic!(
                "this test needs Apache Pulsar, which is not installed (no {}): {HOW_TO_GET_APACHE}",
                cp.display()
            );
        }
        let dir = std::env::temp_dir().join(format!(
            "pulsar-wire-test-{}",
            unique_name("broker-cluster")
        ));
        if let Err(e) = fs::create_dir(&dir) {
            panic!("cannot create the cluster directory {}: {e}", dir.display());
        }
        let watchdog = match spawn_watchdog(&dir, &["org.apache.pulsar."]) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("cannot start the cluster watchdog (sh): {e}");
            }
        };
        lock(&LIVE).push(dir.clone());
        let mut cluster = Cluster {
            dir,
            env: HashMap::new(),
            brokers: 2,
            watchdog: Mutex::new(Some(watchdog)),
            stopped: Mutex::new(false),
        };
        match cluster.run_start(&["--brokers", "2"]) {
            Ok(env) => cluster.env = env,
            Err(why) => {
                let message = cluster.failure_message("start", &why);
                cluster.shutdown();
                panic!("{message}");
            }
        }
        cluster.brokers = cluster
            .env
            .get("PULSAR_BROKERS")
            .and_then(|n| n.parse().ok())
            .unwrap_or(2);
        cluster
    }

    /// `apache-pulsar.sh start [ARGS] DIR`: its NAME=value lines.
    fn run_start(&self, args: &[&str]) -> Result<HashMap<String, String>, String> {
        let env = run_start_script(&self.dir, args)?;
        if !env.contains_key("PULSAR_SERVICE_URL") {
            return Err("apache-pulsar.sh start --brokers printed no PULSAR_SERVICE_URL".into());
        }
        Ok(env)
    }

    fn failure_message(&self, what: &str, why: &str) -> String {
        let mut message = format!(
            "the Apache Pulsar cluster failed to {what}: {why}\n--- apache-pulsar.sh ---\n{}",
            tail(&self.dir.join("start.log"), 30)
        );
        for name in ["meta", "broker-0", "broker-1"] {
            message.push_str(&format!(
                "\n--- {name}.log tail ---\n{}",
                tail(&self.dir.join(format!("{name}.log")), 20)
            ));
        }
        message
    }

    fn required(&self, name: &str) -> &str {
        match self.env.get(name) {
            Some(v) => v,
            None => panic!("apache-pulsar.sh start --brokers printed no {name}"),
        }
    }

    /// The cluster's directory (logs: `meta.log`, `broker-I.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `pulsar://127.0.0.1:A,127.0.0.1:B`: every broker.
    pub fn service_url(&self) -> String {
        self.required("PULSAR_SERVICE_URL").to_string()
    }

    /// Broker 0's admin URL (`http://127.0.0.1:P`).
    pub fn http_url(&self) -> &str {
        self.required("PULSAR_HTTP_URL")
    }

    /// How many brokers (2).
    pub fn brokers(&self) -> usize {
        self.brokers
    }

    /// `pulsar://127.0.0.1:P` of broker `i`.
    pub fn broker_url(&self, i: usize) -> &str {
        self.required(&format!("PULSAR_BROKER_{i}_URL"))
    }

    /// `127.0.0.1:P` of broker `i`'s binary port.
    pub fn broker_addr(&self, i: usize) -> String {
        super::addr_of_url(self.broker_url(i))
    }

    /// Broker `i`'s admin URL.
    pub fn broker_http_url(&self, i: usize) -> &str {
        self.required(&format!("PULSAR_BROKER_{i}_HTTP_URL"))
    }

    /// Broker `i`'s id in the admin API (`127.0.0.1:WEBPORT`: `destinationBroker`).
    pub fn broker_id(&self, i: usize) -> &str {
        self.required(&format!("PULSAR_BROKER_{i}_ID"))
    }

    /// Whether broker `i`'s JVM runs.
    pub fn broker_runs(&self, i: usize) -> bool {
        let Ok(pid) = fs::read_to_string(self.dir.join(format!("broker-{i}.pid"))) else {
            return false;
        };
        fs::read(format!("/proc/{}/cmdline", pid.trim()))
            .map(|c| String::from_utf8_lossy(&c).contains("PulsarBrokerStarter"))
            .unwrap_or(false)
    }

    /// The index of the broker owning `topic` (a non-partitioned topic or one partition), from an
    /// HTTP lookup; `None` when the lookup fails (no broker owns it yet, or none answers).
    pub fn owner(&self, topic: &str) -> Option<usize> {
        let (status, body) = self.try_admin(
            "GET",
            &format!("/lookup/v2/topic/{}", topic_path(topic)),
            None,
        )?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let url = v["brokerUrl"].as_str()?;
        (0..self.brokers).find(|&i| self.broker_url(i) == url)
    }

    /// Unloads `topic` (`PUT /admin/v2/persistent/.../unload`; a partitioned topic's name unloads
    /// every partition): the broker closes it with its producers and consumers. Pulsar takes no
    /// destination broker for a topic: it comes back on the owner of its bundle (see
    /// [`Cluster::unload_bundle`] for a move). A topic not loaded (404) is fine.
    pub fn unload_topic(&self, topic: &str) {
        let path = format!("/admin/v2/{}/unload", topic_path(topic));
        let (status, body) = self.admin("PUT", &path, None);
        assert!(
            (200..300).contains(&status) || status == 404,
            "unloading {topic}: PUT {path} answered {status}: {body}"
        );
    }

    /// The bundle (`0x..._0x...`) of `topic` (a non-partitioned topic or one partition).
    pub fn bundle(&self, topic: &str) -> String {
        let path = format!("/lookup/v2/topic/{}/bundle", topic_path(topic));
        let (status, body) = self.admin("GET", &path, None);
        assert_eq!(status, 200, "the bundle of {topic}: GET {path}: {body}");
        body.trim().trim_matches('"').to_string()
    }

    /// Unloads the namespace bundle holding `topic` (a non-partitioned topic or one partition)
    /// with the other broker than its owner as `destinationBroker` (any running other one): the
    /// bundle, with every topic in it, moves there. Returns the destination's index.
    pub fn unload_bundle(&self, topic: &str) -> usize {
        let bundle = self.bundle(topic);
        let owner = self.owner(topic);
        let dest = (0..self.brokers)
            .find(|&i| Some(i) != owner && self.broker_runs(i))
            .unwrap_or_else(|| panic!("no running broker to move {topic} to (owner {owner:?})"));
        let rest = topic_path(topic);
        let mut parts = rest.split('/').skip(1);
        let (tenant, ns) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let path = format!(
            "/admin/v2/namespaces/{tenant}/{ns}/{bundle}/unload?destinationBroker={}",
            self.broker_id(dest)
        );
        let (status, body) = self.admin("PUT", &path, None);
        assert!(
            (200..300).contains(&status),
            "unloading the bundle of {topic}: PUT {path} answered {status}: {body}"
        );
        dest
    }

    /// SIGKILL of broker `i` (`apache-pulsar.sh kill9 --broker I`), waiting until it is gone.
    pub fn kill9(&self, i: usize) {
        let out = Command::new("bash")
            .arg(script())
            .args(["kill9", "--broker", &i.to_string()])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run apache-pulsar.sh kill9: {e}"));
        assert!(
            out.status.success(),
            "apache-pulsar.sh kill9 --broker {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!self.broker_runs(i), "broker {i} still runs after kill9");
    }

    /// Starts broker `i` again (`apache-pulsar.sh start DIR` starts what is down), on its ports,
    /// and waits until every broker serves and sees the others.
    pub fn restart(&self, i: usize) {
        if let Err(why) = self.run_start(&[]) {
            panic!(
                "{}",
                self.failure_message(&format!("restart broker {i}"), &why)
            );
        }
        assert!(self.broker_runs(i), "broker {i} does not run after restart");
    }

    /// Starts whatever is down (after a test that failed between a kill and a restart).
    pub fn ensure_running(&self) {
        if (0..self.brokers).all(|i| self.broker_runs(i)) {
            return;
        }
        if let Err(why) = self.run_start(&[]) {
            panic!("{}", self.failure_message("start again", &why));
        }
    }

    /// An admin REST call (on broker 0, or on another when broker 0 is down), following
    /// redirects: `(status, body)`. Panics when no broker answers.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.try_admin(method, path, body)
            .unwrap_or_else(|| panic!("no broker of the cluster answers {method} {path}"))
    }

    fn try_admin(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
        for i in 0..self.brokers {
            if !self.broker_runs(i) {
                continue;
            }
            let mut base = self.broker_http_url(i).to_string();
            let mut path = path.to_string();
            for _ in 0..5 {
                match http(&base, method, &path, body) {
                    Ok((status, _, location)) if (300..400).contains(&status) => {
                        let Some(location) = location else { break };
                        let rest = location.trim_start_matches("http://");
                        let (hostport, p) = rest.split_once('/').unwrap_or((rest, ""));
                        base = format!("http://{hostport}");
                        path = format!("/{p}");
                    }
                    Ok((status, body, _)) => return Some((status, body)),
                    Err(_) => break,
                }
            }
        }
        None
    }

    /// Creates `topic` partitioned with `partitions` partitions.
    pub fn create_partitioned(&self, topic: &str, partitions: u32) {
        let path = format!("/admin/v2/{}/partitions", topic_path(topic));
        let (status, body) = self.admin("PUT", &path, Some(&partitions.to_string()));
        assert!(
            (200..300).contains(&status),
            "creating {topic} with {partitions} partitions: PUT {path} answered {status}: {body}"
        );
    }

    /// Kills every JVM, removes the directory and lets the watchdog go. Never panics; a second
    /// call does nothing.
    fn shutdown(&self) {
        match self.stopped.try_lock() {
            Ok(mut stopped) if !*stopped => *stopped = true,
            _ => return,
        }
        let _ = Command::new("bash")
            .arg(script())
            .arg("kill9")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            if let Some(tmp) = option_env!("CARGO_TARGET_TMPDIR") {
                for name in ["broker-0", "broker-1", "meta"] {
                    let kept = Path::new(tmp).join(format!("cluster-{name}.log"));
                    if fs::copy(self.dir.join(format!("{name}.log")), &kept).is_ok() {
                        eprintln!("the cluster's {name} log is kept in {}", kept.display());
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Ok(mut live) = LIVE.try_lock() {
            live.retain(|d| d != &self.dir);
        }
        if let Ok(mut watchdog) = self.watchdog.try_lock() {
            if let Some(mut watchdog) = watchdog.take() {
                drop(watchdog.stdin.take());
                let _ = watchdog.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One HTTP/1.0 request (the body comes whole, never chunked): `(status, body, Location)`.
fn http(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String, Option<String>)> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(hostport)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head}")))?;
    let location = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("location")
            .then(|| value.trim().to_string())
    });
    Ok((status, body.to_string(), location))
}

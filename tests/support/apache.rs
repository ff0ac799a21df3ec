//! Apache Pulsar for the tests: a standalone (broker + bookie + metadata store in one JVM) started
//! through `scripts/apache-pulsar.sh` in a temporary directory named
//! `pulsar-wire-test-broker-apache-...` (the prefix `.ci/run`'s leak check looks for), stopped
//! when the test binary ends by the same exit hook and watchdog as pulsar-lite.
//!
//! It needs `scripts/apache-pulsar.sh install` (Java 17+ and Maven) once; without it the tests
//! that need Apache Pulsar fail saying so.
//!
//! With [`ApacheOptions::proxy`] the Pulsar proxy runs in front of it (its own JVM, `DIR/proxy.pid`,
//! `DIR/proxy.log`; the watchdog and the exit hook end it too): [`Apache::proxy_url`],
//! [`Apache::proxy_tls_url`], and [`Apache::kill_proxy`], [`Apache::kill_broker`] and
//! [`Apache::start_again`] for the fault tests.
//!
//! At most one private Apache Pulsar ([`super::Broker::start_private`]) runs at a time in a test
//! binary: the others wait for it to be dropped (one JVM is ~400 MB and most of a core while
//! it starts).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::{lock, spawn_watchdog, tail, unique_name, Broker};

/// What to do when Apache Pulsar is not installed.
pub const HOW_TO_GET_APACHE: &str =
    "run scripts/apache-pulsar.sh install (it needs a Java 17+ runtime and Maven)";

/// How long [`Apache::compact`] waits for a compaction to finish.
pub const COMPACTION_WAIT: Duration = Duration::from_secs(120);

/// The command-line marker of the standalone JVM, checked before it is killed by pid.
const JVM_MARKER: &str = "PulsarStandaloneStarter";

/// The command-line marker of the proxy JVM (`DIR/proxy.pid`), for the watchdog.
const PROXY_MARKER: &str = "ProxyServiceStarter";

/// How an Apache Pulsar standalone is started: the options of `scripts/apache-pulsar.sh start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ApacheOptions {
    /// `--auth token`: token authentication and authorization (also the TLS client
    /// certificate, `AuthenticationProviderTls`, with `tls`).
    pub token: bool,
    /// `--auth basic`: basic (user and password) authentication and authorization.
    pub basic: bool,
    /// `--tls`: TLS ports beside the plain ones (`PULSAR_TLS_URL`, `PULSAR_HTTPS_URL`).
    pub tls: bool,
    /// `--transactions`.
    pub transactions: bool,
    /// `--proxy`: the Pulsar proxy in front of the standalone (`PULSAR_PROXY_URL`, and
    /// `PULSAR_PROXY_TLS_URL` with `tls`; it authenticates clients and forwards their role
    /// with `token` or `basic`).
    pub proxy: bool,
    /// With `proxy`: the [`Broker`]'s [`url`](Broker::url) and [`addr`](Broker::addr) are the
    /// proxy's (`PULSAR_PROXY_URL`), so that a suite written for any broker runs through it.
    pub via_proxy: bool,
    /// `--config KEY=VALUE` lines of broker.conf.
    pub config: Vec<String>,
}

impl ApacheOptions {
    /// A plain standalone: no authentication, no TLS.
    pub fn plain() -> Self {
        Self::default()
    }

    /// With token authentication.
    pub fn token(mut self) -> Self {
        self.token = true;
        self
    }

    /// With basic authentication (users `admin`, a super user, and `nobody`).
    pub fn basic(mut self) -> Self {
        self.basic = true;
        self
    }

    /// With TLS ports.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// With the Pulsar proxy in front of it.
    pub fn proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    /// With the Pulsar proxy in front of it, and the proxy's URL as the broker's
    /// ([`Broker::url`]).
    pub fn via_proxy(mut self) -> Self {
        self.proxy = true;
        self.via_proxy = true;
        self
    }

    /// With a broker.conf key.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push(format!("{key}={value}"));
        self
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.token {
            args.extend(["--auth".to_string(), "token".to_string()]);
        }
        if self.basic {
            args.extend(["--auth".to_string(), "basic".to_string()]);
        }
        if self.tls {
            args.push("--tls".to_string());
        }
        if self.transactions {
            args.push("--transactions".to_string());
        }
        if self.proxy {
            args.push("--proxy".to_string());
        }
        for kv in &self.config {
            args.extend(["--config".to_string(), kv.clone()]);
        }
        args
    }
}

type Shared = &'static OnceLock<Result<Broker, String>>;

/// The Apache Pulsar standalones shared by the tests of this binary, one per set of options.
static SHARED: OnceLock<Mutex<HashMap<ApacheOptions, Shared>>> = OnceLock::new();

fn shared_map() -> &'static Mutex<HashMap<ApacheOptions, Shared>> {
    SHARED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The Apache Pulsar of this test binary started with `options`, started on first use and
/// stopped when the test binary ends. Tests share it: do not kill or restart it.
pub fn shared(options: &ApacheOptions) -> &'static Broker {
    let cell: Shared = {
        let mut map = lock(shared_map());
        map.entry(options.clone())
            .or_insert_with(|| Box::leak(Box::new(OnceLock::new())))
    };
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(|| Apache::start(options.clone(), None)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "Apache Pulsar failed to start".to_string())
        })
    });
    match result {
        Ok(broker) => broker,
        Err(message) => panic!("{message}"),
    }
}

/// Stops every shared Apache Pulsar (from the exit hook: never blocks, never panics).
pub fn stop_shared() {
    let Some(map) = SHARED.get() else { return };
    let Ok(map) = map.try_lock() else { return };
    for cell in map.values() {
        if let Some(Ok(broker)) = cell.get() {
            if let Some(apache) = &broker.apache {
                apache.shutdown();
            }
        }
    }
}

/// One private Apache Pulsar at a time: a slot held by the private broker until it is dropped.
struct Slots {
    busy: Mutex<bool>,
    freed: Condvar,
}

static SLOTS: Slots = Slots {
    busy: Mutex::new(false),
    freed: Condvar::new(),
};

/// The slot of a running private Apache Pulsar.
#[derive(Debug)]
pub struct Slot(());

impl Slot {
    fn take() -> Slot {
        let mut busy = lock(&SLOTS.busy);
        while *busy {
            busy = SLOTS
                .freed
                .wait(busy)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *busy = true;
        Slot(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&SLOTS.busy) = false;
        SLOTS.freed.notify_one();
    }
}

/// A private Apache Pulsar, for tests that kill and restart it.
pub fn private(options: ApacheOptions) -> Broker {
    let slot = Slot::take();
    Apache::start(options, Some(slot))
}

/// A standalone started by `scripts/apache-pulsar.sh`, its directory and its watchdog.
#[derive(Debug)]
pub struct Apache {
    dir: PathBuf,
    options: ApacheOptions,
    env: HashMap<String, String>,
    watchdog: Mutex<Option<Child>>,
    stopped: Mutex<bool>,
    _slot: Option<Slot>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/apache-pulsar.sh")
}

/// The classpath file `scripts/apache-pulsar.sh install` writes.
fn classpath_file() -> PathBuf {
    let cache = std::env::var_os("PULSAR_WIRE_CACHE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apache-pulsar/target")
        });
    cache.join("pulsar-classpath.txt")
}

impl Apache {
    /// Starts a standalone in a new temporary directory and waits until it is ready. Panics with
    /// the script's and the broker's log tails if it does not come up.
    fn start(options: ApacheOptions, slot: Option<Slot>) -> Broker {
        let cp = classpath_file();
        if !cp.is_file() {
            panic!(
                "this test needs Apache Pulsar, which is not installed (no {}): {HOW_TO_GET_APACHE}",
                cp.display()
            );
        }
        let dir =
            std::env::temp_dir().join(format!("pulsar-wire-test-{}", unique_name("broker-apache")));
        if let Err(e) = fs::create_dir(&dir) {
            panic!("cannot create the broker directory {}: {e}", dir.display());
        }
        let watchdog = match spawn_watchdog(&dir, &[JVM_MARKER, PROXY_MARKER]) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("cannot start the broker watchdog (sh): {e}");
            }
        };
        let mut apache = Apache {
            dir,
            options,
            env: HashMap::new(),
            watchdog: Mutex::new(Some(watchdog)),
            stopped: Mutex::new(false),
            _slot: slot,
        };
        let args = apache.options.args();
        match apache.run_start(&args) {
            Ok(env) => apache.env = env,
            Err(message) => {
                let message = apache.failure_message("start", &message);
                apache.shutdown();
                panic!("{message}");
            }
        }
        let url_name = if apache.options.via_proxy {
            "PULSAR_PROXY_URL"
        } else {
            "PULSAR_URL"
        };
        let url = apache.env(url_name).unwrap_or_default().to_string();
        let addr = super::addr_of_url(&url);
        Broker {
            url,
            addr,
            local: None,
            apache: Some(apache),
        }
    }

    /// `scripts/apache-pulsar.sh start [args] DIR`; its NAME=value lines.
    fn run_start(&self, args: &[String]) -> Result<HashMap<String, String>, String> {
        let env = run_start_script(&self.dir, args)?;
        if !env.contains_key("PULSAR_URL") {
            return Err("apache-pulsar.sh start printed no PULSAR_URL".to_string());
        }
        if self.options.proxy && !env.contains_key("PULSAR_PROXY_URL") {
            return Err("apache-pulsar.sh start --proxy printed no PULSAR_PROXY_URL".to_string());
        }
        Ok(env)
    }

    fn failure_message(&self, what: &str, why: &str) -> String {
        format!(
            "Apache Pulsar failed to {what}: {why}\n--- apache-pulsar.sh ---\n{}\n--- broker.log tail ---\n{}",
            tail(&self.dir.join("start.log"), 30),
            tail(&self.dir.join("broker.log"), 40)
        )
    }

    /// A NAME=value line `start` printed (`PULSAR_TOKEN`, `PULSAR_TLS_URL`, `PULSAR_CA`, ...).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn script_command(&self, command: &str) -> Result<(), String> {
        self.script_command_with(command, &[])
    }

    /// `apache-pulsar.sh COMMAND [ARGS] DIR`.
    fn script_command_with(&self, command: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(script())
            .arg(command)
            .args(args)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apache-pulsar.sh {command}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apache-pulsar.sh {command} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// SIGKILL (`apache-pulsar.sh kill9`), waiting until it is gone; the data stays.
    pub fn kill(&self) {
        if let Err(e) = self.script_command("kill9") {
            panic!("{e}");
        }
    }

    /// Starts it again on the same ports with the same data (killing it first if it runs).
    pub fn restart(&self) {
        self.kill();
        if let Err(why) = self.run_start(&[]) {
            panic!("{}", self.failure_message("restart", &why));
        }
    }

    /// SIGKILL of the standalone only (`apache-pulsar.sh kill9 --broker`): the proxy in front
    /// of it keeps running. [`Apache::start_again`] starts it again.
    pub fn kill_broker(&self) {
        if let Err(e) = self.script_command_with("kill9", &["--broker"]) {
            panic!("{e}");
        }
    }

    /// SIGKILL of the proxy only (`apache-pulsar.sh kill9 --proxy`): the standalone keeps
    /// running. [`Apache::start_again`] starts it again.
    pub fn kill_proxy(&self) {
        if let Err(e) = self.script_command_with("kill9", &["--proxy"]) {
            panic!("{e}");
        }
    }

    /// `apache-pulsar.sh start DIR` again: starts what is down (the standalone, the proxy) on
    /// the same ports with the same data and options, and waits until it is ready.
    pub fn start_again(&self) {
        if let Err(why) = self.run_start(&[]) {
            panic!("{}", self.failure_message("start again", &why));
        }
    }

    /// Whether the JVM runs.
    pub fn is_running(&self) -> bool {
        pid_runs(&self.dir.join("broker.pid"), JVM_MARKER)
    }

    /// Whether the proxy's JVM runs.
    pub fn proxy_is_running(&self) -> bool {
        pid_runs(&self.dir.join("proxy.pid"), PROXY_MARKER)
    }

    /// The pid of the proxy's JVM, if it runs.
    pub fn proxy_pid(&self) -> Option<u32> {
        let pid_file = self.dir.join("proxy.pid");
        if !pid_runs(&pid_file, PROXY_MARKER) {
            return None;
        }
        fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    }

    /// The proxy's log (`DIR/proxy.log`, beside the broker's).
    pub fn proxy_log(&self) -> PathBuf {
        self.dir.join("proxy.log")
    }

    /// `PULSAR_PROXY_URL`: the proxy's plain binary port (panics without `--proxy`).
    pub fn proxy_url(&self) -> &str {
        self.required("PULSAR_PROXY_URL", "proxy")
    }

    /// `PULSAR_PROXY_TLS_URL`: the proxy's TLS binary port (panics without `--proxy --tls`).
    pub fn proxy_tls_url(&self) -> &str {
        self.required("PULSAR_PROXY_TLS_URL", "proxy and tls")
    }

    /// `PULSAR_PROXY_HTTP_URL`: the proxy's HTTP port (`/metrics`, `/proxy-stats`, and the
    /// admin API it forwards to the broker).
    pub fn proxy_http_url(&self) -> &str {
        self.required("PULSAR_PROXY_HTTP_URL", "proxy")
    }

    /// `host:port` of [`Apache::proxy_url`].
    pub fn proxy_addr(&self) -> String {
        super::addr_of_url(self.proxy_url())
    }

    fn required(&self, name: &str, options: &str) -> &str {
        match self.env(name) {
            Some(v) => v,
            None => {
                panic!("no {name}: this Apache Pulsar was not started with the {options} option(s)")
            }
        }
    }

    /// A GET on the proxy's HTTP port: `(status, body)`.
    pub fn proxy_get(&self, path: &str) -> (u16, String) {
        http_get(self.proxy_http_url(), path)
    }

    /// A token for `subject` signed with the broker's key, expiring at `exp` (unix seconds,
    /// may be in the past) or never.
    pub fn mint_token(&self, subject: &str, exp: Option<u64>) -> String {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("token").arg(&self.dir).arg(subject);
        if let Some(exp) = exp {
            cmd.arg(exp.to_string());
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run apache-pulsar.sh token: {e}"));
        assert!(
            out.status.success(),
            "apache-pulsar.sh token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An admin REST call on the plain HTTP port (with the admin token, or the admin user and
    /// password, when auth is on):
    /// `(status, body)`.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let http = self.env("PULSAR_HTTP_URL").unwrap_or_default();
        let hostport = http.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(hostport)
            .unwrap_or_else(|e| panic!("cannot connect to the admin API at {hostport}: {e}"));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let body = body.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = self.env("PULSAR_TOKEN") {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        } else if let (Some(user), Some(password)) = (
            self.env("PULSAR_BASIC_USER"),
            self.env("PULSAR_BASIC_PASSWORD"),
        ) {
            use base64::Engine as _;
            let credentials =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Authorization: Basic {credentials}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("admin request {method} {path}: {e}"));
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .unwrap_or_else(|e| panic!("admin response to {method} {path}: {e}"));
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response to {method} {path}: {text}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// An admin call that must answer 2xx: its body (`what` names it in the failure).
    fn admin_ok(&self, method: &str, path: &str, body: Option<&str>, what: &str) -> String {
        let (status, text) = self.admin(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{what}: {method} {path} answered {status}: {text}"
        );
        text
    }

    /// Compacts `topic` (a persistent topic, or one partition of one: `...-partition-N`):
    /// `PUT .../compaction`, then `GET .../compaction` until the status is SUCCESS. Panics with
    /// the broker's `lastError` when it is ERROR, and when it is not done within
    /// [`COMPACTION_WAIT`] (a liveness bound, not a timing assertion). A compaction already
    /// running (409) is waited for, not started again.
    pub fn compact(&self, topic: &str) {
        let path = format!("/admin/v2/{}/compaction", topic_path(topic));
        let (status, text) = self.admin("PUT", &path, None);
        assert!(
            (200..300).contains(&status) || status == 409,
            "compaction of {topic}: PUT {path} answered {status}: {text}"
        );
        let deadline = std::time::Instant::now() + COMPACTION_WAIT;
        loop {
            let text = self.admin_ok("GET", &path, None, &format!("compaction of {topic}"));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("compaction of {topic}: GET {path} answered a non-JSON body ({e}): {text}")
            });
            match v["status"].as_str() {
                Some("SUCCESS") => return,
                Some("ERROR") => panic!(
                    "compaction of {topic} failed: {}",
                    v["lastError"]
                        .as_str()
                        .unwrap_or("(the broker gave no lastError)")
                ),
                Some("RUNNING") | Some("NOT_RUN") => {}
                _ => panic!("compaction of {topic}: GET {path} answered an unknown status: {text}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "compaction of {topic} not done within {COMPACTION_WAIT:?} (last status: {text})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The topic's latest schema as the registry holds it (`GET
    /// /admin/v2/schemas/{tenant}/{ns}/{topic}/schema`): `{"version", "type", "timestamp",
    /// "data", "properties"}` (`data` is the definition as text; for KEY_VALUE a JSON object of
    /// the key's and the value's schemas), or `None` when the topic has none (404). A partition
    /// name is looked up as its partitioned topic (the registry keeps one schema for all).
    pub fn schema(&self, topic: &str) -> Option<serde_json::Value> {
        self.schema_at(topic, None)
    }

    /// The topic's schema of `version` (`GET .../schema/{version}`), or `None` (404).
    pub fn schema_at(&self, topic: &str, version: Option<i64>) -> Option<serde_json::Value> {
        let mut path = format!("/admin/v2/schemas/{}/schema", schema_path(topic));
        if let Some(v) = version {
            path.push_str(&format!("/{v}"));
        }
        let (status, text) = self.admin("GET", &path, None);
        if status == 404 {
            return None;
        }
        assert!(
            (200..300).contains(&status),
            "schema of {topic}: GET {path} answered {status}: {text}"
        );
        Some(serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("schema of {topic}: GET {path} answered a non-JSON body ({e}): {text}")
        }))
    }

    /// Every version of the topic's schema, oldest first (`GET .../schemas`, each as
    /// [`Apache::schema`] gives one); empty when it has none.
    pub fn schemas(&self, topic: &str) -> Vec<serde_json::Value> {
        let path = format!("/admin/v2/schemas/{}/schemas", schema_path(topic));
        let (status, text) = self.admin("GET", &path, None);
        if status == 404 {
            return Vec::new();
        }
        assert!(
            (200..300).contains(&status),
            "schemas of {topic}: GET {path} answered {status}: {text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("schemas of {topic}: GET {path} answered a non-JSON body ({e}): {text}")
        });
        v["getSchemaResponses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Deletes every version of the topic's schema (`DELETE .../schema`): the next producer
    /// registers its schema as the first again.
    pub fn delete_schema(&self, topic: &str) {
        let path = format!("/admin/v2/schemas/{}/schema", schema_path(topic));
        self.admin_ok(
            "DELETE",
            &path,
            None,
            &format!("deleting the schema of {topic}"),
        );
    }

    /// Sets the namespace's (`tenant/ns`) schema compatibility strategy (`PUT
    /// /admin/v2/namespaces/{tenant}/{ns}/schemaCompatibilityStrategy`): one of
    /// UNDEFINED, ALWAYS_INCOMPATIBLE, ALWAYS_COMPATIBLE, BACKWARD, FORWARD, FULL,
    /// BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, FULL_TRANSITIVE. Use a namespace of the test's
    /// own ([`Apache::create_namespace`]): it applies to every topic of it.
    pub fn set_schema_compatibility(&self, namespace: &str, strategy: &str) {
        let path = format!("/admin/v2/namespaces/{namespace}/schemaCompatibilityStrategy");
        self.admin_ok(
            "PUT",
            &path,
            Some(&format!("\"{strategy}\"")),
            &format!("setting the schema compatibility of {namespace}"),
        );
    }

    /// The namespace's schema compatibility strategy as the broker answers it (a JSON string,
    /// e.g. `"FULL"`; `null` when only the broker's default applies).
    pub fn schema_compatibility(&self, namespace: &str) -> serde_json::Value {
        let path = format!("/admin/v2/namespaces/{namespace}/schemaCompatibilityStrategy");
        let text = self.admin_ok(
            "GET",
            &path,
            None,
            &format!("schema compatibility of {namespace}"),
        );
        if text.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("schema compatibility of {namespace}: a non-JSON body ({e}): {text}")
        })
    }

    /// Creates `tenant/ns` (in the standalone's cluster; an existing one is fine).
    pub fn create_namespace(&self, namespace: &str) {
        let path = format!("/admin/v2/namespaces/{namespace}");
        let (status, text) = self.admin("PUT", &path, None);
        assert!(
            (200..300).contains(&status) || status == 409,
            "creating the namespace {namespace}: PUT {path} answered {status}: {text}"
        );
    }

    /// Kills the JVM, removes the directory and lets the watchdog go. Never panics (it also
    /// runs from the exit hook); a second call does nothing.
    /// A failed test's broker log outlives its directory: copied beside the test binaries.
    fn keep_log(&self) {
        let Some(tmp) = option_env!("CARGO_TARGET_TMPDIR") else {
            return;
        };
        let Some(name) = self.dir.file_name() else {
            return;
        };
        let kept = Path::new(tmp).join(format!("{}.log", name.to_string_lossy()));
        if fs::copy(self.log(), &kept).is_ok() {
            eprintln!("the failed test's broker log is kept in {}", kept.display());
        }
    }

    pub fn shutdown(&self) {
        match self.stopped.try_lock() {
            Ok(mut stopped) if !*stopped => *stopped = true,
            _ => return,
        }
        // kill9 checks that the pid in broker.pid is the standalone before it kills it.
        let _ = self.script_command("kill9");
        if std::thread::panicking() {
            self.keep_log();
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

/// `persistent/tenant/ns/topic` of a topic name (`persistent://tenant/ns/topic`, or a short
/// `topic` in public/default), for the admin paths under `/admin/v2/`.
pub fn topic_path(topic: &str) -> String {
    let (domain, rest) = match topic.split_once("://") {
        Some((domain, rest)) => (domain, rest.to_string()),
        None if topic.contains('/') => ("persistent", topic.to_string()),
        None => ("persistent", format!("public/default/{topic}")),
    };
    assert_eq!(
        rest.split('/').count(),
        3,
        "not a topic name of tenant/namespace/topic: {topic}"
    );
    format!("{domain}/{rest}")
}

/// `tenant/ns/topic` of a topic for `/admin/v2/schemas/`: a partition's name stands for its
/// partitioned topic (the registry keeps one schema for all partitions).
pub fn schema_path(topic: &str) -> String {
    let path = topic_path(topic);
    let rest = path.split_once('/').map_or(path.as_str(), |(_, r)| r);
    match rest.rsplit_once("-partition-") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            base.to_string()
        }
        _ => rest.to_string(),
    }
}

/// The broker log's text (for assertions on what the broker said).
pub fn read_log(apache: &Apache) -> String {
    let mut text = String::new();
    let _ = fs::File::open(apache.log()).and_then(|mut f| f.read_to_string(&mut text));
    text
}

/// Whether the pid in `pid_file` runs and its command line has `marker`.
fn pid_runs(pid_file: &Path, marker: &str) -> bool {
    let Ok(pid) = fs::read_to_string(pid_file) else {
        return false;
    };
    fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .map(|c| String::from_utf8_lossy(&c).contains(marker))
        .unwrap_or(false)
}

/// A GET of `path` on `base` (`http://host:port`): `(status, body)`. HTTP/1.0, so that the body
/// comes whole (never chunked).
fn http_get(base: &str, path: &str) -> (u16, String) {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(hostport)
        .unwrap_or_else(|e| panic!("cannot connect to {hostport}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("the response to GET {base}{path}: {e}"));
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response to GET {base}{path}: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `scripts/apache-pulsar.sh start [ARGS] DIR`, its stderr appended to `DIR/start.log`, its pid
/// in `DIR/start.pid` while it runs (for the watchdog): the NAME=value lines it printed.
pub(crate) fn run_start_script<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
) -> Result<HashMap<String, String>, String> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("start.log"))
        .map_err(|e| format!("cannot open start.log: {e}"))?;
    let child = Command::new("bash")
        .arg(script())
        .arg("start")
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    let _ = fs::write(dir.join("start.pid"), child.id().to_string());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for apache-pulsar.sh: {e}"))?;
    let _ = fs::remove_file(dir.join("start.pid"));
    if !out.status.success() {
        return Err(format!("apache-pulsar.sh start exited with {}", out.status));
    }
    let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(env)
}

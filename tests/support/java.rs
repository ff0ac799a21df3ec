//! The official Java client as a test peer: `pulsarwire.JavaPeer`
//! (tests/apache-pulsar/src/main/java), compiled by `scripts/java-peer.sh build` (which
//! `scripts/apache-pulsar.sh install` runs, and which the first [`Peer::start`] of a test binary
//! runs once: a no-op when nothing changed). Each run is `java pulsarwire.JavaPeer <command>`
//! with one JSON spec on stdin; it prints JSON lines on stdout (see JavaPeer.java and
//! Schemas.java for the commands, the specs and the lines). Used by tests/interop_java.rs,
//! tests/interop_schema.rs and tests/interop_txn.rs.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// How long one Java peer run may print nothing (a JVM start is a few seconds on a busy
/// machine): a liveness bound, not a timing assertion.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// The peer's classes directory and the Apache Pulsar classpath, built once per binary.
pub fn peer_classpath() -> &'static str {
    static CP: OnceLock<Result<String, String>> = OnceLock::new();
    let built = CP.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let how = "run scripts/apache-pulsar.sh install (it needs a JDK 17+ and Maven)";
        let out = std::process::Command::new(root.join("scripts/java-peer.sh"))
            .arg("build")
            .output()
            .map_err(|e| format!("cannot run scripts/java-peer.sh: {e}: {how}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Java peer cannot be built ({}): {how}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or_else(|| format!("scripts/java-peer.sh printed no {name}="))
        };
        let classes = value("PEER_CLASSES")?;
        let cp_file = value("PULSAR_CLASSPATH_FILE")?;
        let cp = std::fs::read_to_string(&cp_file)
            .map_err(|e| format!("cannot read {cp_file}: {e}: {how}"))?;
        Ok(format!("{classes}:{}", cp.trim()))
    });
    match built {
        Ok(cp) => cp,
        Err(message) => panic!("{message}"),
    }
}

/// A running `JavaPeer`: its JSON lines are read as they come.
pub struct Peer {
    command: &'static str,
    child: tokio::process::Child,
    /// Open for a `session`'s commands ([`Peer::call`]).
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    seen: Vec<Value>,
}

impl Peer {
    /// Starts `JavaPeer <command>` with `spec` (plus `url`) on stdin: all of stdin for
    /// `produce` and `consume`, its first line for `session` (then [`Peer::call`]).
    pub async fn start(url: &str, command: &'static str, mut spec: Value) -> Peer {
        spec["url"] = json!(url);
        let mut child = tokio::process::Command::new("java")
            .args([
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Xshare:auto",
                "-Xmx512m",
                "pulsarwire.JavaPeer",
                command,
            ])
            .env("CLASSPATH", peer_classpath())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run java (a JDK 17+ is needed; see scripts/apache-pulsar.sh install): {e}")
            });
        let mut stdin = child.stdin.take().expect("stdin");
        let mut input = serde_json::to_vec(&spec).expect("spec");
        input.push(b'\n');
        let stdin = if command == "session" {
            stdin.write_all(&input).await.expect("write the spec");
            stdin.flush().await.expect("flush the spec");
            Some(stdin)
        } else {
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
            None
        };
        let mut err = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s).await;
            let s = String::from_utf8_lossy(&s).into_owned();
            if s.len() > 6000 {
                format!("...{}", &s[s.len() - 6000..])
            } else {
                s
            }
        });
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Peer {
            command,
            child,
            stdin,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// The next JSON line, or `None` at the end of its output.
    pub async fn next(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(PEER_TIMEOUT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "JavaPeer {} printed nothing for {PEER_TIMEOUT:?}: {:?}",
                    self.command, self.seen
                )
            })
            .expect("read the peer's stdout")?;
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "JavaPeer {} printed a non-JSON line ({e}): {line}",
                self.command
            )
        });
        self.seen.push(value.clone());
        Some(value)
    }

    /// Reads lines until one of `event`.
    pub async fn wait_for(&mut self, event: &str) -> Value {
        while let Some(line) = self.next().await {
            if line["event"] == event {
                return line;
            }
        }
        let lines = std::mem::take(&mut self.seen);
        self.fail(&format!("ended before a {event:?} line"), &lines)
            .await
    }

    /// One `session` command: its `result` line.
    pub async fn call(&mut self, cmd: Value) -> Value {
        let mut line = serde_json::to_vec(&cmd).expect("command");
        line.push(b'\n');
        let stdin = self.stdin.as_mut().expect("a session");
        stdin.write_all(&line).await.expect("write a command");
        stdin.flush().await.expect("flush a command");
        match self.next().await {
            Some(v) if v["event"] == "result" && v["op"] == cmd["op"] => v,
            other => {
                let seen = std::mem::take(&mut self.seen);
                self.fail(&format!("answered {cmd} with {other:?}"), &seen)
                    .await
            }
        }
    }

    /// Like [`Peer::call`], and the operation must have succeeded.
    pub async fn call_ok(&mut self, cmd: Value) -> Value {
        let result = self.call(cmd.clone()).await;
        assert_eq!(result["ok"], true, "JavaPeer failed {cmd}: {result}");
        result
    }

    /// Reads every remaining line (a session is told to close first) and waits for the exit;
    /// panics with the peer's output if it failed. Returns all its lines.
    pub async fn finish(mut self) -> Vec<Value> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"{\"op\":\"close\"}\n").await;
            drop(stdin);
        }
        while self.next().await.is_some() {}
        let status = tokio::time::timeout(PEER_TIMEOUT, self.child.wait())
            .await
            .expect("the peer exits")
            .expect("wait for the peer");
        let lines = std::mem::take(&mut self.seen);
        if !status.success() || !lines.iter().any(|l| l["event"] == "done") {
            self.fail(&format!("failed ({status})"), &lines).await;
        }
        lines
    }

    pub async fn fail(&mut self, what: &str, lines: &[Value]) -> ! {
        let _ = self.child.start_kill();
        let stderr = match self.stderr.take() {
            Some(handle) => handle.await.unwrap_or_default(),
            None => String::new(),
        };
        let shown: Vec<String> = lines.iter().map(short).collect();
        panic!(
            "JavaPeer {} {what}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
            self.command,
            shown.join("\n")
        );
    }
}

/// A line for a failure message (payloads can be megabytes of hex).
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 400 {
        format!("{}... ({} bytes)", &s[..400], s.len())
    } else {
        s
    }
}

/// Runs `JavaPeer <command>` on the broker at `url` to its end; its lines.
pub async fn run(url: &str, command: &'static str, spec: Value) -> Vec<Value> {
    Peer::start(url, command, spec).await.finish().await
}

pub fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

pub fn done(lines: &[Value]) -> &Value {
    events(lines, "done")[0]
}

pub fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {key:?} in {}", short(v)))
}

pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {}", short(v)))
}

/// Payloads as the peer prints them.
pub mod hex {
    pub fn encode(data: &[u8]) -> String {
        data.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Vec<u8> {
        assert!(text.len() % 2 == 0, "odd hex length");
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }
}

//! The `pulsar-wire` binary's TLS and `--auth-plugin` flags on a real Apache Pulsar with token
//! authentication and TLS ports (pulsar-lite checks neither): the official CLI's
//! `AuthenticationToken` parameter forms (`token:`, `file:`, the bare token) and a wrong
//! token, `AuthenticationTls` (mutual TLS, the broker's `AuthenticationProviderTls`) and the
//! broker's TLS port with an untrusted CA.
//!
//! One standalone for the binary, started by `scripts/apache-pulsar.sh start --auth token
//! --tls` (run `scripts/apache-pulsar.sh install` once). `admin` (the `PULSAR_TOKEN` subject)
//! and `client` (the CN of `PULSAR_CLIENT_CERT`) are super users.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::cli::{failed, run_command, text};
use support::{ApacheOptions, Broker};

const BIN: &str = env!("CARGO_BIN_EXE_pulsar-wire");
const TOKEN_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.AuthenticationToken";
const TLS_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.AuthenticationTls";

fn broker() -> &'static Broker {
    support::apache_with(&ApacheOptions::plain().token().tls())
}

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_command(cmd, Duration::from_secs(90))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Produces 2 messages and consumes them back, both with the connection flags `flags`.
fn round_trip(url: &str, flags: &[&str]) {
    let topic = support::unique_topic("cli-secure");
    let mut args = vec![
        "produce", "--url", url, "--topic", &topic, "-m", "m-{i}", "-n", "2",
    ];
    args.extend_from_slice(flags);
    let stdout = ok(&run(&args));
    assert!(stdout.starts_with("produced 2 messages"), "{stdout}");
    let mut args = vec![
        "consume",
        "--url",
        url,
        "--topic",
        &topic,
        "-s",
        "s",
        "--initial",
        "earliest",
        "-n",
        "2",
        "--timeout",
        "30",
    ];
    args.extend_from_slice(flags);
    let stdout = ok(&run(&args));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["m-0", "m-1"],
        "{stdout}"
    );
}

#[test]
fn the_token_plugin_takes_token_file_and_bare_token_params() {
    let b = broker();
    let token = b.env("PULSAR_TOKEN");
    let inline = format!("token:{token}");
    round_trip(
        b.url(),
        &["--auth-plugin", TOKEN_PLUGIN, "--auth-params", &inline],
    );
    round_trip(
        b.url(),
        &["--auth-plugin", TOKEN_PLUGIN, "--auth-params", token],
    );
    let dir = std::env::temp_dir().join(support::unique_name("cli-token"));
    std::fs::create_dir(&dir).expect("token dir");
    let file = dir.join("admin.jwt");
    std::fs::write(&file, format!("{token}\n")).expect("token file");
    let params = format!("file://{}", file.display());
    round_trip(
        b.url(),
        &["--auth-plugin", TOKEN_PLUGIN, "--auth-params", &params],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_token_through_the_plugin_fails_with_one_error_line() {
    let b = broker();
    let good = b.env("PULSAR_TOKEN");
    let (unsigned, _) = good.rsplit_once('.').expect("a JWT");
    let wrong = format!("token:{unsigned}.AAAA");
    let out = run(&[
        "produce",
        "--url",
        b.url(),
        "--topic",
        &support::unique_topic("cli-wrong"),
        "-m",
        "x",
        "--auth-plugin",
        TOKEN_PLUGIN,
        "--auth-params",
        &wrong,
    ]);
    let line = failed(&out);
    assert!(line.contains("AuthenticationError"), "{line}");
}

#[test]
fn the_brokers_tls_port_with_the_trust_certs_file_and_a_token() {
    let b = broker();
    let inline = format!("token:{}", b.env("PULSAR_TOKEN"));
    round_trip(
        b.env("PULSAR_TLS_URL"),
        &[
            "--tls-trust-certs-file",
            b.env("PULSAR_CA"),
            "--auth-plugin",
            TOKEN_PLUGIN,
            "--auth-params",
            &inline,
        ],
    );
}

#[test]
fn mutual_tls_with_the_tls_plugin_in_both_param_forms() {
    let b = broker();
    let (cert, key) = (b.env("PULSAR_CLIENT_CERT"), b.env("PULSAR_CLIENT_KEY"));
    let pairs = format!("tlsCertFile:{cert},tlsKeyFile:{key}");
    let json = serde_json::json!({ "tlsCertFile": cert, "tlsKeyFile": key }).to_string();
    for params in [&pairs, &json] {
        round_trip(
            b.env("PULSAR_TLS_URL"),
            &[
                "--tls-trust-certs-file",
                b.env("PULSAR_CA"),
                "--auth-plugin",
                TLS_PLUGIN,
                "--auth-params",
                params,
            ],
        );
    }
}

#[test]
fn the_brokers_tls_port_with_an_untrusted_ca_fails_with_one_error_line() {
    let b = broker();
    let other = support::tls::Pki::new(&["localhost"]);
    let other_ca = other.other_ca.to_string_lossy().into_owned();
    let inline = format!("token:{}", b.env("PULSAR_TOKEN"));
    let out = run(&[
        "produce",
        "--url",
        b.env("PULSAR_TLS_URL"),
        "--topic",
        "t",
        "-m",
        "x",
        "--operation-timeout",
        "3",
        "--tls-trust-certs-file",
        &other_ca,
        "--auth-plugin",
        TOKEN_PLUGIN,
        "--auth-params",
        &inline,
    ]);
    let line = failed(&out);
    assert!(
        line.contains("certificate not trusted") && line.contains("--tls-trust-certs-file"),
        "{line}"
    );
}

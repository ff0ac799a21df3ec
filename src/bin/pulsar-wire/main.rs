//! `pulsar-wire`: a command line for Apache Pulsar on the pulsar-wire client.
//!
//! ```text
//! pulsar-wire produce --url pulsar://localhost:6650 --topic my-topic -m 'hello {i}' -n 10
//! pulsar-wire consume --url pulsar://localhost:6650 --topic my-topic -s my-sub -n 10 --json
//! pulsar-wire perf produce --url pulsar://localhost:6650 --topic perf --size 1024 --duration 10
//! pulsar-wire perf consume --url pulsar://localhost:6650 --topic perf -s perf-sub --expect 100000
//! pulsar-wire perf transaction --url pulsar://localhost:6650 --consume-topic in --produce-topic out \
//!     --prefill 10000 --nmc 1 --nmp 1 --duration 10
//! ```
//!
//! Errors are one `error: ...` line on stderr and exit code 1 (2 for a bad command line).
//! Logs go to stderr at `warn`; `RUST_LOG` overrides (e.g. `RUST_LOG=pulsar_wire=debug`).

mod auth_plugin;
mod common;
mod consume;
mod json;
mod perf;
mod produce;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::common::{CliError, CliResult};

/// Produce and consume Apache Pulsar messages.
#[derive(Parser, Debug)]
#[command(name = "pulsar-wire", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Send messages to a topic.
    Produce(produce::ProduceArgs),
    /// Receive messages from a subscription, print and acknowledge them.
    Consume(consume::ConsumeArgs),
    /// Measure produce, consume or transaction throughput and latency.
    Perf(perf::PerfArgs),
}

/// Logs of the library on stderr: `warn` and up unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Produce(args) => block_on(produce::run(args)),
        Command::Consume(args) => block_on(consume::run(args)),
        // perf picks its own runtime (--threads).
        Command::Perf(args) => perf::run(args),
    }
}

/// Runs a subcommand on a current-thread runtime.
fn block_on(command: impl std::future::Future<Output = CliResult<()>>) -> CliResult<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(command)
}

/// Prints one `error: ...` line on stderr (ignoring a closed stderr).
fn report(message: impl std::fmt::Display) {
    let text = CliError(message.to_string()).to_string();
    let _ = writeln!(std::io::stderr().lock(), "error: {text}");
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        report(format_args!("internal error (please report it): {info}"));
    }));
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(e);
            ExitCode::FAILURE
        }
    }
}

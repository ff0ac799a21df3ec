//! What every subcommand shares: the connection options, the error type and value parsers.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pulsar_wire::{PulsarClient, Transaction};

/// The longest a CLI connection attempt (TCP and handshake) may take.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An error of a subcommand: printed as one `error: ...` line, then the process exits with 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying message holds.
        let mut first = true;
        for line in self.0.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(line)?;
        }
        Ok(())
    }
}

impl From<pulsar_wire::Error> for CliError {
    fn from(e: pulsar_wire::Error) -> Self {
        CliError(e.to_string())
    }
}

/// A subcommand's result.
pub type CliResult<T> = Result<T, CliError>;

/// Wraps a library error with what was being done: `"{what}: {error}"`.
pub fn context(what: impl fmt::Display) -> impl FnOnce(pulsar_wire::Error) -> CliError {
    move |e| CliError(format!("{what}: {e}"))
}

/// How to reach and authenticate to the broker.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker's service URL, e.g. pulsar://localhost:6650 (default: $PULSAR_URL).
    #[arg(long, value_name = "URL", env = "PULSAR_URL", hide_env_values = true)]
    pub url: String,

    /// Authenticate with this token (JWT).
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,

    /// Authenticate with the token in this file (read on every connection).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// How long a broker operation (lookup, producer or consumer creation) may take, in
    /// seconds; an unreachable broker fails after about this long.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub operation_timeout: Duration,
}

impl ConnectArgs {
    /// A client for these options. Checks the URL and that the token file is readable; it
    /// connects on first use.
    pub fn client(&self) -> CliResult<PulsarClient> {
        let mut builder = PulsarClient::builder(self.url.clone())
            .operation_timeout(self.operation_timeout)
            .connect_timeout(self.operation_timeout.min(MAX_CONNECT_TIMEOUT));
        if let Some(token) = &self.token {
            if token.trim().is_empty() {
                return Err(CliError("--token is empty".into()));
            }
            builder = builder.token(token.trim());
        } else if let Some(path) = &self.token_file {
            match std::fs::read_to_string(path) {
                Ok(t) if t.trim().is_empty() => {
                    return Err(CliError(format!(
                        "the token file {} is empty",
                        path.display()
                    )))
                }
                Ok(_) => builder = builder.token_from_file(path.clone()),
                Err(e) => {
                    return Err(CliError(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Ok(builder.build()?)
    }
}

/// How `--transaction` ends the transaction of a `produce` or `consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TxnEnd {
    /// Commit: the messages become visible, the acknowledgements take effect.
    Commit,
    /// Abort: the messages are discarded, the acknowledged messages stay on the subscription.
    Abort,
}

/// The transaction options of `produce` and `consume`.
#[derive(Args, Debug, Clone)]
pub struct TxnArgs {
    /// Do everything in one transaction, then commit or abort it.
    #[arg(long, value_enum, value_name = "END")]
    pub transaction: Option<TxnEnd>,

    /// How long the transaction may stay open, in seconds (the broker aborts it after that).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_positive_secs, requires = "transaction")]
    pub txn_timeout: Duration,
}

impl TxnArgs {
    /// Opens the transaction when `--transaction` was given.
    pub async fn open(&self, client: &PulsarClient) -> CliResult<Option<Transaction>> {
        if self.transaction.is_none() {
            return Ok(None);
        }
        client
            .new_transaction()
            .timeout(self.txn_timeout)
            .build()
            .await
            .map(Some)
            .map_err(context("cannot open a transaction"))
    }
}

/// Ends `txn` as `end` says; the message says what was done (`committed transaction (1,7)`).
pub async fn end_transaction(txn: &Transaction, end: TxnEnd) -> CliResult<String> {
    let id = txn.id();
    match end {
        TxnEnd::Commit => txn
            .commit()
            .await
            .map(|()| format!("committed transaction {id}"))
            .map_err(context(format_args!("committing transaction {id} failed"))),
        TxnEnd::Abort => txn
            .abort()
            .await
            .map(|()| format!("aborted transaction {id}"))
            .map_err(context(format_args!("aborting transaction {id} failed"))),
    }
}

/// Aborts `txn` after a failure; what to append to the error (`; transaction (1,7) aborted`).
pub async fn abort_after_failure(txn: &Transaction) -> String {
    let id = txn.id();
    match txn.abort().await {
        Ok(()) => format!("; transaction {id} aborted"),
        Err(e) => format!("; aborting transaction {id} failed too: {e}"),
    }
}

/// Parses a number of seconds above zero (fractions allowed).
pub fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    match parse_secs(s)? {
        d if d.is_zero() => Err("must be above zero".into()),
        d => Ok(d),
    }
}

/// Parses a number of seconds, zero or more (fractions allowed).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

/// Formats a duration in seconds for messages: `30 s`, `0.5 s`.
pub fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line() {
        let e = CliError("first\n  second\n\nthird".into());
        assert_eq!(e.to_string(), "first second third");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_positive_secs("0").is_err());
        assert_eq!(secs(Duration::from_secs(30)), "30 s");
    }
}

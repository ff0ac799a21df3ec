//! What every subcommand shares: the connection options, the error type and value parsers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use pulsar_wire::{ClientBuilder, PulsarClient, Transaction};

use crate::auth_plugin::{self, AuthPlugin, TokenSource};

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
        CliError(with_flag_names(&e.to_string()))
    }
}

/// The library's TLS advice names its builder methods; on the command line, the flags.
fn with_flag_names(message: &str) -> String {
    [
        (
            "tls_validate_hostname(false)",
            "--tls-hostname-verification false",
        ),
        ("tls_trust_certs_file", "--tls-trust-certs-file"),
        (
            "tls_certificate_and_key",
            "--tls-cert-file and --tls-key-file",
        ),
    ]
    .iter()
    .fold(message.to_owned(), |m, (from, to)| m.replace(from, to))
}

/// A subcommand's result.
pub type CliResult<T> = Result<T, CliError>;

/// Wraps a library error with what was being done: `"{what}: {error}"`.
pub fn context(what: impl fmt::Display) -> impl FnOnce(pulsar_wire::Error) -> CliError {
    move |e| CliError(format!("{what}: {}", with_flag_names(&e.to_string())))
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

    /// TLS: the PEM file of the CA certificates that signed the broker's certificate (default:
    /// the system's trusted roots).
    #[arg(long, value_name = "FILE")]
    pub tls_trust_certs_file: Option<PathBuf>,

    /// TLS: the client certificate chain (PEM) for brokers that require one; needs
    /// --tls-key-file.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// TLS: the private key (PEM) of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// TLS, dangerous: accept any broker certificate (no chain or host name check). For tests.
    #[arg(long)]
    pub tls_allow_insecure_connection: bool,

    /// TLS: whether the broker certificate must name the host connected to.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_hostname_verification: bool,

    /// The authentication plugin, as the official CLI names it:
    /// org.apache.pulsar.client.impl.auth.AuthenticationToken, ...AuthenticationTls,
    /// ...AuthenticationBasic, ...oauth2.AuthenticationOAuth2 (or token, tls, basic, oauth2).
    #[arg(long, value_name = "CLASS", conflicts_with_all = ["token", "token_file"])]
    pub auth_plugin: Option<String>,

    /// The plugin's parameters: token:TOKEN, file:///PATH or env:VAR for AuthenticationToken;
    /// tlsCertFile:CERT,tlsKeyFile:KEY (or JSON) for AuthenticationTls; JSON for the others
    /// ({"userId":..,"password":..} for AuthenticationBasic; {"issuerUrl":..,"privateKey":
    /// "file:///KEY.json","audience":..,"scope":..} for AuthenticationOAuth2).
    #[arg(long, value_name = "STRING")]
    pub auth_params: Option<String>,

    /// The broker listener (of its advertisedListeners) whose addresses lookups should give.
    #[arg(long, value_name = "NAME")]
    pub listener_name: Option<String>,
}

/// Fails unless `path` is a readable file; `what` names it in the message.
fn readable(what: &str, path: &Path) -> CliResult<()> {
    match std::fs::File::open(path) {
        Ok(_) if path.is_dir() => Err(CliError(format!(
            "{what} {} is a directory, not a file",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(CliError(format!(
            "cannot read {what} {}: {e}",
            path.display()
        ))),
    }
}

impl ConnectArgs {
    /// A client for these options. Checks the URL, the TLS and authentication options and that
    /// the files they name are readable; it connects on first use.
    pub fn client(&self) -> CliResult<PulsarClient> {
        let mut builder = PulsarClient::builder(self.url.clone())
            .operation_timeout(self.operation_timeout)
            .connect_timeout(self.connect_timeout());
        if let Some(token) = &self.token {
            if token.trim().is_empty() {
                return Err(CliError("--token is empty".into()));
            }
            builder = builder.token(token.trim());
        } else if let Some(path) = &self.token_file {
            builder = builder.token_from_file(token_file(path)?);
        }
        builder = self.tls(builder)?;
        builder = self.auth_plugin(builder)?;
        if let Some(name) = &self.listener_name {
            if name.trim().is_empty() {
                return Err(CliError(
                    "--listener-name is empty: give one of the broker's advertisedListeners names"
                        .into(),
                ));
            }
            builder = builder.listener_name(name.trim());
        }
        Ok(builder.build()?)
    }

    /// The --tls-* options.
    fn tls(&self, mut builder: ClientBuilder) -> CliResult<ClientBuilder> {
        if let Some(path) = &self.tls_trust_certs_file {
            readable("the --tls-trust-certs-file", path)?;
            builder = builder.tls_trust_certs_file(path.clone());
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => {
                readable("the --tls-cert-file", cert)?;
                readable("the --tls-key-file", key)?;
                builder = builder.tls_certificate_and_key(cert.clone(), key.clone());
            }
            (Some(_), None) => {
                return Err(CliError(
                    "--tls-cert-file needs --tls-key-file: give the private key of the client \
                     certificate too"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CliError(
                    "--tls-key-file needs --tls-cert-file: give the client certificate too".into(),
                ))
            }
            (None, None) => {}
        }
        Ok(builder
            .tls_allow_insecure_connection(self.tls_allow_insecure_connection)
            .tls_validate_hostname(self.tls_hostname_verification))
    }

    /// --auth-plugin and --auth-params.
    fn auth_plugin(&self, builder: ClientBuilder) -> CliResult<ClientBuilder> {
        let Some(class) = &self.auth_plugin else {
            if self.auth_params.is_some() {
                return Err(CliError(
                    "--auth-params needs --auth-plugin: name the plugin the parameters are for \
                     (e.g. org.apache.pulsar.client.impl.auth.AuthenticationToken)"
                        .into(),
                ));
            }
            return Ok(builder);
        };
        Ok(
            match auth_plugin::parse(class, self.auth_params.as_deref())? {
                AuthPlugin::Token(TokenSource::Inline(token)) => builder.token(token),
                AuthPlugin::Token(TokenSource::File(path)) => {
                    builder.token_from_file(token_file(&path)?)
                }
                AuthPlugin::Token(TokenSource::Env(var)) => match std::env::var(&var) {
                    Ok(t) if !t.trim().is_empty() => builder.token_from_env(var),
                    _ => {
                        return Err(CliError(format!(
                        "--auth-params env:{var}: the environment variable {var} holds no token"
                    )))
                    }
                },
                AuthPlugin::Tls { cert, key } => {
                    if self.tls_cert_file.is_some() {
                        return Err(CliError(
                            "give the client certificate once: either --tls-cert-file and \
                         --tls-key-file, or --auth-plugin AuthenticationTls with its \
                         --auth-params"
                                .into(),
                        ));
                    }
                    readable("the tlsCertFile", &cert)?;
                    readable("the tlsKeyFile", &key)?;
                    builder.tls_authentication(cert, key)
                }
                AuthPlugin::Basic { user, password } => {
                    builder.authentication(pulsar_wire::BasicAuth::new(user, password))
                }
                AuthPlugin::OAuth2(params) => builder.authentication(self.oauth2(params)?),
            },
        )
    }
}

impl ConnectArgs {
    /// How long a connection's handshake may take.
    fn connect_timeout(&self) -> Duration {
        self.operation_timeout.min(MAX_CONNECT_TIMEOUT)
    }

    /// `AuthenticationOAuth2`: client credentials from the issuer's token server, fetched
    /// within the handshake's time.
    #[cfg(feature = "http")]
    fn oauth2(
        &self,
        params: auth_plugin::OAuth2Params,
    ) -> CliResult<pulsar_wire::OAuth2ClientCredentials> {
        let fetch_timeout = pulsar_wire::OAuth2ClientCredentials::DEFAULT_FETCH_TIMEOUT
            .min(self.connect_timeout().mul_f64(0.8))
            .max(Duration::from_millis(100));
        let mut builder = pulsar_wire::OAuth2ClientCredentials::builder(params.issuer_url)
            .credentials_url(params.private_key)
            .fetch_timeout(fetch_timeout);
        if let Some(audience) = params.audience {
            builder = builder.audience(audience);
        }
        if let Some(scope) = params.scope {
            builder = builder.scope(scope);
        }
        if let Some(ca) = params.trust_certs_file {
            readable("the trustCertsFilePath of --auth-params", &ca)?;
            builder = builder.trust_certs_file(ca);
        }
        builder
            .build()
            .map_err(|e| CliError(format!("--auth-params of AuthenticationOAuth2: {e}")))
    }

    #[cfg(not(feature = "http"))]
    fn oauth2(&self, _params: auth_plugin::OAuth2Params) -> CliResult<pulsar_wire::TokenAuth> {
        Err(CliError(
            "--auth-plugin AuthenticationOAuth2 needs the http feature, which this build \
             leaves out: build with --features cli,http"
                .into(),
        ))
    }
}

/// Checks that a token file is readable and not empty.
fn token_file(path: &Path) -> CliResult<PathBuf> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Err(CliError(format!(
            "the token file {} is empty",
            path.display()
        ))),
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) => Err(CliError(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))),
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

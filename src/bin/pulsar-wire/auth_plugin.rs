//! `--auth-plugin CLASS --auth-params STRING` as the official `pulsar-client` CLI takes them:
//! the Java class names of the authentication plugins and their parameter strings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{CliError, CliResult};

/// The Java token plugin.
pub const TOKEN_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.AuthenticationToken";
/// The Java TLS (client certificate) plugin.
pub const TLS_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.AuthenticationTls";
/// The Java basic (user and password) plugin.
pub const BASIC_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.AuthenticationBasic";
/// The Java OAuth2 plugin.
pub const OAUTH2_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationOAuth2";
/// The Java OAuth2 factory, which the CLI also accepts as a plugin name.
pub const OAUTH2_FACTORY: &str =
    "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationFactoryOAuth2";

/// Where a token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The token itself (`token:...`, `data:...` or the bare token).
    Inline(String),
    /// A file holding it (`file:...`), read on every connection.
    File(PathBuf),
    /// An environment variable holding it (`env:NAME`), read on every connection.
    Env(String),
}

/// An authentication plugin with its parameters, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPlugin {
    /// `AuthenticationToken`.
    Token(TokenSource),
    /// `AuthenticationTls`: the client certificate and its key.
    Tls {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
    /// `AuthenticationBasic`.
    Basic {
        /// The user name (`userId`).
        user: String,
        /// The password.
        password: String,
    },
    /// `AuthenticationOAuth2` (client credentials).
    OAuth2(OAuth2Params),
}

/// The parameters of `AuthenticationOAuth2` (`AuthenticationFactoryOAuth2.clientCredentials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Params {
    /// The issuer URL (`issuerUrl`).
    pub issuer_url: String,
    /// The credentials file URL or data (`privateKey`).
    pub private_key: String,
    /// The audience, if given.
    pub audience: Option<String>,
    /// The scope, if given.
    pub scope: Option<String>,
    /// The CA file of the token server (`trustCertsFilePath`), if given.
    pub trust_certs_file: Option<PathBuf>,
}

/// The plugin named `class` (a Java class name, or `token`, `tls`, `basic`, `oauth2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Tls,
    Basic,
    OAuth2,
}

fn kind(class: &str) -> CliResult<Kind> {
    let class = class.trim();
    let kind = match class {
        TOKEN_PLUGIN => Kind::Token,
        TLS_PLUGIN => Kind::Tls,
        BASIC_PLUGIN => Kind::Basic,
        OAUTH2_PLUGIN | OAUTH2_FACTORY => Kind::OAuth2,
        _ => match class.to_ascii_lowercase().as_str() {
            "token" => Kind::Token,
            "tls" => Kind::Tls,
            "basic" => Kind::Basic,
            "oauth2" => Kind::OAuth2,
            _ => {
                return Err(CliError(format!(
                    "unknown --auth-plugin {class:?}: use {TOKEN_PLUGIN}, {TLS_PLUGIN}, \
                     {BASIC_PLUGIN} or {OAUTH2_PLUGIN} (or token, tls, basic, oauth2)"
                )))
            }
        },
    };
    Ok(kind)
}

/// Parses `--auth-plugin CLASS` with its `--auth-params`.
pub fn parse(class: &str, params: Option<&str>) -> CliResult<AuthPlugin> {
    let kind = kind(class)?;
    let params = params.map(str::trim).filter(|p| !p.is_empty());
    match kind {
        Kind::Token => {
            let params = params.ok_or_else(|| {
                CliError(
                    "--auth-plugin AuthenticationToken needs --auth-params: token:TOKEN, \
                     file:PATH, env:VARIABLE or the token itself"
                        .into(),
                )
            })?;
            token(params).map(AuthPlugin::Token)
        }
        Kind::Tls => {
            let map = params_map("AuthenticationTls", params.unwrap_or(""))?;
            let cert = map.get("tlsCertFile");
            let key = map.get("tlsKeyFile");
            match (cert, key) {
                (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => {
                    Ok(AuthPlugin::Tls {
                        cert: PathBuf::from(cert),
                        key: PathBuf::from(key),
                    })
                }
                _ => Err(CliError(
                    "--auth-plugin AuthenticationTls needs --auth-params \
                     tlsCertFile:CERT.pem,tlsKeyFile:KEY.pem (or the JSON form \
                     {\"tlsCertFile\":...,\"tlsKeyFile\":...})"
                        .into(),
                )),
            }
        }
        Kind::Basic => {
            let map = params_map("AuthenticationBasic", params.unwrap_or(""))?;
            match (map.get("userId"), map.get("password")) {
                (Some(user), Some(password)) if !user.is_empty() => Ok(AuthPlugin::Basic {
                    user: user.clone(),
                    password: password.clone(),
                }),
                _ => Err(CliError(
                    "--auth-plugin AuthenticationBasic needs --auth-params \
                     {\"userId\":USER,\"password\":PASSWORD} (or userId:USER,password:PASSWORD)"
                        .into(),
                )),
            }
        }
        Kind::OAuth2 => {
            let map = params_map("AuthenticationOAuth2", params.unwrap_or(""))?;
            // As the Java AuthenticationOAuth2.configure: client_credentials is the only type.
            if let Some(other) = map
                .get("type")
                .filter(|t| t.as_str() != "client_credentials")
            {
                return Err(CliError(format!(
                    "--auth-params of AuthenticationOAuth2: type {other:?} is not supported \
                     (only \"client_credentials\")"
                )));
            }
            let given = |key: &str| map.get(key).filter(|v| !v.trim().is_empty()).cloned();
            match (map.get("issuerUrl"), map.get("privateKey")) {
                (Some(issuer), Some(key)) if !issuer.is_empty() && !key.is_empty() => {
                    Ok(AuthPlugin::OAuth2(OAuth2Params {
                        issuer_url: issuer.clone(),
                        private_key: key.clone(),
                        audience: given("audience"),
                        scope: given("scope"),
                        trust_certs_file: given("trustCertsFilePath").map(PathBuf::from),
                    }))
                }
                _ => Err(CliError(
                    "--auth-plugin AuthenticationOAuth2 needs --auth-params \
                     {\"issuerUrl\":URL,\"privateKey\":file:///CREDENTIALS.json,\
                     \"audience\":AUDIENCE}"
                        .into(),
                )),
            }
        }
    }
}

/// `AuthenticationToken.configure`: `token:`, `data:`, `file:` and `env:` prefixes, else the
/// whole string is the token.
fn token(params: &str) -> CliResult<TokenSource> {
    let empty = |what: &str| CliError(format!("--auth-params {what} is empty"));
    if let Some(t) = params
        .strip_prefix("token:")
        .or_else(|| params.strip_prefix("data:"))
    {
        let t = t.trim();
        if t.is_empty() {
            return Err(empty("token:"));
        }
        Ok(TokenSource::Inline(t.to_owned()))
    } else if let Some(path) = params.strip_prefix("file:") {
        Ok(TokenSource::File(file_url_path(path)?))
    } else if let Some(var) = params.strip_prefix("env:") {
        if var.trim().is_empty() {
            return Err(empty("env:"));
        }
        Ok(TokenSource::Env(var.trim().to_owned()))
    } else {
        Ok(TokenSource::Inline(params.to_owned()))
    }
}

/// The path of a `file:` URL's rest: `///abs/path`, `//localhost/abs/path`, `/abs/path` or a
/// relative path.
fn file_url_path(rest: &str) -> CliResult<PathBuf> {
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            if !host.is_empty() && host != "localhost" {
                return Err(CliError(format!(
                    "--auth-params file://{after}: a file URL names a local file \
                     (file:///path/to/token)"
                )));
            }
            path
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(CliError(
            "--auth-params file: names no file (file:///path/to/token)".into(),
        ));
    }
    Ok(PathBuf::from(percent_decode(path)))
}

/// Decodes `%XX` escapes (as a file URL may hold); anything else is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a plugin configured by a map: a JSON object of strings, or the Pulsar 1
/// form `key1:value1,key2:value2` (as `AuthenticationUtil.configureFromPulsar1AuthParamString`).
fn params_map(plugin: &str, params: &str) -> CliResult<BTreeMap<String, String>> {
    let params = params.trim();
    if params.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(params).map_err(|e| {
            CliError(format!(
                "--auth-params of {plugin} is not valid JSON ({e}): quote every key and value"
            ))
        })?;
        let serde_json::Value::Object(object) = value else {
            return Err(CliError(format!(
                "--auth-params of {plugin} must be a JSON object"
            )));
        };
        let mut map = BTreeMap::new();
        for (k, v) in object {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(CliError(format!(
                        "--auth-params of {plugin}: {k:?} must be a string, not {other}"
                    )))
                }
            };
            map.insert(k, v);
        }
        return Ok(map);
    }
    let mut map = BTreeMap::new();
    for pair in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once(':') else {
            return Err(CliError(format!(
                "--auth-params of {plugin}: {pair:?} is not KEY:VALUE (write \
                 key1:value1,key2:value2 or a JSON object)"
            )));
        };
        map.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_params_take_the_java_plugins_forms() {
        let t = |p: &str| parse(TOKEN_PLUGIN, Some(p)).map_err(|e| e.0);
        assert_eq!(
            t("token:abc.def"),
            Ok(AuthPlugin::Token(TokenSource::Inline("abc.def".into())))
        );
        assert_eq!(
            t("data:abc"),
            Ok(AuthPlugin::Token(TokenSource::Inline("abc".into())))
        );
        assert_eq!(
            t("abc.def.ghi"),
            Ok(AuthPlugin::Token(TokenSource::Inline("abc.def.ghi".into())))
        );
        assert_eq!(
            t("file:///tmp/my%20token"),
            Ok(AuthPlugin::Token(TokenSource::File("/tmp/my token".into())))
        );
        assert_eq!(
            t("file:/tmp/t"),
            Ok(AuthPlugin::Token(TokenSource::File("/tmp/t".into())))
        );
        assert_eq!(
            t("file://localhost/tmp/t"),
            Ok(AuthPlugin::Token(TokenSource::File("/tmp/t".into())))
        );
        assert_eq!(
            t("env:MY_TOKEN"),
            Ok(AuthPlugin::Token(TokenSource::Env("MY_TOKEN".into())))
        );
        assert!(t("file://otherhost/t").is_err());
        assert!(t("token:").is_err());
        assert!(parse(TOKEN_PLUGIN, None).is_err());
        assert!(parse("token", Some("x")).is_ok());
    }

    #[test]
    fn tls_params_take_both_forms() {
        let want = Ok(AuthPlugin::Tls {
            cert: "/c.pem".into(),
            key: "/k.pem".into(),
        });
        let t = |p: &str| parse(TLS_PLUGIN, Some(p)).map_err(|e| e.0);
        assert_eq!(t("tlsCertFile:/c.pem,tlsKeyFile:/k.pem"), want);
        assert_eq!(t(r#"{"tlsCertFile":"/c.pem","tlsKeyFile":"/k.pem"}"#), want);
        let e = t("tlsCertFile:/c.pem").unwrap_err();
        assert!(e.contains("tlsKeyFile"), "{e}");
        let e = t("{\"tlsCertFile\":").unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = t("tlsCertFile").unwrap_err();
        assert!(e.contains("KEY:VALUE"), "{e}");
    }

    #[test]
    fn basic_and_oauth2_params_parse() {
        assert_eq!(
            parse(BASIC_PLUGIN, Some(r#"{"userId":"u","password":"p"}"#)).map_err(|e| e.0),
            Ok(AuthPlugin::Basic {
                user: "u".into(),
                password: "p".into()
            })
        );
        assert!(parse(BASIC_PLUGIN, Some("userId:u")).is_err());
        assert_eq!(
            parse(
                OAUTH2_FACTORY,
                Some(r#"{"issuerUrl":"https://i","privateKey":"file:///k.json","audience":"a"}"#)
            )
            .map_err(|e| e.0),
            Ok(AuthPlugin::OAuth2(OAuth2Params {
                issuer_url: "https://i".into(),
                private_key: "file:///k.json".into(),
                audience: Some("a".into()),
                scope: None,
                trust_certs_file: None,
            }))
        );
        assert_eq!(
            parse(
                OAUTH2_PLUGIN,
                Some(
                    r#"{"type":"client_credentials","issuerUrl":"https://i","privateKey":"k.json",
                        "scope":"s","audience":"","trustCertsFilePath":"/ca.pem"}"#
                )
            )
            .map_err(|e| e.0),
            Ok(AuthPlugin::OAuth2(OAuth2Params {
                issuer_url: "https://i".into(),
                private_key: "k.json".into(),
                audience: None,
                scope: Some("s".into()),
                trust_certs_file: Some("/ca.pem".into()),
            }))
        );
        assert!(parse(OAUTH2_PLUGIN, Some("{}")).is_err());
        let e = parse(
            OAUTH2_PLUGIN,
            Some(r#"{"type":"jwt_bearer","issuerUrl":"https://i","privateKey":"k.json"}"#),
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("jwt_bearer") && e.contains("client_credentials"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_plugin_names_the_known_ones() {
        let e = parse("org.example.Mine", Some("x")).unwrap_err().0;
        assert!(
            e.contains("unknown --auth-plugin") && e.contains(TOKEN_PLUGIN),
            "{e}"
        );
    }
}

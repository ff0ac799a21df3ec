//! Service and broker URLs: `pulsar://host:port[,host:port...]` and `pulsar+ssl://...`.

use std::fmt;

use crate::error::Error;

/// The default port of `pulsar://`.
pub const DEFAULT_PORT: u16 = 6650;
/// The default port of `pulsar+ssl://`.
pub const DEFAULT_TLS_PORT: u16 = 6651;

/// One broker address, as a lookup names it or as a service URL lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the address is `pulsar+ssl://`.
    pub tls: bool,
}

impl BrokerAddress {
    /// Parses `pulsar://host:port` or `pulsar+ssl://host:port` (one host).
    pub fn parse(url: &str) -> Result<Self, Error> {
        let service = ServiceUrl::parse(url)?;
        if service.http {
            return Err(invalid(url, "a broker URL is pulsar:// or pulsar+ssl://"));
        }
        match service.hosts.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(invalid(url, "a broker URL names exactly one host")),
        }
    }

    /// `host:port`, as a socket address string.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "pulsar+ssl" } else { "pulsar" };
        write!(f, "{scheme}://{}", self.host_port())
    }
}

/// A service URL: one or more brokers (or proxies) to bootstrap from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// The hosts, in the order given. For an HTTP URL, `tls` means `https://`.
    pub hosts: Vec<BrokerAddress>,
    /// Whether the URL is `http://` or `https://`: lookups then go through the brokers' REST
    /// API (the web service port), and the binary protocol only to the broker named.
    pub http: bool,
}

fn invalid(url: &str, reason: &str) -> Error {
    Error::InvalidServiceUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

impl ServiceUrl {
    /// Parses `pulsar://host[:port][,host[:port]...][/]`, the same with `pulsar+ssl://`, or
    /// with `http://` or `https://` (the brokers' web service: ports 80 and 443 unless given,
    /// as in any HTTP URL; Pulsar's are usually 8080 and 8443).
    pub fn parse(url: &str) -> Result<Self, Error> {
        let trimmed = url.trim();
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
            invalid(
                url,
                "missing the scheme: pulsar://, pulsar+ssl://, http:// or https://",
            )
        })?;
        let (tls, http, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "pulsar" => (false, false, DEFAULT_PORT),
            "pulsar+ssl" => (true, false, DEFAULT_TLS_PORT),
            "http" => (false, true, 80),
            "https" => (true, true, 443),
            _ => {
                return Err(invalid(
                    url,
                    "the scheme must be pulsar://, pulsar+ssl://, http:// or https://",
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() {
            return Err(invalid(url, "no host"));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('@') || rest.contains('#') {
            return Err(invalid(
                url,
                "a service URL has no path, query or user part",
            ));
        }
        let mut hosts = Vec::new();
        for part in rest.split(',') {
            let (host, port) = split_host_port(part, default_port).map_err(|r| invalid(url, r))?;
            hosts.push(BrokerAddress { host, port, tls });
        }
        Ok(ServiceUrl { hosts, http })
    }

    /// Whether the URL asks for TLS (`pulsar+ssl://` or `https://`).
    pub fn tls(&self) -> bool {
        self.hosts.first().is_some_and(|h| h.tls)
    }

    /// The base URL of one host of an HTTP service URL (`http://host:port`).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub fn http_base(host: &BrokerAddress) -> String {
        let scheme = if host.tls { "https" } else { "http" };
        format!("{scheme}://{}", host.host_port())
    }
}

fn split_host_port(part: &str, default_port: u16) -> Result<(String, u16), &'static str> {
    let part = part.trim();
    if part.is_empty() {
        return Err("an empty host in the list");
    }
    // [v6]:port
    if let Some(rest) = part.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed [ in an IPv6 address")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| "the port is not a number from 1 to 65535")?,
            None if after.is_empty() => default_port,
            None => return Err("garbage after an IPv6 address"),
        };
        return check(host, port);
    }
    match part.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse()
                .map_err(|_| "the port is not a number from 1 to 65535")?;
            check(host, port)
        }
        None => check(part, default_port),
    }
}

fn check(host: &str, port: u16) -> Result<(String, u16), &'static str> {
    if host.is_empty() {
        return Err("no host");
    }
    if port == 0 {
        return Err("the port is not a number from 1 to 65535");
    }
    if host.chars().any(|c| c.is_whitespace()) {
        return Err("white space in the host");
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        let u = ServiceUrl::parse("pulsar://localhost:6650").unwrap();
        assert_eq!(
            u.hosts,
            vec![BrokerAddress {
                host: "localhost".into(),
                port: 6650,
                tls: false
            }]
        );
        let u = ServiceUrl::parse("pulsar://a,b:7000/").unwrap();
        assert_eq!(u.hosts[0].port, 6650);
        assert_eq!(u.hosts[1].host, "b");
        assert_eq!(u.hosts[1].port, 7000);
        let u = ServiceUrl::parse("pulsar+ssl://broker.example").unwrap();
        assert!(u.tls());
        assert_eq!(u.hosts[0].port, 6651);
        let u = ServiceUrl::parse("pulsar://[::1]:6650").unwrap();
        assert_eq!(u.hosts[0].host, "::1");
        assert_eq!(u.hosts[0].host_port(), "[::1]:6650");
        assert_eq!(u.hosts[0].to_string(), "pulsar://[::1]:6650");
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for bad in [
            "localhost:6650",
            "http://localhost:8080/admin",
            "https://",
            "kafka://x:1",
            "pulsar://",
            "pulsar://host:notaport",
            "pulsar://host:0",
            "pulsar://host:70000",
            "pulsar://a,,b",
            "pulsar://host:6650/path",
        ] {
            let err = ServiceUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidServiceUrl { .. }),
                "{bad}: {err}"
            );
        }
        assert!(BrokerAddress::parse("pulsar://a,b").is_err());
    }

    #[test]
    fn parses_http_service_urls() {
        let u = ServiceUrl::parse("http://localhost:8080").unwrap();
        assert!(u.http && !u.tls());
        assert_eq!(u.hosts[0].port, 8080);
        assert_eq!(ServiceUrl::http_base(&u.hosts[0]), "http://localhost:8080");
        let u = ServiceUrl::parse("HTTPS://a.example,b.example:8443/").unwrap();
        assert!(u.http && u.tls());
        assert_eq!(u.hosts[0].port, 443);
        assert_eq!(ServiceUrl::http_base(&u.hosts[1]), "https://b.example:8443");
        assert!(!ServiceUrl::parse("pulsar://x").unwrap().http);
    }
}

//! Broker URLs: `quic://host[:port]`, where host is a DNS name, an IPv4 address or a
//! bracketed IPv6 address (`quic://[::1]:7420`).

use crate::Error;

/// The port a broker listens on when the URL names none.
pub const DEFAULT_PORT: u16 = 7420;

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address, without IPv6 brackets; also the default TLS server name.
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `quic://host[:port]`. A trailing `/` is accepted; paths, queries and user
    /// info are not.
    pub fn parse(url: &str) -> Result<BrokerUrl, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("quic://")
            .ok_or_else(|| bad("the scheme must be quic://"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(bad("the host is missing"));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("paths, queries and user info are not allowed"));
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let (host, tail) = after
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs a closing ']'"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("the bracketed host is not an IPv6 address"));
            }
            let port = match tail {
                "" => None,
                t => Some(
                    t.strip_prefix(':')
                        .ok_or_else(|| bad("expected ':' after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            if rest.matches(':').count() > 1 {
                return Err(bad("an IPv6 address must be written in brackets"));
            }
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "quic://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "quic://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16) {
        let u = BrokerUrl::parse(url).expect(url);
        (u.host, u.port)
    }

    #[test]
    fn accepts_names_addresses_and_default_port() {
        assert_eq!(ok("quic://localhost:7420"), ("localhost".into(), 7420));
        assert_eq!(ok("quic://broker.example"), ("broker.example".into(), 7420));
        assert_eq!(ok("quic://127.0.0.1:9000/"), ("127.0.0.1".into(), 9000));
        assert_eq!(ok("quic://[::1]:7421"), ("::1".into(), 7421));
        assert_eq!(ok("quic://[::1]"), ("::1".into(), 7420));
    }

    #[test]
    fn rejects_with_typed_errors() {
        for bad in [
            "http://localhost:7420",
            "localhost:7420",
            "quic://",
            "quic://:7420",
            "quic://host:0",
            "quic://host:99999",
            "quic://host:port",
            "quic://::1:7420",
            "quic://[::1",
            "quic://[nothost]:1",
            "quic://host/path",
            "quic://user@host",
        ] {
            match BrokerUrl::parse(bad) {
                Err(Error::InvalidUrl { url, .. }) => assert_eq!(url, bad),
                other => panic!("{bad}: expected InvalidUrl, got {other:?}"),
            }
        }
    }

    #[test]
    fn displays_round_trip() {
        for url in ["quic://localhost:7420", "quic://[::1]:7420"] {
            assert_eq!(BrokerUrl::parse(url).expect("parses").to_string(), url);
        }
    }
}

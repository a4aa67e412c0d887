//! Where the broker is: `mqtt://host:port` (port 1883 when omitted).

use std::fmt;

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A broker URL that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("broker URL {url:?}: {problem}")]
pub struct EndpointError {
    url: String,
    problem: &'static str,
}

impl Endpoint {
    /// Parses `mqtt://host[:port]` or `tcp://host[:port]`.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let err = |problem| EndpointError {
            url: url.to_owned(),
            problem,
        };
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| err("must start with mqtt:// (TLS is not supported yet)"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(err("must be mqtt://host:port with no path or credentials"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| err("port must be a number from 1 to 65535"))?,
            ),
            _ => (rest, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(err("needs a host and a non-zero port"));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Endpoint::parse("mqtt://127.0.0.1:18830").ok(),
            Some(Endpoint {
                host: "127.0.0.1".into(),
                port: 18830
            })
        );
        assert_eq!(
            Endpoint::parse("mqtt://broker").ok(),
            Some(Endpoint {
                host: "broker".into(),
                port: 1883
            })
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:1884").ok(),
            Some(Endpoint {
                host: "::1".into(),
                port: 1884
            })
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u:p@x:1",
            "mqtt://x:1/a",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}

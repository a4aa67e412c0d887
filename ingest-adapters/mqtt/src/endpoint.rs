//! Where the broker is and who Dispecer is there: `mqtt://[user:password@]host[:port]` (port 1883
//! when omitted).

use std::fmt;

use rumqttc::MqttOptions;

/// A broker address, with the credentials Dispecer's clients log in with, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password of Dispecer's own clients.
    pub credentials: Option<Credentials>,
}

/// A user name and a password (MQTT CONNECT's login).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.username)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// A broker URL that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("broker URL {url:?}: {problem}")]
pub struct EndpointError {
    url: String,
    problem: &'static str,
}

impl Endpoint {
    /// An address without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Parses `mqtt://[user:password@]host[:port]` or the same with `tcp://`. The password is
    /// taken as written (no percent-decoding): Dispecer's tokens are URL-safe.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        // The error never repeats a password.
        let shown = match url.rsplit_once('@') {
            Some((login, rest)) => match login.split_once(':') {
                Some((scheme_user, _)) if scheme_user.contains("//") => {
                    let (scheme, user) = scheme_user.split_once("//").unwrap_or(("", ""));
                    format!("{scheme}//{user}:***@{rest}")
                }
                _ => format!("***@{rest}"),
            },
            None => url.to_owned(),
        };
        let err = |problem| EndpointError {
            url: shown.clone(),
            problem,
        };
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| err("must start with mqtt:// (TLS is not supported yet)"))?;
        let rest = rest.trim_end_matches('/');
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((login, hostport)) => {
                let (username, password) = login
                    .split_once(':')
                    .ok_or_else(|| err("credentials must be user:password@"))?;
                if username.is_empty() || password.is_empty() {
                    return Err(err("credentials need a user name and a password"));
                }
                (
                    Some(Credentials {
                        username: username.to_owned(),
                        password: password.to_owned(),
                    }),
                    hostport,
                )
            }
            None => (None, rest),
        };
        if rest.contains('/') || rest.contains('@') {
            return Err(err("must be mqtt://[user:password@]host:port with no path"));
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
            credentials,
        })
    }

    /// The same address with these credentials.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// MQTT options for a client `client_id` of this broker, logged in when there are credentials.
    pub fn options(&self, client_id: impl Into<String>) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        if let Some(c) = &self.credentials {
            options.set_credentials(c.username.clone(), c.password.clone());
        }
        options
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            Some(c) => write!(f, "mqtt://{}@{}:{}", c.username, self.host, self.port),
            None => write!(f, "mqtt://{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Endpoint::parse("mqtt://127.0.0.1:18830").ok(),
            Some(Endpoint::new("127.0.0.1", 18830))
        );
        assert_eq!(
            Endpoint::parse("mqtt://broker").ok(),
            Some(Endpoint::new("broker", 1883))
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:1884").ok(),
            Some(Endpoint::new("::1", 1884))
        );
        let with_login = Endpoint::parse("mqtt://dispecer:dsp_abc@broker:1884").ok();
        assert_eq!(
            with_login,
            Some(
                Endpoint::new("broker", 1884).with_credentials(Some(Credentials {
                    username: "dispecer".into(),
                    password: "dsp_abc".into()
                }))
            )
        );
        // Neither Display nor Debug shows the password.
        let shown = with_login.map(|e| format!("{e} {e:?}")).unwrap_or_default();
        assert!(
            shown.contains("dispecer@broker") && !shown.contains("dsp_abc"),
            "{shown}"
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u@x:1",
            "mqtt://:p@x:1",
            "mqtt://x:1/a",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be refused");
        }
        let e = Endpoint::parse("mqtt://u:secret@x:99999")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("secret") && e.contains("port"), "{e}");
    }
}

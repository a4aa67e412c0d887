//! Where the broker is and who Dispecer is there: `mqtt://[user:password@]host[:port]` (port 1883
//! when omitted), or over TLS `mqtts://…` (port 8883 when omitted), trusting the system's roots
//! and an optional CA file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A broker address, with the credentials Dispecer's clients log in with, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password of Dispecer's own clients.
    pub credentials: Option<Credentials>,
    /// TLS (`mqtts://`): whom the broker's certificate must chain to.
    pub tls: Option<ClientTls>,
}

/// The trust of a TLS client of the broker (a rustls client configuration, built once).
#[derive(Clone)]
pub struct ClientTls(Arc<ClientConfig>);

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClientTls {}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientTls")
    }
}

/// Why a TLS client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read.
    #[error("cannot read the CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("CA file {}: {problem}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Nothing to trust: no system roots found and no CA file given.
    #[error(
        "no trusted root certificates: the system has none; give the broker's CA with --mqtt-ca"
    )]
    NoRoots,
}

impl ClientTls {
    /// Trusts the system's root certificates and, with `ca`, the certificates in that PEM file.
    pub fn new(ca: Option<&Path>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            tracing::debug!(error = %e, "a system root certificate store could not be read");
        }
        let (added, _ignored) = roots.add_parsable_certificates(system.certs);
        if let Some(path) = ca {
            let bad = |problem: String| TlsError::BadCa {
                path: path.to_owned(),
                problem,
            };
            let text = std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })?;
            let certs = CertificateDer::pem_slice_iter(&text)
                .collect::<Result<Vec<_>, pem::Error>>()
                .map_err(|e| bad(format!("not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(bad("no certificate in it".to_owned()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
            }
        } else if added == 0 {
            return Err(TlsError::NoRoots);
        }
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls(Arc::new(config)))
    }
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
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL is malformed (shown without its password).
    #[error("broker URL {url:?}: {problem}")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// `mqtts://`, but its trust cannot be set up.
    #[error("broker URL {url:?}: {source}")]
    Tls {
        /// The URL, its password hidden.
        url: String,
        /// Why.
        source: TlsError,
    },
    /// A CA file for a broker that is not reached over TLS.
    #[error("broker URL {url:?}: a CA file is only for mqtts:// URLs")]
    CaWithoutTls {
        /// The URL, its password hidden.
        url: String,
    },
}

impl Endpoint {
    /// An address without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
            credentials: None,
            tls: None,
        }
    }

    /// Parses `mqtt://[user:password@]host[:port]` or the same with `tcp://`, or `mqtts://…`
    /// (or `ssl://…`) for TLS, trusting the system's roots and, with `ca`, that PEM file's
    /// certificates. The password is taken as written (no percent-decoding): Dispecer's tokens
    /// are URL-safe.
    pub fn parse(url: &str, ca: Option<&Path>) -> Result<Self, EndpointError> {
        let (mut endpoint, tls, shown) = Self::parse_url(url)?;
        match (tls, ca) {
            (true, ca) => {
                let tls = ClientTls::new(ca)
                    .map_err(|source| EndpointError::Tls { url: shown, source })?;
                endpoint.tls = Some(tls);
            }
            (false, Some(_)) => return Err(EndpointError::CaWithoutTls { url: shown }),
            (false, None) => {}
        }
        Ok(endpoint)
    }

    /// The URL's parts (without trust), whether it asks for TLS, and the URL to show (its
    /// password hidden).
    fn parse_url(url: &str) -> Result<(Self, bool, String), EndpointError> {
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
        let err = |problem| EndpointError::Url {
            url: shown.clone(),
            problem,
        };
        let (rest, tls) = if let Some(rest) = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
        {
            (rest, true)
        } else {
            let rest = url
                .strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .ok_or_else(|| err("must start with mqtt:// or, for TLS, mqtts://"))?;
            (rest, false)
        };
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
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(err("needs a host and a non-zero port"));
        }
        let endpoint = Endpoint {
            host: host.to_owned(),
            port,
            credentials,
            tls: None,
        };
        Ok((endpoint, tls, shown))
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
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.0.clone(),
            )));
        }
        options
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        match &self.credentials {
            Some(c) => write!(f, "{scheme}://{}@{}:{}", c.username, self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoint of a URL without TLS.
    fn plain(url: &str) -> Option<Endpoint> {
        Endpoint::parse(url, None).ok()
    }

    #[test]
    fn urls() {
        assert_eq!(
            plain("mqtt://127.0.0.1:18830"),
            Some(Endpoint::new("127.0.0.1", 18830))
        );
        assert_eq!(plain("mqtt://broker"), Some(Endpoint::new("broker", 1883)));
        assert_eq!(plain("tcp://[::1]:1884"), Some(Endpoint::new("::1", 1884)));
        let with_login = plain("mqtt://dispecer:dsp_abc@broker:1884");
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
            "mqtts://x:1/a",
        ] {
            assert!(plain(bad).is_none(), "{bad} should be refused");
        }
        let e = Endpoint::parse("mqtt://u:secret@x:99999", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("secret") && e.contains("port"), "{e}");
    }

    /// `mqtts://` asks for TLS (port 8883 by default); a CA file is only for it, and a bad one is
    /// named in the error.
    #[test]
    fn tls_urls() {
        let parts = |url| Endpoint::parse_url(url).ok().map(|(e, tls, _)| (e, tls));
        assert_eq!(
            parts("mqtts://broker"),
            Some((Endpoint::new("broker", 8883), true))
        );
        assert_eq!(
            parts("ssl://u:p@broker:18883").map(|(e, tls)| (e.port, tls)),
            Some((18883, true))
        );
        assert_eq!(parts("mqtt://broker").map(|(_, tls)| tls), Some(false));
        let ca = Path::new("/nonexistent/dispecer/ca.pem");
        let error = |url| {
            Endpoint::parse(url, Some(ca))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            error("mqtt://broker").contains("only for mqtts://"),
            "{}",
            error("mqtt://broker")
        );
        let e = error("mqtts://u:secret@broker");
        assert!(
            e.contains("/nonexistent/dispecer/ca.pem") && !e.contains("secret"),
            "{e}"
        );
    }
}

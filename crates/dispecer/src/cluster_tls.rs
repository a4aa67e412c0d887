//! Cluster mode over HTTPS: the URL an instance gives the others (`cluster_members.http_url`,
//! where a follower forwards to it when it leads), and whom its own forwards trust.
//!
//! - With `--tls-cert` an instance serves HTTPS only, so it advertises `https://` (its
//!   `--http-addr`, or `--cluster-http-url`, which must then be `https://`).
//! - A follower's forwards trust the system's roots, the CA certificates of `--cluster-ca`, and
//!   the certificates of this instance's own `--tls-cert` chain (instances commonly share one
//!   certificate, or one private CA whose certificate ends the chain), and check the leader's
//!   name against its URL as any HTTPS client does.
//! - At start-up an instance with TLS checks that its own certificate would be accepted at the
//!   URL it advertises by an instance trusting what it trusts (right name, chains to a trusted
//!   certificate, in its validity period): a certificate that the others would refuse stops it
//!   here, with the reason, rather than every forward failing later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, RootCertStore};

use crate::tls::ServerTls;

/// Why cluster mode's HTTPS cannot work as configured.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    /// `--cluster-http-url` is not `http://host[:port]` or `https://host[:port]`.
    #[error("--cluster-http-url {url:?}: {problem}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// This instance serves HTTPS only, but would tell the others to reach it over plain HTTP.
    #[error(
        "--cluster-http-url {url:?} with --tls-cert: this instance serves HTTPS only, so the \
         others cannot reach it at an http:// URL; give its https:// URL"
    )]
    PlainUrlWithTls {
        /// The URL given.
        url: String,
    },
    /// `--cluster-ca` cannot be read or holds no usable CA certificate.
    #[error("--cluster-ca {}: {problem}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The other instances, trusting what this one trusts, would refuse its certificate at the
    /// URL it advertises.
    #[error(
        "the other instances would refuse {cert}'s certificate at {url}: {source}; give a \
         certificate for that name (or the name it is for with --cluster-http-url), or the CA \
         that signed it with --cluster-ca",
        cert = cert.display()
    )]
    Refused {
        /// The advertised URL.
        url: String,
        /// `--tls-cert`.
        cert: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The host of an `http://` or `https://` URL and whether it is `https`.
fn host_of(url: &str) -> Result<(&str, bool), &'static str> {
    let (rest, https) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else {
        return Err("not an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("a login in the URL would be sent to everyone");
    }
    let host = match authority.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err("no host");
    }
    Ok((host, https))
}

/// The base URL this instance gives the others: `given` (`--cluster-http-url`) or its
/// `http_addr` with the scheme it serves. An `http://` URL with TLS, or one that is not an
/// HTTP(S) URL, is refused.
pub fn advertised_url(
    given: Option<&str>,
    http_addr: SocketAddr,
    tls: bool,
) -> Result<String, ClusterTlsError> {
    let Some(url) = given else {
        let scheme = if tls { "https" } else { "http" };
        return Ok(format!("{scheme}://{http_addr}"));
    };
    let (_, https) = host_of(url).map_err(|problem| ClusterTlsError::BadUrl {
        url: url.to_owned(),
        problem,
    })?;
    if tls && !https {
        return Err(ClusterTlsError::PlainUrlWithTls {
            url: url.to_owned(),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// What a follower's forwards trust: the system's roots, `ca`'s certificates and `own`'s chain
/// (`--tls-cert`), those rustls can use.
pub fn trust(
    ca: Option<&Path>,
    own: Option<&ServerTls>,
) -> Result<Vec<CertificateDer<'static>>, ClusterTlsError> {
    let mut certs = Vec::new();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::debug!(error = %e, "a system root certificate store could not be read");
    }
    certs.extend(system.certs);
    if let Some(path) = ca {
        let bad = |problem: String| ClusterTlsError::Ca {
            path: path.to_owned(),
            problem,
        };
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let given = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not PEM: {e}")))?;
        if given.is_empty() {
            return Err(bad("no certificate in it".to_owned()));
        }
        for cert in &given {
            RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        certs.extend(given);
    }
    if let Some(own) = own {
        certs.extend(own.chain().iter().cloned());
    }
    // Only what rustls takes as a trust anchor (a system store may hold odd ones).
    certs.retain(|c| RootCertStore::empty().add(c.clone()).is_ok());
    Ok(certs)
}

/// Checks that an instance trusting `trust` would accept `own`'s certificate at `url`.
pub fn check_own_certificate(
    url: &str,
    own: &ServerTls,
    trust: &[CertificateDer<'static>],
) -> Result<(), ClusterTlsError> {
    let refused = |source| ClusterTlsError::Refused {
        url: url.to_owned(),
        cert: own.cert.clone(),
        source,
    };
    let (host, _) = host_of(url).map_err(|problem| ClusterTlsError::BadUrl {
        url: url.to_owned(),
        problem,
    })?;
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        refused(rustls::Error::General(format!(
            "{host:?} is not a host name"
        )))
    })?;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(trust.iter().cloned());
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| refused(rustls::Error::General(e.to_string())))?;
    let (leaf, intermediates) = own
        .chain()
        .split_first()
        .ok_or_else(|| refused(rustls::Error::NoCertificatesPresented))?;
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        verifier.as_ref(),
        leaf,
        intermediates,
        &name,
        &[],
        UnixTime::now(),
    )
    .map(|_| ())
    .map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 8080))
    }

    #[test]
    fn the_advertised_url_says_the_scheme_served() {
        let cases: [(Option<&str>, bool, Result<&str, &str>); 8] = [
            (None, false, Ok("http://10.0.0.1:8080")),
            (None, true, Ok("https://10.0.0.1:8080")),
            (
                Some("https://a.example:8443/"),
                true,
                Ok("https://a.example:8443"),
            ),
            (Some("http://a.example"), false, Ok("http://a.example")),
            // A TLS-terminating proxy in front of a plain instance.
            (Some("https://a.example"), false, Ok("https://a.example")),
            (Some("http://a.example"), true, Err("serves HTTPS only")),
            (Some("a.example:8080"), false, Err("not an http://")),
            (Some("https://u:p@a.example"), true, Err("a login")),
        ];
        for (given, tls, expected) in cases {
            let got = advertised_url(given, addr(), tls).map_err(|e| e.to_string());
            match (got, expected) {
                (Ok(url), Ok(want)) => assert_eq!(url, want),
                (Err(e), Err(want)) => assert!(e.contains(want), "{e:?} lacks {want:?}"),
                (got, want) => panic!("{given:?} (tls {tls}): {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("https://[::1]:8443/x"), Ok(("::1", true)));
        assert_eq!(host_of("http://127.0.0.1:80"), Ok(("127.0.0.1", false)));
        assert_eq!(host_of("https://a.example"), Ok(("a.example", true)));
        assert!(host_of("https://:80").is_err());
    }

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "dispecer-cluster-tls-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::create_dir_all(&dir);
            Files { dir }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, text).expect("writes");
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A CA, and a server certificate for localhost and 127.0.0.1 that it signed.
    fn ca_and_server() -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cluster test CA");
        let ca_key = KeyPair::generate().expect("key");
        let ca = ca.self_signed(&ca_key).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        server
            .distinguished_name
            .push(DnType::CommonName, "cluster test server");
        let server = server.signed_by(&key, &ca, &ca_key).expect("signed");
        (ca.pem(), server.pem(), key.serialize_pem())
    }

    /// The own certificate is accepted at its own name when what the others trust covers it (the
    /// chain ends with the CA, or the CA is given), refused at another name or when nothing
    /// trusted signed it.
    #[test]
    fn the_own_certificate_is_checked_as_the_others_would() {
        let files = Files::new("check");
        let (ca, leaf, key) = ca_and_server();
        let key = files.write("server.key", &key);
        let ca_file = files.write("ca.pem", &ca);
        let leaf_only = ServerTls::load(&files.write("leaf.pem", &leaf), &key).expect("loads");
        let chain = ServerTls::load(&files.write("chain.pem", &format!("{leaf}{ca}")), &key)
            .expect("loads");
        let ok = |url: &str, own: &ServerTls, ca: Option<&Path>| {
            let trusted = trust(ca, Some(own)).expect("trust");
            check_own_certificate(url, own, &trusted).map_err(|e| e.to_string())
        };
        ok("https://127.0.0.1:8443", &chain, None).expect("the chain's CA is trusted");
        ok("https://localhost:8443", &chain, None).expect("by name too");
        ok("https://127.0.0.1:8443", &leaf_only, Some(&ca_file)).expect("--cluster-ca");
        let wrong_name = ok("https://10.0.0.9:8443", &chain, None).expect_err("another name");
        assert!(wrong_name.contains("would refuse"), "{wrong_name}");
        let unknown =
            ok("https://127.0.0.1:8443", &leaf_only, None).expect_err("no trusted issuer");
        assert!(unknown.contains("--cluster-ca"), "{unknown}");
        let not_ca =
            trust(Some(&files.write("bad.pem", "nothing")), None).expect_err("not a CA file");
        assert!(not_ca.to_string().contains("bad.pem"), "{not_ca}");
    }
}

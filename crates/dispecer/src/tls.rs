//! TLS for the HTTP API and the embedded broker: the certificate chain and key given with
//! `--tls-cert`/`--tls-key`, checked once at start-up (a bad file stops Dispecer with a message
//! naming it); a TLS listener for `axum::serve`; and the embedded broker's TLS port, a relay to
//! its plain one. Each handshake runs in a task of its own with a deadline, so that a slow or
//! silent client never holds up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the certificate or the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no item of the kind asked for.
    #[error("{}: {what}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// The parser's complaint.
        source: pem::Error,
    },
    /// rustls refuses the pair (a key it does not support, or a key that is not the
    /// certificate's).
    #[error("{} with {}: {source}", cert.display(), key.display())]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// A server certificate and its key, checked.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain file (PEM), the server's own certificate first.
    pub cert: PathBuf,
    /// The private key file (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The chain as read, the server's own certificate first.
    chain: Vec<CertificateDer<'static>>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl ServerTls {
    /// Reads and checks `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path, what| {
            let path = path.to_owned();
            move |source| TlsError::Pem { path, what, source }
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(cert, "not a PEM certificate chain"))?;
        if chain.is_empty() {
            return Err(pem_error(cert, "no certificate in it")(
                pem::Error::NoItemsFound,
            ));
        }
        let private = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(pem_error(key, "no PEM private key in it"))?;
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain.clone(), private)
            .map_err(|source| TlsError::Refused {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        Ok(ServerTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            chain,
            config: Arc::new(config),
        })
    }

    /// The certificate chain, the server's own certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; beyond it new connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// Connections whose handshake is done, waiting to be taken (by the HTTP server or the MQTT
/// relay). When full, the handshake tasks wait (their connections are not dropped).
const HANDSHAKEN: usize = 64;

/// Accepts on `tcp` until `shutdown`, doing each handshake in a task of its own (on `tracker`)
/// with a deadline, and hands over the streams whose handshake succeeded.
fn accept_tls(
    tcp: TcpListener,
    config: Arc<ServerConfig>,
    what: &'static str,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, ready) = mpsc::channel(HANDSHAKEN);
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let spawner = tracker.clone();
    tracker.spawn(async move {
        loop {
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = tcp.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum's own loop does.
                        tracing::warn!(listener = what, error = %e, "cannot accept a tls connection");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let shutdown = shutdown.clone();
            spawner.spawn(async move {
                let _permit = permit;
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let stream = tokio::select! {
                    () = shutdown.cancelled() => return,
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(listener = what, %peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(listener = what, %peer, "tls handshake timed out");
                            return;
                        }
                    },
                };
                let _ = tx.send((stream, peer)).await;
            });
        }
    });
    ready
}

/// The HTTP API's TLS connections, for `axum::serve` (which keeps its graceful shutdown).
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `shutdown`, offering HTTP/1.1.
    pub fn new(
        tcp: TcpListener,
        tls: &ServerTls,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let mut config = (*tls.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let ready = accept_tls(tcp, Arc::new(config), "https", shutdown, tracker);
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accepting task stopped: shutting down, and the server's graceful shutdown
            // ends the serving loop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// MQTT over TLS for the embedded broker: accepts TLS on `tcp` and relays each connection's
/// bytes to the broker's plain listener at `broker` (on this machine), until either side closes
/// or `shutdown`. rumqttd's own TLS listener does each handshake in its accept loop without a
/// deadline, so one silent client would hold up every other; here handshakes are parallel and
/// bounded in time. The broker's logins apply as on its plain port.
pub fn relay_mqtt(
    tcp: TcpListener,
    tls: &ServerTls,
    broker: SocketAddr,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let mut ready = accept_tls(tcp, tls.config.clone(), "mqtts", shutdown.clone(), tracker);
    let spawner = tracker.clone();
    tracker.spawn(async move {
        loop {
            let (mut client, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                next = ready.recv() => match next {
                    Some(pair) => pair,
                    None => return,
                },
            };
            let shutdown = shutdown.clone();
            spawner.spawn(async move {
                let mut upstream = match TcpStream::connect(broker).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, %broker, error = %e, "mqtts: cannot reach the embedded broker");
                        return;
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    done = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                        if let Err(e) = done {
                            tracing::debug!(%peer, error = %e, "mqtts connection ended");
                        }
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dispecer-tls-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(name);
        let _ = std::fs::write(&path, text);
        path
    }

    /// Every bad file gives an error naming it, never a panic.
    #[test]
    fn bad_files_are_named() {
        let missing = Path::new("/nonexistent/dispecer/cert.pem");
        let garbage = temp("garbage.pem", "not pem at all\n");
        let truncated = temp("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let cases = [
            (missing, garbage.as_path(), "/nonexistent/dispecer/cert.pem"),
            (
                garbage.as_path(),
                garbage.as_path(),
                "garbage.pem: no certificate",
            ),
            (truncated.as_path(), garbage.as_path(), "truncated.pem"),
        ];
        for (cert, key, expected) in cases {
            let message = ServerTls::load(cert, key)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                message.contains(expected),
                "{message:?} should contain {expected:?}"
            );
        }
    }
}

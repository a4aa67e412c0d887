//! The embedded MQTT broker (rumqttd), the default when no `--mqtt-url` is given.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio::sync::{mpsc, oneshot};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address is taken (another broker?).
    #[error(
        "cannot listen for MQTT on {addr}: {source}. Another broker may be running there: \
         connect to it with --mqtt-url mqtt://{addr}, or give the embedded broker another address \
         with --mqtt-listen"
    )]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker thread could not be started.
    #[error("embedded broker: {0}")]
    Start(String),
}

/// Largest MQTT payload the embedded broker accepts (the adapters' own limit is lower).
const MAX_PAYLOAD: usize = 1024 * 1024;

/// A client's login, handed from the broker's threads to whoever checks it.
#[derive(Debug)]
pub struct LoginRequest {
    /// The client id it connects with.
    pub client_id: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Whether it may connect.
    pub reply: oneshot::Sender<bool>,
}

/// Starts rumqttd on `addr` in its own threads. It lives as long as the process. With `logins`,
/// every client must log in, and each login is sent there to be checked (a closed channel or an
/// unanswered request refuses it).
pub fn start(
    addr: SocketAddr,
    logins: Option<mpsc::Sender<LoginRequest>>,
) -> Result<(), BrokerError> {
    // rumqttd logs a failed bind from its own thread and carries on; check first so the
    // operator gets a clear message and the flag to use.
    drop(TcpListener::bind(addr).map_err(|source| BrokerError::AddressInUse { addr, source })?);
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(logins) = logins {
        connections.set_auth_handler(move |client_id, username, password| {
            let logins = logins.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let request = LoginRequest {
                    client_id,
                    username,
                    password,
                    reply,
                };
                if logins.send(request).await.is_err() {
                    return false;
                }
                answer.await.unwrap_or(false)
            }
        });
    }
    let server = ServerSettings {
        name: "v4-embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded mqtt broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    Ok(())
}

//! A publisher that counts the broker's acknowledgements (QoS 1 PUBACKs), shared by
//! `scenario run`, `replay` and `load`, and the broker address they take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the broker is and how to log in.
#[derive(Clone)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password, when the broker asks for them.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: never in logs.
        f.debug_struct("Broker")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.login.as_ref().map(|l| &l.0))
            .finish()
    }
}

impl Broker {
    /// rumqttc options for a client `client_id` of this broker.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(15));
        // Large enough for any payload Dispecer accepts (256 KiB) and a recorded one.
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        if let Some((user, password)) = &self.login {
            o.set_credentials(user.clone(), password.clone());
        }
        o
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// No connection within the time allowed.
    #[error("could not connect to {host}:{port} within {seconds} s: {reason}")]
    Connect {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// How long we waited.
        seconds: u64,
        /// The last connection error seen.
        reason: String,
    },
    /// The client's request queue is closed (the connection task ended).
    #[error("the MQTT client stopped: {0}")]
    Client(#[from] rumqttc::ClientError),
}

#[derive(Debug, Default)]
struct Counts {
    acked: AtomicU64,
    connection_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What the broker acknowledged, at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Messages handed to the client.
    pub sent: u64,
    /// PUBACKs received.
    pub acked: u64,
    /// Connection errors (each followed by a reconnection attempt).
    pub connection_errors: u64,
}

impl Delivery {
    /// Messages the broker never acknowledged.
    pub fn missing(&self) -> u64 {
        self.sent.saturating_sub(self.acked)
    }
}

/// A connected QoS 1 publisher.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    counts: Arc<Counts>,
    poller: JoinHandle<()>,
    sent: u64,
}

/// How many requests may wait for the connection task; publishing waits when it is full.
const REQUEST_QUEUE: usize = 1024;

impl Publisher {
    /// Connects as `client_id`; fails if the broker has not accepted the connection within
    /// `timeout`.
    pub async fn connect(
        broker: &Broker,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Publisher, MqttError> {
        let (client, mut eventloop) = AsyncClient::new(broker.options(client_id), REQUEST_QUEUE);
        let counts = Arc::new(Counts::default());
        let (connected_tx, mut connected) = watch::channel(false);
        let c = counts.clone();
        let poller = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(100);
                        let _ = connected_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        c.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        c.connection_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "mqtt connection error");
                        if let Ok(mut last) = c.last_error.lock() {
                            *last = Some(e.to_string());
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        let ok = tokio::time::timeout(timeout, connected.wait_for(|c| *c)).await;
        if !matches!(ok, Ok(Ok(_))) {
            poller.abort();
            let reason = counts
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_else(|| "no answer".into());
            return Err(MqttError::Connect {
                host: broker.host.clone(),
                port: broker.port,
                seconds: timeout.as_secs(),
                reason,
            });
        }
        Ok(Publisher {
            client,
            counts,
            poller,
            sent: 0,
        })
    }

    /// Publishes with QoS 1; waits only when the request queue is full.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<(), MqttError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        self.sent += 1;
        Ok(())
    }

    /// Messages published so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> u64 {
        self.counts.acked.load(Ordering::Relaxed)
    }

    /// Waits up to `wait` for the outstanding acknowledgements, then disconnects.
    pub async fn finish(self, wait: Duration) -> Delivery {
        let deadline = tokio::time::Instant::now() + wait;
        while self.acked() < self.sent && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delivery = Delivery {
            sent: self.sent,
            acked: self.acked(),
            connection_errors: self.counts.connection_errors.load(Ordering::Relaxed),
        };
        if self.client.disconnect().await.is_ok() {
            // Let the connection task send the DISCONNECT.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.poller.abort();
        delivery
    }
}

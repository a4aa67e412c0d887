//! The MQTT side: SenML packs as a traffic counter sends them, a QoS 1 publisher at full speed,
//! and the raw publish→subscribe limit of a broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::{oneshot, watch};

/// QoS 1 publishes the publisher keeps unacknowledged (rumqttc's default; both brokers allow it).
const INFLIGHT: u16 = 100;

/// Topic prefix of the raw measurement: as long as `dispecer/`, and outside what Dispecer
/// subscribes to, so that the idle Dispecer beside the broker never sees these messages.
pub const RAW_PREFIX: &str = "benchraw/v1/in/traffic/";
/// Dispecer's traffic topic prefix.
pub const INGEST_PREFIX: &str = "dispecer/v1/in/traffic/";

/// One message: the index of its sensor and its payload.
#[derive(Debug, Clone)]
pub struct Pack {
    sensor: usize,
    payload: Vec<u8>,
}

impl Pack {
    /// A message for topic `{prefix}{sensors[sensor]}` of [`publish_all`].
    pub fn new(sensor: usize, payload: Vec<u8>) -> Pack {
        Pack { sensor, payload }
    }

    /// Its topic (`{prefix}{sensors[sensor]}`) and payload.
    pub fn into_parts(self, sensors: &[String], prefix: &str) -> (String, Vec<u8>) {
        (format!("{prefix}{}", sensors[self.sensor]), self.payload)
    }
}

/// SenML packs (count, speed, occupancy) number `range` of a run, spread round-robin over
/// `sensors`; pack `i` is stamped `first_time + i / sensors.len()` seconds (Unix time), so no two
/// readings of a run share (sensor, metric, time).
pub fn packs(sensors: &[String], range: std::ops::Range<usize>, first_time: i64) -> Vec<Pack> {
    range
        .map(|i| {
            let sensor = i % sensors.len();
            let t = first_time + (i / sensors.len()) as i64;
            let count = (i * 7) % 60;
            let speed = 20.0 + ((i * 13) % 400) as f64 / 10.0;
            let occupancy = ((i * 17) % 1000) as f64 / 10.0;
            let payload = format!(
                r#"[{{"bn":"{}/","bt":{t},"n":"count","u":"count","v":{count}}},{{"n":"speed","u":"km/h","v":{speed}}},{{"n":"occupancy","u":"%","v":{occupancy}}}]"#,
                sensors[sensor]
            );
            Pack {
                sensor,
                payload: payload.into_bytes(),
            }
        })
        .collect()
}

/// A client `id` of the broker on `port`: 100 in flight, TCP_NODELAY, 5 s to connect.
pub fn options(id: &str, port: u16) -> (MqttOptions, NetworkOptions) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_inflight(INFLIGHT);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    (opts, network)
}

/// Polls `eventloop` until the connection closes, counting PubAcks in `acked`; fails on the
/// first connection error (a benchmark never reconnects silently).
async fn drive(mut eventloop: EventLoop, acked: Arc<AtomicU64>) -> Result<()> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e).context("publisher connection"),
        }
    }
}

/// The result of publishing a run of packs.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// Just before the first publish.
    pub started: Instant,
    /// When the broker had acknowledged the last one.
    pub acked: Instant,
}

/// Publishes every pack, QoS 1, on `{prefix}{sensor}` as fast as the in-flight window allows,
/// and returns once the broker has acknowledged them all. `started` is sent just before the
/// first publish.
pub async fn publish_all(
    port: u16,
    prefix: &str,
    sensors: &[String],
    packs: Vec<Pack>,
    started: oneshot::Sender<Instant>,
) -> Result<Published> {
    let n = packs.len() as u64;
    let topics: Vec<String> = sensors.iter().map(|s| format!("{prefix}{s}")).collect();
    let (opts, network) = options(
        &format!("bench-pub-{}", uuid::Uuid::now_v7().simple()),
        port,
    );
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    eventloop.set_network_options(network);
    let acked = Arc::new(AtomicU64::new(0));
    let driver = tokio::spawn(drive(eventloop, acked.clone()));
    let t0 = Instant::now();
    let _ = started.send(t0);
    for p in packs {
        client
            .publish(
                topics[p.sensor].as_str(),
                QoS::AtLeastOnce,
                false,
                p.payload,
            )
            .await
            .context("publish")?;
    }
    let mut last = acked.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while last < n {
        if driver.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = acked.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(30) {
            bail!("the broker acknowledged only {last} of {n} publishes (none for 30 s)");
        }
    }
    let done = Instant::now();
    let _ = client.disconnect().await;
    match tokio::time::timeout(Duration::from_secs(5), driver).await {
        Ok(Ok(Err(e))) if last < n => return Err(e),
        _ => {}
    }
    if last < n {
        bail!("the broker acknowledged only {last} of {n} publishes");
    }
    Ok(Published {
        started: t0,
        acked: done,
    })
}

/// A QoS 1 subscriber that counts what it receives (and acknowledges it at once).
struct Counter {
    received: watch::Receiver<u64>,
    client: AsyncClient,
    filter: String,
    unsubscribed: oneshot::Receiver<()>,
    last_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Counter {
    /// Connects to `port`, subscribes to `filter` at QoS 1 and waits for the SubAck.
    /// `persistent`: clean session off, as Dispecer's ingest session.
    async fn connect(port: u16, filter: &str, persistent: bool, expected: u64) -> Result<Self> {
        let (mut opts, network) = options(
            &format!("bench-sub-{}", uuid::Uuid::now_v7().simple()),
            port,
        );
        opts.set_clean_session(!persistent);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        eventloop.set_network_options(network);
        let (count_tx, received) = watch::channel(0u64);
        let (sub_tx, sub_rx) = oneshot::channel();
        let (unsub_tx, unsubscribed) = oneshot::channel();
        let last_at = Arc::new(std::sync::Mutex::new(None));
        let last = last_at.clone();
        let subscriber = client.clone();
        let filter = filter.to_owned();
        let filter_kept = filter.clone();
        tokio::spawn(async move {
            let mut sub_tx = Some(sub_tx);
            let mut unsub_tx = Some(unsub_tx);
            let mut n = 0u64;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = sub_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::UnsubAck(_))) => {
                        if let Some(tx) = unsub_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(_))) => {
                        n += 1;
                        // Only the last one's time matters: take the clock once, at the end.
                        if n == expected {
                            if let Ok(mut at) = last.lock() {
                                *at = Some(Instant::now());
                            }
                        }
                        count_tx.send_replace(n);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), sub_rx)
            .await
            .context("no SubAck from the broker within 10 s")?
            .context("subscriber connection closed before its SubAck")?;
        Ok(Counter {
            received,
            client,
            filter: filter_kept,
            unsubscribed,
            last_at,
        })
    }

    /// Unsubscribes (a persistent session would otherwise keep collecting what later runs
    /// publish) and disconnects.
    async fn close(self) -> Result<()> {
        self.client.unsubscribe(self.filter.clone()).await?;
        tokio::time::timeout(Duration::from_secs(10), self.unsubscribed)
            .await
            .context("no UnsubAck from the broker within 10 s")?
            .context("subscriber connection closed before its UnsubAck")?;
        let _ = self.client.disconnect().await;
        Ok(())
    }
}

/// Raw publish→subscribe throughput of the broker on `port`: one publisher (QoS 1, TCP_NODELAY,
/// 100 in flight), one QoS 1 subscriber, the same packs; messages/s from the first publish to
/// the last receipt.
pub async fn raw_throughput(
    port: u16,
    sensors: &[String],
    packs: Vec<Pack>,
    persistent: bool,
) -> Result<f64> {
    let n = packs.len() as u64;
    let counter = Counter::connect(port, &format!("{RAW_PREFIX}+"), persistent, n).await?;
    let (started_tx, _started_rx) = oneshot::channel();
    let published = publish_all(port, RAW_PREFIX, sensors, packs, started_tx).await?;
    let mut received = counter.received.clone();
    tokio::time::timeout(Duration::from_secs(60), received.wait_for(|&got| got >= n))
        .await
        .with_context(|| {
            format!(
                "the subscriber received {} of {n} messages within 60 s",
                *counter.received.borrow()
            )
        })?
        .context("subscriber connection closed")?;
    let last = counter
        .last_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .context("no time of the last receipt")?;
    counter.close().await?;
    Ok(n as f64 / (last - published.started).as_secs_f64())
}

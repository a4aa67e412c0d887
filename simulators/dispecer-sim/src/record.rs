//! Recording what arrives on a broker, and replaying it.
//!
//! A recording is newline-delimited JSON, one message per line:
//!
//! ```json
//! {"t":"2026-11-24T06:30:00.123456Z","topic":"dispecer/v1/in/citizen/reports","payload":"{…}"}
//! {"t":"2026-11-24T06:30:01.000002Z","topic":"dispecer/v1/in/traffic/tc-garii-n","payload_b64":"n6Jk…"}
//! ```
//!
//! `t` is when the recorder received it (RFC 3339, UTC, microseconds); the payload is `payload`
//! when it is UTF-8 text, `payload_b64` (standard base64) otherwise, e.g. SenML CBOR. Blank lines
//! are skipped; anything else that is not such an object is refused with its line number.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::ProgressBar;
use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeFilter};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::mqtt::{Broker, Delivery, MqttError, Publisher};

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// When it was received.
    pub t: DateTime<Utc>,
    /// Its topic.
    pub topic: String,
    /// Its payload bytes.
    pub payload: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t: String,
    topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_b64: Option<String>,
}

/// Why a recording could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a recorded message.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The broker connection failed.
    #[error(transparent)]
    Mqtt(#[from] MqttError),
}

impl Recorded {
    /// Its line in a recording (without the newline).
    pub fn to_line(&self) -> String {
        let (payload, payload_b64) = match std::str::from_utf8(&self.payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&self.payload)),
            ),
        };
        let line = Line {
            t: self.t.to_rfc3339_opts(SecondsFormat::Micros, true),
            topic: self.topic.clone(),
            payload,
            payload_b64,
        };
        // A struct of strings always serialises.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Reads one line of a recording; the error is the reason.
    pub fn from_line(text: &str) -> Result<Recorded, String> {
        let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let t = DateTime::parse_from_rfc3339(&line.t)
            .map_err(|e| format!("\"t\": {:?} is not an RFC 3339 date-time ({e})", line.t))?
            .with_timezone(&Utc);
        if line.topic.is_empty() || line.topic.contains(['+', '#', '\0']) {
            return Err(format!(
                "\"topic\": {:?} is not a topic to publish on",
                line.topic
            ));
        }
        let payload = match (line.payload, line.payload_b64) {
            (Some(p), None) => p.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| format!("\"payload_b64\" is not base64 ({e})"))?,
            (Some(_), Some(_)) => {
                return Err("give either \"payload\" or \"payload_b64\", not both".into())
            }
            (None, None) => return Err("\"payload\" or \"payload_b64\" is missing".into()),
        };
        Ok(Recorded {
            t,
            topic: line.topic,
            payload,
        })
    }
}

/// Reads a recording from `reader` (named `path` in errors).
pub fn read(reader: impl BufRead, path: &Path) -> Result<Vec<Recorded>, RecordError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            Recorded::from_line(&line).map_err(|reason| RecordError::Line {
                path: path.to_owned(),
                line: i + 1,
                reason,
            })?,
        );
    }
    Ok(out)
}

/// Reads a recording file.
pub fn read_file(path: &Path) -> Result<Vec<Recorded>, RecordError> {
    let file = std::fs::File::open(path).map_err(|source| RecordError::Io {
        path: path.to_owned(),
        source,
    })?;
    read(std::io::BufReader::new(file), path)
}

/// Subscribes to `filters` with QoS 1 and writes every message to `out` (flushed per message)
/// until `shutdown`, or until `limit` messages. Returns how many were written. `subscribed` is
/// told when the broker has first acknowledged the subscriptions.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    broker: &Broker,
    client_id: &str,
    filters: &[String],
    out: &mut (impl Write + Send),
    out_path: &Path,
    limit: Option<u64>,
    mut subscribed: Option<tokio::sync::oneshot::Sender<()>>,
    shutdown: CancellationToken,
) -> Result<u64, RecordError> {
    let (client, mut eventloop) = AsyncClient::new(broker.options(client_id), 64);
    let mut written = 0_u64;
    let mut backoff = Duration::from_millis(100);
    let io = |source| RecordError::Io {
        path: out_path.to_owned(),
        source,
    };
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                // Subscriptions are made again on every connection (clean session), in one
                // SUBSCRIBE, so that one SUBACK says they all hold.
                let filters = filters
                    .iter()
                    .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                client
                    .try_subscribe_many(filters)
                    .map_err(MqttError::from)?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                tracing::info!(filters = ?filters, "recording");
                if let Some(tell) = subscribed.take() {
                    let _ = tell.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let r = Recorded {
                    t: Utc::now(),
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                };
                writeln!(out, "{}", r.to_line()).map_err(io)?;
                out.flush().map_err(io)?;
                written += 1;
                if limit.is_some_and(|l| written >= l) {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "recorder connection error; reconnecting");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(written)
}

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The original spacing divided by this factor (1 = real time).
    Speed(f64),
    /// As fast as the broker takes them.
    Fast,
}

impl Pace {
    /// How long after the start the message recorded `since` after the first one goes out.
    pub fn delay(self, since: chrono::Duration) -> Duration {
        match self {
            Pace::Fast => Duration::ZERO,
            Pace::Speed(n) => since
                .to_std()
                .map(|d| d.div_f64(n.max(f64::MIN_POSITIVE)))
                .unwrap_or(Duration::ZERO),
        }
    }
}

/// The end of a replay.
#[derive(Debug, Clone, Copy)]
pub struct ReplaySummary {
    /// Messages published.
    pub messages: u64,
    /// Wall-clock seconds taken.
    pub seconds: f64,
    /// What the broker acknowledged.
    pub delivery: Delivery,
}

impl ReplaySummary {
    /// Messages per second achieved.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Errors: messages not acknowledged.
    pub fn errors(&self) -> u64 {
        self.delivery.missing()
    }
}

/// Publishes `messages` with their original spacing (scaled by `pace`), once or, with
/// `looping`, until `shutdown`.
pub async fn replay(
    messages: &[Recorded],
    mut publisher: Publisher,
    pace: Pace,
    looping: bool,
    progress: &ProgressBar,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, RecordError> {
    let started = tokio::time::Instant::now();
    let mut published = 0_u64;
    'passes: loop {
        let pass_start = tokio::time::Instant::now();
        progress.set_position(0);
        let Some(first) = messages.first() else {
            break;
        };
        for m in messages {
            let due = pass_start + pace.delay(m.t - first.t);
            tokio::select! {
                () = shutdown.cancelled() => break 'passes,
                () = tokio::time::sleep_until(due) => {}
            }
            publisher.publish(&m.topic, m.payload.clone()).await?;
            published += 1;
            progress.inc(1);
        }
        if !looping || shutdown.is_cancelled() {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let delivery = publisher.finish(Duration::from_secs(10)).await;
    Ok(ReplaySummary {
        messages: published,
        seconds,
        delivery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn text_and_binary_payloads_round_trip_with_microseconds() {
        let text = Recorded {
            t: at("2026-11-24T06:30:00.123456Z"),
            topic: "dispecer/v1/in/citizen/reports".into(),
            payload: "{\"a\": \"ă\\n\"}".as_bytes().to_vec(),
        };
        let binary = Recorded {
            t: at("2026-11-24T06:30:01.000002Z"),
            topic: "dispecer/v1/in/traffic/tc-garii-n".into(),
            payload: vec![0x9f, 0xa2, 0xff, 0x00],
        };
        let l1 = text.to_line();
        let l2 = binary.to_line();
        assert!(l1.contains("\"t\":\"2026-11-24T06:30:00.123456Z\""), "{l1}");
        assert!(
            l1.contains("\"payload\":") && !l1.contains("payload_b64"),
            "{l1}"
        );
        assert!(l2.contains("\"payload_b64\":\"n6L/AA==\""), "{l2}");
        let file = format!("{l1}\n\n{l2}\n");
        let back = read(file.as_bytes(), Path::new("r.ndjson")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, vec![text, binary]);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let good = r#"{"t":"2026-11-24T06:30:00Z","topic":"a/b","payload":"x"}"#;
        let cases = [
            ("not json", "expected ident"),
            (
                r#"{"t":"yesterday","topic":"a/b","payload":"x"}"#,
                "not an RFC 3339",
            ),
            (
                r#"{"t":"2026-11-24T06:30:00Z","topic":"a/#","payload":"x"}"#,
                "not a topic to publish on",
            ),
            (
                r#"{"t":"2026-11-24T06:30:00Z","topic":"a/b"}"#,
                "is missing",
            ),
            (
                r#"{"t":"2026-11-24T06:30:00Z","topic":"a/b","payload":"x","payload_b64":"eA=="}"#,
                "not both",
            ),
            (
                r#"{"t":"2026-11-24T06:30:00Z","topic":"a/b","payload_b64":"!!"}"#,
                "not base64",
            ),
            (
                r#"{"t":"2026-11-24T06:30:00Z","topic":"a/b","payload":"x","qos":1}"#,
                "unknown field `qos`",
            ),
        ];
        for (bad, reason) in cases {
            let file = format!("{good}\n\n{bad}\n{good}\n");
            match read(file.as_bytes(), Path::new("r.ndjson")) {
                Err(RecordError::Line {
                    line, reason: r, ..
                }) => {
                    assert_eq!(line, 3, "{bad}");
                    assert!(r.contains(reason), "{bad}: {r}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn pace_divides_the_original_spacing() {
        let gap = chrono::Duration::seconds(10);
        assert_eq!(Pace::Speed(1.0).delay(gap), Duration::from_secs(10));
        assert_eq!(Pace::Speed(4.0).delay(gap), Duration::from_millis(2500));
        assert_eq!(Pace::Fast.delay(gap), Duration::ZERO);
        // A clock that went back replays at once.
        assert_eq!(Pace::Speed(1.0).delay(-gap), Duration::ZERO);
    }
}

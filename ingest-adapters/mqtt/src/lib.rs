//! MQTT adapters (rumqttc): events in from citizens and utilities, incidents out to agencies.
//!
//! Invariant (at least once, nothing lost): input topics are subscribed with QoS 1 on a
//! persistent session (clean session off, stable client id) with manual acknowledgements. A
//! message is acknowledged only after the engine has committed what it carries, or after a
//! refusal was stored as a dead letter. Redeliveries are harmless: the engine recognises an event
//! by its id.
//!
//! Cluster mode ([`ClusterIngest`]): the input filters are MQTT shared subscriptions; a
//! follower acknowledges a valid message once it is in the store's inbox (a refusal once it is a
//! dead letter), and the leader drains the inbox through its engine ([`run_inbox_drain`]) and
//! the sessions of members that went silent ([`drain_member_sessions`]).
//!
//! Boundary: no incident logic here; payloads are parsed by `protocol` and handed to `engine`.

mod endpoint;
mod ingest;
mod publish;
mod rate;
mod takeover;

pub use endpoint::{ClientTls, Credentials, Endpoint, EndpointError, TlsError};
pub use ingest::{run_ingest, ClusterIngest, IngestOptions};
pub use publish::{run_agency_publisher, PublisherOptions};
pub use rate::{SenderRate, CITIZEN_FACTOR};
pub use takeover::{drain_member_sessions, run_inbox_drain, DrainError};

use std::time::Duration;

/// Capped exponential back-off for reconnects and retries.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay to wait now; doubles up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

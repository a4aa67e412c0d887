//! Per-feed accounting: what each source sent, what was taken, refused or recognised as a
//! redelivery, and when it was last heard from. Read by `/api/v1/feeds` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// What happened to one message of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Taken and durable.
    Accepted,
    /// Refused (a dead letter).
    Rejected,
    /// Recognised as already taken.
    Duplicate,
}

/// Counters of one feed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedCounters {
    /// Messages received.
    pub received: u64,
    /// Messages taken.
    pub accepted: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Redeliveries recognised.
    pub duplicates: u64,
    /// When the last message arrived.
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds between the sender's time and arrival, for the last message that had one.
    pub last_lag_s: Option<f64>,
}

/// Every feed's counters. Feeds are named `citizen`, `utility:{operator}`, `traffic:{sensor}`.
#[derive(Debug, Default)]
pub struct Feeds {
    // A std Mutex: held for a few instructions, never across an await.
    inner: Mutex<BTreeMap<String, FeedCounters>>,
}

impl Feeds {
    /// Counts one message of `feed` received at `at`; `sent_at` is the sender's own time, if any.
    pub fn record(
        &self,
        feed: &str,
        outcome: FeedOutcome,
        at: DateTime<Utc>,
        sent_at: Option<DateTime<Utc>>,
    ) {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The feed's name is copied only the first time it is seen (a record per message).
        if !map.contains_key(feed) {
            map.insert(feed.to_owned(), FeedCounters::default());
        }
        let Some(c) = map.get_mut(feed) else {
            return;
        };
        c.received += 1;
        match outcome {
            FeedOutcome::Accepted => c.accepted += 1,
            FeedOutcome::Rejected => c.rejected += 1,
            FeedOutcome::Duplicate => c.duplicates += 1,
        }
        c.last_seen = Some(at);
        if let Some(sent) = sent_at {
            c.last_lag_s = Some((at - sent).num_milliseconds() as f64 / 1000.0);
        }
    }

    /// A copy of every feed's counters, by name.
    pub fn snapshot(&self) -> BTreeMap<String, FeedCounters> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_feed() {
        let feeds = Feeds::default();
        let t = Utc::now();
        feeds.record(
            "citizen",
            FeedOutcome::Accepted,
            t,
            Some(t - chrono::Duration::seconds(2)),
        );
        feeds.record("citizen", FeedOutcome::Duplicate, t, None);
        feeds.record("traffic:tc-1", FeedOutcome::Rejected, t, None);
        let s = feeds.snapshot();
        let c = &s["citizen"];
        assert_eq!(
            (c.received, c.accepted, c.duplicates, c.rejected),
            (2, 1, 1, 0)
        );
        assert_eq!(c.last_lag_s, Some(2.0));
        assert_eq!(s["traffic:tc-1"].rejected, 1);
    }
}

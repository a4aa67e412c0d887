//! Per-feed accounting: what each source sent, what was taken, refused or recognised as a
//! redelivery, and when it was last heard from. Read by `/api/v1/feeds` and `/metrics`.
//!
//! Each process counts what it received itself. In cluster mode each instance also writes its
//! counters to the store now and then ([`Feeds::rows`], `store::Store::save_feed_counters`),
//! and the cluster's counts are the sum of every instance's ([`sum`]).

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

impl FeedCounters {
    /// Adds `other` (another instance's counters of the same feed): counts summed, the later
    /// `last_seen` kept, with the lag of the instance that saw it.
    pub fn add(&mut self, other: &FeedCounters) {
        self.received += other.received;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.duplicates += other.duplicates;
        if other.last_seen > self.last_seen {
            self.last_seen = other.last_seen;
            if other.last_lag_s.is_some() {
                self.last_lag_s = other.last_lag_s;
            }
        }
        if self.last_lag_s.is_none() {
            self.last_lag_s = other.last_lag_s;
        }
    }
}

impl From<&store::FeedRow> for FeedCounters {
    fn from(r: &store::FeedRow) -> Self {
        FeedCounters {
            received: r.received,
            accepted: r.accepted,
            rejected: r.rejected,
            duplicates: r.duplicates,
            last_seen: r.last_seen,
            last_lag_s: r.last_lag_s,
        }
    }
}

/// The cluster's counters: `own` (this instance's, live) and the stored `rows` of every other
/// instance (`own_instance`'s own stored row, older than `own`, is left out), summed per feed.
pub fn sum(
    own_instance: &str,
    own: BTreeMap<String, FeedCounters>,
    rows: &[store::FeedRow],
) -> BTreeMap<String, FeedCounters> {
    let mut all = own;
    for r in rows.iter().filter(|r| r.instance_id != own_instance) {
        all.entry(r.feed.clone())
            .or_default()
            .add(&FeedCounters::from(r));
    }
    all
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

    /// The feeds whose counters differ from `saved` (what was last written), as `instance`'s
    /// rows; `saved` becomes the current counters.
    pub fn rows(
        &self,
        instance: &str,
        saved: &mut BTreeMap<String, FeedCounters>,
    ) -> Vec<store::FeedRow> {
        let now = self.snapshot();
        let rows = now
            .iter()
            .filter(|(feed, c)| saved.get(*feed) != Some(*c))
            .map(|(feed, c)| store::FeedRow {
                instance_id: instance.to_owned(),
                feed: feed.clone(),
                received: c.received,
                accepted: c.accepted,
                rejected: c.rejected,
                duplicates: c.duplicates,
                last_seen: c.last_seen,
                last_lag_s: c.last_lag_s,
            })
            .collect();
        *saved = now;
        rows
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

    /// Only what changed since the last write is written again.
    #[test]
    fn rows_name_what_changed() {
        let feeds = Feeds::default();
        let t = Utc::now();
        let mut saved = BTreeMap::new();
        feeds.record("citizen", FeedOutcome::Accepted, t, None);
        feeds.record("utility:x", FeedOutcome::Rejected, t, None);
        let first: Vec<String> = feeds
            .rows("a", &mut saved)
            .into_iter()
            .map(|r| r.feed)
            .collect();
        assert_eq!(first, ["citizen", "utility:x"]);
        assert!(feeds.rows("a", &mut saved).is_empty());
        feeds.record("citizen", FeedOutcome::Duplicate, t, None);
        let next = feeds.rows("a", &mut saved);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].instance_id.as_str(), next[0].received), ("a", 2));
    }

    /// The cluster's counts: this instance's live counters plus every other instance's row.
    #[test]
    fn the_cluster_sums_every_instance() {
        let t = Utc::now();
        let row = |instance: &str, feed: &str, accepted: u64, at, lag| store::FeedRow {
            instance_id: instance.into(),
            feed: feed.into(),
            received: accepted,
            accepted,
            rejected: 0,
            duplicates: 0,
            last_seen: Some(at),
            last_lag_s: lag,
        };
        let mut own = BTreeMap::new();
        own.insert(
            "citizen".to_owned(),
            FeedCounters {
                received: 2,
                rejected: 2,
                last_seen: Some(t),
                last_lag_s: Some(1.0),
                ..FeedCounters::default()
            },
        );
        let later = t + chrono::Duration::seconds(5);
        let rows = [
            // This instance's own stored row is older than its live counters: left out.
            row("b", "citizen", 100, t, None),
            row("a", "citizen", 7, later, Some(0.5)),
            row("a", "utility:x", 3, t, None),
        ];
        let all = sum("b", own, &rows);
        let c = &all["citizen"];
        assert_eq!((c.received, c.accepted, c.rejected), (9, 7, 2));
        assert_eq!((c.last_seen, c.last_lag_s), (Some(later), Some(0.5)));
        assert_eq!(all["utility:x"].accepted, 3);
    }
}

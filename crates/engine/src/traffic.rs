//! Traffic congestion: the task that owns the city's [`model::traffic::Detector`], fed with the
//! readings the adapters have just stored, and hands the episodes it opens and ends to the engine
//! as derived events (source `system:traffic`), which then open, update and resolve congestion
//! incidents like any sender's notices: logged, so a rebuild replays them.
//!
//! At start the detector's baselines learn from the last [`HISTORY_DAYS`] days of stored speeds
//! (15-minute means), and every open congestion incident that follows a counter resumes its
//! episode, so a recovery after a restart still resolves it. That happens in the detector's own
//! task, after start-up: readings stored meanwhile wait in its queue.
//!
//! Boundary: no wire format here; the caller gives the function that writes a derived event
//! (`protocol::derived::congestion_event`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use model::traffic::{Change, Detector, Sample};
use model::{CategoryId, City, Event, Reading, SensorId};
use store::{Step, Store};

use crate::{Engine, EngineError};

/// Days of stored readings the baselines learn from at start.
pub const HISTORY_DAYS: i64 = 7;

/// Capacity of the detector's queue, in batches of stored readings (one MQTT batch or HTTP
/// request each). When full, [`Engine::readings_stored`] drops the batch for the detector and
/// counts it (`EngineStats::traffic_dropped`): the readings are stored, ingestion never waits
/// for the detector, and an episode is decided on the readings that follow.
pub const QUEUE: usize = 1024;

/// Writes the event of a detector's change (with its logged payload), received at the given
/// time; an error is logged and the change skipped.
pub type Derive = fn(&Change, &City, DateTime<Utc>) -> Result<Event, String>;

/// Starts the detector on `tracker` for `engine`'s city, unless the city detects no
/// congestion; stops with `shutdown`. From then on [`Engine::readings_stored`] feeds it.
pub fn start(
    engine: &Engine,
    store: Store,
    derive: Derive,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let city = engine.city().clone();
    let Some(category) = city.city().traffic.category.clone() else {
        tracing::info!("no congestion category: traffic congestion is not detected");
        return;
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    if engine.traffic.set(tx).is_err() {
        tracing::warn!("the congestion detector was started twice; keeping the first");
        return;
    }
    // Readings stored from now on wait in the queue while the detector learns its baselines and
    // resumes the open episodes, off the start-up path: the history of a large city takes
    // seconds to read, and the engine may first have a backlog of escalations to announce.
    let engine = engine.clone();
    tracker.spawn(async move {
        let prepared = tokio::select! {
            () = shutdown.cancelled() => None,
            d = prepare(&engine, &store, &category) => d,
        };
        let Some(detector) = prepared else {
            return;
        };
        tracing::info!(
            sensors = city.city().sensors.len(),
            "congestion detector started"
        );
        let task = Task {
            engine,
            detector,
            derive,
            city,
        };
        task.run(rx, shutdown).await;
    });
}

/// The detector with its baselines learnt and every open congestion incident that follows a
/// counter resumed; `None` when the engine has stopped.
async fn prepare(engine: &Engine, store: &Store, category: &CategoryId) -> Option<Detector> {
    let city = engine.city().clone();
    let mut detector = Detector::new(city.city());
    learn_history(&mut detector, store, city.city(), Utc::now()).await;
    let open = match engine.open_incidents().await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(error = %e, "congestion detector not started: the engine stopped");
            return None;
        }
    };
    for i in open {
        if &i.category != category {
            continue;
        }
        // The subject of a counter's congestion notices (`protocol::derived`).
        let Some(sensor) = i
            .external_ref
            .as_deref()
            .and_then(|r| r.strip_prefix("traffic:"))
        else {
            continue;
        };
        detector.resume(&SensorId::new(sensor), i.opened_at);
    }
    Some(detector)
}

/// Feeds the detector the stored 15-minute mean speeds of every counter over the
/// [`HISTORY_DAYS`] days before `now`; a counter whose history cannot be read keeps its
/// free-flow baselines (logged).
async fn learn_history(detector: &mut Detector, store: &Store, city: &City, now: DateTime<Utc>) {
    let from = now - chrono::Duration::days(HISTORY_DAYS);
    let mut learnt = 0usize;
    for site in &city.sensors {
        match store
            .readings_rollup(&site.id, from, now, Step::FifteenMinutes)
            .await
        {
            Ok(rows) => {
                for row in rows.iter().filter(|r| r.metric == "speed") {
                    detector.learn(&site.id, row.bucket, row.avg);
                    learnt += 1;
                }
            }
            Err(e) => {
                tracing::warn!(sensor = %site.id, error = %e, "history not read; free-flow baseline")
            }
        }
    }
    tracing::debug!(slots = learnt, "congestion baselines learnt from history");
}

/// The stored readings as samples: one per (sensor, time), in the order they came.
pub fn samples(readings: &[Reading]) -> Vec<(SensorId, Sample)> {
    let mut out: Vec<(SensorId, Sample)> = Vec::new();
    let mut at: HashMap<(&SensorId, DateTime<Utc>), usize> = HashMap::new();
    for r in readings {
        let i = match at.get(&(&r.sensor, r.time)) {
            Some(i) => *i,
            None => {
                at.insert((&r.sensor, r.time), out.len());
                out.push((
                    r.sensor.clone(),
                    Sample {
                        time: r.time,
                        speed: None,
                        occupancy: None,
                    },
                ));
                out.len() - 1
            }
        };
        match r.metric.as_str() {
            "speed" => out[i].1.speed = Some(r.value),
            "occupancy" => out[i].1.occupancy = Some(r.value),
            _ => {}
        }
    }
    out
}

struct Task {
    engine: Engine,
    detector: Detector,
    derive: Derive,
    city: Arc<model::CityIndex>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<Reading>>, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                b = rx.recv() => match b { Some(b) => b, None => break },
            };
            for (sensor, sample) in samples(&batch) {
                if let Some(change) = self.detector.observe(&sensor, sample) {
                    if !self.hand_over(&change, &shutdown).await {
                        return;
                    }
                }
            }
        }
        tracing::info!("congestion detector stopped");
    }

    /// Gives the engine the event of `change`, retrying a store failure until it is taken or
    /// the process stops (false).
    async fn hand_over(&self, change: &Change, shutdown: &CancellationToken) -> bool {
        use chrono::SubsecRound;
        let event = match (self.derive)(change, self.city.city(), Utc::now().trunc_subsecs(6)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(change = ?change, error = %e, "congestion event not written");
                return true;
            }
        };
        let mut wait = Duration::from_millis(100);
        loop {
            match self.engine.ingest(event.clone()).await {
                Ok(outcome) => {
                    tracing::info!(event = %event.id, outcome = ?outcome, "congestion event taken");
                    return true;
                }
                // "Restored" for an incident an operator resolved already: nothing to do.
                Err(EngineError::Refused(reason)) => {
                    tracing::debug!(event = %event.id, reason, "congestion event refused");
                    return true;
                }
                Err(EngineError::Stopped) => return false,
                Err(e) => {
                    tracing::warn!(event = %event.id, error = %e, "congestion event not taken; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn readings_of_one_time_make_one_sample() {
        let t = |s: i64| {
            Utc.timestamp_opt(1_764_400_000 + s, 0)
                .single()
                .unwrap_or_default()
        };
        let r = |sensor: &str, metric: &str, time, value| Reading {
            sensor: sensor.into(),
            metric: metric.into(),
            time,
            value,
        };
        let got = samples(&[
            r("a", "count", t(0), 10.0),
            r("a", "speed", t(0), 40.0),
            r("b", "speed", t(0), 30.0),
            r("a", "occupancy", t(0), 12.0),
            r("a", "speed", t(60), 20.0),
        ]);
        assert_eq!(
            got,
            vec![
                (
                    "a".into(),
                    Sample {
                        time: t(0),
                        speed: Some(40.0),
                        occupancy: Some(12.0)
                    }
                ),
                (
                    "b".into(),
                    Sample {
                        time: t(0),
                        speed: Some(30.0),
                        occupancy: None
                    }
                ),
                (
                    "a".into(),
                    Sample {
                        time: t(60),
                        speed: Some(20.0),
                        occupancy: None
                    }
                ),
            ]
        );
    }
}

//! `dispecer rebuild`: the incidents rebuilt from the log, compared with the stored ones.

use std::sync::Arc;

use anyhow::{bail, Context};

use engine::rebuild::{rebuild_all, transition_entry, LogEntry};
use model::{CityIndex, Event, Incident};
use protocol::inbound;
use store::{LoggedEvent, Store};

use crate::config::RebuildOptions;

/// The event a logged payload was, parsed again as it was when it arrived.
pub fn event_of(logged: &LoggedEvent, city: &model::City) -> anyhow::Result<Event> {
    let payload = logged.payload.as_bytes();
    let event = if logged.source == "citizen" {
        inbound::citizen_report(payload, city, logged.received_at)
    } else if let Some(operator) = logged.source.strip_prefix("utility:") {
        if logged.payload.trim_start().starts_with('<') {
            inbound::cap_event(payload, operator, city, logged.received_at)
        } else {
            inbound::utility_event(payload, operator, city, logged.received_at)
        }
    } else if let Some(component) = logged.source.strip_prefix("system:") {
        protocol::derived::derived_event(payload, component, city, logged.received_at)
    } else {
        bail!("event {}: unknown source {:?}", logged.id, logged.source);
    }
    .with_context(|| format!("event {}: its logged payload is refused now", logged.id))?;
    if event.id.as_str() != logged.id {
        bail!(
            "event {}: its logged payload parses as event {}",
            logged.id,
            event.id
        );
    }
    Ok(event)
}

/// The whole log of `store`, in order: events and transitions merged by time (an event first
/// at the same instant, as no action can precede the event that opened its incident).
pub async fn log_of(store: &Store, city: &model::City) -> anyhow::Result<Vec<LogEntry>> {
    let events = store.event_log().await?;
    let transitions = store.transitions().await?;
    let mut entries: Vec<(chrono::DateTime<chrono::Utc>, u8, i64, LogEntry)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        entries.push((
            e.received_at,
            0,
            i as i64,
            LogEntry::Event {
                event: Box::new(event_of(e, city)?),
                incident: e.incident.clone(),
            },
        ));
    }
    for t in transitions {
        let (at, seq) = (t.at, t.seq);
        // `None`: the Cancel a resolution issued comes again from replaying the resolution.
        if let Some(entry) = transition_entry(t).map_err(anyhow::Error::msg)? {
            entries.push((at, 1, seq, entry));
        }
    }
    entries.sort_by_key(|e| (e.0, e.1, e.2));
    Ok(entries.into_iter().map(|(_, _, _, e)| e).collect())
}

/// The fields in which two versions of an incident differ.
pub fn differences(stored: &Incident, rebuilt: &Incident) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: stored {a}, rebuilt {b}"));
        }
    };
    field(
        "status",
        stored.status.to_string(),
        rebuilt.status.to_string(),
    );
    field(
        "severity",
        stored.severity.to_string(),
        rebuilt.severity.to_string(),
    );
    field(
        "agency",
        stored.agency.to_string(),
        rebuilt.agency.to_string(),
    );
    field(
        "category",
        stored.category.to_string(),
        rebuilt.category.to_string(),
    );
    field(
        "reports",
        stored.report_count.to_string(),
        rebuilt.report_count.to_string(),
    );
    field(
        "description",
        format!("{:?}", stored.description),
        format!("{:?}", rebuilt.description),
    );
    field(
        "opened_at",
        stored.opened_at.to_rfc3339(),
        rebuilt.opened_at.to_rfc3339(),
    );
    field(
        "updated_at",
        stored.updated_at.to_rfc3339(),
        rebuilt.updated_at.to_rfc3339(),
    );
    field(
        "deadlines",
        format!("{:?}", stored.sla),
        format!("{:?}", rebuilt.sla),
    );
    field(
        "external_ref",
        format!("{:?}", stored.external_ref),
        format!("{:?}", rebuilt.external_ref),
    );
    field(
        "location",
        format!("{:?}", stored.location),
        format!("{:?}", rebuilt.location),
    );
    field(
        "area",
        format!("{:?}", stored.area),
        format!("{:?}", rebuilt.area),
    );
    field(
        "merged_into",
        format!("{:?}", stored.merged_into),
        format!("{:?}", rebuilt.merged_into),
    );
    field(
        "explained_by",
        format!("{:?}", stored.explained_by),
        format!("{:?}", rebuilt.explained_by),
    );
    field(
        "routing",
        format!("{:?}", stored.routing),
        format!("{:?}", rebuilt.routing),
    );
    out
}

/// Rebuilds and compares; the lines of the report, and whether everything matched.
pub async fn check(store: &Store, city: Arc<CityIndex>) -> anyhow::Result<(Vec<String>, bool)> {
    let log = log_of(store, city.city()).await?;
    let entries = log.len();
    let (rebuilt, rebuilt_warnings) = rebuild_all(city, log).await?;
    let stored = store.all_incidents().await?;
    let mut lines = Vec::new();
    let stored_warnings = store.all_warnings().await?;
    if stored_warnings != rebuilt_warnings {
        lines.push(format!(
            "public warnings: {} versions stored, {} rebuilt, and they differ",
            stored_warnings.len(),
            rebuilt_warnings.len()
        ));
    }
    let mut rebuilt_by_id: std::collections::HashMap<_, _> =
        rebuilt.iter().map(|i| (i.id.clone(), i)).collect();
    for s in &stored {
        match rebuilt_by_id.remove(&s.id) {
            None => lines.push(format!("{}: stored, but the log does not rebuild it", s.id)),
            Some(r) => {
                for d in differences(s, r) {
                    lines.push(format!("{}: {d}", s.id));
                }
            }
        }
    }
    for id in rebuilt_by_id.keys() {
        lines.push(format!("{id}: rebuilt from the log, but not stored"));
    }
    let same = lines.is_empty();
    lines.insert(
        0,
        format!(
            "{} log entries rebuilt {} incidents; {} stored: {}",
            entries,
            rebuilt.len(),
            stored.len(),
            if same { "identical" } else { "DIFFERENT" }
        ),
    );
    Ok((lines, same))
}

pub async fn run(options: RebuildOptions) -> anyhow::Result<()> {
    let city_dir = options.city.clone();
    let city = tokio::task::spawn_blocking(move || city::load(&city_dir)).await??;
    let city = Arc::new(CityIndex::new(city));
    let store = Store::connect(&options.db.database_url).await?;
    let result = check(&store, city).await;
    store.close().await;
    let (lines, same) = result?;
    for line in &lines {
        println!("{line}");
    }
    if !same {
        bail!("the incidents rebuilt from the log differ from the stored ones");
    }
    Ok(())
}

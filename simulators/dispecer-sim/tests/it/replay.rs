//! Every scenario of `simulators/scenarios/`, replayed through a real engine on an in-memory
//! SQLite store with the Brașov city, must reach its expected outcome. Messages are parsed as
//! the MQTT adapter parses them (`dispecer_sim::wire`), with Dispecer's clock at `start + at`:
//! the engine's deadlines are checked at each step's time and at the story's end, not against
//! the wall clock, so what escalates is what would have escalated had the story happened.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use dispecer_sim::scenario::{self, Scenario};
use dispecer_sim::wire::{self, Parsed};
use engine::{Engine, EngineError, EngineOptions, IngestOutcome};
use model::{City, CityIndex, IncidentId};
use store::Store;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn brasov() -> City {
    city::load(&root().join("cities/brasov")).unwrap_or_else(|e| panic!("demo city: {e}"))
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = root().join("simulators/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The deadlines `inc` missed, named as scenarios name them.
fn escalations(inc: &model::Incident) -> Vec<String> {
    let mut missed = Vec::new();
    if inc.sla.ack_escalated_at.is_some() {
        missed.push("acknowledge".to_owned());
    }
    if inc.sla.resolve_escalated_at.is_some() {
        missed.push("resolve".to_owned());
    }
    missed
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
enum StepOutcome {
    Incident(IncidentId, &'static str),
    Duplicate,
    Refused(String),
    Readings(u64),
}

/// Replays `s` and returns each step's outcome and a store holding the result.
async fn replay(s: &Scenario, city: &City) -> (Vec<StepOutcome>, Store) {
    let store = Store::connect("sqlite::memory:")
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let index = Arc::new(CityIndex::new(city.clone()));
    let options = EngineOptions {
        wall_clock: false,
        ..EngineOptions::default()
    };
    let engine = Engine::start_with(
        options,
        index,
        store.clone(),
        None,
        shutdown.clone(),
        &tracker,
    )
    .await
    .unwrap_or_else(|e| panic!("engine: {e}"));
    // A scenario without a fixed start runs at a fixed date, so that runs compare.
    let start = s.start.unwrap_or_else(|| {
        Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0)
            .single()
            .unwrap_or_default()
    });
    let mut outcomes = Vec::new();
    for m in s.messages(start) {
        // Time passes up to this step: what went overdue meanwhile escalates first.
        engine
            .escalate_due(m.received_at(start))
            .await
            .unwrap_or_else(|e| panic!("escalation check: {e}"));
        let outcome = match wire::parse(&m.topic, &m.payload, city, m.received_at(start)) {
            Err(e) => StepOutcome::Refused(e.to_string()),
            Ok(Parsed::Readings(r)) => StepOutcome::Readings(
                store
                    .record_readings(&r)
                    .await
                    .unwrap_or_else(|e| panic!("readings: {e}")),
            ),
            Ok(Parsed::Event(e)) => match engine.ingest(*e).await {
                Ok(IngestOutcome::Opened(id)) => StepOutcome::Incident(id, "opened"),
                Ok(IngestOutcome::Joined(id)) => StepOutcome::Incident(id, "joined"),
                Ok(IngestOutcome::Updated(id)) => StepOutcome::Incident(id, "updated"),
                Ok(IngestOutcome::Resolved(id)) => StepOutcome::Incident(id, "resolved"),
                Ok(IngestOutcome::Duplicate) => StepOutcome::Duplicate,
                Err(e @ (EngineError::Refused(_) | EngineError::UnknownCategory(_))) => {
                    StepOutcome::Refused(e.to_string())
                }
                Err(e) => panic!("{}: step {}: {e}", s.name, m.step),
            },
        };
        outcomes.push(outcome);
    }
    engine
        .escalate_due(s.end_at(start))
        .await
        .unwrap_or_else(|e| panic!("escalation check: {e}"));
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    (outcomes, store)
}

/// Compares the replay with the expectation; returns the differences and a report of what
/// happened.
async fn compare(s: &Scenario, outcomes: &[StepOutcome], store: &Store) -> (Vec<String>, String) {
    let mut wrong = Vec::new();
    let by_step: HashMap<&str, &StepOutcome> = s
        .steps
        .iter()
        .map(|st| st.id.as_str())
        .zip(outcomes)
        .collect();
    let mut names: HashMap<IncidentId, String> = HashMap::new();
    for exp in &s.expect.incidents {
        let mut ids: Vec<IncidentId> = Vec::new();
        for step in &exp.steps {
            match by_step.get(step.as_str()) {
                Some(StepOutcome::Incident(id, _)) => {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                other => wrong.push(format!(
                    "{}: step {step} should be in incident {}, but: {other:?}",
                    s.name, exp.name
                )),
            }
        }
        if ids.len() > 1 {
            wrong.push(format!(
                "{}: incident {}'s steps went to {} incidents",
                s.name,
                exp.name,
                ids.len()
            ));
        }
        let Some(id) = ids.first() else { continue };
        if let Some(other) = names.insert(id.clone(), exp.name.clone()) {
            wrong.push(format!(
                "{}: incidents {other} and {} are one incident",
                s.name, exp.name
            ));
        }
        let Some(inc) = store
            .incident(id)
            .await
            .unwrap_or_else(|e| panic!("store: {e}"))
        else {
            wrong.push(format!(
                "{}: incident {} is not in the store",
                s.name, exp.name
            ));
            continue;
        };
        let mut check = |what: &str, actual: String, expected: &str| {
            if actual != expected {
                wrong.push(format!(
                    "{}: incident {}: {what} is {actual}, expected {expected}",
                    s.name, exp.name
                ));
            }
        };
        check("category", inc.category.to_string(), &exp.category);
        check("agency", inc.agency.to_string(), &exp.agency);
        if let Some(st) = exp.status {
            check("status", inc.status.to_string(), st.as_str());
        }
        if let Some(n) = exp.reports {
            check("report count", inc.report_count.to_string(), &n.to_string());
        }
        if let Some(d) = &exp.district {
            let actual = inc.district.as_ref().map(ToString::to_string);
            check("district", actual.unwrap_or_default(), d);
        }
        if let Some(e) = &exp.escalated {
            check(
                "escalated for",
                format!("{:?}", escalations(&inc)),
                &format!("{e:?}"),
            );
        }
    }
    for step in &s.expect.duplicates {
        if by_step.get(step.as_str()) != Some(&&StepOutcome::Duplicate) {
            wrong.push(format!(
                "{}: step {step} should be a duplicate, but: {:?}",
                s.name,
                by_step.get(step.as_str())
            ));
        }
    }
    for step in &s.expect.refused {
        if !matches!(by_step.get(step.as_str()), Some(StepOutcome::Refused(_))) {
            wrong.push(format!(
                "{}: step {step} should be refused, but: {:?}",
                s.name,
                by_step.get(step.as_str())
            ));
        }
    }
    for (st, o) in s.steps.iter().zip(outcomes) {
        if let StepOutcome::Incident(id, _) = o {
            if !names.contains_key(id) {
                wrong.push(format!(
                    "{}: step {} went to an incident no expectation names",
                    s.name, st.id
                ));
            }
        }
        if matches!(o, StepOutcome::Refused(_)) && !s.expect.refused.contains(&st.id) {
            wrong.push(format!(
                "{}: step {} was refused unexpectedly: {o:?}",
                s.name, st.id
            ));
        }
    }

    // The report for the issue: the incidents as the engine left them.
    let mut report = format!("## {} — {}\n", s.name, s.title.en);
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut incidents: Vec<IncidentId> = Vec::new();
    for (st, o) in s.steps.iter().zip(outcomes) {
        if let StepOutcome::Incident(id, verb) = o {
            if !incidents.contains(id) {
                incidents.push(id.clone());
            }
            members
                .entry(id.to_string())
                .or_default()
                .push(format!("{}({verb})", st.id));
        }
    }
    for id in &incidents {
        let name = names
            .get(id)
            .cloned()
            .unwrap_or_else(|| "(unexpected)".into());
        if let Ok(Some(inc)) = store.incident(id).await {
            let _ = writeln!(
                report,
                "- {name}: {} → {}, {}, {} report(s), district {}, escalated for {:?}; steps {}",
                inc.category,
                inc.agency,
                inc.status,
                inc.report_count,
                inc.district
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into()),
                escalations(&inc),
                members
                    .get(&id.to_string())
                    .map(|m| m.join(" "))
                    .unwrap_or_default()
            );
        }
    }
    let count = |f: fn(&StepOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let _ = writeln!(
        report,
        "- duplicates: {}; refused: {}; traffic packs stored: {} ({} readings)",
        count(|o| *o == StepOutcome::Duplicate),
        count(|o| matches!(o, StepOutcome::Refused(_))),
        count(|o| matches!(o, StepOutcome::Readings(_))),
        outcomes
            .iter()
            .map(|o| match o {
                StepOutcome::Readings(n) => *n,
                _ => 0,
            })
            .sum::<u64>()
    );
    for (st, o) in s.steps.iter().zip(outcomes) {
        if let StepOutcome::Refused(r) = o {
            let _ = writeln!(report, "  - {} refused: {r}", st.id);
        }
    }
    (wrong, report)
}

#[tokio::test]
async fn every_scenario_reaches_its_expected_outcome() {
    let city = brasov();
    let files = scenario_files();
    assert!(files.len() >= 5, "scenarios: {files:?}");
    let mut wrong = Vec::new();
    for file in files {
        let s = scenario::load(&file, &city).unwrap_or_else(|e| panic!("{e}"));
        let (outcomes, store) = replay(&s, &city).await;
        let (w, report) = compare(&s, &outcomes, &store).await;
        println!("{report}");
        wrong.extend(w);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_wrong_expectation_is_caught() {
    // The comparison itself must be able to fail: the same scenario with the agency changed.
    let city = brasov();
    let file = root().join("simulators/scenarios/night-noise-and-duplicates.toml");
    let mut s = scenario::load(&file, &city).unwrap_or_else(|e| panic!("{e}"));
    let Some(first) = s.expect.incidents.first_mut() else {
        panic!("the night scenario expects incidents");
    };
    first.agency = "city-dispatch".into();
    // And an escalation that cannot have happened: the noise is reported minutes before the end.
    first.escalated = Some(vec!["acknowledge".into()]);
    let (outcomes, store) = replay(&s, &city).await;
    let (wrong, _) = compare(&s, &outcomes, &store).await;
    assert!(
        wrong.iter().any(|w| w.contains("agency is")),
        "a wrong agency went unnoticed: {wrong:?}"
    );
    assert!(
        wrong.iter().any(|w| w.contains("escalated for is")),
        "a wrong escalation went unnoticed: {wrong:?}"
    );
}

//! Operators merge incidents and split reports out of them, and undo either; the timeline keeps
//! who, when and why, and the log still rebuilds exactly what is stored.

use chrono::{Duration, Utc};
use engine::{EngineError, IngestOutcome};
use geo::Point;
use model::{Action, IncidentId, IncidentStatus, TransitionError};
use store::Store;

use crate::lifecycle::{brasov, log_of, pothole_report, request, Running, TempDir, NEVER};

#[tokio::test]
async fn merge_split_and_their_undoing_are_recorded_and_rebuilt() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    let t = Utc::now() - Duration::minutes(30);
    let mut far = pothole_report("r-far", t + Duration::minutes(2));
    far.location = Point::new(25.6200, 45.6600);
    let mut other = pothole_report("r-other", t + Duration::minutes(3));
    other.location = Point::new(25.6000, 45.6500);
    let events = vec![
        pothole_report("r-1", t),
        pothole_report("r-2", t + Duration::minutes(1)),
        far,
        other,
    ];
    let mut outcomes = Vec::new();
    for ev in &events {
        outcomes.push(e.ingest(ev.clone()).await.expect("ingest"));
    }
    let [IngestOutcome::Opened(a), IngestOutcome::Joined(_), IngestOutcome::Opened(b), IngestOutcome::Opened(d)] =
        &outcomes[..]
    else {
        panic!("two reports in one incident, two alone: {outcomes:?}");
    };
    let act = |id: &IncidentId, action: Action| e.act(request(id, action, "operator:ana"));

    // Split r-2 out of A: a new incident, routed afresh; A keeps one report.
    let split = Action::Split {
        event: "r-2".into(),
        new_incident: None,
    };
    let after = act(a, split).await.expect("split");
    assert_eq!(
        (after.status, after.report_count),
        (IncidentStatus::Assigned, 1)
    );
    let store = running.store();
    let c = store
        .event_place(&"r-2".into())
        .await
        .expect("read")
        .expect("r-2")
        .incident;
    assert_ne!(&c, a, "r-2 is in a new incident");
    let opened = store.incident(&c).await.expect("read").expect("c");
    assert_eq!(
        (opened.status, opened.report_count, opened.agency.as_str()),
        (IncidentStatus::Assigned, 1, "domeniu-public")
    );
    // Undo the split: merge the new incident back.
    let back = act(&c, Action::Merge { into: a.clone() })
        .await
        .expect("merge back");
    assert_eq!(
        (back.status, back.report_count, back.merged_into.as_ref()),
        (IncidentStatus::Duplicate, 0, Some(a))
    );
    // Merge B into A, then undo it.
    act(b, Action::Acknowledge).await.expect("ack");
    let merged = act(b, Action::Merge { into: a.clone() })
        .await
        .expect("merge");
    assert_eq!(merged.status, IncidentStatus::Duplicate);
    let a_now = e.open_incidents().await.expect("snapshot");
    let a_now = a_now.iter().find(|i| i.id == *a).expect("a is open");
    assert_eq!(a_now.report_count, 3, "r-1, r-2 back, r-far");
    let unmerged = act(b, Action::Unmerge).await.expect("unmerge");
    assert_eq!(
        (
            unmerged.status,
            unmerged.report_count,
            unmerged.merged_into.clone()
        ),
        (IncidentStatus::Assigned, 1, None)
    );
    let place = store.event_place(&"r-far".into()).await.expect("read");
    assert_eq!(
        place.map(|p| p.incident),
        Some(b.clone()),
        "r-far is back in B"
    );

    // Refusals change nothing.
    type Check = fn(&EngineError) -> bool;
    let refusals: Vec<(&str, IncidentId, Action, Check)> = vec![
        (
            "merge into itself",
            a.clone(),
            Action::Merge { into: a.clone() },
            |e| matches!(e, EngineError::Transition(TransitionError::MergeIntoItself)),
        ),
        (
            "merge into an incident no longer open",
            d.clone(),
            Action::Merge { into: c.clone() },
            |e| matches!(e, EngineError::Conflict(m) if m.contains("only an open incident")),
        ),
        (
            "split a report of another incident",
            b.clone(),
            Action::Split {
                event: "r-1".into(),
                new_incident: None,
            },
            |e| matches!(e, EngineError::Conflict(m) if m.contains("not in")),
        ),
        (
            "split an incident's only report",
            b.clone(),
            Action::Split {
                event: "r-far".into(),
                new_incident: None,
            },
            |e| matches!(e, EngineError::Conflict(m) if m.contains("only one")),
        ),
        (
            "unmerge what was not merged",
            d.clone(),
            Action::Unmerge,
            |e| {
                matches!(
                    e,
                    EngineError::Transition(TransitionError::NotAllowed { .. })
                )
            },
        ),
    ];
    for (name, id, action, check) in refusals {
        let got = act(&id, action).await.expect_err(name);
        assert!(check(&got), "{name}: {got:?}");
    }
    let mut as_agency = request(
        d,
        Action::Merge { into: a.clone() },
        "agency:domeniu-public",
    );
    as_agency.as_agency = Some("domeniu-public".into());
    assert!(matches!(
        e.act(as_agency).await,
        Err(EngineError::OperatorsOnly(_))
    ));

    // The timeline keeps who, when and why, on both sides.
    let timeline = store.timeline(a).await.expect("timeline");
    let kinds: Vec<&str> = timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "report_joined",
            "split",
            "merged_in",
            "merged_in",
            "unmerged_out"
        ]
    );
    assert!(timeline[2..]
        .iter()
        .all(|t| t.actor == "operator:ana" && t.reason.as_deref() == Some("operator:ana says so")));
    running.stop().await;

    // The log rebuilds exactly what is stored.
    let store = Store::connect(&url).await.expect("store");
    let log = log_of(&store, &events).await;
    let rebuilt = engine::rebuild::rebuild(brasov(), log)
        .await
        .expect("rebuild");
    let stored = store.all_incidents().await.expect("incidents");
    assert_eq!(stored.len(), 4);
    assert_eq!(
        rebuilt, stored,
        "the log rebuilds exactly the stored incidents"
    );
    store.close().await;
}

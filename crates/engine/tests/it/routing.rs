//! Routing with the Brașov data: who else is informed, and why, kept with the incident.

use chrono::Utc;
use engine::IngestOutcome;
use store::Store;

use crate::fusion::citizen;
use crate::lifecycle::{request, Running, TempDir, NEVER};
use model::Action;

#[tokio::test]
async fn a_burst_main_informs_the_traffic_police_and_public_transport() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let t = Utc::now();
    /// An informed agency: id, rule, area.
    type Informed<'a> = (&'a str, &'a str, Option<&'a str>);
    // (category, informed agencies)
    let cases: [(&str, &[Informed]); 3] = [
        (
            "water_leak",
            &[
                ("politia-rutiera", "category_kind", Some("city")),
                ("rat-brasov", "category_kind", Some("city")),
            ],
        ),
        (
            "gas_smell",
            &[(
                "politia-locala-sud",
                "category_kind",
                Some("centrul-istoric"),
            )],
        ),
        ("pothole", &[]),
    ];
    let mut opened: Vec<(model::IncidentId, model::RoutingDecision)> = Vec::new();
    for (i, (category, expected)) in cases.iter().enumerate() {
        let event = citizen(&format!("c-{i}"), category, 25.5887, 45.6419, t);
        let IngestOutcome::Opened(id) = running.engine.ingest(event).await.expect("ingest") else {
            panic!("{category}: a new incident");
        };
        let open = running.engine.open_incidents().await.expect("snapshot");
        let incident = open.iter().find(|x| x.id == id).expect("open");
        let got: Vec<Informed> = incident
            .routing
            .informed
            .iter()
            .map(|x| {
                (
                    x.agency.as_str(),
                    x.rule.as_str(),
                    x.area.as_ref().map(model::AreaId::as_str),
                )
            })
            .collect();
        assert_eq!(got, *expected, "{category}");
        assert!(
            got.iter().all(|(a, _, _)| *a != incident.agency.as_str()),
            "{category}: the responsible agency is not also 'informed'"
        );
        opened.push((id, incident.routing.clone()));
    }
    // An operator overrides the water leak's routing.
    let leak = opened[0].0.clone();
    running
        .engine
        .act(request(
            &leak,
            Action::Assign {
                agency: "city-dispatch".into(),
            },
            "operator:ana",
        ))
        .await
        .expect("reassign");
    running.stop().await;
    let store = Store::connect(&url).await.expect("store");
    for (id, routing) in &opened {
        let stored = store.incident(id).await.expect("read").expect("stored");
        assert_eq!(
            stored.routing.informed, routing.informed,
            "stored as decided"
        );
        assert_eq!(stored.routing.chosen, routing.chosen, "stored as decided");
    }
    // The override is counted against the rule that routed it, after a restart too.
    let report = store.routing_overrides().await.expect("report");
    let first = &report[0];
    assert_eq!(
        (
            first.rule.agency.as_str(),
            first.routed,
            first.overridden,
            first.reassigned_to.clone()
        ),
        ("apa-brasov", 1, 1, vec![("city-dispatch".into(), 1)])
    );
    assert!(report[1..].iter().all(|r| r.overridden == 0), "{report:?}");
    store.close().await;
}

//! Routing with the Brașov data: who else is informed, and why, kept with the incident.

use chrono::Utc;
use engine::IngestOutcome;
use store::Store;

use crate::fusion::citizen;
use crate::lifecycle::{Running, TempDir, NEVER};

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
    let mut opened = Vec::new();
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
            .map(|x| (x.agency.as_str(), x.rule.as_str(), x.area.as_deref()))
            .collect();
        assert_eq!(got, *expected, "{category}");
        assert!(
            got.iter().all(|(a, _, _)| *a != incident.agency.as_str()),
            "{category}: the responsible agency is not also 'informed'"
        );
        opened.push((id, incident.routing.clone()));
    }
    running.stop().await;
    let store = Store::connect(&url).await.expect("store");
    for (id, routing) in opened {
        let stored = store.incident(&id).await.expect("read").expect("stored");
        assert_eq!(stored.routing, routing, "stored as decided");
    }
    store.close().await;
}

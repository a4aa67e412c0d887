//! The console's map when it is crowded, and the city's layers, in a real browser: 32 citizens'
//! reports a hundred metres apart are one cluster at city zoom, counting them and coloured like
//! the worst of them; a new report joins it live and a resolved one leaves it (a small grey marker
//! of its own); picking one in the queue zooms in until its marker stands alone with its popup
//! open. The agencies' jurisdictions are a layer the operator switches on (one path per area of
//! `/api/v1/city`, one colour per agency, in Romanian and English), and an agency user sees its
//! own from the start. Screenshots under target/e2e-screenshots/console-map-*.png.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, Locator};
use serde_json::json;

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

use crate::browser::{assert_no_csp_violations, log_in, open_browser, screenshot};

const PASSWORD: &str = "parola-lunga-1";
const WAIT: Duration = Duration::from_secs(20);
/// The agency user's agency: district heating, whose jurisdiction is ten districts.
const HEATING: &str = "termoficare-brasov";
/// The grid of reports: 8 × 4 places about 100 m apart (more than a pothole's merge radius)
/// from Piața Sfatului eastwards and northwards.
const COLUMNS: u32 = 8;
const ROWS: u32 = 4;
/// The place in the grid of the one gas smell (severe: the others are minor potholes).
const GAS_AT: (u32, u32) = (3, 2);

fn place(column: u32, row: u32) -> (f64, f64) {
    (
        25.5887 + f64::from(column) * 0.0013,
        45.6419 + f64::from(row) * 0.0009,
    )
}

/// The ids of the open incidents, waiting until there are `n`.
async fn open_ids(server: &Dispecer, n: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, _, list) = server.get("/api/v1/incidents?status=open").await?;
        let mut ids: Vec<String> = list["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() == n {
            ids.sort();
            return Ok(ids);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} open incidents instead of {n}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The id of the only open incident of `category`.
async fn only_open(server: &Dispecer, category: &str) -> Result<String> {
    let (_, _, list) = server
        .get(&format!(
            "/api/v1/incidents?status=open&category={category}"
        ))
        .await?;
    match list["features"].as_array().map(Vec::as_slice) {
        Some([one]) => one["id"].as_str().map(str::to_owned).context("no id"),
        _ => anyhow::bail!("not one open {category}: {list}"),
    }
}

/// The clusters drawn on the map: (count, worst severity, the incidents' ids sorted).
async fn clusters(browser: &Client) -> Result<Vec<(usize, String, Vec<String>)>> {
    let mut out = Vec::new();
    for c in browser
        .find_all(Locator::Css(".leaflet-marker-pane .incident-cluster"))
        .await?
    {
        let count = c
            .attr("data-cluster-count")
            .await?
            .unwrap_or_default()
            .parse()?;
        let worst = c.attr("data-worst-severity").await?.unwrap_or_default();
        let mut ids: Vec<String> = c
            .attr("data-incident-ids")
            .await?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        ids.sort();
        out.push((count, worst, ids));
    }
    Ok(out)
}

/// Waits until the map shows exactly one cluster, with `count` incidents, the worst `worst`.
async fn one_cluster(browser: &Client, count: usize, worst: &str) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = clusters(browser).await?;
        if let [(n, w, ids)] = now.as_slice() {
            if *n == count && w == worst {
                anyhow::ensure!(ids.len() == count, "the cluster lists {ids:?}");
                return Ok(ids.clone());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the map shows the clusters {:?}, not one of {count} ({worst})",
            now.iter().map(|(n, w, _)| (n, w)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agencies of the jurisdictions' paths drawn on the map, sorted.
async fn jurisdiction_paths(browser: &Client) -> Result<Vec<String>> {
    let mut agencies = Vec::new();
    for p in browser
        .find_all(Locator::Css("#map path.jurisdiction-shape"))
        .await?
    {
        agencies.push(p.attr("data-agency").await?.unwrap_or_default());
    }
    agencies.sort();
    Ok(agencies)
}

/// Waits until the jurisdictions' paths are `want` (their agencies, sorted).
async fn wait_jurisdictions(browser: &Client, want: &[String]) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = jurisdiction_paths(browser).await?;
        if now == want {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} jurisdiction paths drawn ({now:?}) instead of {}",
            now.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crowded_map_clusters_and_shows_jurisdictions() -> Result<()> {
    let dir = TempDir::new("dispecer-console-map");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    for (name, role, agency) in [("ana", "operator", None), ("toma", "agency", Some(HEATING))] {
        let (ok, err) = e2e::dispecer_user_add(&db, name, role, agency, PASSWORD)?;
        assert!(ok, "{err}");
    }
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (_, _, city) = server.get("/api/v1/city").await?;
    // The agency of each jurisdiction area, sorted: what the layer must draw.
    let areas = |only: Option<&str>| -> Result<Vec<String>> {
        let mut agencies: Vec<String> = city["jurisdictions"]["features"]
            .as_array()
            .context("no jurisdictions in the city")?
            .iter()
            .filter_map(|f| f["properties"]["agency"].as_str())
            .filter(|a| only.is_none_or(|o| o == *a))
            .map(str::to_owned)
            .collect();
        agencies.sort();
        Ok(agencies)
    };
    let every_area = areas(None)?;
    let heating_areas = areas(Some(HEATING))?;
    assert!(
        heating_areas.len() > 1 && every_area.len() > heating_areas.len(),
        "{every_area:?}"
    );

    // 32 reports close together, before anyone looks.
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    for row in 0..ROWS {
        for column in 0..COLUMNS {
            let (lon, lat) = place(column, row);
            let category = if (column, row) == GAS_AT {
                "gas_smell"
            } else {
                "pothole"
            };
            let id = format!("crowd-{column}-{row}-{}", uuid::Uuid::now_v7());
            mqtt.publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(&id, category, lon, lat),
            )
            .await?;
        }
    }
    let filed = open_ids(&server, (COLUMNS * ROWS) as usize).await?;
    let gas = only_open(&server, "gas_smell").await?;

    let (driver, browser) = open_browser(&dir).await?;
    let result = async {
        browser.goto(&format!("{}/", server.http)).await?;
        log_in(&browser, "ana", PASSWORD).await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("page not live")?;

        // At city zoom: one cluster of all 32, coloured like the gas smell (severe); no
        // incident drawn on its own.
        let ids = one_cluster(&browser, filed.len(), "severe").await?;
        assert_eq!(ids, filed, "the cluster holds the incidents filed");
        assert!(
            browser
                .find_all(Locator::Css(".leaflet-marker-pane [data-incident-id]"))
                .await?
                .is_empty(),
            "an incident is drawn outside the cluster"
        );
        let title = browser
            .find(Locator::Css(".incident-cluster"))
            .await?
            .attr("title")
            .await?
            .unwrap_or_default();
        assert!(title.starts_with("32 de incidente deschise"), "{title:?}");
        screenshot(&browser, "console-map-cluster").await?;

        // Live over the WebSocket: a new report joins the cluster…
        let (lon, lat) = place(COLUMNS, 0);
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(
                &format!("crowd-late-{}", uuid::Uuid::now_v7()),
                "pothole",
                lon,
                lat,
            ),
        )
        .await?;
        let now_open = open_ids(&server, filed.len() + 1).await?;
        let ids = one_cluster(&browser, now_open.len(), "severe").await?;
        assert_eq!(ids, now_open);
        // …and the gas smell, resolved, leaves it: the worst left is minor, and the gas smell
        // is a small grey marker of its own.
        let operator = e2e::login(&server.http, "ana", PASSWORD).await?;
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/incidents/{gas}/actions", server.http))
            .header("cookie", &operator.cookie)
            .header("x-csrf-token", &operator.csrf)
            .json(&json!({"action": "resolve"}))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
        one_cluster(&browser, filed.len(), "minor").await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!(
                ".leaflet-marker-pane .incident-marker.is-closed[data-incident-id='{gas}']"
            )))
            .await
            .context("the resolved gas smell is not drawn on its own")?;
        screenshot(&browser, "console-map-cluster-live").await?;

        // Picked in the queue: the map zooms in until its marker stands alone, popup open.
        let picked = now_open
            .iter()
            .find(|id| **id != gas)
            .context("no pothole")?
            .clone();
        browser
            .find(Locator::Css(&format!(
                "#queue-list [data-queue-id='{picked}']"
            )))
            .await
            .with_context(|| format!("{picked} is not in the queue"))?
            .send_keys("\u{E007}") // Enter
            .await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!(
                ".leaflet-marker-pane [data-incident-id='{picked}']"
            )))
            .await
            .context("the picked incident's marker is not shown")?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!(
                ".leaflet-popup [data-actions-for='{picked}']"
            )))
            .await
            .context("the picked incident's popup is not open")?;
        screenshot(&browser, "console-map-picked").await?;
        browser
            .find(Locator::Css(".leaflet-popup-close-button"))
            .await?
            .click()
            .await?;
        // Back to the whole city: clustered again.
        browser.find(Locator::Id("map-home")).await?.click().await?;
        one_cluster(&browser, filed.len(), "minor").await?;
        // With the keyboard: Enter on the cluster zooms into it, until its incidents show.
        browser
            .find(Locator::Css(".leaflet-marker-pane .cluster-icon"))
            .await?
            .send_keys("\u{E007}")
            .await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(
                ".leaflet-marker-pane .incident-marker[data-incident-id]:not(.is-closed)",
            ))
            .await
            .context("Enter on the cluster does not open it")?;
        browser.find(Locator::Id("map-home")).await?.click().await?;
        one_cluster(&browser, filed.len(), "minor").await?;

        // The jurisdictions: off for the operator, then switched on: a path per area.
        assert!(jurisdiction_paths(&browser).await?.is_empty());
        let toggle = |label: &'static str| {
            let browser = browser.clone();
            async move {
                browser
                    .find(Locator::XPath(&format!(
                        "//*[@id='layers']//label[contains(., '{label}')]//input"
                    )))
                    .await
                    .with_context(|| format!("no layer {label:?}"))
            }
        };
        toggle("Zonele instituțiilor").await?.click().await?;
        wait_jurisdictions(&browser, &every_area).await?;
        // Its panel lists every agency with an area, each in its colour.
        let listed = browser
            .find_all(Locator::Css(
                "#jurisdictions-panel:not([hidden]) li[data-agency]",
            ))
            .await?
            .len();
        let mut agencies = every_area.clone();
        agencies.dedup();
        assert_eq!(listed, agencies.len());
        screenshot(&browser, "console-map-jurisdictions").await?;

        // In English, one agency at a time.
        browser
            .find(Locator::Css("#lang-switch button[data-lang='en']"))
            .await?
            .click()
            .await?;
        assert!(toggle("Agency jurisdictions").await?.is_selected().await?);
        browser
            .find(Locator::Id("jurisdictions-agency"))
            .await?
            .select_by_value(HEATING)
            .await?;
        wait_jurisdictions(&browser, &heating_areas).await?;
        screenshot(&browser, "console-map-jurisdictions-en").await?;
        toggle("Agency jurisdictions").await?.click().await?;
        wait_jurisdictions(&browser, &[]).await?;
        browser
            .find(Locator::Css("#lang-switch button[data-lang='ro']"))
            .await?
            .click()
            .await?;
        assert_no_csp_violations(&driver, &browser).await?;

        // The district heating company's user: its own jurisdiction from the start.
        browser.find(Locator::Id("logout")).await?.click().await?;
        log_in(&browser, "toma", PASSWORD).await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("the agency's console is not live")?;
        wait_jurisdictions(&browser, &heating_areas).await?;
        assert!(toggle("Zonele instituțiilor").await?.is_selected().await?);
        // Pointing at one of its areas names the agency and the area.
        let area = browser
            .find(Locator::Css(
                "#map path.jurisdiction-shape[data-area='astra']",
            ))
            .await
            .context("no jurisdiction area for Astra")?;
        browser
            .perform_actions(MouseActions::new("mouse".to_owned()).then(
                PointerAction::MoveToElement {
                    element: area,
                    duration: None,
                    x: 0.0,
                    y: 0.0,
                },
            ))
            .await?;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(
                "//div[contains(@class, 'jurisdiction-tooltip')]\
                 [contains(., 'Operatorul de termoficare')][contains(., 'Astra')]",
            ))
            .await
            .context("no tooltip naming the agency and the area")?;
        screenshot(&browser, "console-map-agency-jurisdictions").await?;
        assert_no_csp_violations(&driver, &browser).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        eprintln!("dispecer log:\n{}", server.log());
        let _ = screenshot(&browser, "console-map-failure").await;
    }
    let _ = browser.close().await;
    result
}

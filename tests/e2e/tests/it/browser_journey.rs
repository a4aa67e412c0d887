//! The whole journey of issue 6 in real headless Chromium against the real binary: an operator
//! is logged in to the console; a citizen files a report on the citizens' page (a phone-sized
//! browser of their own) and gets a tracking code; the report appears on the operator's map and
//! in the queue; the operator acknowledges, starts and resolves it with the popup's buttons; the
//! citizen's status page for the tracking code shows it resolved, in Romanian and in English;
//! an agency user logs in and sees only its agency's incidents. A screenshot of each step is
//! saved as target/e2e-screenshots/journey-*.png.

use std::time::Duration;

use anyhow::{Context, Result};
use fantoccini::{Client, Locator};

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

use crate::browser::{log_in, on_map, open_browser, open_browser_sized, screenshot};
use crate::console::{act_in_popup, wait_queue};

const PASSWORD: &str = "parola-lunga-1";
const DESCRIPTION: &str = "Groapă adâncă în fața școlii";
const WAIT: Duration = Duration::from_secs(20);

/// The citizen files a pothole report on the citizens' page and returns the tracking code.
async fn file_report(citizen: &Client, http: &str) -> Result<String> {
    citizen.goto(&format!("{http}/report/")).await?;
    citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#map path"))
        .await
        .context("the city is not drawn on the citizens' map")?;
    citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#category option[value='pothole']"))
        .await
        .context("no categories on the citizens' page")?;
    citizen
        .find(Locator::Css("#category"))
        .await?
        .select_by_value("pothole")
        .await?;
    // A pin in the middle of the map (the city centre).
    citizen.find(Locator::Css("#map")).await?.click().await?;
    citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#map .leaflet-marker-icon"))
        .await
        .context("no pin on the citizens' map")?;
    citizen
        .find(Locator::Css("#description"))
        .await?
        .send_keys(DESCRIPTION)
        .await?;
    screenshot(citizen, "journey-01-citizen-report").await?;
    citizen.find(Locator::Css("#submit")).await?.click().await?;
    let code = citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#done:not([hidden]) #code"))
        .await
        .context("no tracking code")?
        .text()
        .await?;
    anyhow::ensure!(code.starts_with("web-"), "tracking code {code:?}");
    screenshot(citizen, "journey-02-citizen-tracking-code").await?;
    Ok(code)
}

/// The status page for `code` shows `expected` in `#r-state` (it is read once per load: reload
/// until the store has it, which the test already waited for, so one load normally suffices).
async fn status_shows(citizen: &Client, http: &str, code: &str, expected: &str) -> Result<()> {
    citizen
        .goto(&format!("{http}/report/status.html?code={code}"))
        .await?;
    citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&format!(
            "//*[@id='result'][not(@hidden)]//*[@id='r-state'][normalize-space(.)='{expected}']"
        )))
        .await
        .with_context(|| format!("the status page does not say {expected:?}"))?;
    Ok(())
}

/// The incident ids of the markers on the console's map, sorted.
async fn marker_ids(browser: &Client) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for m in browser
        .find_all(Locator::Css(".leaflet-marker-pane [data-incident-id]"))
        .await?
    {
        ids.push(m.attr("data-incident-id").await?.unwrap_or_default());
    }
    ids.sort();
    Ok(ids)
}

/// The only stored incident of `category`.
async fn only_incident(server: &Dispecer, category: &str) -> Result<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, _, list) = server
            .get(&format!("/api/v1/incidents?category={category}"))
            .await?;
        let features = list["features"].as_array().cloned().unwrap_or_default();
        if let [one] = features.as_slice() {
            return one["id"].as_str().map(str::to_owned).context("incident id");
        }
        anyhow::ensure!(
            features.is_empty() && std::time::Instant::now() < deadline,
            "{category}: {features:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_journey() -> Result<()> {
    let dir = TempDir::new("dispecer-journey");
    let citizen_dir = TempDir::new("dispecer-journey-citizen");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    for (name, role, agency) in [
        ("ana", "operator", None),
        ("ioana", "agency", Some("apa-brasov")),
    ] {
        let (ok, err) = e2e::dispecer_user_add(&db, name, role, agency, PASSWORD)?;
        assert!(ok, "{err}");
    }
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    // Two incidents already open elsewhere: the water company's leak, and a street light that is
    // the public lighting company's.
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    for (id, category, lon, lat) in [
        ("journey-leak", "water_leak", 25.6012, 45.6551),
        ("journey-light", "street_light_out", 25.6205, 45.6480),
    ] {
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(id, category, lon, lat),
        )
        .await?;
    }
    let leak = only_incident(&server, "water_leak").await?;
    let light = only_incident(&server, "street_light_out").await?;
    let (_, _, l) = server.get(&format!("/api/v1/incidents/{leak}")).await?;
    assert_eq!(l["properties"]["agency"], "apa-brasov");
    let (_, _, l) = server.get(&format!("/api/v1/incidents/{light}")).await?;
    assert_ne!(l["properties"]["agency"], "apa-brasov");

    let (_driver, console) = open_browser(&dir).await?;
    let (_citizen_driver, citizen) = open_browser_sized(&citizen_dir, (412, 1400)).await?;
    let result = async {
        // The operator is at the console, live.
        console.goto(&format!("{}/", server.http)).await?;
        log_in(&console, "ana", PASSWORD).await?;
        console
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("the console is not live")?;
        wait_queue(&console, &[&leak, &light]).await?;
        screenshot(&console, "journey-00-operator-before").await?;

        // The citizen files a report on the citizens' page.
        let code = file_report(&citizen, &server.http).await?;
        status_shows(
            &citizen,
            &server.http,
            &code,
            "Trimisă instituției (deschisă)",
        )
        .await?;
        screenshot(&citizen, "journey-03-citizen-status-open").await?;

        // It appears on the operator's map and in the queue, without a reload.
        let pothole = only_incident(&server, "pothole").await?;
        let (_, _, p) = server.get(&format!("/api/v1/incidents/{pothole}")).await?;
        assert_eq!(p["properties"]["description"], DESCRIPTION);
        assert_eq!(p["properties"]["status"], "assigned");
        console
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&on_map(&pothole)))
            .await
            .context("the citizen's report is not on the operator's map")?;
        wait_queue(&console, &[&leak, &light, &pothole]).await?;
        screenshot(&console, "journey-04-operator-sees-report").await?;

        // Acknowledged, started and resolved from its popup.
        act_in_popup(&console, &server, &pothole, "acknowledge", "acknowledged").await?;
        screenshot(&console, "journey-05-operator-acknowledged").await?;
        act_in_popup(&console, &server, &pothole, "start", "in_progress").await?;
        screenshot(&console, "journey-06-operator-in-progress").await?;
        act_in_popup(&console, &server, &pothole, "resolve", "resolved").await?;
        wait_queue(&console, &[&leak, &light]).await?;
        screenshot(&console, "journey-07-operator-resolved").await?;

        // The citizen's status page says so, in Romanian, then in English.
        status_shows(&citizen, &server.http, &code, "Rezolvată (închisă)").await?;
        screenshot(&citizen, "journey-08-citizen-status-resolved").await?;
        citizen
            .find(Locator::Css("[data-lang='en']"))
            .await?
            .click()
            .await?;
        citizen
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(
                "//*[@id='r-state'][normalize-space(.)='Resolved (closed)']",
            ))
            .await
            .context("the status page does not say it is resolved in English")?;
        screenshot(&citizen, "journey-09-citizen-status-resolved-en").await?;

        // The water company's user sees only its own incident: on the map and in the queue.
        console.find(Locator::Id("logout")).await?.click().await?;
        log_in(&console, "ioana", PASSWORD).await?;
        console
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("the agency's console is not live")?;
        wait_queue(&console, &[&leak]).await?;
        assert_eq!(
            marker_ids(&console).await?,
            std::slice::from_ref(&leak),
            "the agency's map"
        );
        screenshot(&console, "journey-10-agency-sees-its-own").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        eprintln!("dispecer log:\n{}", server.log());
        let _ = screenshot(&console, "journey-failure-console").await;
        let _ = screenshot(&citizen, "journey-failure-citizen").await;
    }
    let _ = console.close().await;
    let _ = citizen.close().await;
    result
}

//! The console as its people use it, in a real browser: a wrong password is refused and repeated
//! failures are rate-limited on the login screen; an operator logs in, sees two citizens'
//! reports appear on the map and in the queue, acknowledges and resolves one from the incident's
//! popup, merges two reports' incidents, unmerges them, merges again and splits the report back
//! out (checked in the store), opens a traffic counter's chart (with its baseline from yesterday's readings, and the
//! free-flow speed for a counter with no history), and logs out; an agency user logs in, sees only
//! its agency's incident, and acknowledges and resolves it. A screenshot of each screen is kept
//! under target/e2e-screenshots/.

use std::time::Duration;

use anyhow::{Context, Result};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

use crate::browser::{assert_no_csp_violations, log_in, on_map, open_browser, screenshot};

const PASSWORD: &str = "parola-lunga-1";
/// The counter given readings (today and yesterday), and one given none.
const SENSOR: &str = "tc-eroilor-e";
const QUIET_SENSOR: &str = "tc-eroilor-w";

/// Speeds every 15 minutes over the last 6 hours, and at the same times yesterday.
async fn publish_readings(mqtt: &mut MqttClient) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let last = now - now % 900 - 900;
    for (day, speed) in [(1, 48.0), (0, 31.0)] {
        let base = last - 6 * 3600 - day * 86_400;
        let mut records = Vec::new();
        for i in 0..=24 {
            let t = i * 900;
            let v = speed + f64::from(i % 4);
            if i == 0 {
                records.push(json!({"bn": format!("{SENSOR}/"), "bt": base, "n": "speed", "u": "km/h", "v": v}));
            } else {
                records.push(json!({"t": t, "n": "speed", "u": "km/h", "v": v}));
            }
            records.push(json!({"t": t, "n": "count", "u": "count", "v": 20 + i}));
        }
        mqtt.publish(
            &format!("dispecer/v1/in/traffic/{SENSOR}"),
            Value::Array(records).to_string(),
        )
        .await?;
    }
    Ok(())
}

/// A report with the citizen's contact details.
fn with_contact(report: String) -> Result<String> {
    let mut v: Value = serde_json::from_str(&report)?;
    v["properties"]["contact"] = json!({"name": "Maria Ionescu", "email": "maria@example.ro"});
    Ok(v.to_string())
}

/// Waits until `id`'s stored status is `status`.
pub(crate) async fn wait_status(server: &Dispecer, id: &str, status: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
        if one["properties"]["status"] == status {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{id} is {} instead of {status}",
            one["properties"]["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `id`'s popup from its queue row with the keyboard, presses the action button, and
/// waits for the popup to say it is done and the store to have it.
pub(crate) async fn act_in_popup(
    browser: &Client,
    server: &Dispecer,
    id: &str,
    action: &str,
    status: &str,
) -> Result<()> {
    let popup_button = format!(".leaflet-popup button[data-act='{action}'][data-incident='{id}']");
    if browser.find(Locator::Css(&popup_button)).await.is_err() {
        let row = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("#queue-list [data-queue-id='{id}']")))
            .await
            .with_context(|| format!("no queue row for {id}"))?;
        row.send_keys("\u{E007}").await?; // Enter
    }
    // The popup is redrawn whenever a frame for its incident arrives (a login's fresh snapshot,
    // another user's change); a click that lands while it is redrawn reaches a button that is
    // gone. Click again then, unless the store already has the new status.
    for attempt in 1..=3 {
        let button = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&popup_button))
            .await
            .with_context(|| format!("no {action} button in the popup of {id}"))?;
        if !crate::browser::click_in_view(browser, button).await? {
            continue;
        }
        let confirmed = browser
            .wait()
            .at_most(Duration::from_secs(if attempt < 3 { 6 } else { 20 }))
            .for_element(Locator::Css(".leaflet-popup .action-status.is-ok"))
            .await;
        if confirmed.is_ok() {
            break;
        }
        let (_, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
        if one["properties"]["status"] == status {
            break;
        }
        anyhow::ensure!(attempt < 3, "{action} not confirmed in the popup of {id}");
    }
    wait_status(server, id, status).await
}

/// `id`'s incident as stored.
async fn stored(server: &Dispecer, id: &str) -> Result<Value> {
    Ok(server.get(&format!("/api/v1/incidents/{id}")).await?.2["properties"].clone())
}

/// Waits until `check` holds for the store (the incidents `ids`, as stored), for `within`.
async fn store_shows(
    server: &Dispecer,
    ids: &[&str],
    within: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Result<bool> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut now = Vec::new();
        for id in ids {
            now.push(stored(server, id).await?);
        }
        if check(&now) {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `id`'s popup: from its queue row when it is open, from its marker when it is not (a
/// merged incident leaves the queue), unless it is open already.
async fn open_popup(browser: &Client, id: &str) -> Result<()> {
    let open = format!(
        ".leaflet-popup [data-regroup-for='{id}'], .leaflet-popup [data-actions-for='{id}']"
    );
    if browser.find(Locator::Css(&open)).await.is_ok() {
        return Ok(());
    }
    if let Ok(close) = browser
        .find(Locator::Css(".leaflet-popup-close-button"))
        .await
    {
        close.click().await?;
    }
    match browser
        .find(Locator::Css(&format!("#queue-list [data-queue-id='{id}']")))
        .await
    {
        Ok(row) => row.send_keys("\u{E007}").await?, // Enter
        Err(_) => {
            browser
                .find(Locator::Css(&format!(
                    ".leaflet-marker-pane [data-incident-id='{id}']"
                )))
                .await
                .with_context(|| format!("no marker for {id}"))?
                .click()
                .await?
        }
    }
    // Its history is loaded (the reports to split come with it): the section is drawn for good.
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            ".leaflet-popup [data-timeline-for='{id}'] ol.timeline"
        )))
        .await
        .with_context(|| format!("the popup of {id} shows no history"))?;
    Ok(())
}

/// Merges, unmerges or splits from `id`'s popup: picks `choice` (the merge target or the report
/// to split out) in the section's `select`, presses the button, and waits for the store to show
/// `done`. The popup is redrawn when a frame for its incident arrives: a choice or click that
/// lands then is lost, so it is tried again unless the store already shows it done.
async fn regroup_in_popup(
    browser: &Client,
    server: &Dispecer,
    id: &str,
    action: &str,
    choice: Option<(&str, &str)>,
    ids: &[&str],
    done: impl Fn(&[Value]) -> bool,
) -> Result<()> {
    for attempt in 1..=3 {
        open_popup(browser, id).await?;
        let section = format!(".leaflet-popup [data-regroup-for='{id}']");
        if let Some((select, value)) = choice {
            browser
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&format!(
                    "{section} select.{select} option[value='{value}']"
                )))
                .await
                .with_context(|| format!("{value} is not offered to {action} {id}"))?;
            browser
                .find(Locator::Css(&format!("{section} select.{select}")))
                .await?
                .select_by_value(value)
                .await?;
        }
        screenshot(browser, &format!("console-{action}")).await?;
        let button = browser
            .find(Locator::Css(&format!(
                "{section} button[data-act='{action}'][data-incident='{id}']"
            )))
            .await
            .with_context(|| format!("no {action} button in the popup of {id}"))?;
        if !crate::browser::click_in_view(browser, button).await? {
            continue;
        }
        let within = Duration::from_secs(if attempt < 3 { 6 } else { 20 });
        if store_shows(server, ids, within, &done).await? {
            return Ok(());
        }
    }
    anyhow::bail!("{action} of {id} did not reach the store")
}

async fn queue_ids(browser: &Client) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for row in browser
        .find_all(Locator::Css("#queue-list [data-queue-id]"))
        .await?
    {
        ids.push(row.attr("data-queue-id").await?.unwrap_or_default());
    }
    ids.sort();
    Ok(ids)
}

pub(crate) async fn wait_queue(browser: &Client, want: &[&str]) -> Result<()> {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids = queue_ids(browser).await?;
        if ids == want {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "queue shows {ids:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens a counter's chart with the keyboard (its marker, Enter) and waits for it to be drawn.
async fn open_chart(browser: &Client, name: &str, baseline: &str) -> Result<u32> {
    let marker = browser
        .find(Locator::Css(&format!(".sensor-icon[title='{name}']")))
        .await
        .with_context(|| format!("no marker for the counter {name}"))?;
    marker.send_keys("\u{E007}").await?;
    let chart = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            "#sensor-panel:not([hidden]) #sensor-chart[data-baseline='{baseline}'] .uplot canvas"
        )))
        .await
        .with_context(|| format!("the chart of {name} with a {baseline} baseline is not drawn"))?;
    let _ = chart;
    let title = browser
        .find(Locator::Id("sensor-title"))
        .await?
        .text()
        .await?;
    assert!(title.contains(name), "{title}");
    let points = browser
        .find(Locator::Id("sensor-chart"))
        .await?
        .attr("data-points")
        .await?
        .unwrap_or_default();
    Ok(points.parse()?)
}

/// Merge, unmerge and split from the popup's "merge and split" section, checked in the store.
async fn merge_unmerge_split(
    browser: &Client,
    server: &Dispecer,
    mqtt: &mut MqttClient,
) -> Result<()> {
    let mut holes = Vec::new();
    for (n, (lon, lat)) in [(25.5950, 45.6500), (25.5980, 45.6515)]
        .into_iter()
        .enumerate()
    {
        let report = format!("regroup-{n}-{}", uuid::Uuid::now_v7());
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(&report, "pothole", lon, lat),
        )
        .await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let id = loop {
            let (_, _, list) = server
                .get("/api/v1/incidents?category=pothole&status=open")
                .await?;
            let found = list["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["id"].as_str())
                .find(|id| !holes.iter().any(|(h, _): &(String, String)| h == id))
                .map(str::to_owned);
            if let Some(id) = found {
                break id;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "pothole {n} not stored"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        holes.push((id, format!("citizen:{report}")));
    }
    let (first, second) = (holes[0].0.clone(), holes[1].0.clone());
    let second_report = holes[1].1.clone();
    for id in [&first, &second] {
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("#queue-list [data-queue-id='{id}']")))
            .await
            .with_context(|| format!("{id} is not in the queue"))?;
    }
    let ids = [first.as_str(), second.as_str()];
    let merged = |now: &[Value]| {
        now[0]["report_count"] == 2
            && now[1]["status"] == "duplicate"
            && now[1]["merged_into"] == first.as_str()
    };
    // The second offers the first as a nearby pothole to merge into.
    regroup_in_popup(
        browser,
        server,
        &second,
        "merge",
        Some(("regroup-into", &first)),
        &ids,
        merged,
    )
    .await?;
    // Merged, it offers to unmerge, and names where it went.
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(&format!(
            "//div[contains(@class, 'leaflet-popup')]//p[@class='regroup-merged']/code[.='{first}']"
        )))
        .await
        .context("the merged incident does not say where it went")?;
    screenshot(browser, "console-merged").await?;
    regroup_in_popup(browser, server, &second, "unmerge", None, &ids, |now| {
        now[0]["report_count"] == 1
            && now[1]["status"] == "assigned"
            && now[1]["merged_into"].is_null()
            && now[1]["report_count"] == 1
    })
    .await?;
    let (_, _, timeline) = server
        .get(&format!("/api/v1/incidents/{second}/timeline"))
        .await?;
    let kinds: Vec<&str> = timeline["timeline"]
        .as_array()
        .context("timeline")?
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert!(kinds.ends_with(&["merge", "unmerge"]), "{kinds:?}");

    // Merged again, then the second's report split out of the first into a new incident.
    regroup_in_popup(
        browser,
        server,
        &second,
        "merge",
        Some(("regroup-into", &first)),
        &ids,
        merged,
    )
    .await?;
    regroup_in_popup(
        browser,
        server,
        &first,
        "split",
        Some(("regroup-event", &second_report)),
        &[first.as_str()],
        |now| now[0]["report_count"] == 1,
    )
    .await?;
    let (_, _, open) = server
        .get("/api/v1/incidents?category=pothole&status=open")
        .await?;
    let open: Vec<&str> = open["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(open.len(), 2, "the first and the one split out: {open:?}");
    assert!(
        open.contains(&first.as_str()) && !open.contains(&second.as_str()),
        "{open:?}"
    );
    if let Ok(close) = browser
        .find(Locator::Css(".leaflet-popup-close-button"))
        .await
    {
        close.click().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_and_agencies_work_from_the_console() -> Result<()> {
    let dir = TempDir::new("dispecer-console");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    for (name, role, agency) in [
        ("ana", "operator", None),
        ("ioana", "agency", Some("apa-brasov")),
    ] {
        let (ok, err) = e2e::dispecer_user_add(&db, name, role, agency, PASSWORD)?;
        assert!(ok, "{err}");
    }
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (_, _, city) = server.get("/api/v1/city").await?;
    let sensor_name = |id: &str| -> Result<String> {
        city["sensors"]["features"]
            .as_array()
            .context("sensors")?
            .iter()
            .find(|f| f["id"] == id || f["properties"]["id"] == id)
            .and_then(|f| f["properties"]["name"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no sensor {id}"))
    };
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    publish_readings(&mut mqtt).await?;

    let (driver, browser) = open_browser(&dir).await?;
    let result = async {
        browser.goto(&format!("{}/", server.http)).await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#login:not([hidden]) #login-username"))
            .await
            .context("no login screen")?;
        assert!(
            !browser.find(Locator::Css(".layout")).await?.is_displayed().await?,
            "the console is hidden before login"
        );
        screenshot(&browser, "login").await?;
        // In English too (the city's default, Romanian, comes first).
        browser
            .find(Locator::Css("#login-lang button[data-lang='en']"))
            .await?
            .click()
            .await?;
        let title = browser.find(Locator::Id("login-title")).await?.text().await?;
        assert_eq!(title, "Log in");
        screenshot(&browser, "login-en").await?;
        browser
            .find(Locator::Css("#login-lang button[data-lang='ro']"))
            .await?
            .click()
            .await?;
        assert_eq!(
            browser.find(Locator::Id("login-title")).await?.text().await?,
            "Autentificare"
        );

        // A wrong password: refused, said so on the screen.
        let login_error = |expected: &'static str| {
            let browser = browser.clone();
            async move {
                browser
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::XPath(&format!(
                        "//p[@id='login-error'][not(@hidden)][contains(., '{expected}')]"
                    )))
                    .await
                    .with_context(|| format!("the login screen does not say {expected:?}"))
            }
        };
        let submit = |user: &'static str, password: &'static str| {
            let browser = browser.clone();
            async move {
                let u = browser.find(Locator::Id("login-username")).await?;
                u.clear().await?;
                u.send_keys(user).await?;
                let p = browser.find(Locator::Id("login-password")).await?;
                p.clear().await?;
                p.send_keys(password).await?;
                browser.find(Locator::Id("login-submit")).await?.click().await?;
                // The button is disabled while the server checks.
                browser
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css("#login-submit:not([disabled])"))
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        };
        submit("ana", "gresit-gresit").await?;
        login_error("greșită").await?;
        screenshot(&browser, "login-wrong-password").await?;
        // Five failures for one name, then the sixth attempt is held back (429).
        for _ in 0..6 {
            submit("intrus", "gresit-gresit").await?;
        }
        login_error("Prea multe încercări").await?;
        screenshot(&browser, "login-rate-limited").await?;

        // The operator: the console, live.
        log_in(&browser, "ana", PASSWORD).await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("page not live")?;
        let user = browser.find(Locator::Id("user")).await?.text().await?;
        assert!(user.contains("ana") && user.contains("operator"), "{user:?}");

        // Two citizens' reports: a water leak (the water company), then a pothole (street
        // maintenance).
        let mut ids = Vec::new();
        for (n, (category, lon, lat)) in [("water_leak", 25.6012, 45.6551), ("pothole", 25.5887, 45.6419)]
            .into_iter()
            .enumerate()
        {
            mqtt.publish(
                "dispecer/v1/in/citizen/reports",
                with_contact(citizen_report(&format!("console-{n}-{}", uuid::Uuid::now_v7()), category, lon, lat))?,
            )
            .await?;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let id = loop {
                let (_, _, list) = server.get(&format!("/api/v1/incidents?category={category}")).await?;
                if let Some(id) = list["features"][0]["id"].as_str() {
                    break id.to_owned();
                }
                anyhow::ensure!(std::time::Instant::now() < deadline, "{category} not stored");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            ids.push(id);
        }
        let (water, pothole) = (ids[0].clone(), ids[1].clone());
        let (_, _, w) = server.get(&format!("/api/v1/incidents/{water}")).await?;
        assert_eq!(w["properties"]["agency"], "apa-brasov");
        for id in [&pothole, &water] {
            browser
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&on_map(id)))
                .await
                .with_context(|| format!("{id} is not on the map"))?;
        }
        wait_queue(&browser, &[&pothole, &water]).await?;
        screenshot(&browser, "console-operator").await?;
        // The queue filters by category, and sorts by severity (the water leak is moderate, the
        // pothole, newer, minor).
        let filter = |key: &'static str| {
            let browser = browser.clone();
            async move {
                browser
                    .find(Locator::Css(&format!("#queue-filters [data-filter='{key}']")))
                    .await
            }
        };
        filter("category").await?.select_by_value("water_leak").await?;
        wait_queue(&browser, &[&water]).await?;
        screenshot(&browser, "console-filtered").await?;
        filter("category").await?.select_by_value("").await?;
        wait_queue(&browser, &[&pothole, &water]).await?;
        let first = browser
            .find(Locator::Css("#queue-list [data-queue-id]"))
            .await?
            .attr("data-queue-id")
            .await?;
        assert_eq!(first.as_deref(), Some(pothole.as_str()), "newest first by default");
        filter("sort").await?.select_by_value("severity").await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let first = browser
                .find(Locator::Css("#queue-list [data-queue-id]"))
                .await?
                .attr("data-queue-id")
                .await?;
            if first.as_deref() == Some(water.as_str()) {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "the most severe is not first");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Acknowledge, then resolve, the pothole from its popup.
        act_in_popup(&browser, &server, &pothole, "acknowledge", "acknowledged").await?;
        // The popup's history names who did it.
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//div[contains(@class, 'leaflet-popup')]//ol[@class='timeline']\
                 /li[contains(., 'Confirmat')][contains(., 'user:ana')]",
            ))
            .await
            .context("the popup's history does not show ana's acknowledgement")?;
        // The operator's choices include reassigning, with the routing's alternatives first.
        browser
            .find(Locator::Css(".leaflet-popup select.action-agency option"))
            .await
            .context("no agency to assign to")?;
        screenshot(&browser, "incident-actions").await?;
        act_in_popup(&browser, &server, &pothole, "resolve", "resolved").await?;
        wait_queue(&browser, &[&water]).await?;
        // Resolved, it leaves the queue; its popup now offers closing (or reopening) it.
        act_in_popup(&browser, &server, &pothole, "close", "closed").await?;
        browser.find(Locator::Css(".leaflet-popup-close-button")).await?.click().await?;

        // Two reports of one hole, 250 m apart (two incidents): the operator merges the second
        // into the first, unmerges it, merges it again and splits its report back out.
        merge_unmerge_split(&browser, &server, &mut mqtt).await?;

        // A counter's chart, with yesterday's readings as its baseline; then one with no history,
        // whose baseline is its free-flow speed from the city data.
        let points = open_chart(&browser, &sensor_name(SENSOR)?, "history").await?;
        assert!(points >= 20, "{points} measured points drawn");
        screenshot(&browser, "sensor-chart").await?;
        browser.find(Locator::Id("sensor-close")).await?.click().await?;
        let points = open_chart(&browser, &sensor_name(QUIET_SENSOR)?, "freeflow").await?;
        assert_eq!(points, 0);
        screenshot(&browser, "sensor-chart-no-history").await?;
        browser.find(Locator::Id("sensor-close")).await?.click().await?;

        // Log out: back to the login screen.
        browser.find(Locator::Id("logout")).await?.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#login:not([hidden]) #login-username"))
            .await
            .context("no login screen after logging out")?;

        // The water company's user: only its incident, which it acknowledges and resolves.
        log_in(&browser, "ioana", PASSWORD).await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("page not live")?;
        wait_queue(&browser, &[&water]).await?;
        let markers = browser
            .find_all(Locator::Css(".leaflet-marker-pane [data-incident-id]"))
            .await?;
        assert_eq!(markers.len(), 1, "the agency user sees one incident on the map");
        let title = browser.find(Locator::Id("queue-title-text")).await?.text().await?;
        assert!(title.contains("Apa") || title.contains("apa"), "{title:?}");
        screenshot(&browser, "console-agency").await?;
        browser
            .find(Locator::Css("#lang-switch button[data-lang='en']"))
            .await?
            .click()
            .await?;
        let title = browser.find(Locator::Id("queue-title-text")).await?.text().await?;
        assert!(title.starts_with("Incidents of"), "{title:?}");
        act_in_popup(&browser, &server, &water, "acknowledge", "acknowledged").await?;
        // The agency responsible asks for the citizen's contact details, and sees them.
        let contacts = browser
            .find(Locator::Css(".leaflet-popup button[data-contacts]"))
            .await
            .context("no button for the contact details")?;
        anyhow::ensure!(
            crate::browser::click_in_view(&browser, contacts).await?,
            "the contacts button went away before its click"
        );
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//div[contains(@class, 'leaflet-popup')]//ul[@class='contacts']\
                 /li[contains(., 'Maria Ionescu')][contains(., 'maria@example.ro')]",
            ))
            .await
            .context("the contact details are not shown")?;
        // An agency user is offered no reassignment or rejection.
        assert!(browser
            .find_all(Locator::Css(".leaflet-popup button[data-act='assign'], .leaflet-popup button[data-act='reject']"))
            .await?
            .is_empty());
        screenshot(&browser, "incident-agency-actions-en").await?;
        act_in_popup(&browser, &server, &water, "resolve", "resolved").await?;
        wait_queue(&browser, &[]).await?;

        let (_, _, timeline) = server.get(&format!("/api/v1/incidents/{water}/timeline")).await?;
        let actors: Vec<&str> = timeline["timeline"]
            .as_array()
            .context("timeline")?
            .iter()
            .filter_map(|t| t["actor"].as_str())
            .collect();
        assert!(actors.contains(&"user:ioana"), "{actors:?}");
        // Everything above ran under the Content Security Policy, refusing nothing.
        assert_no_csp_violations(&driver, &browser).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        eprintln!("dispecer log:\n{}", server.log());
        let _ = screenshot(&browser, "console-failure").await;
    }
    let _ = browser.close().await;
    result
}

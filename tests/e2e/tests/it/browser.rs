//! The operators' console in a real browser (Debian's Chromium through chromedriver): the map of
//! Brașov loads once an operator has logged in, an incident reported over MQTT appears on it
//! live, and the header shows the citizen feed and the store as healthy. The helpers here (a
//! browser, logging in, screenshots) serve `console.rs` too.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

pub(crate) struct Driver {
    child: Child,
    /// chromedriver's port (its log endpoint is not in WebDriver's standard).
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the browser logged about the Content Security Policy since the last call: every
/// resource, script or style it refused (Chromium logs each refusal, including those during a
/// page's load, before any script of ours could listen). Read through chromedriver's log
/// endpoint, which also empties the log.
pub(crate) async fn csp_violations(driver: &Driver, browser: &Client) -> Result<Vec<String>> {
    let session = browser
        .session_id()
        .await?
        .context("the browser has no session")?;
    let entries: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.port
        ))
        .json(&json!({"type": "browser"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let entries = entries["value"]
        .as_array()
        .context("chromedriver's log answer has no value")?;
    Ok(entries
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("Content Security Policy"))
        .map(str::to_owned)
        .collect())
}

/// Fails when the browser refused anything under the Content Security Policy.
pub(crate) async fn assert_no_csp_violations(driver: &Driver, browser: &Client) -> Result<()> {
    let refused = csp_violations(driver, browser).await?;
    if !refused.is_empty() {
        bail!(
            "the Content Security Policy refused {} thing(s):\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
    Ok(())
}

/// Starts chromedriver on a free port and a headless Chromium session through it, with its
/// profile in `dir`, in a desktop-sized window.
pub(crate) async fn open_browser(dir: &TempDir) -> Result<(Driver, Client)> {
    open_browser_sized(dir, (1400, 900)).await
}

/// [`open_browser`] with a window of `(width, height)` pixels (a phone: `(412, 1400)`).
pub(crate) async fn open_browser_sized(
    dir: &TempDir,
    (width, height): (u32, u32),
) -> Result<(Driver, Client)> {
    let chromium =
        std::env::var("DISPECER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver =
        std::env::var("DISPECER_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for bin in [&chromium, &chromedriver] {
        if !std::path::Path::new(bin).exists() {
            bail!(
                "{bin} is missing: run scripts/test.sh (it installs chromium and chromium-driver)"
            );
        }
    }
    let port = free_port();
    let driver = Driver {
        child: Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?,
        port,
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", dir.path().join("chrome").display())],
        }),
    );
    // The console's messages, for csp_violations.
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let mut client = None;
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let browser = client.context("chromedriver did not answer")?;
    Ok((driver, browser))
}

/// Logs in on the console's login screen (which the page shows first) and waits for the map.
pub(crate) async fn log_in(browser: &Client, username: &str, password: &str) -> Result<()> {
    let form = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#login:not([hidden]) #login-form"))
        .await
        .context("the login screen is not shown")?;
    let user = form.find(Locator::Id("login-username")).await?;
    user.clear().await?;
    user.send_keys(username).await?;
    let pass = form.find(Locator::Id("login-password")).await?;
    pass.clear().await?;
    pass.send_keys(password).await?;
    pass.send_keys("\u{E007}").await?; // Enter submits the form
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("body.is-in #user:not([hidden])"))
        .await
        .with_context(|| format!("{username} is not logged in"))?;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("path.district-shape"))
        .await
        .context("districts not drawn")?;
    Ok(())
}

/// Clicks `element` in the middle of the view: scrolled there first (the incident popup is a
/// scrolling box over the map, and its sections load after it opens, moving what is below
/// them), and clicked again while something else would take the click (the layout settling),
/// a few times. `false` when the element went away meanwhile (the popup redrawn): find it again.
pub(crate) async fn click_in_view(
    browser: &Client,
    element: fantoccini::elements::Element,
) -> Result<bool> {
    for attempt in 1..=5 {
        let scrolled = browser
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                vec![serde_json::to_value(&element)?],
            )
            .await;
        if let Err(e) = scrolled {
            if e.to_string().contains("stale element") {
                return Ok(false);
            }
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        match element.click().await {
            Ok(()) => return Ok(true),
            // The popup was redrawn: the caller finds the button again.
            Err(e) if e.to_string().contains("stale element") => return Ok(false),
            Err(e) if attempt < 5 && e.to_string().contains("click intercepted") => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the element could not be clicked")
}

/// A CSS selector for incident `id` drawn on the console's map: its own marker, or a cluster of
/// open incidents that holds it (markers closer than a few tens of pixels are clustered).
pub(crate) fn on_map(id: &str) -> String {
    format!(
        ".leaflet-marker-pane [data-incident-id='{id}'], \
         .leaflet-marker-pane [data-incident-ids~='{id}']"
    )
}

/// Saves a screenshot as target/e2e-screenshots/NAME.png.
pub(crate) async fn screenshot(browser: &Client, name: &str) -> Result<()> {
    let out = e2e::repo_root().join("target/e2e-screenshots");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join(format!("{name}.png")), browser.screenshot().await?)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_appears_on_the_map() -> Result<()> {
    let dir = TempDir::new("dispecer-browser");
    // Brașov, with one minute to acknowledge a fallen tree: the test sees the deadline pass.
    let city = e2e::brasov_copy(dir.path(), |text| {
        let from = text.find("id = \"fallen_tree\"").unwrap_or(0);
        let start = from + text[from..].find("deadlines = ").unwrap_or(0);
        let end = start + text[start..].find('\n').unwrap_or(0);
        format!(
            "{}deadlines = {{ acknowledge_minutes = 1, resolve_minutes = 360 }}{}",
            &text[..start],
            &text[end..]
        )
    })?;
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let (ok, err) = e2e::dispecer_user_add(&db, "ana", "operator", None, "parola-lunga-1")?;
    assert!(ok, "{err}");
    let server =
        Dispecer::start_with_city(&dir, &db, &Broker::Embedded(free_port()), &city).await?;

    let (driver, browser) = open_browser(&dir).await?;

    let result = async {
        browser.goto(&format!("{}/", server.http)).await?;
        // The operator logs in and the map of the city is drawn (the districts are SVG paths)…
        log_in(&browser, "ana", "parola-lunga-1").await?;
        // …and the page is live (its WebSocket has its snapshot) before the report is sent.
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#connection[data-state='live']"))
            .await
            .context("page not live")?;
        assert!(
            browser
                .find_all(Locator::Css("[data-incident-id]"))
                .await?
                .is_empty(),
            "no incident before the report"
        );
        let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
        let report_id = format!("browser-{}", uuid::Uuid::now_v7());
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(&report_id, "fallen_tree", 25.6010, 45.6530),
        )
        .await?;
        let marker = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(".leaflet-marker-pane [data-incident-id]"))
            .await
            .context("no incident marker appeared")?;
        let id = marker.attr("data-incident-id").await?.unwrap_or_default();
        let (_, _, list) = server.get("/api/v1/incidents").await?;
        assert_eq!(
            list["features"][0]["id"].as_str(),
            Some(id.as_str()),
            "the marker is the stored incident"
        );
        // The header counts the citizen feed as active at its next poll (every 10 s), whatever the
        // language: "Fluxuri: 1 activ" / "Feeds: 1 active".
        browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::XPath(
                "//*[@id='feeds'][@data-state='ok']//*[@id='feeds-button']\
                 [contains(concat(' ', normalize-space(.), ' '), ' 1 ')]",
            ))
            .await
            .context("the feeds indicator does not show the citizen feed")?;
        // The store answers, and the header names it quietly.
        let store = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#store[data-state='ok']"))
            .await
            .context("the store indicator is not ok")?;
        let store_text = store.text().await?;
        assert!(
            store_text.contains("SQLite"),
            "the store indicator names the backend: {store_text:?}"
        );
        let shot = browser.screenshot().await?;
        let out = e2e::repo_root().join("target/e2e-screenshots");
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("console-incident.png"), shot)?;

        // The feeds' popover opens from the keyboard, lists the citizen feed, and Escape closes it.
        let button = browser.find(Locator::Id("feeds-button")).await?;
        button.send_keys("\u{E007}").await?; // Enter
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(
                "#feeds-popover:not([hidden]) tr[data-feed='citizen']",
            ))
            .await
            .context("the feeds popover does not list the citizen feed")?;
        assert_eq!(button.attr("aria-expanded").await?.as_deref(), Some("true"));
        std::fs::write(out.join("console-feeds.png"), browser.screenshot().await?)?;
        button.send_keys("\u{E00C}").await?; // Escape
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#feeds-popover[hidden]"))
            .await
            .context("Escape does not close the feeds popover")?;

        // A minute later nobody has acknowledged the fallen tree: the queue marks it overdue and
        // escalated (the engine raised its severity), and the header counts it.
        browser
            .wait()
            .at_most(Duration::from_secs(120))
            .for_element(Locator::Css(".row.is-overdue .mark-escalated"))
            .await
            .context("the unacknowledged incident is not marked overdue and escalated")?;
        let overdue = browser
            .find(Locator::Css("[data-count='overdue']"))
            .await?
            .text()
            .await?;
        assert_eq!(
            overdue.trim(),
            "1",
            "the header counts one overdue incident"
        );
        let (_, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
        assert_eq!(one["properties"]["escalated"], true, "{one}");
        std::fs::write(out.join("console-overdue.png"), browser.screenshot().await?)?;
        assert_no_csp_violations(&driver, &browser).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        eprintln!("dispecer log:\n{}", server.log());
        if let Ok(shot) = browser.screenshot().await {
            let out = e2e::repo_root().join("target/e2e-screenshots");
            let _ = std::fs::create_dir_all(&out);
            let _ = std::fs::write(out.join("console-failure.png"), shot);
        }
        if let Ok(html) = browser.source().await {
            eprintln!(
                "page source (first 3000 characters):\n{}",
                html.chars().take(3000).collect::<String>()
            );
        }
    }
    let _ = browser.close().await;
    result
}

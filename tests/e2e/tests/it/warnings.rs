//! Public warnings as OASIS CAP 1.2, end to end: an operator publishes a warning over an area
//! it draws (a boil-water notice), updates it and cancels it; another warning takes its
//! incident's own place (a circle) and is cancelled by resolving the incident. An agency may
//! not publish. The Atom feed lists them and links each CAP document; every version's document
//! is fetched and validated against the official CAP 1.2 XSD with `xmllint` (the polygon
//! closed, latitude first, inside the city; the references naming every earlier version of
//! the series); `dispecer rebuild` replays the warnings to the same versions. On SQLite and on
//! TimescaleDB (migration 0012 on both).

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, PgDatabase, TempDir};

/// The city's bounds (`cities/brasov/city.toml`): west, south, east, north.
const BOUNDS: [f64; 4] = [25.500, 45.525, 25.692, 45.755];

#[tokio::test(flavor = "multi_thread")]
async fn public_warnings_as_valid_cap_on_sqlite() -> Result<()> {
    let dir = TempDir::new("dispecer-warnings");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    story(&dir, &db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn public_warnings_as_valid_cap_on_timescaledb() -> Result<()> {
    let dir = TempDir::new("dispecer-warnings-pg");
    let pg = PgDatabase::create().await?;
    let result = story(&dir, &pg.url).await;
    pg.drop_database().await?;
    result
}

/// The texts of every `<name>` element of `doc`, in order (our own documents: no attributes,
/// no nesting of the same name).
fn elements(doc: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}

fn one(doc: &str, name: &str) -> Result<String> {
    let all = elements(doc, name);
    ensure!(all.len() == 1, "{} <{name}> in {doc}", all.len());
    Ok(all[0].clone())
}

/// `"lat,lon"` → (lat, lon), checked inside the city.
fn lat_lon(pair: &str) -> Result<(f64, f64)> {
    let (lat, lon) = pair.split_once(',').context("no comma")?;
    let (lat, lon): (f64, f64) = (lat.parse()?, lon.parse()?);
    ensure!(
        (BOUNDS[1]..=BOUNDS[3]).contains(&lat) && (BOUNDS[0]..=BOUNDS[2]).contains(&lon),
        "{pair} is not latitude,longitude inside the city"
    );
    Ok((lat, lon))
}

fn xmllint_schema(xsd: &Path, file: &Path) -> Result<()> {
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(xsd)
        .arg(file)
        .output()
        .context("xmllint (Debian libxml2-utils, installed by scripts/deps.sh)")?;
    ensure!(
        out.status.success(),
        "{} is not valid CAP 1.2:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    Ok(())
}

async fn story(dir: &TempDir, db: &str) -> Result<()> {
    let server = Dispecer::start(dir, db, &Broker::Embedded(free_port())).await?;
    let (mut stream, _) = server.stream().await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    let city = e2e::repo_root().join("cities/brasov");
    let city = city.to_str().context("city path")?;
    let operator = e2e::dispecer_token(db, &["create", "--city", city, "--dispatcher"])?;
    let agency = e2e::dispecer_token(db, &["create", "--city", city, "--acts-for", "apa-brasov"])?;

    let mut ids = Vec::new();
    for (n, category, lon, lat) in [
        (1, "water_leak", 25.5887, 45.6419),
        (2, "gas_smell", 25.6100, 45.6600),
    ] {
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(&format!("warn-{n}"), category, lon, lat),
        )
        .await?;
        let f = stream
            .next_incident(|i| i["properties"]["category"] == category)
            .await?;
        ids.push(f["incident"]["id"].as_str().context("id")?.to_owned());
    }
    let (water, gas) = (ids[0].clone(), ids[1].clone());

    let act = |token: &str, incident: &str, body: Value| {
        let req = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/incidents/{incident}/actions",
                server.http
            ))
            .bearer_auth(token)
            .json(&body);
        async move {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            anyhow::Ok((status, location, resp.json::<Value>().await?))
        }
    };
    let boil = json!({"action": "publish_warning",
        "headline": {"ro": "Apă nepotabilă în Centru & Șchei", "en": "Boil-water notice <Centre>"},
        "instruction": {"ro": "Fierbeți apa înainte de consum.", "en": "Boil water before drinking."},
        "area": {"type": "Polygon", "coordinates": [[[25.580, 45.635], [25.600, 45.635],
                 [25.600, 45.648], [25.580, 45.648], [25.580, 45.635]]]},
        "reason": "analize Apa Brașov"});

    // An agency may not publish; a body with an open ring is refused.
    let (status, _, body) = act(&agency, &water, boil.clone()).await?;
    assert_eq!(status, 403, "{body}");
    let mut open_ring = boil.clone();
    open_ring["area"]["coordinates"][0][4] = json!([25.58, 45.64]);
    let (status, _, body) = act(&operator, &water, open_ring).await?;
    assert_eq!(status, 400, "{body}");

    let (status, location, first) = act(&operator, &water, boil.clone()).await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["msg_type"], "Alert", "{first}");
    assert_eq!(location.as_deref(), first["cap"].as_str(), "{first}");
    let (status, _, body) = act(&operator, &water, boil.clone()).await?;
    assert_eq!(status, 409, "already active: {body}");
    let (status, _, second) = act(
        &operator,
        &water,
        json!({"action": "update_warning",
            "headline": {"ro": "Apă nepotabilă: zona se extinde", "en": "Boil-water notice: wider area"},
            "instruction": {"ro": "Fierbeți apa 3 minute.", "en": "Boil water for 3 minutes."}}),
    )
    .await?;
    assert_eq!(
        (status, second["msg_type"].as_str()),
        (201, Some("Update")),
        "{second}"
    );
    let (status, _, third) = act(
        &operator,
        &water,
        json!({"action": "cancel_warning", "reason": "apa e din nou potabilă"}),
    )
    .await?;
    assert_eq!(
        (status, third["msg_type"].as_str()),
        (201, Some("Cancel")),
        "{third}"
    );
    let (status, _, body) = act(&operator, &water, json!({"action": "cancel_warning"})).await?;
    assert_eq!(status, 409, "nothing active: {body}");

    // The gas leak's warning takes the incident's place (a circle), and resolving the incident
    // cancels it.
    let (status, _, gas_first) = act(
        &operator,
        &gas,
        json!({"action": "publish_warning",
            "headline": {"ro": "Scurgere de gaz", "en": "Gas leak"},
            "instruction": {"ro": "Nu aprindeți flacără; părăsiți zona.", "en": "No open flames; leave the area."}}),
    )
    .await?;
    assert_eq!(status, 201, "{gas_first}");
    let (status, _, resolved) = act(
        &operator,
        &gas,
        json!({"action": "resolve", "reason": "remediat"}),
    )
    .await?;
    assert_eq!(status, 200, "{resolved}");
    let (_, _, timeline) = server
        .get(&format!("/api/v1/incidents/{gas}/timeline"))
        .await?;
    let text = timeline.to_string();
    assert!(
        text.contains("cancel_warning") && text.contains("\"automatic\":true"),
        "{timeline}"
    );
    let (status, _, body) = act(
        &operator,
        &gas,
        json!({"action": "publish_warning", "headline": {"ro": "a", "en": "b"},
               "instruction": {"ro": "a", "en": "b"}}),
    )
    .await?;
    assert_eq!(status, 409, "resolved incident: {body}");

    // The dashboards' list: both, cancelled.
    let (status, _, list) = server.get("/api/v1/public/warnings").await?;
    assert_eq!(status, 200);
    let list = list.as_array().context("list")?;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|w| w["active"] == false), "{list:?}");

    // The Atom feed, well-formed, links the latest CAP document of each.
    let resp = reqwest::get(format!("{}/api/v1/public/warnings.atom", server.http)).await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/atom+xml")
    );
    let feed = resp.text().await?;
    let feed_file = dir.path().join("warnings.atom");
    std::fs::write(&feed_file, &feed)?;
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg(&feed_file)
        .output()?;
    assert!(
        out.status.success(),
        "{feed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let water_last = format!("dispecer-brasov-{water}-3.xml");
    let gas_last = format!("dispecer-brasov-{gas}-2.xml");
    for doc in [&water_last, &gas_last] {
        assert!(
            feed.contains(&format!("{}/api/v1/public/warnings/{doc}\"", server.http)),
            "{doc} not linked: {feed}"
        );
    }
    assert!(feed.contains("Boil-water notice: wider area"), "{feed}");

    // Every version's CAP document: valid against the official XSD, and saying what it must.
    let xsd = e2e::repo_root().join("tests/e2e/schemas/CAP-v1.2.xsd");
    let mut docs = std::collections::HashMap::new();
    for (incident, seq) in [(&water, 1), (&water, 2), (&water, 3), (&gas, 1), (&gas, 2)] {
        let name = format!("dispecer-brasov-{incident}-{seq}.xml");
        let resp = reqwest::get(format!("{}/api/v1/public/warnings/{name}", server.http)).await?;
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/cap+xml")
        );
        let doc = resp.text().await?;
        let file = dir.path().join(&name);
        std::fs::write(&file, &doc)?;
        xmllint_schema(&xsd, &file)?;
        assert_eq!(one(&doc, "identifier")?, name.trim_end_matches(".xml"));
        assert_eq!(one(&doc, "status")?, "Actual");
        assert_eq!(one(&doc, "scope")?, "Public");
        assert_eq!(elements(&doc, "language"), ["ro-RO", "en-US"], "{doc}");
        docs.insert((incident.clone(), seq), doc);
    }
    let doc = |incident: &str, seq: u32| docs[&(incident.to_owned(), seq)].clone();
    // The drawn polygon: closed, at least 4 pairs, latitude first, inside the city.
    for seq in 1..=3 {
        let d = doc(&water, seq);
        let polygons = elements(&d, "polygon");
        assert_eq!(polygons.len(), 2, "one per info: {d}");
        for p in &polygons {
            let pairs: Vec<&str> = p.split(' ').collect();
            assert!(pairs.len() >= 4 && pairs.first() == pairs.last(), "{p}");
            let points = pairs
                .iter()
                .map(|x| lat_lon(x))
                .collect::<Result<Vec<_>>>()?;
            assert_eq!(points[0], (45.635, 25.58), "{p}");
        }
        assert!(elements(&d, "circle").is_empty(), "{d}");
    }
    // The gas leak's circle around its report.
    let circle = elements(&doc(&gas, 1), "circle");
    assert_eq!(circle.len(), 2);
    let (centre, radius) = circle[0].split_once(' ').context("circle")?;
    assert_eq!(lat_lon(centre)?, (45.66, 25.61));
    assert_eq!(radius, "0.500");
    // Message types and the references chain.
    let sent = |d: &str| one(d, "sent");
    let reference = |incident: &str, seq: u32| -> Result<String> {
        Ok(format!(
            "dispecer.brasov,dispecer-brasov-{incident}-{seq},{}",
            sent(&doc(incident, seq))?
        ))
    };
    for (incident, seq, msg_type, refs) in [
        (&water, 1, "Alert", vec![]),
        (&water, 2, "Update", vec![reference(&water, 1)?]),
        (
            &water,
            3,
            "Cancel",
            vec![reference(&water, 1)?, reference(&water, 2)?],
        ),
        (&gas, 1, "Alert", vec![]),
        (&gas, 2, "Cancel", vec![reference(&gas, 1)?]),
    ] {
        let d = doc(incident, seq);
        assert_eq!(one(&d, "msgType")?, msg_type, "{d}");
        let got = elements(&d, "references");
        if refs.is_empty() {
            assert!(got.is_empty(), "{d}");
        } else {
            assert_eq!(got, [refs.join(" ")], "{d}");
        }
        assert!(
            !sent(&d)?.ends_with('Z') && !sent(&d)?.contains('.'),
            "CAP dateTime: {d}"
        );
    }
    assert!(doc(&water, 2).contains("Boil water for 3 minutes."));
    assert!(doc(&water, 1).contains("Boil-water notice &lt;Centre&gt;"));
    // An identifier that is not one of ours.
    let (status, _, _) = server
        .get(&format!(
            "/api/v1/public/warnings/dispecer-brasov-{water}-9.xml"
        ))
        .await?;
    assert_eq!(status, 404);
    server.stop();

    // The log replays to the same warnings.
    let out = Command::new(e2e::dispecer_bin()?)
        .args(["rebuild", "--database-url", db, "--city", city])
        .output()
        .context("dispecer rebuild")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("identical"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// An operator publishes a public warning from the incident's popup in the console, in both
/// languages, the citizens' map shows it, and the operator withdraws it; the public list says
/// so each time.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_publishes_and_withdraws_a_warning_from_the_console() -> Result<()> {
    use fantoccini::Locator;
    use std::time::Duration;

    use crate::browser::{log_in, open_browser, screenshot};

    let dir = TempDir::new("dispecer-console-warning");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let (ok, err) = e2e::dispecer_user_add(&db, "ana", "operator", None, "parola-lunga-1")?;
    assert!(ok, "{err}");
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (mut stream, _) = server.stream().await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("warn-console-1", "gas_smell", 25.6012, 45.6551),
    )
    .await?;
    let f = stream.next_incident(|_| true).await?;
    let id = f["incident"]["id"].as_str().context("id")?.to_owned();
    let public = || async {
        let (_, _, list) = server.get("/api/v1/public/warnings").await?;
        anyhow::Ok(list)
    };
    let wait_public = |active: bool| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let list = public().await?;
            if list[0]["active"] == active {
                return anyhow::Ok(list);
            }
            ensure!(std::time::Instant::now() < deadline, "{list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let (_driver, browser) = open_browser(&dir).await?;
    let result = async {
        browser.goto(&format!("{}/", server.http)).await?;
        log_in(&browser, "ana", "parola-lunga-1").await?;
        let row = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("#queue-list [data-queue-id='{id}']")))
            .await
            .context("no queue row")?;
        row.send_keys("\u{E007}").await?; // Enter: the popup
        for (field, text) in [
            ("headline_ro", "Scurgere de gaz pe Str. Lungă"),
            ("headline_en", "Gas leak on Strada Lungă"),
            ("instruction_ro", "Nu aprindeți flacără."),
            ("instruction_en", "No open flames."),
            ("radius_m", "300"),
        ] {
            let input = browser
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&format!(
                    ".leaflet-popup [data-warn-field='{field}'][data-incident='{id}']"
                )))
                .await
                .with_context(|| format!("no {field} field in the popup"))?;
            input.send_keys(text).await?;
        }
        let publish = browser
            .find(Locator::Css(&format!(
                ".leaflet-popup button[data-warn='publish_warning'][data-incident='{id}']"
            )))
            .await?;
        anyhow::ensure!(
            crate::browser::click_in_view(&browser, publish).await?,
            "the publish button went away before its click"
        );
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//div[contains(@class,'popup-warning')]//p[contains(@class,'is-ok')][contains(., 'publicată')]",
            ))
            .await
            .context("the popup does not say the warning is published")?;
        screenshot(&browser, "console-public-warning").await?;
        let list = wait_public(true).await?;
        assert_eq!(list[0]["headline"]["en"], "Gas leak on Strada Lungă", "{list}");
        assert_eq!(list[0]["radius_m"], 300.0, "{list}");

        // The citizens' map shows it, in the citizen's language.
        browser.goto(&format!("{}/report/map.html", server.http)).await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//section[@id='warnings'][not(@hidden)][contains(., 'Scurgere de gaz pe Str. Lungă')]",
            ))
            .await
            .context("the citizens' map does not show the warning")?;
        screenshot(&browser, "citizen-map-public-warning").await?;

        // Back in the console, the operator withdraws it.
        browser.goto(&format!("{}/", server.http)).await?;
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("#queue-list [data-queue-id='{id}']")))
            .await
            .context("no queue row")?
            .send_keys("\u{E007}")
            .await?;
        let withdraw = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!(
                ".leaflet-popup button[data-warn='cancel_warning'][data-incident='{id}']"
            )))
            .await
            .context("no withdraw button")?;
        anyhow::ensure!(
            crate::browser::click_in_view(&browser, withdraw).await?,
            "the withdraw button went away before its click"
        );
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(
                "//div[contains(@class,'popup-warning')]//p[contains(@class,'is-ok')][contains(., 'retrasă')]",
            ))
            .await
            .context("the popup does not say the warning is withdrawn")?;
        let list = wait_public(false).await?;
        assert_eq!(list[0]["msg_type"], "Cancel", "{list}");
        anyhow::Ok(())
    }
    .await;
    let _ = browser.close().await;
    result
}

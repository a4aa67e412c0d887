//! The citizens' page in a real browser (Debian's Chromium through chromedriver, phone-sized): a
//! citizen files a report with a pin on the map, a description, a photo and an e-mail address,
//! gets a tracking code, and the status page shows the report; the public map shows the incident.
//! Then, over HTTP: the photo reached the store without its EXIF block and only staff may fetch
//! it; the e-mail is with the operators only; no public answer carries it or the description.

use std::time::Duration;

use anyhow::{Context, Result};
use fantoccini::Locator;
use serde_json::Value;

use e2e::{dispecer_token, free_port, repo_root, Broker, Dispecer, TempDir};

use crate::browser::{assert_no_csp_violations, open_browser_sized};

const EMAIL: &str = "maria.ionescu@example.org";
const DESCRIPTION: &str = "Groapă mare lângă trecerea de pietoni";
/// A secret only the photo's EXIF block carries.
const EXIF_SECRET: &[u8] = b"GPS 45.6427N 25.5887E Pixel-8";

/// A tiny but well-formed JPEG (one 8x8 grey block) with an EXIF segment.
fn jpeg_with_exif() -> Vec<u8> {
    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap_or(0).to_be_bytes());
        s.extend_from_slice(body);
        s
    }
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(EXIF_SECRET);
    let mut j = vec![0xFF, 0xD8];
    j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    j.extend(segment(0xE1, &exif));
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    j.extend(segment(0xDB, &dqt));
    j.extend(segment(0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    // DC table: one code of length 1 for category 0; AC table: one code of length 1 for EOB.
    let mut dht = vec![0x00, 1];
    dht.extend([0u8; 15]);
    dht.push(0);
    j.extend(segment(0xC4, &dht));
    let mut dht = vec![0x10, 1];
    dht.extend([0u8; 15]);
    dht.push(0);
    j.extend(segment(0xC4, &dht));
    j.extend(segment(0xDA, &[1, 1, 0x00, 0, 63, 0]));
    // DC diff 0 (code "0"), EOB (code "0"), padded with ones.
    j.push(0b0011_1111);
    j.extend([0xFF, 0xD9]);
    j
}

#[tokio::test(flavor = "multi_thread")]
async fn citizen_files_a_report_and_follows_it() -> Result<()> {
    let dir = TempDir::new("dispecer-citizen");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let operator = dispecer_token(&db, &["create", "--city", city, "--dispatcher"])?;
    let utility = dispecer_token(&db, &["create", "--city", city, "--operator", "apa-brasov"])?;
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let photo = dir.path().join("groapa.jpg");
    std::fs::write(&photo, jpeg_with_exif())?;

    let (driver, browser) = open_browser_sized(&dir, (412, 1400)).await?;
    let shots = repo_root().join("target/e2e-screenshots");
    std::fs::create_dir_all(&shots)?;
    let wait = Duration::from_secs(20);

    let result = async {
        browser.goto(&format!("{}/report", server.http)).await?;
        browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#map path"))
            .await
            .context("the city is not drawn on the map")?;
        browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#category option[value='pothole']"))
            .await
            .context("no categories")?;
        // Romanian first, English on request, and back.
        let title = browser.find(Locator::Css("h1")).await?;
        assert_eq!(title.text().await?, "Trimite o sesizare");
        browser
            .find(Locator::Css("[data-lang='en']"))
            .await?
            .click()
            .await?;
        assert_eq!(title.text().await?, "Report a problem");
        let pothole = browser
            .find(Locator::Css("#category option[value='pothole']"))
            .await?;
        assert_eq!(pothole.text().await?, "Pothole");
        std::fs::write(
            shots.join("citizen-report-en.png"),
            browser.screenshot().await?,
        )?;
        browser
            .find(Locator::Css("[data-lang='ro']"))
            .await?
            .click()
            .await?;
        assert_eq!(title.text().await?, "Trimite o sesizare");

        // Sending without a place is refused on the page.
        browser
            .find(Locator::Css("#category"))
            .await?
            .select_by_value("pothole")
            .await?;
        browser.find(Locator::Css("#submit")).await?.click().await?;
        let error = browser.find(Locator::Css("#error")).await?;
        assert_eq!(error.text().await?, "Alegeți locul pe hartă.");

        // A pin in the middle of the city.
        browser.find(Locator::Css("#map")).await?.click().await?;
        browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#map .leaflet-marker-icon"))
            .await
            .context("no pin")?;
        let place = browser.find(Locator::Css("#place")).await?.text().await?;
        assert!(place.starts_with("Loc ales: 45."), "{place}");
        browser
            .find(Locator::Css("#description"))
            .await?
            .send_keys(DESCRIPTION)
            .await?;
        browser
            .find(Locator::Css("#email"))
            .await?
            .send_keys(EMAIL)
            .await?;
        browser
            .find(Locator::Css("#photo"))
            .await?
            .send_keys(photo.to_str().context("path")?)
            .await?;
        let chosen = browser
            .find(Locator::Css("#photo-name"))
            .await?
            .text()
            .await?;
        assert_eq!(chosen, "groapa.jpg");
        std::fs::write(
            shots.join("citizen-report-filled.png"),
            browser.screenshot().await?,
        )?;
        browser.find(Locator::Css("#submit")).await?.click().await?;
        let code = browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#done:not([hidden]) #code"))
            .await
            .context("no tracking code")?
            .text()
            .await?;
        assert!(code.starts_with("web-"), "{code}");
        assert!(
            !browser
                .find(Locator::Css("#report-form"))
                .await?
                .is_displayed()
                .await?,
            "the form is hidden once sent"
        );
        std::fs::write(
            shots.join("citizen-report-done.png"),
            browser.screenshot().await?,
        )?;

        // The status page, reached from the answer.
        browser
            .find(Locator::Css("#status-link"))
            .await?
            .click()
            .await?;
        let state = browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#result:not([hidden]) #r-state"))
            .await
            .context("no status shown")?;
        assert_eq!(state.text().await?, "Trimisă instituției (deschisă)");
        let category = browser
            .find(Locator::Css("#r-category"))
            .await?
            .text()
            .await?;
        assert_eq!(category, "Groapă în carosabil");
        let agency = browser
            .find(Locator::Css("#r-agency"))
            .await?
            .text()
            .await?;
        assert!(!agency.is_empty());
        let page = browser.source().await?;
        assert!(!page.contains(EMAIL) && !page.contains("trecerea de pietoni"));
        std::fs::write(
            shots.join("citizen-status.png"),
            browser.screenshot().await?,
        )?;

        // The public map.
        browser
            .goto(&format!("{}/report/map.html", server.http))
            .await?;
        browser
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#map path.leaflet-interactive"))
            .await
            .context("no incident on the public map")?;
        let count = browser.find(Locator::Css("#count")).await?.text().await?;
        assert_eq!(count, "1 incidente deschise");
        std::fs::write(shots.join("citizen-map.png"), browser.screenshot().await?)?;
        // The three pages ran under the Content Security Policy, refusing nothing…
        assert_no_csp_violations(&driver, &browser).await?;
        // …and the check sees a refusal when there is one: an inline script and an inline style
        // attribute, both refused by the policy.
        browser
            .execute(
                "const s = document.createElement('script'); s.textContent = 'window.inlined = 1'; \
                 document.body.appendChild(s); \
                 const d = document.createElement('div'); d.setAttribute('style', 'color: red'); \
                 document.body.appendChild(d);",
                vec![],
            )
            .await?;
        let inlined = browser
            .execute("return window.inlined === 1", vec![])
            .await?;
        assert_eq!(
            inlined,
            serde_json::Value::Bool(false),
            "an inline script ran"
        );
        let refused = crate::browser::csp_violations(&driver, &browser).await?;
        assert!(
            refused.iter().any(|m| m.contains("script-src")),
            "the inline script's refusal was not seen: {refused:?}"
        );
        Ok::<String, anyhow::Error>(code)
    }
    .await;
    if result.is_err() {
        if let Ok(shot) = browser.screenshot().await {
            let _ = std::fs::write(shots.join("citizen-failure.png"), shot);
        }
    }
    let _ = browser.close().await;
    let code = result?;

    // Over HTTP: the report took the citizen journey, with the contact apart.
    let http = reqwest::Client::new();
    let (_, _, list) = server.get("/api/v1/incidents?category=pothole").await?;
    let incident = list["features"][0].clone();
    assert_eq!(incident["properties"]["description"], DESCRIPTION);
    let id = incident["id"].as_str().context("incident id")?;
    let contacts: Value = http
        .get(format!("{}/api/v1/incidents/{id}/contacts", server.http))
        .bearer_auth(&operator)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(contacts["contacts"][0]["email"], EMAIL);
    for path in [
        format!("/api/v1/public/reports/{code}"),
        "/api/v1/public/incidents".to_owned(),
        format!("/open311/v2/requests/{code}.json"),
    ] {
        let body = http
            .get(format!("{}{path}", server.http))
            .send()
            .await?
            .text()
            .await?;
        assert!(!body.contains(EMAIL), "{path}: {body}");
    }
    let public = http
        .get(format!("{}/api/v1/public/incidents", server.http))
        .send()
        .await?
        .text()
        .await?;
    assert!(!public.contains("pietoni"), "{public}");

    // The photo: stored without its EXIF block, shown to staff only.
    let url = format!("{}/api/v1/reports/{code}/photo", server.http);
    let anonymous = http.get(&url).send().await?;
    assert_eq!(anonymous.status().as_u16(), 401);
    let other = http.get(&url).bearer_auth(&utility).send().await?;
    assert_eq!(other.status().as_u16(), 403);
    let staff = http.get(&url).bearer_auth(&operator).send().await?;
    assert_eq!(staff.status().as_u16(), 200);
    assert_eq!(
        staff
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    let stored = staff.bytes().await?;
    let original = jpeg_with_exif();
    assert!(stored.starts_with(&[0xFF, 0xD8]) && stored.ends_with(&[0xFF, 0xD9]));
    assert!(
        !stored.windows(EXIF_SECRET.len()).any(|w| w == EXIF_SECRET),
        "the EXIF block reached the store"
    );
    assert!(original
        .windows(EXIF_SECRET.len())
        .any(|w| w == EXIF_SECRET));
    assert!(stored.len() < original.len());
    Ok(())
}

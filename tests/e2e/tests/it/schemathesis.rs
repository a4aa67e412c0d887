//! schemathesis (PyPI, installed into a cached virtualenv by `scripts/schemathesis.sh`) against
//! `/api/v1/openapi.json` of the real binary, with every check on and a bounded number of
//! examples: no server error, every answer as the document says, schema-invalid input refused.
//!
//! Each operation is called as someone who may use it: an admin's session (its cookie and CSRF
//! token: it reads everything, the dead letters included, and acts on any incident); a utility's
//! token for `POST /api/v1/events`; a sensor gateway's for `POST /api/v1/readings`; a second,
//! throwaway session of the admin for `DELETE /api/v1/session`, so that logging out never ends
//! the session the other operations use. Where the document
//! cannot say everything the server checks, the check `positive_data_acceptance` also accepts a
//! 400 for that operation only, named here with the reason:
//! - `POST /api/v1/events`, `POST /api/v1/readings`: a GeoJSON geometry inside the city, a SenML
//!   pack whose names are the city's sensors — validity beyond JSON Schema;
//! - `GET /api/v1/sensors/{id}/readings`: `from` before `to`, and a range that fits the step;
//! - `GET /api/v1/stream`: a plain GET (without the WebSocket upgrade) is refused;
//! - `POST /api/v1/reports`: the photo must really be a JPEG or PNG (415 otherwise) and the
//!   contact details well formed (an e-mail address, a phone number);
//! - `POST /api/v1/incidents/{id}/actions`: a public warning's area must be a valid GeoJSON
//!   geometry inside the city (rings closed, positions of two numbers; `radius_m` with a Point
//!   only). A schema-invalid body larger than the 16 KB the endpoint takes is answered 413 before
//!   it is read, which `negative_data_rejection` accepts there too.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;

use e2e::{dispecer_token, free_port, repo_root, Broker, Dispecer, TempDir};

/// Examples per operation and phase: enough to find what was found here, small enough for CI.
const MAX_EXAMPLES: u32 = 25;

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing() -> Result<()> {
    let script = repo_root().join("scripts/schemathesis.sh");
    let out = Command::new(&script)
        .output()
        .context("scripts/schemathesis.sh")?;
    if !out.status.success() {
        bail!(
            "scripts/schemathesis.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = String::from_utf8(out.stdout)?.trim().to_owned();

    let dir = TempDir::new("dispecer-schemathesis");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let water = dispecer_token(&db, &["create", "--city", city, "--operator", "apa-brasov"])?;
    let gateway = dispecer_token(&db, &["create", "--city", city, "--readings"])?;
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let admin = server.staff().await?.clone();

    // Something to find: an incident (for the operations that take its id).
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.http))
        .bearer_auth(&water)
        .json(&json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
            "properties": {"id": "st-seed-1", "kind": "fault", "category": "water_leak"}}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);

    let admin_session = admin
        .cookie
        .strip_prefix("dispecer_session=")
        .context("a session cookie")?;
    let admin_csrf = &admin.csrf;
    let semantic =
        r#"checks.positive_data_acceptance.expected-statuses = ["2XX", 400, 401, 403, 404, 409]"#;
    let common = format!(
        r#"[cache]
enabled = false

[checks]
enabled = true

[generation]
max-examples = {MAX_EXAMPLES}

[[operations]]
include-path = "/api/v1/events"
{semantic}

[[operations]]
include-path = "/api/v1/readings"
{semantic}

[[operations]]
include-path = "/api/v1/sensors/{{id}}/readings"
{semantic}

[[operations]]
include-path = "/api/v1/stream"
{semantic}

[[operations]]
include-path = "/api/v1/reports"
checks.positive_data_acceptance.expected-statuses = ["2XX", 400, 415]

[[operations]]
include-path = "/api/v1/incidents/{{id}}/actions"
{semantic}
checks.negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]

[[operations]]
include-path = "/api/v1/session"
include-method = "DELETE"
headers = {{ X-CSRF-Token = "not-the-session-token" }}
"#
    );
    // Three runs, each with one caller: schemathesis carries a token it was given for one
    // operation over to others that accept tokens, which would read as a utility.
    let runs: [(&str, String, &[&str]); 3] = [
        (
            "people",
            format!(
                "[headers]\nX-CSRF-Token = \"{admin_csrf}\"\n\n\
                 [auth.openapi.session]\napi_key = \"{admin_session}\"\n"
            ),
            &[
                "--exclude-path",
                "/api/v1/events",
                "--exclude-path",
                "/api/v1/readings",
            ],
        ),
        (
            "utility",
            format!("[headers]\nAuthorization = \"Bearer {water}\"\n"),
            // One operation: no links to follow, so no stateful phase.
            &[
                "--include-path",
                "/api/v1/events",
                "--phases",
                "examples,coverage,fuzzing",
            ],
        ),
        (
            "gateway",
            format!("[headers]\nAuthorization = \"Bearer {gateway}\"\n"),
            &[
                "--include-path",
                "/api/v1/readings",
                "--phases",
                "examples,coverage,fuzzing",
            ],
        ),
    ];
    for (name, auth, filters) in runs {
        let config = dir.path().join(format!("schemathesis-{name}.toml"));
        // Top-level keys first, then the caller's tables, then the rest.
        std::fs::write(
            &config,
            format!("seed = 1\ncolor = false\n\n{auth}\n{common}"),
        )?;
        // Run in the test's own folder: nothing it might write lands in the repository.
        let run = Command::new(&st)
            .current_dir(dir.path())
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{}/api/v1/openapi.json", server.http))
            .arg("--url")
            .arg(&server.http)
            .args(filters)
            .arg("--checks")
            .arg("all")
            .arg("--workers")
            .arg("1")
            .output()
            .context("schemathesis")?;
        let report = String::from_utf8_lossy(&run.stdout);
        let tail: String = report
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        println!("schemathesis as {name}:\n{tail}");
        assert!(
            run.status.success(),
            "schemathesis as {name} found problems:\n{report}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&run.stderr),
            server.log()
        );
        assert!(
            report.contains("Operations:") && report.contains("passed"),
            "schemathesis as {name} ran nothing:\n{report}"
        );
        // The caller got in: an operation answered only 401/403 would test nothing behind them.
        assert!(
            !report.contains("Authentication failed"),
            "schemathesis as {name} was refused:\n{report}"
        );
    }
    Ok(())
}

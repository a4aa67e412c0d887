//! Open311 GeoReport v2 through the real binary: every endpoint and every error case, in JSON
//! and XML, and a request filed through Open311 and one published over MQTT read back alike.

use anyhow::{Context, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Value};

use e2e::{dispecer_token, free_port, repo_root, Broker, Dispecer, MqttClient, TempDir};

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    ctype: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The text of every `<name>` element, in order (and the document must be well formed).
    fn xml_texts(&self, name: &str) -> Vec<String> {
        let mut reader = Reader::from_str(&self.body);
        let mut out = Vec::new();
        let mut inside = false;
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => inside = e.name().as_ref() == name.as_bytes(),
                Ok(Event::Empty(e)) if e.name().as_ref() == name.as_bytes() => {
                    out.push(String::new())
                }
                Ok(Event::Text(t)) if inside => {
                    out.push(t.decode().map(|c| c.into_owned()).unwrap_or_default());
                }
                Ok(Event::GeneralRef(r)) if inside => {
                    // quick-xml hands entity references apart; rebuild the text.
                    let text = match r.decode().unwrap_or_default().as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "?",
                    };
                    if let Some(last) = out.last_mut() {
                        last.push_str(text);
                    }
                }
                Ok(Event::End(_)) => inside = false,
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed XML ({e}): {}", self.body),
            }
        }
        out
    }
}

async fn get(server: &Dispecer, path: &str) -> Result<Answer> {
    let resp = reqwest::get(format!("{}{path}", server.http)).await?;
    answer(resp).await
}

async fn answer(resp: reqwest::Response) -> Result<Answer> {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok(Answer {
        status,
        ctype,
        body: resp.text().await?,
    })
}

async fn post_form(server: &Dispecer, path: &str, form: &[(&str, &str)]) -> Result<Answer> {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded(form))
        .send()
        .await?;
    answer(resp).await
}

fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks an error answer in `fmt`: the HTTP status, the media type and the array.
fn assert_error(a: &Answer, fmt: &str, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    if fmt == "json" {
        assert!(a.ctype.starts_with("application/json"), "{}", a.ctype);
        let v = a.json();
        assert_eq!(v[0]["code"], status, "{}", a.body);
        let d = v[0]["description"].as_str().unwrap_or("");
        assert!(d.contains(needle), "{d:?} lacks {needle:?}");
        assert_eq!(v.as_array().map(Vec::len), Some(1));
    } else {
        assert!(a.ctype.starts_with("text/xml"), "{}", a.ctype);
        assert!(a.body.contains("<errors><error>"), "{}", a.body);
        assert_eq!(a.xml_texts("code"), vec![status.to_string()]);
        let d = a.xml_texts("description").join("");
        assert!(d.contains(needle), "{d:?} lacks {needle:?}");
    }
}

const EMAIL: &str = "ana.pop@example.org";
const PHONE: &str = "+40 722 123 456";

#[tokio::test(flavor = "multi_thread")]
async fn open311_georeport_v2() -> Result<()> {
    let dir = TempDir::new("dispecer-open311");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let app = dispecer_token(&db, &["create", "--city", city, "--citizens-app"])?;
    let dispatcher = dispecer_token(&db, &["create", "--city", city, "--dispatcher"])?;
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;

    // discovery
    let a = get(&server, "/open311/v2/discovery.json").await?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.ctype.starts_with("application/json"));
    let d = a.json();
    assert_eq!(
        d["endpoints"][0]["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    assert!(d["endpoints"][0]["url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/open311/v2")));
    let a = get(&server, "/open311/v2/discovery.xml").await?;
    assert_eq!(a.status, 200);
    assert!(a.ctype.starts_with("text/xml"));
    assert_eq!(
        a.xml_texts("format"),
        vec!["text/xml".to_owned(), "application/json".to_owned()]
    );

    // services
    let a = get(&server, "/open311/v2/services.json").await?;
    assert_eq!(a.status, 200);
    let services = a.json();
    let pothole = services
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service_code"] == "pothole"))
        .context("pothole service")?
        .clone();
    assert_eq!(pothole["group"], "road");
    assert_eq!(pothole["type"], "realtime");
    assert_eq!(pothole["metadata"], true);
    assert!(pothole["service_name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert!(pothole["keywords"]
        .as_str()
        .is_some_and(|k| k.contains("road")));
    let a = get(&server, "/open311/v2/services.xml").await?;
    assert_eq!(a.status, 200);
    let codes = a.xml_texts("service_code");
    assert_eq!(codes.len(), services.as_array().map_or(0, Vec::len));
    assert!(codes.contains(&"pothole".to_owned()));

    // services/{code}
    for fmt in ["json", "xml"] {
        let a = get(&server, &format!("/open311/v2/services/pothole.{fmt}")).await?;
        assert_eq!(a.status, 200, "{}", a.body);
        if fmt == "json" {
            let def = a.json();
            assert_eq!(def["service_code"], "pothole");
            assert_eq!(def["attributes"][0]["code"], "observed_at");
            assert_eq!(def["attributes"][0]["datatype"], "datetime");
            assert_eq!(def["attributes"][0]["required"], false);
        } else {
            assert_eq!(a.xml_texts("code"), vec!["observed_at".to_owned()]);
            assert_eq!(a.xml_texts("datatype"), vec!["datetime".to_owned()]);
        }
        let a = get(&server, &format!("/open311/v2/services/no_such.{fmt}")).await?;
        assert_error(&a, fmt, 404, "no_such");
        let a = get(
            &server,
            &format!("/open311/v2/services.{fmt}?jurisdiction_id=cluj"),
        )
        .await?;
        assert_error(&a, fmt, 400, "jurisdiction_id");
        let a = get(&server, &format!("/open311/v2/nothing.{fmt}")).await?;
        assert_error(&a, fmt, 404, "nothing");
        let a = get(&server, &format!("/open311/v3/services.{fmt}")).await?;
        assert_error(&a, fmt, 404, "/open311/v3");
    }
    let a = get(&server, "/open311/v2/services.txt").await?;
    assert_error(&a, "xml", 404, ".xml or .json");
    let a = get(&server, "/open311/v2/services.json?jurisdiction_id=brasov").await?;
    assert_eq!(a.status, 200, "{}", a.body);

    // POST requests: every refusal, in both formats
    let good: Vec<(&str, &str)> = vec![
        ("api_key", app.as_str()),
        ("service_code", "pothole"),
        ("lat", "45.6419"),
        ("long", "25.5887"),
        ("description", "Groapă adâncă în carosabil"),
        ("first_name", "Ana"),
        ("last_name", "Pop"),
        ("email", EMAIL),
        ("phone", PHONE),
        ("address_string", "Strada Republicii 10"),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        good.iter().filter(|(k, _)| *k != name).copied().collect()
    };
    let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        let mut f = without(name);
        f.push((name, value));
        f
    };
    let too_long = "x".repeat(4001);
    for fmt in ["json", "xml"] {
        let path = format!("/open311/v2/requests.{fmt}");
        type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (without("api_key"), 403, "api_key"),
            (with("api_key", "dsp_wrong"), 403, "api_key"),
            (with("api_key", ""), 403, "api_key"),
            (without("service_code"), 400, "service_code"),
            (with("service_code", "unicorn"), 400, "unicorn"),
            (
                without("lat")
                    .into_iter()
                    .filter(|(k, _)| *k != "long")
                    .collect(),
                400,
                "geocoder",
            ),
            (
                without("lat")
                    .into_iter()
                    .filter(|(k, _)| *k != "long" && *k != "address_string")
                    .collect(),
                400,
                "lat and long",
            ),
            (without("long"), 400, "long"),
            (with("lat", "north"), 400, "lat"),
            (with("lat", "0"), 400, "outside"),
            (with("email", "not-an-address"), 400, "email"),
            (with("jurisdiction_id", "cluj"), 400, "jurisdiction_id"),
            (with("colour", "red"), 400, "colour"),
            (with("attribute[colour]", "red"), 400, "colour"),
            (
                with("attribute[observed_at]", "yesterday"),
                400,
                "observed_at",
            ),
            (with("media_url", "ftp://x"), 400, "media_url"),
        ];
        for (form, status, needle) in &cases {
            let a = post_form(&server, &path, form).await?;
            assert_error(&a, fmt, *status, needle);
        }
        let mut long = without("description");
        long.push(("description", too_long.as_str()));
        let a = post_form(&server, &path, &long).await?;
        assert_error(&a, fmt, 400, "description");
        // Another scope's token is refused too.
        let mut other = without("api_key");
        other.push(("api_key", dispatcher.as_str()));
        let a = post_form(&server, &path, &other).await?;
        assert_error(&a, fmt, 403, "api_key");
        // Not a form.
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", server.http))
            .header("content-type", "application/json")
            .body(json!({"api_key": app, "service_code": "pothole"}).to_string())
            .send()
            .await?;
        assert_error(&answer(resp).await?, fmt, 400, "x-www-form-urlencoded");
        // POST where only GET is.
        let a = post_form(&server, &format!("/open311/v2/services.{fmt}"), &good).await?;
        assert_error(&a, fmt, 404, "services");
    }

    // POST requests: filed, durable, idempotent
    let a = post_form(&server, "/open311/v2/requests.json", &good).await?;
    assert_eq!(a.status, 200, "{}", a.body);
    let first = a.json()[0]["service_request_id"]
        .as_str()
        .context("service_request_id")?
        .to_owned();
    assert!(
        a.json()[0].get("token").is_none(),
        "never both id and token"
    );
    let again = post_form(&server, "/open311/v2/requests.json", &good).await?;
    assert_eq!(again.json()[0]["service_request_id"], first.as_str());
    let mut second_form = with("description", "A doua groapă");
    second_form.push(("attribute[observed_at]", "2026-11-01T08:00:00+02:00"));
    second_form.retain(|(k, _)| !matches!(*k, "email" | "phone" | "first_name" | "last_name"));
    let a = post_form(&server, "/open311/v2/requests.xml", &second_form).await?;
    assert_eq!(a.status, 200, "{}", a.body);
    let second = a
        .xml_texts("service_request_id")
        .into_iter()
        .next()
        .context("id in XML")?;
    assert_ne!(second, first);
    assert_eq!(a.xml_texts("account_id"), vec![String::new()]);

    // A report published over MQTT is a service request too.
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
            "properties": {"id": "mqtt-open311-1", "category": "street_light_out",
                "reported_at": chrono::Utc::now().to_rfc3339()}})
        .to_string(),
    )
    .await?;
    let mut via_mqtt = Value::Null;
    for _ in 0..100 {
        let a = get(&server, "/open311/v2/requests/mqtt-open311-1.json").await?;
        if a.status == 200 {
            via_mqtt = a.json();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        via_mqtt[0]["service_code"], "street_light_out",
        "{via_mqtt}"
    );

    // requests/{id}
    let a = get(&server, &format!("/open311/v2/requests/{first}.json")).await?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!a.body.contains(EMAIL) && !a.body.contains("722") && !a.body.contains("Ana"));
    let r = a.json()[0].clone();
    assert_eq!(r["service_request_id"], first.as_str());
    assert_eq!(r["status"], "open");
    assert!(r["status_notes"]
        .as_str()
        .is_some_and(|n| n.starts_with("assigned")));
    assert_eq!(r["service_code"], "pothole");
    assert_eq!(r["description"], "Groapă adâncă în carosabil");
    assert_eq!(r["address"], "Strada Republicii 10");
    assert_eq!(r["lat"], 45.6419);
    assert_eq!(r["long"], 25.5887);
    assert!(r["agency_responsible"]
        .as_str()
        .is_some_and(|a| !a.is_empty()));
    let requested = r["requested_datetime"].as_str().context("requested")?;
    let expected = r["expected_datetime"].as_str().context("expected")?;
    let requested = chrono::DateTime::parse_from_rfc3339(requested)?;
    assert!(chrono::DateTime::parse_from_rfc3339(expected)? > requested);
    let a = get(&server, &format!("/open311/v2/requests/{first}.xml")).await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.xml_texts("service_request_id"), vec![first.clone()]);
    assert_eq!(a.xml_texts("status"), vec!["open".to_owned()]);
    assert!(!a.body.contains(EMAIL));
    for fmt in ["json", "xml"] {
        let a = get(&server, &format!("/open311/v2/requests/o311-unknown.{fmt}")).await?;
        assert_error(&a, fmt, 404, "o311-unknown");
        let a = get(&server, &format!("/open311/v2/tokens/o311-unknown.{fmt}")).await?;
        assert_error(&a, fmt, 404, "o311-unknown");
    }

    // tokens/{token}
    let a = get(&server, &format!("/open311/v2/tokens/{first}.json")).await?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()[0]["service_request_id"], first.as_str());
    assert_eq!(a.json()[0]["token"], first.as_str());
    let a = get(&server, &format!("/open311/v2/tokens/{first}.xml")).await?;
    assert_eq!(a.xml_texts("token"), vec![first.clone()]);

    // GET requests: defaults and filters
    let ids = |a: &Answer| -> Vec<String> {
        a.json()
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x["service_request_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let a = get(&server, "/open311/v2/requests.json").await?;
    assert_eq!(a.status, 200, "{}", a.body);
    let all = ids(&a);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(!a.body.contains(EMAIL));
    let a = get(&server, "/open311/v2/requests.xml").await?;
    assert_eq!(a.xml_texts("service_request_id").len(), 3);
    let a = get(
        &server,
        &format!("/open311/v2/requests.json?service_request_id={first},mqtt-open311-1&service_code=fallen_tree"),
    )
    .await?;
    let mut listed = ids(&a);
    listed.sort();
    let mut wanted = vec![first.clone(), "mqtt-open311-1".to_owned()];
    wanted.sort();
    assert_eq!(listed, wanted);
    // Pages of the same newest-first list (the page/page_size extension).
    let mut paged = Vec::new();
    for page in 1..=3 {
        let a = get(
            &server,
            &format!("/open311/v2/requests.json?page={page}&page_size=2"),
        )
        .await?;
        assert_eq!(a.status, 200, "{}", a.body);
        let got = ids(&a);
        assert_eq!(got.len(), [2, 1, 0][page - 1], "page {page}: {got:?}");
        paged.extend(got);
    }
    assert_eq!(paged, all, "the pages, in order, are the whole list");
    let a = get(&server, "/open311/v2/requests.xml?page=2&page_size=2").await?;
    assert_eq!(a.xml_texts("service_request_id"), all[2..].to_vec());
    // A service_request_id list overrides paging.
    let a = get(
        &server,
        &format!("/open311/v2/requests.json?service_request_id={first}&page=5&page_size=1"),
    )
    .await?;
    assert_eq!(ids(&a), std::slice::from_ref(&first));
    let a = get(&server, "/open311/v2/requests.json?service_code=pothole").await?;
    assert_eq!(ids(&a).len(), 2);
    let a = get(&server, "/open311/v2/requests.json?status=closed").await?;
    assert_eq!(ids(&a).len(), 0);
    let a = get(&server, "/open311/v2/requests.json?status=open").await?;
    assert_eq!(ids(&a).len(), 3);
    let now = chrono::Utc::now();
    let q = |t: chrono::DateTime<chrono::Utc>| encode(&t.to_rfc3339());
    let a = get(
        &server,
        &format!(
            "/open311/v2/requests.json?start_date={}&end_date={}",
            q(now - chrono::Duration::hours(1)),
            q(now + chrono::Duration::hours(1))
        ),
    )
    .await?;
    assert_eq!(ids(&a).len(), 3);
    let a = get(
        &server,
        &format!(
            "/open311/v2/requests.json?end_date={}",
            q(now - chrono::Duration::hours(1))
        ),
    )
    .await?;
    assert_eq!(ids(&a).len(), 0, "{}", a.body);
    for fmt in ["json", "xml"] {
        let path = format!("/open311/v2/requests.{fmt}");
        for (query, needle) in [
            (
                format!(
                    "start_date={}&end_date={}",
                    q(now - chrono::Duration::days(91)),
                    q(now)
                ),
                "90 days",
            ),
            (
                format!(
                    "start_date={}&end_date={}",
                    q(now),
                    q(now - chrono::Duration::days(1))
                ),
                "after",
            ),
            ("start_date=yesterday".to_owned(), "start_date"),
            ("status=pending".to_owned(), "pending"),
            ("service_code=unicorn".to_owned(), "unicorn"),
            ("page=0".to_owned(), "page"),
            ("page=two".to_owned(), "page"),
            ("page_size=1001".to_owned(), "page_size"),
            ("page_size=0".to_owned(), "page_size"),
            ("page=1&page=2".to_owned(), "twice"),
            ("limit=2".to_owned(), "limit"),
            ("status=open&status=closed".to_owned(), "twice"),
        ] {
            let a = get(&server, &format!("{path}?{query}")).await?;
            assert_error(&a, fmt, 400, needle);
        }
    }

    // Our richer states map to open/closed, with the detail in status_notes.
    let (_, _, incidents) = server.get("/api/v1/incidents?category=pothole").await?;
    let incident = incidents["features"][0]["id"]
        .as_str()
        .context("incident")?
        .to_owned();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/incidents/{incident}/actions",
            server.http
        ))
        .bearer_auth(&dispatcher)
        .json(&json!({"action": "resolve", "reason": "astupată"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    let a = get(&server, &format!("/open311/v2/requests/{first}.json")).await?;
    let r = a.json()[0].clone();
    assert_eq!(r["status"], "closed", "{r}");
    assert!(r["status_notes"]
        .as_str()
        .is_some_and(|n| n.starts_with("resolved")));
    assert!(r["expected_datetime"].is_null());
    let a = get(&server, "/open311/v2/requests.json?status=closed").await?;
    let closed = ids(&a);
    assert!(
        closed.contains(&first) && closed.contains(&second),
        "{closed:?}"
    );
    assert_eq!(closed.len(), 2);

    // An outside reader: the PyPI client `georeport` (JSON, and XML through xmltodict).
    let python = std::process::Command::new(repo_root().join("scripts/georeport.sh")).output()?;
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8(python.stdout)?.trim().to_owned();
    let script = r#"
import json, sys
from georeport import GeoReport
out = {}
for fmt in ("json", "xml"):
    c = GeoReport(sys.argv[1], jurisdiction="brasov", output_format=fmt)
    services = c.get_service_list()
    definition = c.get_service_definition("pothole")
    requests = c.get_service_requests(status="closed")
    one = c.get_service_request(sys.argv[2])
    out[fmt] = {
        "codes": sorted(s["service_code"] for s in services),
        "attribute": (definition["attributes"][0] if fmt == "json"
                      else definition["attributes"]["attribute"])["code"],
        "closed": sorted(r["service_request_id"] for r in requests),
        "status": one["status"],
        "lat": float(one["lat"]),
    }
print(json.dumps(out))
"#;
    let run = std::process::Command::new(&python)
        .args(["-c", script, &format!("{}/open311/v2", server.http), &first])
        .output()?;
    assert!(
        run.status.success(),
        "georeport: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let seen: Value = serde_json::from_slice(&run.stdout)?;
    let mut closed_sorted = vec![first.clone(), second.clone()];
    closed_sorted.sort();
    for fmt in ["json", "xml"] {
        let v = &seen[fmt];
        assert_eq!(
            v["codes"].as_array().map(Vec::len),
            services.as_array().map(Vec::len),
            "{fmt}: {v}"
        );
        assert_eq!(v["attribute"], "observed_at", "{fmt}");
        assert_eq!(v["closed"], json!(closed_sorted), "{fmt}");
        assert_eq!(v["status"], "closed", "{fmt}");
        assert_eq!(v["lat"], 45.6419, "{fmt}");
    }

    let log = server.stop();
    assert!(
        !log.contains(EMAIL),
        "the log must not carry a citizen's e-mail"
    );
    Ok(())
}

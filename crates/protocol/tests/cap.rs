//! CAP 1.2 parsing: the google/cap-library conformance files (`tests/data/cap/`, Apache-2.0),
//! hand-made documents for each rule, and a cross-check of the verdicts with `xmllint` and the
//! official CAP 1.2 XML Schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, FixedOffset};
use geo::{Coord, Point};
use protocol::cap::{self, Alert, CapError, MsgType, Scope, Status, MAX_CAP_BYTES};

const NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
const SENT: &str = "2026-11-22T10:00:00+02:00";

fn time(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("a valid RFC 3339 time in the test")
}

/// What a document must give.
enum Expect {
    /// Parsed; the function asserts the fields.
    Valid(fn(&Alert)),
    /// Refused with an error matching the predicate, whose text contains the string.
    Refused(fn(&CapError) -> bool, &'static str),
}

fn check(name: &str, payload: &[u8], expect: &Expect) {
    match (cap::parse(payload), expect) {
        (Ok(alert), Expect::Valid(fields)) => fields(&alert),
        (Err(e), Expect::Refused(predicate, text)) => {
            assert!(predicate(&e), "{name}: refused for the wrong reason: {e:?}");
            let message = e.to_string();
            assert!(
                message.contains(text),
                "{name}: message {message:?} does not contain {text:?}"
            );
        }
        (Ok(alert), Expect::Refused(_, text)) => {
            panic!("{name}: accepted, expected a refusal ({text}): {alert:#?}")
        }
        (Err(e), Expect::Valid(_)) => panic!("{name}: refused: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance files

fn australia(a: &Alert) {
    assert_eq!(a.identifier, "tag:www.rfs.nsw.gov.au2011-10-06:40184");
    assert_eq!(a.sender, "webmaster@rfs.nsw.gov.au");
    assert_eq!(a.sent, time("2011-10-05T23:04:00+10:00"));
    assert_eq!(a.sent.offset().local_minus_utc(), 10 * 3600);
    assert_eq!(
        (a.status, a.msg_type, a.scope),
        (Status::Actual, MsgType::Alert, Scope::Public)
    );
    assert!(a.references.is_empty());
    assert_eq!(a.infos.len(), 2);
    let info = &a.infos[0];
    assert_eq!(info.language, "en-AU");
    assert_eq!(info.categories, ["Fire", "Met"]);
    assert_eq!(info.event, "Fire");
    assert_eq!(
        (
            info.urgency.as_str(),
            info.severity.as_str(),
            info.certainty.as_str()
        ),
        ("Expected", "Minor", "Observed")
    );
    assert_eq!(
        info.event_codes,
        [
            (
                "https://govshare.gov.au/xmlui/handle/10772/6495".to_owned(),
                "fire".to_owned()
            ),
            (
                "non-standard secondary event code".to_owned(),
                "structure_fire".to_owned()
            ),
        ]
    );
    assert_eq!(info.parameters.len(), 7);
    assert_eq!(
        info.parameters[5],
        ("AllocatedResources".to_owned(), String::new())
    );
    assert_eq!(
        info.headline.as_deref(),
        Some("Yerong Creek Structure Fire")
    );
    let description = info.description.as_deref().expect("description");
    assert!(
        description.starts_with("ALERT LEVEL: Not Applicable<br />LOCATION: 12 Cox Street"),
        "&lt; and &gt; are decoded: {description}"
    );
    assert_eq!(info.onset, None);
    assert_eq!(info.expires, Some(time("2011-10-06T23:04:00+10:00")));
    assert_eq!(info.areas.len(), 1);
    let area = &info.areas[0];
    assert_eq!(area.description, "Yerong Creek Structure Fire");
    assert!(area.polygons.is_empty());
    // "-35.3888,147.0598 25.0": latitude first in CAP, (lon, lat) and meters inside.
    assert_eq!(area.circles, [(Point::new(147.0598, -35.3888), 25_000.0)]);
}

fn canada(a: &Alert) {
    assert_eq!(a.identifier, "2.49.0.1.124.6bddbc91.2012");
    assert_eq!(a.sender, "cap@ec.gc.ca");
    assert_eq!(a.sent, time("2012-05-02T23:21:04+00:00"));
    assert_eq!(a.msg_type, MsgType::Update);
    assert_eq!(a.references.len(), 2);
    assert_eq!(a.references[0].sender, "cap@ec.gc.ca");
    assert_eq!(a.references[0].identifier, "2.49.0.1.124.a3f342a4.2012");
    assert_eq!(a.references[0].sent, time("2012-05-02T21:45:05+00:00"));
    assert_eq!(a.references[1].identifier, "2.49.0.1.124.60f31a3a.2012");
    assert_eq!(a.references[1].sent, time("2012-05-02T21:55:21+00:00"));
    let languages: Vec<&str> = a.infos.iter().map(|i| i.language.as_str()).collect();
    assert_eq!(languages, ["en-CA", "fr-CA"]);
    let en = &a.infos[0];
    assert_eq!(en.categories, ["Met"]);
    assert_eq!(en.event, "thunderstorm");
    assert_eq!(en.urgency, "Past");
    assert_eq!(en.parameters.len(), 5);
    assert_eq!(
        en.parameters[4],
        (
            "layer:EC-MSC-SMC:1.0:CAP_count".to_owned(),
            "21699".to_owned()
        )
    );
    assert_eq!(en.areas.len(), 2);
    let windsor = &en.areas[0];
    assert_eq!(windsor.description, "Windsor - Leamington - Essex County");
    assert_eq!(windsor.polygons.len(), 1);
    let ring = &windsor.polygons[0].exterior().0;
    assert_eq!(ring.len(), 17);
    // "42.3481,-82.9314 42.3363,-82.6937 ...": (lon, lat) inside.
    assert_eq!(
        ring[0],
        Coord {
            x: -82.9314,
            y: 42.3481
        }
    );
    assert_eq!(
        ring[1],
        Coord {
            x: -82.6937,
            y: 42.3363
        }
    );
    assert_eq!(ring[16], ring[0]);
    assert_eq!(en.areas[1].polygons[0].exterior().0.len(), 38);
    let fr = &a.infos[1];
    assert_eq!(fr.headline.as_deref(), Some("veille d'orages violents"));
    assert!(fr
        .description
        .as_deref()
        .is_some_and(|d| d.contains("épreuve")));
    assert_eq!(
        fr.areas[0].description,
        "Windsor - Leamington - comté d'Essex"
    );
}

fn earthquake_latin1(a: &Alert) {
    assert_eq!(
        a.identifier,
        "USGS-earthquakes-usB000D5T4.3947362.7.20121014T225304.360Z.0"
    );
    assert_eq!(a.sent, time("2012-10-14T22:53:04+00:00"));
    let info = &a.infos[0];
    assert_eq!(info.language, "en-US", "the schema's default");
    assert_eq!(info.categories, ["Geo"]);
    assert_eq!(info.certainty, "Likely");
    // 0xE1 in ISO-8859-1 is U+00E1.
    assert_eq!(
        info.headline.as_deref(),
        Some("EQ 4.6 Usulután, Usulután, El Salvador - PRELIMINARY REPORT")
    );
    assert_eq!(info.onset, Some(time("2012-10-14T22:40:56+00:00")));
    assert_eq!(info.expires, Some(time("2012-10-21T22:53:04+00:00")));
    assert_eq!(info.event_codes, [("SAME".to_owned(), "EQW".to_owned())]);
    assert_eq!(info.parameters.len(), 12);
    let area = &info.areas[0];
    assert!(area
        .description
        .starts_with("47 miles (76 km) SSW of Usulután"));
    assert_eq!(area.circles, [(Point::new(-88.783, 12.747), 0.0)]);
}

fn wcatwc(a: &Alert) {
    assert_eq!(a.identifier, "PAAQ-2-lqw6d6");
    assert_eq!(a.msg_type, MsgType::Update);
    assert_eq!(a.references.len(), 1);
    assert_eq!(a.references[0].sender, "PAAQ");
    assert_eq!(a.references[0].identifier, "PAAQ-1-lqw6d6");
    assert_eq!(a.references[0].sent, time("2011-09-02T10:55:55+00:00"));
    assert_eq!(a.infos.len(), 1);
    let info = &a.infos[0];
    assert_eq!(info.event, "Tsunami Warning");
    assert_eq!(
        (info.urgency.as_str(), info.severity.as_str()),
        ("Immediate", "Extreme")
    );
    assert_eq!(info.onset, Some(time("2011-09-02T11:36:50+00:00")));
    assert_eq!(info.areas.len(), 1);
    assert!(info.areas[0].polygons.is_empty() && info.areas[0].circles.is_empty());
}

fn conformance() -> Vec<(&'static str, &'static [u8], Expect)> {
    use Expect::{Refused, Valid};
    let cap_1_1: Expect = Refused(
        |e| {
            matches!(e, CapError::UnsupportedVersion { version, namespace }
                if version == "1.1" && namespace == "urn:oasis:names:tc:emergency:cap:1.1")
        },
        "CAP 1.1 document",
    );
    vec![
        (
            "australia.cap",
            include_bytes!("data/cap/australia.cap"),
            Valid(australia),
        ),
        (
            "canada.cap",
            include_bytes!("data/cap/canada.cap"),
            Valid(canada),
        ),
        (
            "earthquake-iso8859-1.cap",
            include_bytes!("data/cap/earthquake-iso8859-1.cap"),
            Valid(earthquake_latin1),
        ),
        (
            "wcatwc-warning.cap",
            include_bytes!("data/cap/wcatwc-warning.cap"),
            Valid(wcatwc),
        ),
        (
            "invalid.cap",
            include_bytes!("data/cap/invalid.cap"),
            Refused(
                |e| matches!(e, CapError::Missing { parent, element: "scope" } if parent == "alert"),
                "alert: required element <scope> is missing",
            ),
        ),
        (
            "canada_errors.cap",
            include_bytes!("data/cap/canada_errors.cap"),
            Refused(
                |e| {
                    matches!(
                        e,
                        CapError::ReferencesRequired {
                            msg_type: MsgType::Update
                        }
                    )
                },
                "msgType Update must name the earlier message(s) in <references>",
            ),
        ),
        (
            "earthquake.cap",
            include_bytes!("data/cap/earthquake.cap"),
            cap_1_1,
        ),
        (
            "no_optional_fields.cap",
            include_bytes!("data/cap/no_optional_fields.cap"),
            Refused(
                |e| matches!(e, CapError::UnsupportedVersion { version, .. } if version == "1.1"),
                "only CAP 1.2",
            ),
        ),
        (
            "noaa_errors.cap",
            include_bytes!("data/cap/noaa_errors.cap"),
            Refused(
                |e| matches!(e, CapError::UnsupportedVersion { version, .. } if version == "1.1"),
                "CAP 1.1 document",
            ),
        ),
        (
            "weather.cap",
            include_bytes!("data/cap/weather.cap"),
            Refused(
                |e| matches!(e, CapError::UnsupportedVersion { version, .. } if version == "1.1"),
                "CAP 1.1 document",
            ),
        ),
        (
            "weather_index.atom",
            include_bytes!("data/cap/weather_index.atom"),
            Refused(
                |e| {
                    matches!(e, CapError::NotCap { element, namespace }
                        if element == "feed" && namespace == "http://www.w3.org/2005/Atom")
                },
                "not a CAP alert: the root element is <feed>",
            ),
        ),
        (
            "xee.cap",
            include_bytes!("data/cap/xee.cap"),
            Refused(|e| matches!(e, CapError::Doctype), "<!DOCTYPE>"),
        ),
        (
            "xee.atom",
            include_bytes!("data/cap/xee.atom"),
            Refused(|e| matches!(e, CapError::Doctype), "<!DOCTYPE>"),
        ),
    ]
}

#[test]
fn every_conformance_file_gives_its_expected_outcome() {
    let cases = conformance();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cap");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/data/cap")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".cap") || name.ends_with(".atom"))
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = cases.iter().map(|(name, ..)| (*name).to_owned()).collect();
    covered.sort();
    assert_eq!(covered, on_disk, "every conformance file has a case");
    for (name, payload, expect) in &cases {
        check(name, payload, expect);
    }
}

#[test]
fn xee_without_its_doctype_is_still_refused_at_the_first_entity() {
    let text = String::from_utf8(include_bytes!("data/cap/xee.cap").to_vec()).expect("UTF-8");
    let start = text.find("<!DOCTYPE").expect("a DOCTYPE");
    let end = text.find("]>").expect("end of the DOCTYPE") + 2;
    let without = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        cap::parse(without.as_bytes()),
        Err(CapError::Entity("xxe".into()))
    );
}

#[test]
fn truncated_and_damaged_documents_are_refused_without_panicking() {
    for (name, payload, _) in conformance() {
        for cut in (0..payload.len()).step_by(11) {
            if payload[cut..].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            assert!(
                cap::parse(&payload[..cut]).is_err(),
                "{name} cut at {cut} was accepted"
            );
        }
        let mut damaged = payload.to_vec();
        for at in (0..damaged.len()).step_by(97) {
            let saved = damaged[at];
            damaged[at] = b'<';
            let _ = cap::parse(&damaged);
            damaged[at] = saved;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-made documents, one rule each

fn alert_doc(msg_type: &str, references: Option<&str>, sent: &str, info: &str) -> String {
    let references = references
        .map(|r| format!("<references>{r}</references>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>DISP-2026-0001</identifier>
  <sender>dispatch@brasov.example</sender>
  <sent>{sent}</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {references}
  {info}
</alert>
"#
    )
}

fn info_doc(certainty: &str, area: &str) -> String {
    format!(
        "<info>
    <category>Fire</category>
    <event>Forest fire</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>{certainty}</certainty>
    <area><areaDesc>Tâmpa</areaDesc>{area}</area>
  </info>"
    )
}

fn area_doc(area: &str) -> String {
    alert_doc("Alert", None, SENT, &info_doc("Observed", area))
}

fn simple() -> String {
    area_doc("")
}

/// The document with "Tâmpa" written in ISO-8859-1 (one byte 0xE2 for "â").
fn latin1_tampa(doc: String) -> Vec<u8> {
    let mut bytes = doc.replace("Tâmpa", "T#mpa").into_bytes();
    if let Some(hash) = bytes.iter().position(|&b| b == b'#') {
        bytes[hash] = 0xE2;
    }
    bytes
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>&lol9;</identifier>
</alert>
"#;

/// A hand-made case: name, document, what we must give, and what the official schema says
/// (`Some(valid)`; `None` when the document is not given to xmllint: DTD attacks and documents
/// that are not a CAP 1.2 alert or not text at all).
struct Case {
    name: &'static str,
    doc: Vec<u8>,
    expect: Expect,
    xsd_valid: Option<bool>,
}

fn case(name: &'static str, doc: impl Into<Vec<u8>>, expect: Expect, xsd: Option<bool>) -> Case {
    Case {
        name,
        doc: doc.into(),
        expect,
        xsd_valid: xsd,
    }
}

fn invalid_at(e: &CapError, path: &str, words: &str) -> bool {
    matches!(e, CapError::Invalid { element, reason } if element == path && reason.contains(words))
}

fn hand_made() -> Vec<Case> {
    use Expect::{Refused, Valid};
    let mut big = simple().into_bytes();
    let padding = vec![b' '; MAX_CAP_BYTES + 1 - big.len()];
    let at = big.len() - 1;
    big.splice(at..at, padding);
    vec![
        case(
            "simple alert",
            simple(),
            Valid(|a| {
                assert_eq!(a.identifier, "DISP-2026-0001");
                assert_eq!(a.sent, time(SENT));
                assert_eq!(a.infos[0].language, "en-US");
                assert_eq!(a.infos[0].areas[0].description, "Tâmpa");
            }),
            Some(true),
        ),
        case(
            "billion laughs",
            BILLION_LAUGHS,
            Refused(|e| matches!(e, CapError::Doctype), "DTDs are not accepted"),
            None,
        ),
        case(
            "undefined entity without a DTD",
            simple().replace("Forest fire", "Forest fire &lol9;"),
            Refused(
                |e| matches!(e, CapError::Entity(name) if name == "lol9"),
                "entity reference &lol9; is not allowed",
            ),
            Some(false),
        ),
        case(
            "predefined entities, character references and CDATA are text",
            simple().replace(
                "Forest fire",
                "Forest &amp; brush fire &#x2014; &#233;&lt;&gt;&quot;&apos; <![CDATA[<b>]]>",
            ),
            Valid(|a| assert_eq!(a.infos[0].event, "Forest & brush fire — é<>\"' <b>")),
            Some(true),
        ),
        case(
            "processing instructions and comments are ignored",
            simple().replace(
                "<alert",
                "<?xml-stylesheet href='http://localhost:1/x.xsl' type='text/xsl'?>\n<!-- c -->\n<alert",
            ),
            Valid(|a| assert_eq!(a.infos.len(), 1)),
            Some(true),
        ),
        case(
            "polygon not closed",
            area_doc("<polygon>45.60,25.55 45.60,25.65 45.68,25.65 45.68,25.55</polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "not closed"),
                "alert/info[1]/area[1]/polygon[1]: the polygon is not closed",
            ),
            Some(true),
        ),
        case(
            "polygon of 3 pairs",
            area_doc("<polygon>45.60,25.55 45.60,25.65 45.60,25.55</polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "at least 4"),
                "found 3",
            ),
            Some(true),
        ),
        case(
            "empty polygon",
            area_doc("<polygon></polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "at least 4"),
                "found 0",
            ),
            Some(true),
        ),
        case(
            "polygon written lon,lat (swapped): latitude out of range",
            area_doc("<polygon>-120.14,38.47 -119.95,38.34 -119.74,38.52 -120.14,38.47</polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "latitude -120.14"),
                "latitude first",
            ),
            Some(true),
        ),
        case(
            "longitude out of range",
            area_doc("<polygon>38.47,-190 38.34,-119.95 38.52,-119.74 38.47,-190</polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "longitude -190"),
                "point 1",
            ),
            Some(true),
        ),
        case(
            "polygon with a trailing comma in a pair",
            area_doc("<polygon>45.60,25.55 45.60,25.65, 45.68,25.65 45.60,25.55</polygon>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/polygon[1]", "point 2"),
                "decimal degrees",
            ),
            Some(true),
        ),
        case(
            "polygons and circles are converted to (lon, lat) and meters",
            area_doc(
                "<polygon>\n 45.60,25.55 45.60,25.65 +45.68,25.65 45.60,25.55\n</polygon>\
                 <circle>45.6419,25.5887 1.5</circle><circle>-33.9,18.4 0</circle>",
            ),
            Valid(|a| {
                let area = &a.infos[0].areas[0];
                let ring: Vec<(f64, f64)> = area.polygons[0]
                    .exterior()
                    .0
                    .iter()
                    .map(|c| (c.x, c.y))
                    .collect();
                assert_eq!(
                    ring,
                    [(25.55, 45.60), (25.65, 45.60), (25.65, 45.68), (25.55, 45.60)]
                );
                assert_eq!(
                    area.circles,
                    [
                        (Point::new(25.5887, 45.6419), 1500.0),
                        (Point::new(18.4, -33.9), 0.0)
                    ]
                );
            }),
            Some(true),
        ),
        case(
            "circle without a radius",
            area_doc("<circle>45.6419,25.5887</circle>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/circle[1]", "lat,lon radius_km"),
                "circle[1]",
            ),
            Some(true),
        ),
        case(
            "circle with a negative radius",
            area_doc("<circle>45.6419,25.5887 -2</circle>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/area[1]/circle[1]", "radius"),
                "kilometres",
            ),
            Some(true),
        ),
        case(
            "Update with references",
            alert_doc(
                "Update",
                Some(
                    "dispatch@brasov.example,DISP-2026-0000,2026-11-22T09:00:00+02:00\n  \
                     other@example.org,X-7,2026-11-21T23:59:59-05:30",
                ),
                SENT,
                &info_doc("Likely", ""),
            ),
            Valid(|a| {
                assert_eq!(a.msg_type, MsgType::Update);
                assert_eq!(a.references.len(), 2);
                assert_eq!(a.references[0].sender, "dispatch@brasov.example");
                assert_eq!(a.references[0].identifier, "DISP-2026-0000");
                assert_eq!(a.references[0].sent, time("2026-11-22T09:00:00+02:00"));
                assert_eq!(a.references[1].sender, "other@example.org");
                assert_eq!(a.references[1].identifier, "X-7");
                assert_eq!(
                    a.references[1].sent.offset().local_minus_utc(),
                    -(5 * 3600 + 1800)
                );
            }),
            Some(true),
        ),
        case(
            "Update without references",
            alert_doc("Update", None, SENT, &info_doc("Likely", "")),
            Refused(
                |e| {
                    matches!(
                        e,
                        CapError::ReferencesRequired {
                            msg_type: MsgType::Update
                        }
                    )
                },
                "msgType Update",
            ),
            Some(true),
        ),
        case(
            "Cancel with empty references",
            alert_doc("Cancel", Some("  "), SENT, ""),
            Refused(
                |e| {
                    matches!(
                        e,
                        CapError::ReferencesRequired {
                            msg_type: MsgType::Cancel
                        }
                    )
                },
                "msgType Cancel",
            ),
            Some(true),
        ),
        case(
            "reference that is not a triple",
            alert_doc(
                "Cancel",
                Some("dispatch@brasov.example,DISP-2026-0000"),
                SENT,
                "",
            ),
            Refused(
                |e| invalid_at(e, "alert/references", "reference 1"),
                "sender,identifier,sent",
            ),
            Some(true),
        ),
        case(
            "reference with a Z time",
            alert_doc(
                "Cancel",
                Some("dispatch@brasov.example,DISP-2026-0000,2026-11-22T08:00:00Z"),
                SENT,
                "",
            ),
            Refused(
                |e| invalid_at(e, "alert/references", "\"Z\""),
                "alert/references",
            ),
            Some(true),
        ),
        case(
            "sent with a trailing Z",
            alert_doc("Alert", None, "2026-11-22T08:00:00Z", ""),
            Refused(
                |e| invalid_at(e, "alert/sent", "trailing \"Z\""),
                "alert/sent: \"2026-11-22T08:00:00Z\" is not a date-time",
            ),
            Some(false),
        ),
        case(
            "sent with fractional seconds",
            alert_doc("Alert", None, "2026-11-22T08:00:00.5+02:00", ""),
            Refused(
                |e| invalid_at(e, "alert/sent", "fractional seconds"),
                "alert/sent",
            ),
            Some(false),
        ),
        case(
            "onset that is not a date",
            simple().replace(
                "</certainty>",
                "</certainty><onset>2026-02-30T08:00:00+02:00</onset>",
            ),
            Refused(
                |e| invalid_at(e, "alert/info[1]/onset", "no such date"),
                "alert/info[1]/onset",
            ),
            Some(false),
        ),
        case(
            "certainty Very Likely (CAP 1.0)",
            alert_doc("Alert", None, SENT, &info_doc("Very Likely", "")),
            Refused(
                |e| invalid_at(e, "alert/info[1]/certainty", "Very Likely"),
                "CAP 1.2 has \"Likely\"",
            ),
            Some(false),
        ),
        case(
            "unknown category",
            simple().replace("<category>Fire</category>", "<category>Flood</category>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/category", "\"Flood\" is not one of"),
                "Geo, Met, Safety",
            ),
            Some(false),
        ),
        case(
            "unknown severity",
            simple().replace("<severity>Severe</severity>", "<severity>High</severity>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/severity", "\"High\""),
                "Extreme, Severe, Moderate, Minor, Unknown",
            ),
            Some(false),
        ),
        case(
            "unknown status",
            simple().replace("<status>Actual</status>", "<status>actual</status>"),
            Refused(
                |e| invalid_at(e, "alert/status", "\"actual\""),
                "Actual, Exercise, System, Test, Draft",
            ),
            Some(false),
        ),
        case(
            "info without category",
            simple().replace("<category>Fire</category>", ""),
            Refused(
                |e| matches!(e, CapError::Missing { parent, element: "category" } if parent == "alert/info[1]"),
                "alert/info[1]: required element <category> is missing",
            ),
            Some(false),
        ),
        case(
            "area without areaDesc",
            simple().replace("<areaDesc>Tâmpa</areaDesc>", ""),
            Refused(
                |e| matches!(e, CapError::Missing { parent, element: "areaDesc" } if parent == "alert/info[1]/area[1]"),
                "<areaDesc> is missing",
            ),
            Some(false),
        ),
        case(
            "alert without identifier",
            simple().replace("<identifier>DISP-2026-0001</identifier>", ""),
            Refused(
                |e| matches!(e, CapError::Missing { element: "identifier", .. }),
                "alert: required element <identifier> is missing",
            ),
            Some(false),
        ),
        case(
            "elements out of order",
            simple().replace(
                "<msgType>Alert</msgType>\n  <scope>Public</scope>",
                "<scope>Public</scope>\n  <msgType>Alert</msgType>",
            ),
            Refused(
                |e| matches!(e, CapError::Unexpected { element, .. } if element == "scope"),
                "alert: element <scope> is out of order",
            ),
            Some(false),
        ),
        case(
            "element repeated",
            simple().replace(
                "<scope>Public</scope>",
                "<scope>Public</scope><scope>Public</scope>",
            ),
            Refused(
                |e| matches!(e, CapError::Unexpected { element, reason, .. } if element == "scope" && reason.contains("only once")),
                "alert: element <scope> may appear only once",
            ),
            Some(false),
        ),
        case(
            "unknown CAP element",
            simple().replace("<scope>Public</scope>", "<scope>Public</scope><x>1</x>"),
            Refused(
                |e| matches!(e, CapError::Unexpected { element, .. } if element == "x"),
                "alert: element <x> is not a CAP 1.2 element here",
            ),
            Some(false),
        ),
        case(
            "element of another namespace",
            simple().replace(
                "<scope>Public</scope>",
                "<scope>Public</scope><y xmlns=\"http://a.b/\">a</y>",
            ),
            Refused(
                |e| matches!(e, CapError::Unexpected { element, .. } if element == "{http://a.b/}y"),
                "not in the CAP 1.2 namespace",
            ),
            Some(false),
        ),
        case(
            "identifier with a space",
            simple().replace("DISP-2026-0001", "DISP 2026"),
            Refused(
                |e| invalid_at(e, "alert/identifier", "' '"),
                "no spaces, commas",
            ),
            Some(true),
        ),
        case(
            "Private alert without addresses",
            simple().replace("<scope>Public</scope>", "<scope>Private</scope>"),
            Refused(
                |e| invalid_at(e, "alert/scope", "<addresses>"),
                "Private alert requires <addresses>",
            ),
            Some(true),
        ),
        case(
            "language that is not a tag",
            simple().replace("<category>", "<language>en_US</language><category>"),
            Refused(
                |e| invalid_at(e, "alert/info[1]/language", "en_US"),
                "not a language tag",
            ),
            Some(false),
        ),
        case(
            "prefixed CAP elements and xsi:schemaLocation",
            format!(
                r#"<c:alert xmlns:c="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="{NS} CAP-v1.2.xsd">
  <c:identifier>A</c:identifier><c:sender>B</c:sender><c:sent>{SENT}</c:sent>
  <c:status>Test</c:status><c:msgType>Ack</c:msgType><c:scope>Restricted</c:scope>
</c:alert>"#
            ),
            Valid(|a| {
                assert_eq!(
                    (a.status, a.msg_type, a.scope),
                    (Status::Test, MsgType::Ack, Scope::Restricted)
                );
                assert!(a.infos.is_empty());
            }),
            Some(true),
        ),
        case(
            "unqualified child of a prefixed alert",
            format!(
                r#"<c:alert xmlns:c="{NS}"><identifier>A</identifier></c:alert>"#
            ),
            Refused(
                |e| matches!(e, CapError::Unexpected { element, .. } if element == "{}identifier"),
                "not in the CAP 1.2 namespace",
            ),
            Some(false),
        ),
        case(
            "attribute on a CAP element",
            simple().replace("<status>", "<status id=\"1\">"),
            Refused(
                |e| invalid_at(e, "alert/status", "attribute \"id\""),
                "CAP 1.2 elements have no attributes",
            ),
            Some(false),
        ),
        case(
            "CAP 1.0 namespace",
            simple().replace(NS, "http://www.incident.com/cap/1.0"),
            Refused(
                |e| matches!(e, CapError::UnsupportedVersion { version, .. } if version == "1.0"),
                "CAP 1.0 document",
            ),
            None,
        ),
        case(
            "no namespace",
            simple().replace(&format!(" xmlns=\"{NS}\""), ""),
            Refused(
                |e| matches!(e, CapError::NotCap { element, namespace } if element == "alert" && namespace.is_empty()),
                "not a CAP alert",
            ),
            None,
        ),
        case(
            "not well-formed",
            simple().replace("</scope>", "</scop>"),
            Refused(|e| matches!(e, CapError::NotXml(_)), "not well-formed XML: line 8"),
            None,
        ),
        case(
            "truncated",
            simple().replace("</alert>", ""),
            Refused(
                |e| matches!(e, CapError::NotXml(_)),
                "the document ends inside <alert>",
            ),
            None,
        ),
        case(
            "two root elements",
            simple() + "<alert/>",
            Refused(|e| matches!(e, CapError::NotXml(_)), "after the end of the root element"),
            None,
        ),
        case(
            "undeclared prefix",
            simple().replace("<status>Actual</status>", "<p:status>Actual</p:status>"),
            Refused(|e| matches!(e, CapError::NotXml(_)), "prefix \"p\" is not declared"),
            None,
        ),
        case(
            "control character",
            simple().replace("Forest fire", "Forest\u{1}fire"),
            Refused(|e| matches!(e, CapError::NotXml(_)), "U+0001"),
            None,
        ),
        case(
            "nesting 100 000 deep",
            simple().replace("<scope>Public</scope>", &"<a>".repeat(100_000)),
            Refused(
                |e| invalid_at(e, "alert", "nested deeper than 64"),
                "alert: line 8: elements nested deeper than 64 are refused",
            ),
            None,
        ),
        case(
            "larger than the limit",
            big,
            Refused(
                |e| matches!(e, CapError::TooLarge { limit: MAX_CAP_BYTES, .. }),
                "larger than the 1048576 bytes accepted",
            ),
            None,
        ),
        case(
            "not UTF-8",
            latin1_tampa(simple()),
            Refused(|e| matches!(e, CapError::Encoding(_)), "not valid UTF-8"),
            None,
        ),
        case(
            "UTF-16",
            b"\xFF\xFE<\0a\0".to_vec(),
            Refused(|e| matches!(e, CapError::Encoding(_)), "UTF-16"),
            None,
        ),
        case(
            "declared windows-1252",
            simple().replace("encoding=\"UTF-8\"", "encoding=\"windows-1252\""),
            Refused(
                |e| matches!(e, CapError::Encoding(_)),
                "\"windows-1252\" is not accepted",
            ),
            None,
        ),
        case(
            "declared ISO-8859-1 is transcoded",
            latin1_tampa(simple().replace("encoding=\"UTF-8\"", "encoding=\"iso-8859-1\"")),
            Valid(|a| assert_eq!(a.infos[0].areas[0].description, "Tâmpa")),
            None,
        ),
        case(
            "UTF-8 byte-order mark with a Latin-1 declaration",
            [
                b"\xEF\xBB\xBF".as_slice(),
                simple()
                    .replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"")
                    .as_bytes(),
            ]
            .concat(),
            Refused(
                |e| matches!(e, CapError::Encoding(_)),
                "byte-order mark says UTF-8",
            ),
            None,
        ),
        case(
            "UTF-8 byte-order mark",
            [b"\xEF\xBB\xBF".as_slice(), simple().as_bytes()].concat(),
            Valid(|a| assert_eq!(a.infos[0].areas[0].description, "Tâmpa")),
            None,
        ),
    ]
}

#[test]
fn hand_made_documents_give_their_expected_outcome() {
    for c in hand_made() {
        check(c.name, &c.doc, &c.expect);
    }
}

#[test]
fn errors_are_plain_values() {
    let e = cap::parse(b"").expect_err("empty");
    assert_eq!(e.clone(), e);
    assert!(e.to_string().contains("no root element"), "{e}");
    assert_eq!(MsgType::Cancel.as_str(), "Cancel");
    assert_eq!(Status::Exercise.as_str(), "Exercise");
    assert_eq!(Scope::Restricted.as_str(), "Restricted");
}

// ---------------------------------------------------------------------------------------------
// Cross-check with xmllint and the official schema

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cap/CAP-v1.2.xsd")
}

/// `Some(valid)` from `xmllint --noout --nonet --schema`, or `None` when xmllint is missing.
fn xmllint(file: &Path) -> Option<bool> {
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(xsd())
        .arg(file)
        .output()
        .ok()?;
    Some(output.status.success())
}

fn xmllint_available() -> bool {
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "xmllint is missing on CI (scripts/deps.sh installs libxml2-utils)"
    );
    if !found {
        eprintln!("xmllint not found: cross-check skipped");
    }
    found
}

/// Conformance files on which our verdict and the schema's differ on purpose: the schema cannot
/// express "an Update names what it updates" (CAP 1.2, 3.2.1 `references`).
const DELIBERATE_DISAGREEMENTS: [&str; 1] = ["canada_errors.cap"];

#[test]
fn verdicts_agree_with_xmllint_on_the_conformance_files() {
    if !xmllint_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cap");
    for (name, payload, expect) in conformance() {
        // The attacks are never handed to a parser that might follow their URLs.
        if name.starts_with("xee.") {
            continue;
        }
        let schema = xmllint(&dir.join(name)).expect("xmllint runs");
        let ours = matches!(expect, Expect::Valid(_));
        assert_eq!(ours, cap::parse(payload).is_ok(), "{name}");
        if DELIBERATE_DISAGREEMENTS.contains(&name) {
            assert_ne!(ours, schema, "{name}: expected to differ from the schema");
        } else {
            assert_eq!(ours, schema, "{name}: xmllint says valid = {schema}");
        }
    }
}

#[test]
fn verdicts_agree_with_xmllint_on_the_hand_made_documents() {
    if !xmllint_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dispecer-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    for (i, c) in hand_made().into_iter().enumerate() {
        let Some(expected) = c.xsd_valid else {
            continue;
        };
        let file = dir.join(format!("{i}.xml"));
        std::fs::write(&file, &c.doc).expect("write");
        let schema = xmllint(&file).expect("xmllint runs");
        assert_eq!(
            schema, expected,
            "{}: xmllint says valid = {schema}",
            c.name
        );
    }
    std::fs::remove_dir_all(&dir).expect("remove temporary directory");
}

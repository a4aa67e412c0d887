//! Outbound OASIS CAP 1.2: an incident's public warning as one CAP document per version, and
//! the Atom 1.0 index of them. Written with quick-xml (every text escaped), so the documents
//! are valid against the official CAP 1.2 XSD (the e2e tests check with `xmllint --schema`).
//!
//! Conventions:
//! - `identifier` is `dispecer-{city}-{incident}-{seq}`, one per version, never reused;
//! - `sent` is UTC written `YYYY-MM-DDThh:mm:ss+00:00` (CAP refuses `Z` and fractions);
//! - `status` Actual, `scope` Public; an Update or a Cancel `references` every earlier version
//!   of its series (`sender,identifier,sent`, space-separated);
//! - one `<info>` per language, `ro-RO` and `en-US`, with the same area;
//! - areas are latitude first: a polygon is `"lat,lon lat,lon …"`, closed (the first pair
//!   repeated last), at least 4 pairs, the exterior ring of each of our polygons (CAP has no
//!   holes); a circle is `"lat,lon radius_km"`.
//!
//! Boundary: converted by hand from `model::warning`; the domain's (longitude, latitude) is
//! turned latitude-first here and only here.

use std::io;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use geo::{Point, Polygon};
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use model::warning::{WarningArea, WarningMessage, WarningVersion};
use model::{Category, Language, Localized, Severity};

use crate::cap::{Area, MsgType, Reference, NAMESPACE};

/// The Atom 1.0 namespace.
pub const ATOM_NAMESPACE: &str = "http://www.w3.org/2005/Atom";
/// The media type of a CAP document.
pub const CAP_MEDIA_TYPE: &str = "application/cap+xml";
/// The media type of an Atom feed.
pub const ATOM_MEDIA_TYPE: &str = "application/atom+xml";

/// Why a document could not be written (only an I/O error of the buffer, which a `Vec` never
/// gives; kept typed rather than unwrapped).
#[derive(Debug, thiserror::Error)]
pub enum CapWriteError {
    /// The XML writer failed.
    #[error("writing xml: {0}")]
    Io(#[from] io::Error),
}

/// An outbound CAP 1.2 `<alert>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutAlert {
    /// `<identifier>`.
    pub identifier: String,
    /// `<sender>`.
    pub sender: String,
    /// `<sent>`.
    pub sent: DateTime<FixedOffset>,
    /// `<msgType>` (`status` is always Actual and `scope` Public).
    pub msg_type: MsgType,
    /// `<references>`: every earlier version of the series (empty for an Alert).
    pub references: Vec<Reference>,
    /// `<incidents>`: our incident's id.
    pub incident: String,
    /// One `<info>` per language.
    pub infos: Vec<OutInfo>,
}

/// An outbound `<info>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutInfo {
    /// `<language>`, e.g. `ro-RO`.
    pub language: String,
    /// `<category>`s (CAP's list).
    pub categories: Vec<&'static str>,
    /// `<event>`.
    pub event: String,
    /// `<responseType>`s (`AllClear` for a Cancel).
    pub response_types: Vec<&'static str>,
    /// `<urgency>`.
    pub urgency: &'static str,
    /// `<severity>`.
    pub severity: &'static str,
    /// `<certainty>`.
    pub certainty: &'static str,
    /// `<senderName>`.
    pub sender_name: String,
    /// `<headline>`.
    pub headline: String,
    /// `<description>`.
    pub description: String,
    /// `<instruction>`.
    pub instruction: String,
    /// `<web>`: the public status page.
    pub web: String,
    /// `<area>`: polygons and circles in (longitude, latitude), radii in meters.
    pub area: Area,
}

/// Who publishes, and where the public reads more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The city's id (part of every identifier), e.g. `brasov`.
    pub city: String,
    /// `<sender>`, e.g. `dispecer.brasov`: no spaces, commas, `<` or `&`.
    pub sender: String,
    /// `<senderName>` in both languages.
    pub sender_name: Localized,
    /// The public base URL, without a trailing slash, e.g. `https://dispecer.example.ro`.
    pub public_url: String,
}

impl Publisher {
    /// The CAP identifier of version `seq` of `incident`'s warning.
    pub fn identifier(&self, incident: &str, seq: u32) -> String {
        format!("dispecer-{}-{incident}-{seq}", self.city)
    }

    /// Where the CAP document of `identifier` is served.
    pub fn document_url(&self, identifier: &str) -> String {
        format!(
            "{}/api/v1/public/warnings/{identifier}.xml",
            self.public_url
        )
    }

    /// Where the Atom feed is served.
    pub fn feed_url(&self) -> String {
        format!("{}/api/v1/public/warnings.atom", self.public_url)
    }

    /// The public page for the warnings (the citizens' map).
    pub fn web(&self) -> String {
        format!("{}/report/", self.public_url)
    }
}

/// CAP's categories for one of our category families.
pub fn cap_categories(family: &str) -> Vec<&'static str> {
    match family {
        "water" | "sewer" => vec!["Infra", "Health"],
        "power" | "heating" => vec!["Infra"],
        "gas" => vec!["Safety", "Infra"],
        "road" | "traffic" => vec!["Transport"],
        "environment" => vec!["Env"],
        "sanitation" => vec!["Health", "Env"],
        "fire" => vec!["Fire"],
        "weather" => vec!["Met"],
        _ => vec!["Other"],
    }
}

/// CAP's severity for ours (the same four words).
pub fn cap_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Minor => "Minor",
        Severity::Moderate => "Moderate",
        Severity::Severe => "Severe",
        Severity::Extreme => "Extreme",
    }
}

/// A time as CAP's `dateTime`: whole seconds, an explicit offset (`+00:00`), no `Z`.
pub fn cap_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.fixed_offset()
}

fn cap_time_text(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn msg_type(m: WarningMessage) -> MsgType {
    match m {
        WarningMessage::Alert => MsgType::Alert,
        WarningMessage::Update => MsgType::Update,
        WarningMessage::Cancel => MsgType::Cancel,
    }
}

/// What a warning is about: its category's name (CAP's `event`) and family (which gives CAP's
/// categories, [`cap_categories`]), and where (`areaDesc`: a district's or the city's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The category's name.
    pub event: Localized,
    /// The category's family.
    pub family: String,
    /// The place's name.
    pub area_desc: Localized,
}

impl Subject {
    /// The subject of a warning of `category` over `area_desc`.
    pub fn new(category: &Category, area_desc: Localized) -> Self {
        Subject {
            event: category.name.clone(),
            family: category.family.clone(),
            area_desc,
        }
    }
}

/// The CAP alert of `version`, whose incident's earlier versions are `earlier` (in order; only
/// those of its series are referenced).
pub fn alert(
    publisher: &Publisher,
    version: &WarningVersion,
    earlier: &[WarningVersion],
    subject: &Subject,
) -> OutAlert {
    let references = if version.message == WarningMessage::Alert {
        Vec::new()
    } else {
        model::warning::series(earlier)
            .iter()
            .map(|v| Reference {
                sender: publisher.sender.clone(),
                identifier: publisher.identifier(v.incident.as_str(), v.seq),
                sent: cap_time(v.sent),
            })
            .collect()
    };
    let (polygons, circles) = match &version.area {
        WarningArea::Circle { center, radius_m } => (Vec::new(), vec![(*center, *radius_m)]),
        WarningArea::Polygons(mp) => (
            mp.0.iter()
                .map(|p| Polygon::new(p.exterior().clone(), Vec::new()))
                .collect(),
            Vec::new(),
        ),
    };
    let cancelled = version.message == WarningMessage::Cancel;
    let urgency = match (cancelled, version.severity) {
        (true, _) => "Past",
        (false, Severity::Severe | Severity::Extreme) => "Immediate",
        (false, _) => "Expected",
    };
    let infos = [(Language::Ro, "ro-RO"), (Language::En, "en-US")]
        .into_iter()
        .map(|(lang, tag)| {
            let event = subject.event.get(lang).to_owned();
            let place = subject.area_desc.get(lang);
            let description = match (cancelled, lang) {
                (false, _) => format!("{event}: {place}."),
                (true, Language::Ro) => {
                    format!("{event}: {place}. Avertizarea a fost retrasă.")
                }
                (true, Language::En) => {
                    format!("{event}: {place}. The warning has been withdrawn.")
                }
            };
            OutInfo {
                language: tag.to_owned(),
                categories: cap_categories(&subject.family),
                event,
                response_types: if cancelled {
                    vec!["AllClear"]
                } else {
                    Vec::new()
                },
                urgency,
                severity: cap_severity(version.severity),
                certainty: "Observed",
                sender_name: publisher.sender_name.get(lang).to_owned(),
                headline: version.text.headline.get(lang).to_owned(),
                description,
                instruction: version.text.instruction.get(lang).to_owned(),
                web: publisher.web(),
                area: Area {
                    description: place.to_owned(),
                    polygons: polygons.clone(),
                    circles: circles.clone(),
                },
            }
        })
        .collect();
    OutAlert {
        identifier: publisher.identifier(version.incident.as_str(), version.seq),
        sender: publisher.sender.clone(),
        sent: cap_time(version.sent),
        msg_type: msg_type(version.message),
        references,
        incident: version.incident.to_string(),
        infos,
    }
}

type Xml = Writer<Vec<u8>>;

fn text_element(w: &mut Xml, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// A coordinate as CAP writes it: degrees with 6 decimals (about 0.1 m), no exponent.
fn degrees(v: f64) -> String {
    format!("{v:.6}")
}

/// A polygon's exterior ring as CAP's `"lat,lon lat,lon …"`, closed.
pub fn polygon_text(polygon: &Polygon) -> String {
    let mut pairs: Vec<String> = polygon
        .exterior()
        .coords()
        .map(|c| format!("{},{}", degrees(c.y), degrees(c.x)))
        .collect();
    if pairs.first() != pairs.last() {
        if let Some(first) = pairs.first().cloned() {
            pairs.push(first);
        }
    }
    pairs.join(" ")
}

/// A circle as CAP's `"lat,lon radius_km"`.
pub fn circle_text(center: Point, radius_m: f64) -> String {
    format!(
        "{},{} {:.3}",
        degrees(center.y()),
        degrees(center.x()),
        radius_m / 1000.0
    )
}

/// `alert` as a CAP 1.2 XML document (UTF-8).
pub fn write(alert: &OutAlert) -> Result<String, CapWriteError> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("alert")
        .with_attribute(("xmlns", NAMESPACE))
        .write_inner_content(|w| {
            text_element(w, "identifier", &alert.identifier)?;
            text_element(w, "sender", &alert.sender)?;
            text_element(w, "sent", &cap_time_text(&alert.sent))?;
            text_element(w, "status", "Actual")?;
            text_element(w, "msgType", alert.msg_type.as_str())?;
            text_element(w, "scope", "Public")?;
            if !alert.references.is_empty() {
                let refs: Vec<String> = alert
                    .references
                    .iter()
                    .map(|r| format!("{},{},{}", r.sender, r.identifier, cap_time_text(&r.sent)))
                    .collect();
                text_element(w, "references", &refs.join(" "))?;
            }
            text_element(w, "incidents", &alert.incident)?;
            for info in &alert.infos {
                write_info(w, info)?;
            }
            Ok(())
        })?;
    let bytes = w.into_inner();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn write_info(w: &mut Xml, info: &OutInfo) -> io::Result<()> {
    w.create_element("info").write_inner_content(|w| {
        text_element(w, "language", &info.language)?;
        for c in &info.categories {
            text_element(w, "category", c)?;
        }
        text_element(w, "event", &info.event)?;
        for r in &info.response_types {
            text_element(w, "responseType", r)?;
        }
        text_element(w, "urgency", info.urgency)?;
        text_element(w, "severity", info.severity)?;
        text_element(w, "certainty", info.certainty)?;
        text_element(w, "senderName", &info.sender_name)?;
        text_element(w, "headline", &info.headline)?;
        text_element(w, "description", &info.description)?;
        text_element(w, "instruction", &info.instruction)?;
        text_element(w, "web", &info.web)?;
        w.create_element("area").write_inner_content(|w| {
            text_element(w, "areaDesc", &info.area.description)?;
            for p in &info.area.polygons {
                text_element(w, "polygon", &polygon_text(p))?;
            }
            for (center, radius_m) in &info.area.circles {
                text_element(w, "circle", &circle_text(*center, *radius_m))?;
            }
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

/// One entry of the Atom feed: a warning's latest version.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// The CAP document's identifier.
    pub identifier: String,
    /// The headline in both languages.
    pub headline: Localized,
    /// The instruction in both languages.
    pub instruction: Localized,
    /// Alert, Update or Cancel.
    pub msg_type: MsgType,
    /// When this version was sent.
    pub sent: DateTime<Utc>,
}

/// The Atom 1.0 feed of `entries` (newest first, as given), updated at `updated` (the newest
/// entry's time, or now when there is none).
pub fn atom(
    publisher: &Publisher,
    title: &Localized,
    entries: &[FeedEntry],
    updated: DateTime<Utc>,
) -> Result<String, CapWriteError> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("feed")
        .with_attribute(("xmlns", ATOM_NAMESPACE))
        .with_attribute(("xml:lang", "ro"))
        .write_inner_content(|w| {
            text_element(w, "id", &publisher.feed_url())?;
            text_element(w, "title", &format!("{} / {}", title.ro, title.en))?;
            text_element(w, "updated", &time(updated))?;
            w.create_element("author").write_inner_content(|w| {
                text_element(w, "name", &publisher.sender_name.ro)?;
                text_element(w, "uri", &publisher.web())
            })?;
            w.create_element("link")
                .with_attribute(("rel", "self"))
                .with_attribute(("type", ATOM_MEDIA_TYPE))
                .with_attribute(("href", publisher.feed_url().as_str()))
                .write_empty()?;
            w.create_element("link")
                .with_attribute(("rel", "alternate"))
                .with_attribute(("type", "text/html"))
                .with_attribute(("href", publisher.web().as_str()))
                .write_empty()?;
            for e in entries {
                let url = publisher.document_url(&e.identifier);
                w.create_element("entry").write_inner_content(|w| {
                    text_element(w, "id", &url)?;
                    let cancelled = if e.msg_type == MsgType::Cancel {
                        "[Anulat / Cancelled] "
                    } else {
                        ""
                    };
                    text_element(
                        w,
                        "title",
                        &format!("{cancelled}{} / {}", e.headline.ro, e.headline.en),
                    )?;
                    text_element(w, "updated", &time(e.sent))?;
                    w.create_element("category")
                        .with_attribute(("term", e.msg_type.as_str()))
                        .write_empty()?;
                    w.create_element("link")
                        .with_attribute(("rel", "alternate"))
                        .with_attribute(("type", CAP_MEDIA_TYPE))
                        .with_attribute(("href", url.as_str()))
                        .write_empty()?;
                    text_element(
                        w,
                        "summary",
                        &format!("{} / {}", e.instruction.ro, e.instruction.en),
                    )
                })?;
            }
            Ok(())
        })?;
    let bytes = w.into_inner();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use geo::{LineString, MultiPolygon};
    use model::warning::WarningText;
    use model::{CategoryId, IncidentId};

    fn brasov() -> model::City {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../cities/brasov");
        city::load(std::path::Path::new(dir)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn publisher() -> Publisher {
        Publisher {
            city: "brasov".into(),
            sender: "dispecer.brasov".into(),
            sender_name: Localized {
                ro: "Dispeceratul Brașov".into(),
                en: "Brașov dispatch".into(),
            },
            public_url: "https://dispecer.example.ro".into(),
        }
    }

    fn version(seq: u32, message: WarningMessage, area: WarningArea) -> WarningVersion {
        WarningVersion {
            incident: IncidentId::new("0190-abc"),
            seq,
            message,
            sent: Utc
                .with_ymd_and_hms(2026, 3, 1, 9, 0, seq)
                .single()
                .unwrap_or_default(),
            text: WarningText {
                headline: Localized {
                    ro: "Apă nepotabilă <fierbeți> & \"beți\"".into(),
                    en: "Boil water <notice> & 'drink'".into(),
                },
                instruction: Localized {
                    ro: "Fierbeți apa 3 minute".into(),
                    en: "Boil water for 3 minutes".into(),
                },
            },
            area,
            category: CategoryId::new("water_leak"),
            severity: Severity::Severe,
            actor: "operator:x".into(),
        }
    }

    fn square() -> MultiPolygon {
        // (lon, lat): clearly not symmetric, so a swap would show.
        MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![
                (25.58, 45.63),
                (25.60, 45.63),
                (25.60, 45.65),
                (25.58, 45.65),
                (25.58, 45.63),
            ]),
            Vec::new(),
        )])
    }

    #[test]
    fn what_we_write_parses_back_to_the_same_area_latitude_first() {
        let city = brasov();
        let category = city
            .category("water_leak")
            .unwrap_or_else(|| panic!("no water_leak"));
        let place = Subject::new(
            category,
            Localized {
                ro: "Centru".into(),
                en: "Centre".into(),
            },
        );
        let p = publisher();
        let first = version(1, WarningMessage::Alert, WarningArea::Polygons(square()));
        let circle = WarningArea::Circle {
            center: Point::new(25.5887, 45.6419),
            radius_m: 750.0,
        };
        let second = version(2, WarningMessage::Update, circle);
        let third = version(3, WarningMessage::Cancel, second.area.clone());
        let history = [first.clone(), second.clone()];

        let doc = write(&alert(&p, &first, &[], &place)).unwrap_or_else(|e| panic!("{e}"));
        assert!(doc.contains("<polygon>45.630000,25.580000 45.630000,25.600000 45.650000,25.600000 45.650000,25.580000 45.630000,25.580000</polygon>"), "{doc}");
        assert!(
            doc.contains("<sent>2026-03-01T09:00:01+00:00</sent>"),
            "{doc}"
        );
        assert!(doc.contains("&lt;fierbeți&gt; &amp;"), "escaped: {doc}");
        let parsed = crate::cap::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(parsed.identifier, "dispecer-brasov-0190-abc-1");
        assert_eq!(parsed.msg_type, MsgType::Alert);
        assert!(parsed.references.is_empty());
        assert_eq!(parsed.infos.len(), 2);
        assert_eq!(parsed.infos[0].language, "ro-RO");
        assert_eq!(parsed.infos[1].language, "en-US");
        assert_eq!(parsed.infos[0].categories, ["Infra", "Health"]);
        assert_eq!(parsed.infos[0].severity, "Severe");
        assert_eq!(
            parsed.infos[1].headline.as_deref(),
            Some("Boil water <notice> & 'drink'")
        );
        // Parsed back (lon, lat): the same ring as ours.
        assert_eq!(
            parsed.infos[0].areas[0].polygons,
            vec![square().0[0].clone()]
        );

        let doc =
            write(&alert(&p, &second, &history[..1], &place)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            doc.contains("<circle>45.641900,25.588700 0.750</circle>"),
            "{doc}"
        );
        let parsed = crate::cap::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(parsed.msg_type, MsgType::Update);
        let (c, r) = parsed.infos[0].areas[0].circles[0];
        assert!((c.x() - 25.5887).abs() < 1e-9 && (c.y() - 45.6419).abs() < 1e-9);
        assert!((r - 750.0).abs() < 1e-6);
        assert_eq!(
            parsed
                .references
                .iter()
                .map(|r| r.identifier.as_str())
                .collect::<Vec<_>>(),
            ["dispecer-brasov-0190-abc-1"]
        );

        let doc = write(&alert(&p, &third, &history, &place)).unwrap_or_else(|e| panic!("{e}"));
        let parsed = crate::cap::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(parsed.msg_type, MsgType::Cancel);
        let refs: Vec<(String, String, String)> = parsed
            .references
            .iter()
            .map(|r| {
                (
                    r.sender.clone(),
                    r.identifier.clone(),
                    cap_time_text(&r.sent),
                )
            })
            .collect();
        assert_eq!(
            refs,
            [
                (
                    "dispecer.brasov".into(),
                    "dispecer-brasov-0190-abc-1".into(),
                    "2026-03-01T09:00:01+00:00".into()
                ),
                (
                    "dispecer.brasov".into(),
                    "dispecer-brasov-0190-abc-2".into(),
                    "2026-03-01T09:00:02+00:00".into()
                ),
            ]
        );
        assert!(
            doc.contains("<responseType>AllClear</responseType>"),
            "{doc}"
        );
    }

    #[test]
    fn an_open_ring_is_closed_on_writing() {
        let open = Polygon::new(
            LineString::from(vec![(25.58, 45.63), (25.60, 45.63), (25.60, 45.65)]),
            Vec::new(),
        );
        // geo closes exterior rings itself; the writer checks again.
        let text = polygon_text(&open);
        let pairs: Vec<&str> = text.split(' ').collect();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs.first(), pairs.last());
    }

    #[test]
    fn the_feed_links_each_document_and_escapes_text() {
        let p = publisher();
        let entry = FeedEntry {
            identifier: "dispecer-brasov-x-2".into(),
            headline: Localized {
                ro: "Drum închis <DN1>".into(),
                en: "Road closed & detour".into(),
            },
            instruction: Localized {
                ro: "Ocoliți".into(),
                en: "Detour".into(),
            },
            msg_type: MsgType::Update,
            sent: Utc
                .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
                .single()
                .unwrap_or_default(),
        };
        let title = Localized {
            ro: "Avertizări".into(),
            en: "Warnings".into(),
        };
        let feed = atom(&p, &title, &[entry], Utc::now()).unwrap_or_else(|e| panic!("{e}"));
        assert!(feed.contains("href=\"https://dispecer.example.ro/api/v1/public/warnings/dispecer-brasov-x-2.xml\""), "{feed}");
        assert!(
            feed.contains("Drum închis &lt;DN1&gt; / Road closed &amp; detour"),
            "{feed}"
        );
        assert!(
            feed.contains("<updated>2026-03-01T09:00:00Z</updated>"),
            "{feed}"
        );
    }
}

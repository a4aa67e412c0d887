//! Loads a city folder into a validated [`model::City`].
//!
//! The folder (see `cities/brasov/README.md` for the full format):
//!
//! | file | what |
//! |---|---|
//! | `city.toml` | id, names, languages, time zone, bounds, centre, fallback agency |
//! | `boundary.geojson` | the municipality (Polygon or MultiPolygon) |
//! | `districts.geojson` | FeatureCollection of districts, properties `id`, `name` |
//! | `categories.toml` | `[[category]]` entries |
//! | `agencies.toml` | `[[agency]]` entries with their `[agency.jurisdiction]` |
//! | `sensors.toml` | `[[sensor]]` fixed traffic counters |
//! | `jurisdictions/*.geojson` | areas referenced by agencies |
//!
//! Boundary: this crate reads files and nothing else; it never guesses. A folder with a mistake is
//! refused with a [`CityError`] naming the file, the entry and the problem.

mod files;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use geo::{Contains, Geometry, Intersects, MultiPolygon, Point, Rect};
use geojson::GeoJson;

use model::ids::valid_id;
use model::{
    Agency, Area, AreaId, Category, City, Contact, Deadlines, District, InformTarget, Language,
    Localized, SensorSite, Severity, SlaPolicy,
};

/// Why a city folder was refused.
#[derive(Debug, thiserror::Error)]
pub enum CityError {
    /// A file could not be read.
    // The I/O error is part of the message, not a `source`: a chain printer (anyhow's `{:#}`)
    // would otherwise say it twice.
    #[error("{file}: cannot read: {error}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is not valid TOML or GeoJSON of the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message (with line and column for TOML).
        message: String,
    },
    /// An entry breaks a rule.
    #[error("{file}: {entry}: {problem}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The entry, e.g. `category "pothole"`.
        entry: String,
        /// What is wrong.
        problem: String,
    },
}

/// A feature of a GeoJSON file: its `id` and `name` properties, and its area.
type NamedArea = (Option<String>, Option<String>, MultiPolygon);

/// Where the city's files come from: a folder on disk, or texts already in memory.
struct Folder<'t> {
    dir: PathBuf,
    texts: Option<&'t BTreeMap<String, String>>,
}

impl Folder<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<String, CityError> {
        let file = self.path(name);
        match self.texts {
            None => fs::read_to_string(&file).map_err(|error| CityError::Io { file, error }),
            Some(texts) => texts.get(name).cloned().ok_or_else(|| CityError::Io {
                file,
                error: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        }
    }

    fn toml<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, CityError> {
        let text = self.read(name)?;
        toml::from_str(&text).map_err(|e| CityError::Parse {
            file: self.path(name),
            message: e.to_string(),
        })
    }

    fn invalid(
        &self,
        name: &str,
        entry: impl Into<String>,
        problem: impl Into<String>,
    ) -> CityError {
        CityError::Invalid {
            file: self.path(name),
            entry: entry.into(),
            problem: problem.into(),
        }
    }

    /// The (id, name, area) of every Polygon/MultiPolygon feature of a GeoJSON file.
    fn areas(&self, name: &str) -> Result<Vec<NamedArea>, CityError> {
        let text = self.read(name)?;
        let parse_err = |message: String| CityError::Parse {
            file: self.path(name),
            message,
        };
        let geojson: GeoJson = text
            .parse()
            .map_err(|e: geojson::Error| parse_err(e.to_string()))?;
        let features = match geojson {
            GeoJson::FeatureCollection(fc) => fc.features,
            GeoJson::Feature(f) => vec![f],
            GeoJson::Geometry(_) => {
                return Err(parse_err(
                    "expected a Feature or a FeatureCollection, found a bare geometry".into(),
                ))
            }
        };
        let mut out = Vec::with_capacity(features.len());
        for (i, f) in features.into_iter().enumerate() {
            let prop = |k: &str| f.property(k).and_then(|v| v.as_str()).map(str::to_owned);
            let (id, fname) = (prop("id"), prop("name"));
            let entry = format!("feature {} ({})", i, id.as_deref().unwrap_or("no id"));
            let geometry = f
                .geometry
                .as_ref()
                .ok_or_else(|| self.invalid(name, &entry, "has no geometry"))?;
            // geo closes rings silently; a ring written open is a mistake in the file.
            let rings: Vec<&Vec<Vec<f64>>> = match &geometry.value {
                geojson::Value::Polygon(p) => p.iter().collect(),
                geojson::Value::MultiPolygon(m) => m.iter().flatten().collect(),
                _ => Vec::new(),
            };
            if rings.iter().any(|r| r.len() >= 2 && r.first() != r.last()) {
                return Err(self.invalid(
                    name,
                    &entry,
                    "a ring is not closed (its last position must repeat the first)",
                ));
            }
            let area = match Geometry::try_from(geometry.value.clone()) {
                Ok(Geometry::Polygon(p)) => MultiPolygon(vec![p]),
                Ok(Geometry::MultiPolygon(m)) => m,
                Ok(_) => {
                    return Err(self.invalid(
                        name,
                        &entry,
                        "geometry must be a Polygon or MultiPolygon",
                    ))
                }
                Err(e) => return Err(self.invalid(name, &entry, e.to_string())),
            };
            check_area(&area).map_err(|p| self.invalid(name, &entry, p))?;
            out.push((id, fname, area));
        }
        Ok(out)
    }
}

/// Rings closed, with at least 4 positions, every position on Earth.
fn check_area(area: &MultiPolygon) -> Result<(), String> {
    if area.0.is_empty() {
        return Err("area is empty".into());
    }
    for p in &area.0 {
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            if ring.0.len() < 4 {
                return Err(format!(
                    "a ring has {} positions; at least 4 are needed",
                    ring.0.len()
                ));
            }
            if let Some(c) = ring
                .0
                .iter()
                .find(|c| !model::geometry::valid_position(c.x, c.y))
            {
                return Err(format!(
                    "position [{}, {}] is not [longitude, latitude] in degrees",
                    c.x, c.y
                ));
            }
        }
    }
    Ok(())
}

/// The longest deadline a category may set: one year, in minutes.
const MAX_DEADLINE_MINUTES: u32 = 60 * 24 * 365;

/// A category's `deadlines` as a policy: the category's deadlines, with each severity's
/// overrides on top. Both deadlines must be 1 minute to a year, and acknowledging may not take
/// longer than resolving.
fn sla_policy(d: &files::DeadlinesEntry) -> Result<SlaPolicy, String> {
    let check = |what: &str, ack: u32, resolve: u32| -> Result<Deadlines, String> {
        for (name, v) in [("acknowledge_minutes", ack), ("resolve_minutes", resolve)] {
            if v == 0 || v > MAX_DEADLINE_MINUTES {
                return Err(format!(
                    "{what}{name} must be between 1 and {MAX_DEADLINE_MINUTES}, not {v}"
                ));
            }
        }
        if ack > resolve {
            return Err(format!(
                "{what}acknowledge_minutes ({ack}) is longer than resolve_minutes ({resolve})"
            ));
        }
        Ok(Deadlines {
            acknowledge: chrono::Duration::minutes(i64::from(ack)),
            resolve: chrono::Duration::minutes(i64::from(resolve)),
        })
    };
    let mut policy = SlaPolicy::uniform(check(
        "deadlines.",
        d.acknowledge_minutes,
        d.resolve_minutes,
    )?);
    for (severity, o) in [
        (Severity::Minor, &d.minor),
        (Severity::Moderate, &d.moderate),
        (Severity::Severe, &d.severe),
        (Severity::Extreme, &d.extreme),
    ] {
        if let Some(o) = o {
            let what = format!("deadlines.{severity}.");
            if o.acknowledge_minutes.is_none() && o.resolve_minutes.is_none() {
                return Err(format!(
                    "deadlines.{severity} sets nothing: give acknowledge_minutes, \
                     resolve_minutes or both"
                ));
            }
            let deadlines = check(
                &what,
                o.acknowledge_minutes.unwrap_or(d.acknowledge_minutes),
                o.resolve_minutes.unwrap_or(d.resolve_minutes),
            )?;
            policy = policy.with_severity(severity, deadlines);
        }
    }
    Ok(policy)
}

fn localized(n: files::Names) -> Localized {
    Localized { ro: n.ro, en: n.en }
}

/// Loads and validates the city in folder `dir`.
pub fn load(dir: &Path) -> Result<City, CityError> {
    validate(&Folder {
        dir: dir.to_path_buf(),
        texts: None,
    })
}

/// Validates a city given as the texts of its files, by their names inside the folder
/// (`"city.toml"`, `"jurisdictions/zone.geojson"`, …), exactly as [`load`] does a folder, without
/// touching the disk: a file missing from `files` is an [`CityError::Io`] "not found". Errors
/// name the file by its name alone.
pub fn from_texts(files: &BTreeMap<String, String>) -> Result<City, CityError> {
    validate(&Folder {
        dir: PathBuf::new(),
        texts: Some(files),
    })
}

fn validate(folder: &Folder<'_>) -> Result<City, CityError> {
    // city.toml
    let c: files::CityFile = folder.toml("city.toml")?;
    let bad_city = |entry: &str, problem: String| folder.invalid("city.toml", entry, problem);
    if !valid_id(&c.id) {
        return Err(bad_city(
            "id",
            format!("{:?} is not a valid identifier", c.id),
        ));
    }
    if c.name.ro.trim().is_empty() || c.name.en.trim().is_empty() {
        return Err(bad_city("name", "needs both \"ro\" and \"en\"".into()));
    }
    let mut languages = Vec::new();
    for l in &c.languages {
        languages.push(
            l.parse::<Language>()
                .map_err(|e| bad_city("languages", e))?,
        );
    }
    let default_language: Language = c
        .default_language
        .parse()
        .map_err(|e| bad_city("default_language", e))?;
    for required in [Language::Ro, Language::En] {
        if !languages.contains(&required) {
            return Err(bad_city(
                "languages",
                format!(
                    "must include \"{}\" (every screen is in Romanian and English)",
                    required.code()
                ),
            ));
        }
    }
    languages.retain(|l| *l != default_language);
    languages.insert(0, default_language);
    if !c.time_zone.contains('/') {
        return Err(bad_city(
            "time_zone",
            format!(
                "{:?} is not an IANA time zone like \"Europe/Bucharest\"",
                c.time_zone
            ),
        ));
    }
    let [w, s, e, n] = c.bounds;
    if !(model::geometry::valid_position(w, s)
        && model::geometry::valid_position(e, n)
        && w < e
        && s < n)
    {
        return Err(bad_city(
            "bounds",
            "must be [west, south, east, north] in degrees, west < east, south < north".into(),
        ));
    }
    let bounds = Rect::new((w, s), (e, n));
    let center = Point::new(c.center[0], c.center[1]);
    if !bounds.contains(&center) {
        return Err(bad_city("center", "is outside bounds".into()));
    }

    // boundary.geojson
    let boundary = MultiPolygon(
        folder
            .areas("boundary.geojson")?
            .into_iter()
            .flat_map(|(_, _, area)| area.0)
            .collect(),
    );

    // districts.geojson
    let mut districts = Vec::new();
    let mut seen = HashSet::new();
    for (i, (id, name, area)) in folder.areas("districts.geojson")?.into_iter().enumerate() {
        let id = id.ok_or_else(|| {
            folder.invalid(
                "districts.geojson",
                format!("feature {i}"),
                "property \"id\" is required",
            )
        })?;
        let entry = format!("district {id:?}");
        if !valid_id(&id) {
            return Err(folder.invalid("districts.geojson", entry, "id is not a valid identifier"));
        }
        if !seen.insert(id.clone()) {
            return Err(folder.invalid("districts.geojson", entry, "id is used twice"));
        }
        let name = name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
            folder.invalid("districts.geojson", &entry, "property \"name\" is required")
        })?;
        districts.push(District {
            id: id.as_str().into(),
            name,
            area,
        });
    }

    // categories.toml
    let cf: files::CategoriesFile = folder.toml("categories.toml")?;
    let mut categories = Vec::new();
    let mut seen = HashSet::new();
    for cat in cf.category {
        let entry = format!("category {:?}", cat.id);
        let bad = |p: String| folder.invalid("categories.toml", &entry, p);
        if !valid_id(&cat.id) {
            return Err(bad("id is not a valid identifier".into()));
        }
        if !seen.insert(cat.id.clone()) {
            return Err(bad("id is used twice".into()));
        }
        if cat.name.ro.trim().is_empty() || cat.name.en.trim().is_empty() {
            return Err(bad("name needs both \"ro\" and \"en\"".into()));
        }
        let default_severity: Severity = cat.default_severity.parse().map_err(bad)?;
        if !(cat.merge_radius_m > 0.0 && cat.merge_radius_m <= 50_000.0) {
            return Err(bad(format!(
                "merge_radius_m must be in (0, 50000], not {}",
                cat.merge_radius_m
            )));
        }
        if cat.merge_window_minutes == 0 || cat.merge_window_minutes > 60 * 24 * 365 {
            return Err(bad(
                "merge_window_minutes must be between 1 and 525600".into()
            ));
        }
        let sla = sla_policy(&cat.deadlines).map_err(bad)?;
        categories.push(Category {
            id: cat.id.as_str().into(),
            name: localized(cat.name),
            family: cat.family,
            default_severity,
            agency_kind: cat.agency_kind,
            merge_radius_m: cat.merge_radius_m,
            merge_window: chrono::Duration::minutes(i64::from(cat.merge_window_minutes)),
            sla,
            // Checked against agencies.toml once it is read.
            inform: cat
                .inform_kinds
                .into_iter()
                .map(InformTarget::Kind)
                .chain(
                    cat.inform_agencies
                        .iter()
                        .map(|a| InformTarget::Agency(a.as_str().into())),
                )
                .collect(),
        });
    }
    if categories.is_empty() {
        return Err(folder.invalid(
            "categories.toml",
            "[[category]]",
            "the city has no categories",
        ));
    }

    // agencies.toml
    let af: files::AgenciesFile = folder.toml("agencies.toml")?;
    let mut agencies = Vec::new();
    let mut seen = HashSet::new();
    for a in af.agency {
        let entry = format!("agency {:?}", a.id);
        let bad = |p: String| folder.invalid("agencies.toml", &entry, p);
        if !valid_id(&a.id) {
            return Err(bad("id is not a valid identifier".into()));
        }
        if !seen.insert(a.id.clone()) {
            return Err(bad("id is used twice".into()));
        }
        if a.name.ro.trim().is_empty() || a.name.en.trim().is_empty() {
            return Err(bad("name needs both \"ro\" and \"en\"".into()));
        }
        for cat in &a.categories {
            if !categories.iter().any(|c| c.id.as_str() == cat) {
                return Err(bad(format!(
                    "handles category {cat:?}, which categories.toml does not define"
                )));
            }
        }
        let j = a.jurisdiction;
        let mut areas = Vec::new();
        if j.whole_city {
            areas.push(Area {
                id: "city".into(),
                name: c.name.ro.clone(),
                geometry: boundary.clone(),
            });
        }
        for d in &j.districts {
            let district = districts
                .iter()
                .find(|x| x.id.as_str() == d)
                .ok_or_else(|| bad(format!("jurisdiction names district {d:?}, which districts.geojson does not define")))?;
            areas.push(Area {
                id: AreaId::new(d.as_str()),
                name: district.name.clone(),
                geometry: district.area.clone(),
            });
        }
        if let Some(file) = &j.file {
            let rel = Path::new(file);
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(bad(format!(
                    "jurisdiction file {file:?} must be a path inside the city folder"
                )));
            }
            for (i, (id, name, geometry)) in folder.areas(file)?.into_iter().enumerate() {
                let id = id.unwrap_or_else(|| format!("{}-{i}", a.id));
                areas.push(Area {
                    name: name.unwrap_or_else(|| id.clone()),
                    id: AreaId::new(id),
                    geometry,
                });
            }
        }
        if areas.is_empty() {
            return Err(bad(
                "jurisdiction is empty: set whole_city = true, districts = [...] or file = \"...\""
                    .into(),
            ));
        }
        let contact = a.contact.unwrap_or_default();
        agencies.push(Agency {
            id: a.id.as_str().into(),
            kind: a.kind,
            name: localized(a.name),
            categories: a.categories.iter().map(|c| c.as_str().into()).collect(),
            priority: a.priority,
            contact: Contact {
                phone: contact.phone,
                email: contact.email,
                url: contact.url,
            },
            areas,
        });
    }
    if !agencies.iter().any(|a| a.id.as_str() == c.fallback_agency) {
        return Err(bad_city(
            "fallback_agency",
            format!("{:?} is not defined in agencies.toml", c.fallback_agency),
        ));
    }
    for cat in &categories {
        let bad = |p: String| {
            folder.invalid(
                "categories.toml",
                format!("category {:?}", cat.id.as_str()),
                p,
            )
        };
        if !agencies.iter().any(|a| a.handles(&cat.id)) {
            return Err(bad("no agency in agencies.toml handles it".into()));
        }
        for target in &cat.inform {
            match target {
                InformTarget::Agency(id) if !agencies.iter().any(|a| a.id == *id) => {
                    return Err(bad(format!(
                        "inform_agencies names agency {:?}, which agencies.toml does not define",
                        id.as_str()
                    )));
                }
                InformTarget::Kind(kind) if !agencies.iter().any(|a| a.kind == *kind) => {
                    return Err(bad(format!(
                        "inform_kinds names kind {kind:?}, which no agency in agencies.toml has"
                    )));
                }
                _ => {}
            }
        }
    }

    // sensors.toml
    let sf: files::SensorsFile = folder.toml("sensors.toml")?;
    let mut sensors = Vec::new();
    let mut seen = HashSet::new();
    for s in sf.sensor {
        let entry = format!("sensor {:?}", s.id);
        let bad = |p: String| folder.invalid("sensors.toml", &entry, p);
        if !valid_id(&s.id) {
            return Err(bad("id is not a valid identifier".into()));
        }
        if !seen.insert(s.id.clone()) {
            return Err(bad("id is used twice".into()));
        }
        let location = Point::new(s.location[0], s.location[1]);
        if !bounds.contains(&location) && !boundary.intersects(&location) {
            return Err(bad(format!(
                "location {:?} is outside the city's bounds (is it [longitude, latitude]?)",
                s.location
            )));
        }
        if !(s.free_flow_speed_kmh > 0.0 && s.free_flow_speed_kmh <= 200.0) {
            return Err(bad("free_flow_speed_kmh must be in (0, 200]".into()));
        }
        sensors.push(SensorSite {
            id: s.id.as_str().into(),
            name: s.name,
            location,
            road: s.road,
            direction: s.direction,
            free_flow_speed_kmh: s.free_flow_speed_kmh,
            lanes: s.lanes,
        });
    }

    let traffic = traffic_rules(c.traffic.unwrap_or_default(), &categories)
        .map_err(|(entry, problem)| bad_city(&entry, problem))?;

    Ok(City {
        id: c.id,
        name: localized(c.name),
        default_language,
        languages,
        time_zone: c.time_zone,
        bounds,
        center,
        boundary,
        districts,
        categories,
        agencies,
        sensors,
        fallback_agency: c.fallback_agency.as_str().into(),
        traffic,
    })
}

/// `[traffic]` of `city.toml` over the defaults; an error names the field (`traffic.…`) and
/// the problem.
fn traffic_rules(
    t: files::TrafficEntry,
    categories: &[Category],
) -> Result<model::traffic::TrafficRules, (String, String)> {
    let d = model::traffic::TrafficRules::default();
    let known = |id: &str| categories.iter().any(|c| c.id.as_str() == id);
    let field = |name: &str| format!("traffic.{name}");
    let ratio = |name: &str, v: Option<f64>, default: f64| match v {
        Some(v) if !(v > 0.0 && v <= 1.0) => Err((field(name), format!("{v} must be in (0, 1]"))),
        v => Ok(v.unwrap_or(default)),
    };
    let percent = |name: &str, v: Option<f64>, default: f64| match v {
        Some(v) if !(v > 0.0 && v <= 100.0) => {
            Err((field(name), format!("{v} must be in (0, 100]")))
        }
        v => Ok(v.unwrap_or(default)),
    };
    let count = |name: &str, v: Option<u32>, default: u32| match v {
        Some(0) => Err((field(name), "must be at least 1".to_owned())),
        v => Ok(v.unwrap_or(default)),
    };
    let category = match t.category {
        Some(c) if c.is_empty() => None,
        Some(c) if !known(&c) => {
            return Err((
                field("category"),
                format!("{c:?} is not defined in categories.toml"),
            ))
        }
        Some(c) => Some(c.as_str().into()),
        // The default category only where the city has it.
        None => d.category.filter(|c| known(c.as_str())),
    };
    let slot_minutes = t.slot_minutes.unwrap_or(d.slot_minutes);
    if slot_minutes == 0 || 1440 % slot_minutes != 0 {
        return Err((
            field("slot_minutes"),
            format!("{slot_minutes} must divide a day (1440 minutes), e.g. 15"),
        ));
    }
    let explained_by = match t.explained_by {
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids {
                if !known(&id) {
                    return Err((
                        field("explained_by"),
                        format!("{id:?} is not defined in categories.toml"),
                    ));
                }
                out.push(id.as_str().into());
            }
            out
        }
        None => d.explained_by,
    };
    let link_radius_m = t.link_radius_m.unwrap_or(d.link_radius_m);
    if !(link_radius_m > 0.0 && link_radius_m <= 10_000.0) {
        return Err((
            field("link_radius_m"),
            format!("{link_radius_m} must be in (0, 10000] metres"),
        ));
    }
    let rules = model::traffic::TrafficRules {
        category,
        slot_minutes,
        learning_rate: ratio("learning_rate", t.learning_rate, d.learning_rate)?,
        speed_ratio: ratio("speed_ratio", t.speed_ratio, d.speed_ratio)?,
        occupancy_percent: percent(
            "occupancy_percent",
            t.occupancy_percent,
            d.occupancy_percent,
        )?,
        sustain_readings: count("sustain_readings", t.sustain_readings, d.sustain_readings)?,
        sustain_minutes: t.sustain_minutes.unwrap_or(d.sustain_minutes),
        recover_ratio: ratio("recover_ratio", t.recover_ratio, d.recover_ratio)?,
        recover_occupancy_percent: percent(
            "recover_occupancy_percent",
            t.recover_occupancy_percent,
            d.recover_occupancy_percent,
        )?,
        recover_readings: count("recover_readings", t.recover_readings, d.recover_readings)?,
        recover_minutes: t.recover_minutes.unwrap_or(d.recover_minutes),
        explained_by,
        link_radius_m,
    };
    if rules.recover_ratio < rules.speed_ratio {
        return Err((
            field("recover_ratio"),
            format!(
                "{} is below speed_ratio {}: recovery must be the stricter bar",
                rules.recover_ratio, rules.speed_ratio
            ),
        ));
    }
    if rules.recover_occupancy_percent > rules.occupancy_percent {
        return Err((
            field("recover_occupancy_percent"),
            format!(
                "{} is above occupancy_percent {}: recovery must be the stricter bar",
                rules.recover_occupancy_percent, rules.occupancy_percent
            ),
        ));
    }
    Ok(rules)
}

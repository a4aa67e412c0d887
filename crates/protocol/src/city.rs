//! The city as the dashboards see it: `GET /api/v1/city`.

use geo::{MultiPolygon, Point};
use serde::Serialize;
use serde_json::{json, Value};

use model::{City, Localized};

/// Names in both languages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Names {
    /// Romanian.
    pub ro: String,
    /// English.
    pub en: String,
}

impl From<&Localized> for Names {
    fn from(l: &Localized) -> Self {
        Names {
            ro: l.ro.clone(),
            en: l.en.clone(),
        }
    }
}

/// A category.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CategoryDto {
    /// Id.
    pub id: String,
    /// Names.
    pub name: Names,
    /// Family.
    pub family: String,
    /// Default severity.
    pub default_severity: String,
}

/// An agency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgencyDto {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Names.
    pub name: Names,
    /// Categories it handles.
    pub categories: Vec<String>,
}

/// The city document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CityDocument {
    /// Id.
    pub id: String,
    /// Names.
    pub name: Names,
    /// Default language.
    pub default_language: String,
    /// Languages offered.
    pub languages: Vec<String>,
    /// IANA time zone.
    pub time_zone: String,
    /// `[longitude, latitude]`.
    pub center: [f64; 2],
    /// `[west, south, east, north]`.
    pub bounds: [f64; 4],
    /// Base map tiles, when configured (`{z}/{x}/{y}` template); none by default (offline).
    pub tile_url: Option<String>,
    /// Categories.
    pub categories: Vec<CategoryDto>,
    /// Agencies.
    pub agencies: Vec<AgencyDto>,
    /// Districts as a GeoJSON FeatureCollection.
    pub districts: Value,
    /// Sensor sites as a GeoJSON FeatureCollection.
    pub sensors: Value,
    /// Agencies' jurisdictions as a GeoJSON FeatureCollection (properties `agency`, `area`, `name`).
    pub jurisdictions: Value,
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn multipolygon(m: &MultiPolygon) -> Value {
    let polys: Vec<Value> =
        m.0.iter()
            .map(|p| {
                let ring = |l: &geo::LineString| -> Value {
                    Value::Array(
                        l.0.iter()
                            .map(|c| json!([round6(c.x), round6(c.y)]))
                            .collect(),
                    )
                };
                let mut rings = vec![ring(p.exterior())];
                rings.extend(p.interiors().iter().map(ring));
                Value::Array(rings)
            })
            .collect();
    json!({"type": "MultiPolygon", "coordinates": polys})
}

fn point(p: Point) -> Value {
    json!({"type": "Point", "coordinates": [round6(p.x()), round6(p.y())]})
}

impl CityDocument {
    /// The document for `city`.
    pub fn new(city: &City, tile_url: Option<String>) -> Self {
        let districts: Vec<Value> = city
            .districts
            .iter()
            .map(|d| {
                json!({"type": "Feature", "id": d.id.as_str(), "geometry": multipolygon(&d.area),
                "properties": {"id": d.id.as_str(), "name": d.name}})
            })
            .collect();
        let sensors: Vec<Value> = city
            .sensors
            .iter()
            .map(|s| json!({"type": "Feature", "id": s.id.as_str(), "geometry": point(s.location),
                "properties": {"id": s.id.as_str(), "name": s.name, "road": s.road, "direction": s.direction,
                    "free_flow_speed_kmh": s.free_flow_speed_kmh, "lanes": s.lanes}}))
            .collect();
        let jurisdictions: Vec<Value> = city
            .agencies
            .iter()
            .flat_map(|a| {
                a.areas.iter().map(move |area| {
                    json!({"type": "Feature", "geometry": multipolygon(&area.geometry),
                        "properties": {"agency": a.id.as_str(), "area": area.id.as_str(), "name": area.name}})
                })
            })
            .collect();
        CityDocument {
            id: city.id.clone(),
            name: (&city.name).into(),
            default_language: city.default_language.code().into(),
            languages: city.languages.iter().map(|l| l.code().to_owned()).collect(),
            time_zone: city.time_zone.clone(),
            center: [round6(city.center.x()), round6(city.center.y())],
            bounds: [
                city.bounds.min().x,
                city.bounds.min().y,
                city.bounds.max().x,
                city.bounds.max().y,
            ],
            tile_url,
            categories: city
                .categories
                .iter()
                .map(|c| CategoryDto {
                    id: c.id.to_string(),
                    name: (&c.name).into(),
                    family: c.family.clone(),
                    default_severity: c.default_severity.as_str().into(),
                })
                .collect(),
            agencies: city
                .agencies
                .iter()
                .map(|a| AgencyDto {
                    id: a.id.to_string(),
                    kind: a.kind.clone(),
                    name: (&a.name).into(),
                    categories: a.categories.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
            districts: json!({"type": "FeatureCollection", "features": districts}),
            sensors: json!({"type": "FeatureCollection", "features": sensors}),
            jurisdictions: json!({"type": "FeatureCollection", "features": jurisdictions}),
        }
    }
}

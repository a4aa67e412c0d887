//! Routing: which agency is responsible for an incident, and why.
//!
//! Boundary: lookups run in memory on R-trees of the city's areas, never against a database.

use std::collections::HashMap;

use geo::{Area as _, BoundingRect, MultiPolygon, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use crate::city::City;
use crate::grid::AreaGrid;
use crate::ids::{AgencyId, CategoryId, DistrictId};
use crate::pip::PreparedArea;

/// The rule that chose an agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingRule {
    /// One of the agency's areas contains the place, and it handles the category.
    Jurisdiction,
    /// No agency covers this place and category: the city's fallback agency takes it.
    Fallback,
}

impl RoutingRule {
    /// snake_case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingRule::Jurisdiction => "jurisdiction",
            RoutingRule::Fallback => "fallback",
        }
    }

    /// Parses [`RoutingRule::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jurisdiction" => Some(RoutingRule::Jurisdiction),
            "fallback" => Some(RoutingRule::Fallback),
            _ => None,
        }
    }
}

/// An agency that could take an incident, with the rule and area that make it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCandidate {
    /// The agency.
    pub agency: AgencyId,
    /// The rule.
    pub rule: RoutingRule,
    /// The area of the agency's jurisdiction that contains the place, if the rule is jurisdiction.
    pub area: Option<String>,
}

/// The agency chosen for an incident, why, and the ranked alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingDecision {
    /// The choice.
    pub chosen: RouteCandidate,
    /// The other candidates, best first.
    pub alternatives: Vec<RouteCandidate>,
}

type DistrictEntry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A city with its spatial indexes: who is responsible where, and which district is where.
#[derive(Debug)]
pub struct CityIndex {
    city: City,
    /// Which agencies' areas reach each cell of a grid over the city (most cells lie whole in
    /// the areas that reach them: no edge test at all).
    grid: Option<AreaGrid>,
    /// Each category's index, for [`CityIndex::handles`].
    category_index: HashMap<CategoryId, usize>,
    /// Per agency, a bit per category index it handles.
    handles: Vec<Vec<u64>>,
    /// Unsigned area (square degrees, for ranking only) of each agency's each area.
    area_sizes: Vec<Vec<f64>>,
    /// Each agency's each area, prepared for point tests (the R-tree finds candidates by
    /// envelope; walking every edge of a 200-vertex area was most of a lookup's cost).
    prepared: Vec<Vec<PreparedArea>>,
    districts: RTree<DistrictEntry>,
    /// Each district's area, prepared.
    district_areas: Vec<PreparedArea>,
    boundary: PreparedArea,
}

fn rect_of(geometry: &MultiPolygon) -> Option<Rectangle<[f64; 2]>> {
    geometry
        .bounding_rect()
        .map(|r| Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]))
}

impl CityIndex {
    /// Builds the indexes (bulk-loaded R-trees). Areas with no geometry are skipped.
    pub fn new(city: City) -> Self {
        let mut area_sizes = Vec::with_capacity(city.agencies.len());
        let mut prepared: Vec<Vec<PreparedArea>> = Vec::with_capacity(city.agencies.len());
        for agency in &city.agencies {
            let mut sizes = Vec::with_capacity(agency.areas.len());
            prepared.push(
                agency
                    .areas
                    .iter()
                    .map(|a| PreparedArea::new(&a.geometry))
                    .collect(),
            );
            for area in &agency.areas {
                sizes.push(area.geometry.unsigned_area());
            }
            area_sizes.push(sizes);
        }
        let grid_areas: Vec<crate::grid::GridArea<'_>> = city
            .agencies
            .iter()
            .enumerate()
            .flat_map(|(ai, agency)| {
                let prepared = &prepared;
                agency
                    .areas
                    .iter()
                    .enumerate()
                    .map(move |(ri, area)| (ai, ri, &area.geometry, &prepared[ai][ri]))
            })
            .collect();
        let grid = AreaGrid::build(&grid_areas);
        drop(grid_areas);
        let category_index: HashMap<CategoryId, usize> = city
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let words = city.categories.len().div_ceil(64);
        let handles = city
            .agencies
            .iter()
            .map(|agency| {
                let mut bits = vec![0u64; words];
                for c in &agency.categories {
                    if let Some(&i) = category_index.get(c) {
                        bits[i / 64] |= 1 << (i % 64);
                    }
                }
                bits
            })
            .collect();
        let district_entries = city
            .districts
            .iter()
            .enumerate()
            .filter_map(|(i, d)| rect_of(&d.area).map(|r| GeomWithData::new(r, i)))
            .collect();
        CityIndex {
            grid,
            category_index,
            handles,
            area_sizes,
            prepared,
            districts: RTree::bulk_load(district_entries),
            district_areas: city
                .districts
                .iter()
                .map(|d| PreparedArea::new(&d.area))
                .collect(),
            boundary: PreparedArea::new(&city.boundary),
            city,
        }
    }

    /// Whether agency `ai` handles `category`, of index `index` among the city's categories (a
    /// bit test; by name for a category the city does not list).
    fn handles(&self, ai: usize, index: Option<usize>, category: &CategoryId) -> bool {
        match index {
            Some(i) => self.handles[ai]
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0),
            None => self.city.agencies[ai].handles(category),
        }
    }

    /// The city.
    pub fn city(&self) -> &City {
        &self.city
    }

    /// The district containing `point`, if any (the first one, should districts overlap).
    pub fn district_at(&self, point: Point) -> Option<&DistrictId> {
        let probe = AABB::from_point([point.x(), point.y()]);
        self.districts
            .locate_in_envelope_intersecting(&probe)
            .find(|e| self.district_areas[e.data].contains(point))
            .map(|e| &self.city.districts[e.data].id)
    }

    /// Whether `point` is inside the municipality.
    pub fn in_city(&self, point: Point) -> bool {
        self.boundary.contains(point)
    }

    /// Chooses the agency for an incident of `category` at `point`: among agencies whose
    /// jurisdiction contains the point and that handle the category, the lowest priority number
    /// first, then the smallest (most specific) area, then the agency id; the city's fallback
    /// agency when there is none.
    pub fn route(&self, category: &CategoryId, point: Point) -> RoutingDecision {
        // (priority, area size, agency index, area index); one entry per agency, its smallest area.
        let mut found: Vec<(i32, f64, usize, usize)> = Vec::new();
        let category_index = self.category_index.get(category).copied();
        let cell = self.grid.as_ref().map_or(&[][..], |g| g.entries(point));
        for entry in cell {
            let (ai, ri) = (entry.owner as usize, entry.area as usize);
            let agency = &self.city.agencies[ai];
            if !self.handles(ai, category_index, category)
                || !(entry.inside || self.prepared[ai][ri].contains(point))
            {
                continue;
            }
            let size = self.area_sizes[ai][ri];
            match found.iter_mut().find(|f| f.2 == ai) {
                Some(existing) if existing.1 <= size => {}
                Some(existing) => *existing = (agency.priority, size, ai, ri),
                None => found.push((agency.priority, size, ai, ri)),
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then_with(|| self.city.agencies[a.2].id.cmp(&self.city.agencies[b.2].id))
        });
        let mut ranked = found.into_iter().map(|(_, _, ai, ri)| {
            let agency = &self.city.agencies[ai];
            RouteCandidate {
                agency: agency.id.clone(),
                rule: RoutingRule::Jurisdiction,
                area: Some(agency.areas[ri].id.clone()),
            }
        });
        match ranked.next() {
            Some(chosen) => RoutingDecision {
                chosen,
                alternatives: ranked.collect(),
            },
            None => RoutingDecision {
                chosen: RouteCandidate {
                    agency: self.city.fallback_agency.clone(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::{Agency, Area, Category, Contact, District};
    use crate::i18n::{Language, Localized};
    use crate::incident::Severity;
    use geo::{polygon, Rect};

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon {
        MultiPolygon(vec![
            polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)],
        ])
    }

    fn loc(s: &str) -> Localized {
        Localized {
            ro: s.into(),
            en: s.into(),
        }
    }

    fn agency(id: &str, cats: &[&str], priority: i32, areas: Vec<(&str, MultiPolygon)>) -> Agency {
        Agency {
            id: id.into(),
            kind: "k".into(),
            name: loc(id),
            categories: cats.iter().map(|c| CategoryId::from(*c)).collect(),
            priority,
            contact: Contact::default(),
            areas: areas
                .into_iter()
                .map(|(aid, g)| Area {
                    id: aid.into(),
                    name: aid.into(),
                    geometry: g,
                })
                .collect(),
        }
    }

    fn city() -> City {
        let whole = square(0.0, 0.0, 10.0, 10.0);
        City {
            id: "t".into(),
            name: loc("T"),
            default_language: Language::Ro,
            languages: vec![Language::Ro, Language::En],
            time_zone: "Europe/Bucharest".into(),
            bounds: Rect::new((0.0, 0.0), (10.0, 10.0)),
            center: Point::new(5.0, 5.0),
            boundary: whole.clone(),
            districts: vec![
                District {
                    id: "west".into(),
                    name: "West".into(),
                    area: square(0.0, 0.0, 5.0, 10.0),
                },
                District {
                    id: "east".into(),
                    name: "East".into(),
                    area: square(5.0, 0.0, 10.0, 10.0),
                },
            ],
            categories: vec![Category {
                id: "heat".into(),
                name: loc("heat"),
                family: "heating".into(),
                default_severity: Severity::Moderate,
                agency_kind: "heating".into(),
                merge_radius_m: 100.0,
                merge_window: chrono::Duration::hours(1),
                sla: crate::lifecycle::SlaPolicy::uniform(crate::lifecycle::Deadlines {
                    acknowledge: chrono::Duration::minutes(30),
                    resolve: chrono::Duration::hours(8),
                }),
            }],
            agencies: vec![
                agency(
                    "dispatch",
                    &["heat", "water"],
                    100,
                    vec![("city", whole.clone())],
                ),
                agency(
                    "heat-west",
                    &["heat"],
                    10,
                    vec![("west", square(0.0, 0.0, 5.0, 10.0))],
                ),
                agency(
                    "heat-small",
                    &["heat"],
                    10,
                    vec![("block", square(1.0, 1.0, 2.0, 2.0))],
                ),
                agency(
                    "water",
                    &["water"],
                    10,
                    vec![("north", square(0.0, 5.0, 10.0, 10.0))],
                ),
            ],
            sensors: vec![],
            fallback_agency: "dispatch".into(),
        }
    }

    struct Case {
        name: &'static str,
        category: &'static str,
        at: (f64, f64),
        agency: &'static str,
        rule: RoutingRule,
        area: Option<&'static str>,
        alternatives: &'static [&'static str],
    }

    #[test]
    fn routing_table() {
        let index = CityIndex::new(city());
        let cases = [
            Case {
                name: "most specific area wins at equal priority",
                category: "heat",
                at: (1.5, 1.5),
                agency: "heat-small",
                rule: RoutingRule::Jurisdiction,
                area: Some("block"),
                alternatives: &["heat-west", "dispatch"],
            },
            Case {
                name: "district agency",
                category: "heat",
                at: (3.0, 8.0),
                agency: "heat-west",
                rule: RoutingRule::Jurisdiction,
                area: Some("west"),
                alternatives: &["dispatch"],
            },
            Case {
                name: "only the whole-city agency",
                category: "heat",
                at: (8.0, 2.0),
                agency: "dispatch",
                rule: RoutingRule::Jurisdiction,
                area: Some("city"),
                alternatives: &[],
            },
            Case {
                name: "category must match",
                category: "water",
                at: (1.5, 1.5),
                agency: "dispatch",
                rule: RoutingRule::Jurisdiction,
                area: Some("city"),
                alternatives: &[],
            },
            Case {
                name: "water north",
                category: "water",
                at: (7.0, 7.0),
                agency: "water",
                rule: RoutingRule::Jurisdiction,
                area: Some("north"),
                alternatives: &["dispatch"],
            },
            Case {
                name: "outside everything falls back",
                category: "heat",
                at: (20.0, 20.0),
                agency: "dispatch",
                rule: RoutingRule::Fallback,
                area: None,
                alternatives: &[],
            },
            Case {
                name: "unknown category falls back",
                category: "nope",
                at: (1.5, 1.5),
                agency: "dispatch",
                rule: RoutingRule::Fallback,
                area: None,
                alternatives: &[],
            },
        ];
        for c in cases {
            let d = index.route(&CategoryId::from(c.category), Point::new(c.at.0, c.at.1));
            assert_eq!(d.chosen.agency.as_str(), c.agency, "{}", c.name);
            assert_eq!(d.chosen.rule, c.rule, "{}", c.name);
            assert_eq!(d.chosen.area.as_deref(), c.area, "{}", c.name);
            let alts: Vec<&str> = d.alternatives.iter().map(|a| a.agency.as_str()).collect();
            assert_eq!(alts, c.alternatives, "{}", c.name);
        }
    }

    #[test]
    fn districts_are_found() {
        let index = CityIndex::new(city());
        assert_eq!(
            index.district_at(Point::new(2.0, 2.0)).map(|d| d.as_str()),
            Some("west")
        );
        assert_eq!(
            index.district_at(Point::new(7.0, 2.0)).map(|d| d.as_str()),
            Some("east")
        );
        assert_eq!(index.district_at(Point::new(70.0, 2.0)), None);
        assert!(index.in_city(Point::new(7.0, 2.0)));
        assert!(!index.in_city(Point::new(-1.0, 2.0)));
    }
}

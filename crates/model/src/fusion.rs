//! Fusion: recognising that a new event describes an incident that is already open.
//!
//! Boundary: nearby-incident lookups run in memory on the R-tree of open incidents.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, CoordinatePosition, MultiPolygon, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use crate::city::Category;
use crate::geometry::{distance_m, envelope_around};
use crate::ids::{CategoryId, IncidentId};
use crate::incident::Incident;

type Entry = GeomWithData<[f64; 2], IncidentId>;
type AreaEntry = GeomWithData<Rectangle<[f64; 2]>, IncidentId>;

/// The open incidents, by category and place: one R-tree per category, since an event only ever
/// joins an incident of its own category by distance (a lookup never measures distances to, or
/// looks up, the incidents of other categories); and the declared areas of open incidents that
/// cover one (a utility's outage), one R-tree of their bounding boxes per category family, since
/// a report joins an area of its own family wherever it falls inside it.
#[derive(Debug, Default)]
pub struct IncidentIndex {
    trees: HashMap<CategoryId, RTree<Entry>>,
    areas: HashMap<String, RTree<AreaEntry>>,
}

fn area_entry(id: &IncidentId, area: &MultiPolygon) -> Option<AreaEntry> {
    area.bounding_rect().map(|r| {
        GeomWithData::new(
            Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
            id.clone(),
        )
    })
}

impl IncidentIndex {
    /// Builds the index from open incidents in one bulk load per category.
    pub fn bulk_load<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Self {
        let mut entries: HashMap<CategoryId, Vec<Entry>> = HashMap::new();
        for i in incidents.into_iter().filter(|i| i.status.is_open()) {
            entries
                .entry(i.category.clone())
                .or_default()
                .push(GeomWithData::new(
                    [i.location.x(), i.location.y()],
                    i.id.clone(),
                ));
        }
        IncidentIndex {
            trees: entries
                .into_iter()
                .map(|(c, e)| (c, RTree::bulk_load(e)))
                .collect(),
            areas: HashMap::new(),
        }
    }

    /// Adds the declared `area` of an open incident whose category is of `family`.
    pub fn insert_area(&mut self, id: &IncidentId, family: &str, area: &MultiPolygon) {
        if let Some(entry) = area_entry(id, area) {
            self.areas
                .entry(family.to_owned())
                .or_default()
                .insert(entry);
        }
    }

    /// Removes an incident's declared area (when it closes, or the sender redraws it).
    pub fn remove_area(&mut self, id: &IncidentId, family: &str, area: &MultiPolygon) -> bool {
        match (self.areas.get_mut(family), area_entry(id, area)) {
            (Some(tree), Some(entry)) => tree.remove(&entry).is_some(),
            _ => false,
        }
    }

    /// Number of indexed declared areas.
    pub fn area_count(&self) -> usize {
        self.areas.values().map(RTree::size).sum()
    }

    /// Number of indexed incidents.
    pub fn len(&self) -> usize {
        self.trees.values().map(RTree::size).sum()
    }

    /// Whether no incident is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an open incident of `category`.
    pub fn insert(&mut self, id: IncidentId, category: &CategoryId, location: Point) {
        let entry = GeomWithData::new([location.x(), location.y()], id);
        match self.trees.get_mut(category) {
            Some(tree) => tree.insert(entry),
            None => {
                self.trees
                    .insert(category.clone(), RTree::bulk_load(vec![entry]));
            }
        }
    }

    /// Removes an incident of `category` (when it closes).
    pub fn remove(&mut self, id: &IncidentId, category: &CategoryId, location: Point) -> bool {
        self.trees.get_mut(category).is_some_and(|tree| {
            tree.remove(&GeomWithData::new([location.x(), location.y()], id.clone()))
                .is_some()
        })
    }

    /// Indexed incidents (of any category) within `radius_m` meters of `point`, nearest first,
    /// with their distances.
    pub fn within(&self, point: Point, radius_m: f64) -> Vec<(&IncidentId, f64)> {
        let (min, max) = envelope_around(point, radius_m);
        let envelope = AABB::from_corners(min, max);
        let mut found: Vec<(&IncidentId, f64)> = self
            .trees
            .values()
            .flat_map(|tree| tree.locate_in_envelope(&envelope))
            .map(|e| {
                (
                    &e.data,
                    distance_m(point, Point::new(e.geom()[0], e.geom()[1])),
                )
            })
            .filter(|(_, d)| *d <= radius_m)
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1));
        found
    }

    /// The indexed incidents of `categories` within `radius_m` meters of `point`, nearest first
    /// (then by id), with their distances in meters.
    pub fn near(
        &self,
        categories: &[CategoryId],
        point: Point,
        radius_m: f64,
    ) -> Vec<(IncidentId, f64)> {
        let (min, max) = envelope_around(point, radius_m);
        let envelope = AABB::from_corners(min, max);
        let mut found: Vec<(IncidentId, f64)> = categories
            .iter()
            .filter_map(|c| self.trees.get(c))
            .flat_map(|tree| tree.locate_in_envelope(&envelope))
            .map(|e| {
                let d = distance_m(point, Point::new(e.geom()[0], e.geom()[1]));
                (e.data.clone(), d)
            })
            .filter(|(_, d)| *d <= radius_m)
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        found
    }

    /// The indexed incidents of `categories` whose location lies in `area` (its boundary
    /// included), by id.
    pub fn inside(&self, categories: &[CategoryId], area: &MultiPolygon) -> Vec<IncidentId> {
        let Some(rect) = area.bounding_rect() else {
            return Vec::new();
        };
        let envelope =
            AABB::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
        let mut found: Vec<IncidentId> = categories
            .iter()
            .filter_map(|c| self.trees.get(c))
            .flat_map(|tree| tree.locate_in_envelope(&envelope))
            .filter(|e| {
                let p = geo::Coord {
                    x: e.geom()[0],
                    y: e.geom()[1],
                };
                area.coordinate_position(&p) != CoordPos::Outside
            })
            .map(|e| e.data.clone())
            .collect();
        found.sort();
        found
    }

    /// The open incident that an event of `category` at `point`, at time `at`, joins:
    ///
    /// 1. an open incident with a declared area of the category's family that contains the point
    ///    (on its boundary counts), the smallest such area first, then the incident id: a
    ///    declared outage gathers its reports wherever they fall inside it and for as long as it
    ///    is open (its sender says when it is over), whatever the distance or the window;
    /// 2. otherwise the nearest open incident of the same category within the category's merge
    ///    radius whose last update is within its merge window.
    ///
    /// `None` means the event opens a new incident.
    pub fn find_match(
        &self,
        incidents: &HashMap<IncidentId, Incident>,
        category: &Category,
        point: Point,
        at: DateTime<Utc>,
    ) -> Option<IncidentId> {
        self.find_area(incidents, &category.family, point)
            .or_else(|| self.find_near(incidents, category, point, at))
    }

    /// Rule 1 of [`IncidentIndex::find_match`]: the open incident whose declared area of
    /// `family` contains `point`.
    pub fn find_area(
        &self,
        incidents: &HashMap<IncidentId, Incident>,
        family: &str,
        point: Point,
    ) -> Option<IncidentId> {
        use geo::Area as _;
        let tree = self.areas.get(family)?;
        let probe = AABB::from_point([point.x(), point.y()]);
        let mut best: Option<(f64, &IncidentId)> = None;
        for e in tree.locate_in_envelope_intersecting(&probe) {
            let Some(i) = incidents.get(&e.data) else {
                continue;
            };
            let Some(area) = i.area.as_ref().filter(|_| i.status.is_open()) else {
                continue;
            };
            if area.coordinate_position(&point.0) == CoordPos::Outside {
                continue;
            }
            let size = area.unsigned_area();
            let better = match best {
                None => true,
                Some((s, id)) => size < s || (size == s && e.data.as_str() < id.as_str()),
            };
            if better {
                best = Some((size, &e.data));
            }
        }
        best.map(|(_, id)| id.clone())
    }

    /// Rule 2 of [`IncidentIndex::find_match`]: the nearest open incident of `category` within
    /// its merge radius and window.
    pub fn find_near(
        &self,
        incidents: &HashMap<IncidentId, Incident>,
        category: &Category,
        point: Point,
        at: DateTime<Utc>,
    ) -> Option<IncidentId> {
        let tree = self.trees.get(&category.id)?;
        let (min, max) = envelope_around(point, category.merge_radius_m);
        let mut best: Option<(f64, &IncidentId)> = None;
        for e in tree.locate_in_envelope(&AABB::from_corners(min, max)) {
            let d = distance_m(point, Point::new(e.geom()[0], e.geom()[1]));
            if d > category.merge_radius_m || best.is_some_and(|(nearest, _)| nearest <= d) {
                continue;
            }
            let joins = incidents.get(&e.data).is_some_and(|i| {
                i.category == category.id
                    && i.status.is_open()
                    && at - i.updated_at <= category.merge_window
            });
            if joins {
                best = Some((d, &e.data));
            }
        }
        best.map(|(_, id)| id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Localized;
    use crate::incident::{IncidentStatus, Severity};
    use crate::routing::{RouteCandidate, RoutingDecision, RoutingRule};
    use chrono::{Duration, TimeZone};
    use geo::polygon;

    fn category(id: &str, radius: f64) -> Category {
        Category {
            id: id.into(),
            name: Localized {
                ro: id.into(),
                en: id.into(),
            },
            family: "road".into(),
            default_severity: Severity::Minor,
            agency_kind: "roads".into(),
            merge_radius_m: radius,
            merge_window: Duration::hours(2),
            sla: crate::lifecycle::SlaPolicy::uniform(crate::lifecycle::Deadlines {
                acknowledge: Duration::minutes(30),
                resolve: Duration::hours(8),
            }),
            inform: vec![],
        }
    }

    fn incident(
        id: &str,
        cat: &str,
        lon: f64,
        lat: f64,
        updated: DateTime<Utc>,
        status: IncidentStatus,
    ) -> Incident {
        Incident {
            id: id.into(),
            category: cat.into(),
            severity: Severity::Minor,
            status,
            location: Point::new(lon, lat),
            area: None,
            district: None,
            agency: "a".into(),
            routing: RoutingDecision {
                chosen: RouteCandidate {
                    agency: "a".into(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: vec![],
                informed: vec![],
            },
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: updated,
            updated_at: updated,
            sla: crate::lifecycle::SlaClock::default(),
            merged_into: None,
            explained_by: vec![],
        }
    }

    #[test]
    fn fusion_table() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .expect("valid time");
        // ~0.00045 degrees of latitude is 50 m.
        let all = [
            incident(
                "near",
                "pothole",
                25.5887,
                45.6419,
                t0,
                IncidentStatus::Assigned,
            ),
            incident(
                "far",
                "pothole",
                25.5887,
                45.6519,
                t0,
                IncidentStatus::Assigned,
            ),
            incident(
                "other-cat",
                "street_light_out",
                25.58871,
                45.64191,
                t0,
                IncidentStatus::Assigned,
            ),
            incident(
                "closed",
                "pothole",
                25.60,
                45.66,
                t0,
                IncidentStatus::Resolved,
            ),
        ];
        let map: HashMap<IncidentId, Incident> =
            all.iter().map(|i| (i.id.clone(), i.clone())).collect();
        let mut index = IncidentIndex::bulk_load(all.iter());
        assert_eq!(index.len(), 3, "closed incidents are not indexed");
        let pothole = category("pothole", 50.0);
        type Case<'a> = (&'a str, f64, f64, DateTime<Utc>, Option<&'a str>);
        let cases: [Case; 5] = [
            (
                "30 m away joins",
                25.5887,
                45.64217,
                t0 + Duration::minutes(5),
                Some("near"),
            ),
            ("80 m away opens a new one", 25.5887, 45.64262, t0, None),
            (
                "outside the window opens a new one",
                25.5887,
                45.6419,
                t0 + Duration::hours(3),
                None,
            ),
            (
                "same spot as the far one",
                25.5887,
                45.6519,
                t0,
                Some("far"),
            ),
            ("closed incidents are not joined", 25.60, 45.66, t0, None),
        ];
        for (name, lon, lat, at, expected) in cases {
            let got = index.find_match(&map, &pothole, Point::new(lon, lat), at);
            assert_eq!(got.as_ref().map(|i| i.as_str()), expected, "{name}");
        }
        assert!(!index.remove(
            &"near".into(),
            &"flooding".into(),
            Point::new(25.5887, 45.6419)
        ));
        assert!(index.remove(
            &"near".into(),
            &"pothole".into(),
            Point::new(25.5887, 45.6419)
        ));
        assert_eq!(
            index.find_match(&map, &pothole, Point::new(25.5887, 45.64217), t0),
            None
        );
    }

    fn category_of(id: &str, family: &str, radius: f64) -> Category {
        Category {
            family: family.into(),
            ..category(id, radius)
        }
    }

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon {
        MultiPolygon(vec![polygon![
            (x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)
        ]])
    }

    #[test]
    fn near_and_inside_look_only_at_the_categories_asked() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let open = IncidentStatus::Assigned;
        let all = [
            incident("leak", "water_leak", 25.600, 45.600, t, open),
            // About 157 m east.
            incident("crash", "road_accident", 25.602, 45.600, t, open),
            incident("far", "water_leak", 25.620, 45.600, t, open),
            incident("hole", "pothole", 25.6001, 45.600, t, open),
        ];
        let index = IncidentIndex::bulk_load(all.iter());
        let cats: Vec<CategoryId> = vec!["water_leak".into(), "road_accident".into()];
        let found = index.near(&cats, Point::new(25.6005, 45.600), 300.0);
        let near: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(near, ["leak", "crash"]);
        let area = rect(25.599, 45.599, 25.6015, 45.601);
        let inside: Vec<IncidentId> = index.inside(&cats, &area);
        assert_eq!(inside, vec![IncidentId::new("leak")]);
        let everything: Vec<CategoryId> = vec![
            "water_leak".into(),
            "road_accident".into(),
            "pothole".into(),
        ];
        assert_eq!(index.inside(&everything, &area).len(), 2);
    }

    #[test]
    fn declared_areas_gather_their_family_wherever_inside() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .expect("valid time");
        // The Răcădău power cut: about 700 m by 500 m; a smaller water outage inside it; an
        // L-shaped (two-polygon) water outage elsewhere; a resolved outage.
        let mut power = incident(
            "power-cut",
            "power_outage",
            25.6080,
            45.6362,
            t0,
            IncidentStatus::Assigned,
        );
        power.area = Some(rect(25.6070, 45.6360, 25.6160, 45.6405));
        let mut water_small = incident(
            "water-small",
            "no_water",
            25.6085,
            45.6370,
            t0,
            IncidentStatus::Acknowledged,
        );
        water_small.area = Some(rect(25.6080, 45.6365, 25.6090, 45.6375));
        let mut water_big = incident(
            "water-big",
            "water_leak",
            25.6110,
            45.6380,
            t0,
            IncidentStatus::Assigned,
        );
        water_big.area = Some(rect(25.6070, 45.6360, 25.6160, 45.6405));
        let mut water_l = incident(
            "water-l",
            "no_water",
            25.5805,
            45.6605,
            t0,
            IncidentStatus::InProgress,
        );
        water_l.area = Some(MultiPolygon(
            rect(25.5800, 45.6600, 25.5810, 45.6700)
                .0
                .into_iter()
                .chain(rect(25.5810, 45.6600, 25.5900, 45.6610).0)
                .collect(),
        ));
        let mut over = incident(
            "over",
            "no_water",
            25.70,
            45.70,
            t0,
            IncidentStatus::Resolved,
        );
        over.area = Some(rect(25.69, 45.69, 25.71, 45.71));
        let all = [power, water_small, water_big, water_l, over];
        let families = |c: &str| {
            if c == "power_outage" {
                "power"
            } else {
                "water"
            }
        };
        let mut index = IncidentIndex::bulk_load(all.iter());
        // The resolved one's area too: the lookup itself must pass over what is not open.
        for i in &all {
            if let Some(area) = &i.area {
                index.insert_area(&i.id, families(i.category.as_str()), area);
            }
        }
        let map: HashMap<IncidentId, Incident> =
            all.iter().map(|i| (i.id.clone(), i.clone())).collect();
        let no_power = category_of("power_outage", "power", 500.0);
        let no_water = category_of("no_water", "water", 300.0);
        let heating = category_of("district_heating_failure", "heating", 300.0);
        type Case<'a> = (
            &'a str,
            &'a Category,
            f64,
            f64,
            DateTime<Utc>,
            Option<&'a str>,
        );
        let cases: [Case; 9] = [
            (
                "no power in a far corner of the cut (~760 m from its point) joins it",
                &no_power,
                25.6158,
                45.6403,
                t0 + Duration::minutes(5),
                Some("power-cut"),
            ),
            (
                "no power on the boundary joins it",
                &no_power,
                25.6160,
                45.6380,
                t0,
                Some("power-cut"),
            ),
            (
                "no power a day later still joins the open cut (no window)",
                &no_power,
                25.6150,
                45.6400,
                t0 + Duration::days(1),
                Some("power-cut"),
            ),
            (
                "no power just outside, beyond the radius: no incident",
                &no_power,
                25.6230,
                45.6380,
                t0,
                None,
            ),
            (
                "no water inside both water areas joins the smaller one",
                &no_water,
                25.6085,
                45.6370,
                t0,
                Some("water-small"),
            ),
            (
                "no water inside only the big one joins it, another category of the family",
                &no_water,
                25.6150,
                45.6400,
                t0,
                Some("water-big"),
            ),
            (
                "no water in the far arm of the L joins it (~700 m from its point)",
                &no_water,
                25.5895,
                45.6605,
                t0,
                Some("water-l"),
            ),
            (
                "no water inside a resolved outage: a new incident",
                &no_water,
                25.70,
                45.70,
                t0,
                None,
            ),
            (
                "heating inside the outages: another family, a new incident",
                &heating,
                25.6085,
                45.6370,
                t0,
                None,
            ),
        ];
        for (name, category, lon, lat, at, expected) in cases {
            let got = index.find_match(&map, category, Point::new(lon, lat), at);
            assert_eq!(got.as_ref().map(|i| i.as_str()), expected, "{name}");
        }
        assert_eq!(index.area_count(), 5);
        let cut = &all[0];
        assert!(index.remove_area(&cut.id, "power", cut.area.as_ref().expect("area")));
        assert_eq!(
            index.find_match(&map, &no_power, Point::new(25.6158, 45.6403), t0),
            None,
            "a removed area gathers nothing more"
        );
    }
}

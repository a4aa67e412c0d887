//! Fusion: recognising that a new event describes an incident that is already open.
//!
//! Boundary: nearby-incident lookups run in memory on the R-tree of open incidents.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use geo::Point;
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};

use crate::city::Category;
use crate::geometry::{distance_m, envelope_around};
use crate::ids::{CategoryId, IncidentId};
use crate::incident::Incident;

type Entry = GeomWithData<[f64; 2], IncidentId>;

/// The open incidents, by category and place: one R-tree per category, since an event only ever
/// joins an incident of its own category (a lookup never measures distances to, or looks up, the
/// incidents of other categories).
#[derive(Debug, Default)]
pub struct IncidentIndex {
    trees: HashMap<CategoryId, RTree<Entry>>,
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
        }
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

    /// The open incident that an event of `category` at `point`, at time `at`, joins: the nearest
    /// open incident of the same category within the category's merge radius whose last update is
    /// within its merge window. `None` means the event opens a new incident.
    pub fn find_match(
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
            district: None,
            agency: "a".into(),
            routing: RoutingDecision {
                chosen: RouteCandidate {
                    agency: "a".into(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: vec![],
            },
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: updated,
            updated_at: updated,
            sla: crate::lifecycle::SlaClock::default(),
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
}

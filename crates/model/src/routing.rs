//! Routing: which agency is responsible for an incident, and why.
//!
//! Boundary: lookups run in memory on R-trees of the city's areas, never against a database.

use geo::{Area as _, BoundingRect, MultiPolygon, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use crate::city::{Category, City, InformTarget};
use crate::grid::{AreaGrid, GridMemory};
use crate::ids::{AgencyId, AreaId, CategoryId, DistrictId, IncidentId};
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
    pub area: Option<AreaId>,
}

/// Why an agency is informed of an incident it is not responsible for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InformRule {
    /// The category names the agency ([`InformTarget::Agency`]).
    CategoryAgency,
    /// The category names the agency's kind, and one of its areas contains the place
    /// ([`InformTarget::Kind`]).
    CategoryKind,
}

impl InformRule {
    /// snake_case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            InformRule::CategoryAgency => "category_agency",
            InformRule::CategoryKind => "category_kind",
        }
    }

    /// Parses [`InformRule::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "category_agency" => Some(InformRule::CategoryAgency),
            "category_kind" => Some(InformRule::CategoryKind),
            _ => None,
        }
    }
}

/// An agency told of an incident beside the responsible one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Informed {
    /// The agency.
    pub agency: AgencyId,
    /// The rule.
    pub rule: InformRule,
    /// The area of its jurisdiction that contains the place ([`InformRule::CategoryKind`]).
    pub area: Option<AreaId>,
}

/// The agency chosen for an incident, why, the ranked alternatives, and who else is informed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingDecision {
    /// The choice.
    pub chosen: RouteCandidate,
    /// The other candidates, best first.
    pub alternatives: Vec<RouteCandidate>,
    /// The agencies informed beside the chosen one, in the order the category names them; never
    /// the chosen agency itself.
    pub informed: Vec<Informed>,
}

/// How operators overrode one routing rule: the incidents it routed, how many were reassigned
/// away from the agency it chose, and to whom.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOverrides {
    /// The rule, as it chose: its kind, the agency and the area.
    pub rule: RouteCandidate,
    /// Incidents it routed.
    pub routed: u32,
    /// Of those, how many were later reassigned away from the agency it chose.
    pub overridden: u32,
    /// Where they went first, most often first (then by agency id).
    pub reassigned_to: Vec<(AgencyId, u32)>,
}

impl RuleOverrides {
    /// `overridden / routed` (0 when nothing was routed).
    pub fn override_rate(&self) -> f64 {
        if self.routed == 0 {
            0.0
        } else {
            f64::from(self.overridden) / f64::from(self.routed)
        }
    }
}

/// The routing rules with their overrides, most overridden (by rate, then count) first.
///
/// `routed`: every incident with the rule that chose its first agency (its routing decision's
/// `chosen`). `reassignments`: every reassignment in the order it happened, as (incident, agency
/// before, agency after). An incident counts as overridden once, by the first reassignment away
/// from the agency its rule chose; that reassignment's agency is where it went.
pub fn override_report(
    routed: impl IntoIterator<Item = (IncidentId, RouteCandidate)>,
    reassignments: impl IntoIterator<Item = (IncidentId, AgencyId, AgencyId)>,
) -> Vec<RuleOverrides> {
    use std::collections::HashMap;
    let mut rule_of: HashMap<IncidentId, usize> = HashMap::new();
    let mut rules: Vec<RuleOverrides> = Vec::new();
    for (incident, rule) in routed {
        let at = match rules.iter().position(|r| r.rule == rule) {
            Some(at) => at,
            None => {
                rules.push(RuleOverrides {
                    rule,
                    routed: 0,
                    overridden: 0,
                    reassigned_to: Vec::new(),
                });
                rules.len() - 1
            }
        };
        rules[at].routed += 1;
        rule_of.insert(incident, at);
    }
    for (incident, from, to) in reassignments {
        let Some(at) = rule_of.get(&incident).copied() else {
            continue;
        };
        let r = &mut rules[at];
        if from != r.rule.agency {
            continue;
        }
        // Counted once per incident: forget it after its first reassignment away.
        rule_of.remove(&incident);
        r.overridden += 1;
        match r.reassigned_to.iter_mut().find(|(a, _)| *a == to) {
            Some((_, n)) => *n += 1,
            None => r.reassigned_to.push((to, 1)),
        }
    }
    for r in &mut rules {
        r.reassigned_to
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    rules.sort_by(|a, b| {
        b.override_rate()
            .total_cmp(&a.override_rate())
            .then(b.overridden.cmp(&a.overridden))
            .then(b.routed.cmp(&a.routed))
            .then_with(|| a.rule.agency.cmp(&b.rule.agency))
            .then_with(|| a.rule.area.cmp(&b.rule.area))
    });
    rules
}

type DistrictEntry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A jurisdiction in the grid: its agency, its index among the agency's areas, and the agency's
/// kind (an index into the city's kinds).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    agency: u32,
    area: u32,
    kind: u32,
}

/// The city's categories by id, for the one look-up each question about a place makes: an
/// open-addressed table (linear probing, at least twice as many slots as categories) keyed by
/// a short multiplicative hash of the id's first and last eight bytes. Ids are a few bytes; a
/// general-purpose hash of them was a fifth of a jurisdiction lookup's instructions.
#[derive(Debug)]
struct CategoryTable {
    /// (id, index among the city's categories), or `None` for an empty slot; a power of two
    /// long, with an empty slot at least.
    /// The id as a plain `str` (compared without decoding a `SmolStr` again).
    slots: Vec<Option<(Box<str>, usize)>>,
}

impl CategoryTable {
    /// The index of each category's first occurrence, as `City::category` finds it.
    fn new(categories: &[Category]) -> Self {
        let len = (2 * categories.len()).next_power_of_two().max(2);
        let mut table = CategoryTable {
            slots: vec![None; len],
        };
        for (index, category) in categories.iter().enumerate() {
            let id = category.id.as_str();
            let mut i = table.slot(id);
            while let Some((k, _)) = &table.slots[i] {
                if **k == *id {
                    break;
                }
                i = (i + 1) & (len - 1);
            }
            if table.slots[i].is_none() {
                table.slots[i] = Some((id.into(), index));
            }
        }
        table
    }

    /// Where the search for `id` starts.
    fn slot(&self, id: &str) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes = id.as_bytes();
        let mut h = (bytes.len() as u64).wrapping_mul(K);
        // The first and the last eight bytes (overlapping in a shorter id), else each byte.
        match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            (Some(first), Some(last)) => {
                h = (h ^ u64::from_le_bytes(*first)).wrapping_mul(K);
                h = (h ^ u64::from_le_bytes(*last)).wrapping_mul(K);
            }
            _ => {
                for b in bytes {
                    h = (h ^ u64::from(*b)).wrapping_mul(K);
                }
            }
        }
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    /// The index of `id` among the city's categories, if it is one.
    fn get(&self, id: &CategoryId) -> Option<usize> {
        let id = id.as_str();
        let mut i = self.slot(id);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, index)) if **k == *id => return Some(*index),
                Some(_) => i = (i + 1) & (self.slots.len() - 1),
            }
        }
    }
}

/// An [`InformTarget`] resolved once, when the index is built.
#[derive(Debug, Clone)]
enum Inform {
    /// This agency, by id.
    Agency(AgencyId),
    /// The best agency of this kind (an index into the city's kinds) holding the place.
    Kind(u32),
    /// A kind no agency has: nobody.
    Nobody,
}

/// A city with its spatial indexes: who is responsible where, and which district is where.
#[derive(Debug)]
pub struct CityIndex {
    city: City,
    /// Which jurisdictions reach each cell of an adaptive grid over the city, with the few edges
    /// that cross the cell (most cells lie whole in the areas that reach them: no edge test at
    /// all). A jurisdiction's number in the grid is its rank ([`CityIndex::new`]), so the grid
    /// answers best first.
    grid: Option<AreaGrid>,
    /// The jurisdictions by rank.
    ranked: Vec<Ranked>,
    /// The jurisdictions' agency and area ids by rank, side by side (what a lookup answers, one
    /// read away).
    ids: Vec<(AgencyId, AreaId)>,
    /// Each category's index, for [`CityIndex::handles`] (found once per lookup).
    category_index: CategoryTable,
    /// `words` words per jurisdiction, by rank: a bit per category index its agency handles.
    handles: Vec<u64>,
    words: usize,
    /// Per category index, its inform targets, resolved.
    inform: Vec<Vec<Inform>>,
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
    /// Builds the indexes (bulk-loaded R-trees, the jurisdictions' grid). Areas with no
    /// geometry are skipped.
    ///
    /// Jurisdictions are ranked once, here: the agency's priority (lower first), then the
    /// area's size (smaller, more specific first; unsigned square degrees), then the agency id,
    /// then the area's index in the agency. Every answer about a place lists them in that
    /// order, so an agency's first area holding the place is its best.
    pub fn new(city: City) -> Self {
        let mut order: Vec<(usize, usize, f64)> = city
            .agencies
            .iter()
            .enumerate()
            .flat_map(|(ai, agency)| {
                agency
                    .areas
                    .iter()
                    .enumerate()
                    .map(move |(ri, area)| (ai, ri, area.geometry.unsigned_area()))
            })
            .collect();
        order.sort_by(|a, b| {
            let (x, y) = (&city.agencies[a.0], &city.agencies[b.0]);
            x.priority
                .cmp(&y.priority)
                .then(a.2.total_cmp(&b.2))
                .then_with(|| x.id.cmp(&y.id))
                .then(a.1.cmp(&b.1))
                .then(a.0.cmp(&b.0))
        });
        let mut kinds: Vec<&str> = city.agencies.iter().map(|a| a.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let kind_of = |kind: &str| kinds.binary_search(&kind).ok().map(|k| k as u32);
        let ranked: Vec<Ranked> = order
            .iter()
            .map(|&(ai, ri, _)| Ranked {
                agency: ai as u32,
                area: ri as u32,
                kind: kind_of(&city.agencies[ai].kind).unwrap_or(u32::MAX),
            })
            .collect();
        // Prepared only to build the grid, which keeps each leaf's few edges.
        let prepared: Vec<PreparedArea> = order
            .iter()
            .map(|&(ai, ri, _)| PreparedArea::new(&city.agencies[ai].areas[ri].geometry))
            .collect();
        let grid = AreaGrid::build(&prepared.iter().collect::<Vec<_>>());
        drop(prepared);
        // The first category of an id, as `City::category` finds it (later ones overwritten).
        let category_index = CategoryTable::new(&city.categories);
        let words = city.categories.len().div_ceil(64);
        let mut handles = vec![0u64; words * ranked.len()];
        for (rank, r) in ranked.iter().enumerate() {
            for c in &city.agencies[r.agency as usize].categories {
                if let Some(i) = category_index.get(c) {
                    handles[rank * words + i / 64] |= 1 << (i % 64);
                }
            }
        }
        let ids = ranked
            .iter()
            .map(|r| {
                let agency = &city.agencies[r.agency as usize];
                (agency.id.clone(), agency.areas[r.area as usize].id.clone())
            })
            .collect();
        let inform = city
            .categories
            .iter()
            .map(|c| {
                c.inform
                    .iter()
                    .map(|target| match target {
                        InformTarget::Agency(agency) => Inform::Agency(agency.clone()),
                        InformTarget::Kind(kind) => {
                            kind_of(kind).map_or(Inform::Nobody, Inform::Kind)
                        }
                    })
                    .collect()
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
            ranked,
            ids,
            category_index,
            handles,
            words,
            inform,
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

    /// Whether the agency of the jurisdiction of rank `rank` handles `category`, of index
    /// `index` among the city's categories (a bit test; by name for a category the city does
    /// not list).
    fn handles(&self, rank: u32, index: Option<usize>, category: &CategoryId) -> bool {
        match index {
            Some(i) => self
                .handles
                .get(rank as usize * self.words + i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0),
            None => {
                self.city.agencies[self.ranked[rank as usize].agency as usize].handles(category)
            }
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
        let category_index = self.category_index.get(category);
        // Each area's test once: the responsible agency and those informed are chosen from it.
        let mut holding = Small::<64>::default();
        self.holding(point, &mut holding);
        let held = holding.as_slice();
        let mut agencies = Small::<16>::default();
        let mut ranked = held.iter().filter_map(|&rank| {
            let r = self.ranked[rank as usize];
            // Best first: an agency's first area is its best.
            let wanted = self.handles(rank, category_index, category)
                && !agencies.as_slice().contains(&r.agency);
            wanted.then(|| {
                agencies.push(r.agency);
                self.candidate(r)
            })
        });
        let (chosen, alternatives) = match ranked.next() {
            Some(chosen) => (chosen, ranked.collect()),
            None => (
                RouteCandidate {
                    agency: self.city.fallback_agency.clone(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                Vec::new(),
            ),
        };
        let informed = self.informed_among(category_index, held, &chosen.agency);
        RoutingDecision {
            chosen,
            alternatives,
            informed,
        }
    }

    /// The jurisdictions holding `point` (inside or on the boundary) whose agency handles
    /// `category`: every (agency, area) pair, an agency's several areas included, best first
    /// (the rank of [`CityIndex::new`]). The question a spatial database answers with
    /// `ST_Contains` and a category test; [`CityIndex::route`] ranks the same areas.
    pub fn jurisdictions(&self, category: &CategoryId, point: Point) -> Jurisdictions<'_> {
        let category_index = self.category_index.get(category);
        let mut held = Small::default();
        if let Some(grid) = &self.grid {
            grid.holding(point, |rank| {
                if self.handles(rank, category_index, category) {
                    held.push(rank);
                }
            });
        }
        Jurisdictions {
            index: self,
            held,
            next: 0,
        }
    }

    /// The jurisdiction `r` as a candidate.
    fn candidate(&self, r: Ranked) -> RouteCandidate {
        let agency = &self.city.agencies[r.agency as usize];
        RouteCandidate {
            agency: agency.id.clone(),
            rule: RoutingRule::Jurisdiction,
            area: Some(agency.areas[r.area as usize].id.clone()),
        }
    }

    /// The agencies told of an incident of `category` at `point` beside `responsible`: each of
    /// the category's [`InformTarget`]s in order, a kind resolved to the agency of that kind
    /// whose area contains the point (lowest priority number, then smallest area, then id; none
    /// if no agency of the kind covers the place); each agency once, never `responsible`.
    pub fn informed(
        &self,
        category: &CategoryId,
        point: Point,
        responsible: &AgencyId,
    ) -> Vec<Informed> {
        let category_index = self.category_index.get(category);
        let mut holding = Small::<64>::default();
        self.holding(point, &mut holding);
        self.informed_among(category_index, holding.as_slice(), responsible)
    }

    /// [`CityIndex::informed`] for the category of index `category_index`, at a point held by
    /// the jurisdictions of ranks `held` (best first).
    fn informed_among(
        &self,
        category_index: Option<usize>,
        held: &[u32],
        responsible: &AgencyId,
    ) -> Vec<Informed> {
        let Some(targets) = category_index.and_then(|i| self.inform.get(i)) else {
            return Vec::new();
        };
        let mut out: Vec<Informed> = Vec::new();
        for target in targets {
            // Compared by reference; cloned only when kept.
            let (agency, rule, area) = match target {
                Inform::Agency(agency) => (agency, InformRule::CategoryAgency, None),
                Inform::Kind(kind) => {
                    let Some(r) = held
                        .iter()
                        .map(|&rank| self.ranked[rank as usize])
                        .find(|r| r.kind == *kind)
                    else {
                        continue;
                    };
                    let agency = &self.city.agencies[r.agency as usize];
                    (
                        &agency.id,
                        InformRule::CategoryKind,
                        Some(&agency.areas[r.area as usize].id),
                    )
                }
                Inform::Nobody => continue,
            };
            if agency != responsible && !out.iter().any(|o| o.agency == *agency) {
                out.push(Informed {
                    agency: agency.clone(),
                    rule,
                    area: area.cloned(),
                });
            }
        }
        out
    }

    /// The ranks of the jurisdictions holding `point` (inside or on the boundary), best first,
    /// into `out`.
    fn holding<const N: usize>(&self, point: Point, out: &mut Small<N>) {
        if let Some(grid) = &self.grid {
            grid.holding(point, |rank| out.push(rank));
        }
    }

    /// The size of the jurisdictions' grid, if there is one.
    pub fn grid_memory(&self) -> Option<GridMemory> {
        self.grid.as_ref().map(AreaGrid::memory)
    }
}

/// The jurisdictions holding a point, from [`CityIndex::jurisdictions`]: (agency, area), best
/// first.
#[derive(Debug)]
pub struct Jurisdictions<'a> {
    index: &'a CityIndex,
    /// The usual few inline (the answer is moved to the caller).
    held: Small<16>,
    next: usize,
}

impl<'a> Iterator for Jurisdictions<'a> {
    type Item = (&'a AgencyId, &'a AreaId);

    fn next(&mut self) -> Option<Self::Item> {
        let rank = *self.held.as_slice().get(self.next)?;
        self.next += 1;
        let (agency, area) = &self.index.ids[rank as usize];
        Some((agency, area))
    }
}

/// A short list of numbers, on the stack for the usual few (ranks holding a point, agencies
/// already listed).
#[derive(Debug)]
struct Small<const N: usize> {
    inline: [u32; N],
    len: usize,
    /// All of them, once there are more than `N`.
    spilled: Vec<u32>,
}

impl<const N: usize> Default for Small<N> {
    fn default() -> Self {
        Small {
            inline: [0; N],
            len: 0,
            spilled: Vec::new(),
        }
    }
}

impl<const N: usize> Small<N> {
    fn push(&mut self, n: u32) {
        if !self.spilled.is_empty() {
            self.spilled.push(n);
        } else if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = n;
            self.len += 1;
        } else {
            self.spilled.extend_from_slice(&self.inline);
            self.spilled.push(n);
        }
    }

    fn as_slice(&self) -> &[u32] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
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

    /// The category table finds each id (shorter and longer than its eight-byte words, ids
    /// sharing their first or last eight bytes), the first of a repeated id, and nothing else.
    #[test]
    fn the_category_table_finds_each_id_once() {
        let ids = [
            "a",
            "ab",
            "pothole",
            "potholes",
            "water_leak",
            "water_leaks",
            "x_water_leak",
            "district_heating_failure",
            "district_heating_fallen",
            "",
            "pothole",
        ];
        let categories: Vec<Category> = ids
            .iter()
            .map(|id| Category {
                id: (*id).into(),
                name: loc(id),
                family: "f".into(),
                default_severity: Severity::Moderate,
                agency_kind: "k".into(),
                merge_radius_m: 1.0,
                merge_window: chrono::Duration::hours(1),
                sla: crate::lifecycle::SlaPolicy::uniform(crate::lifecycle::Deadlines {
                    acknowledge: chrono::Duration::minutes(30),
                    resolve: chrono::Duration::hours(8),
                }),
                inform: vec![],
            })
            .collect();
        let table = CategoryTable::new(&categories);
        for (i, id) in ids.iter().enumerate() {
            let first = ids.iter().position(|o| o == id);
            assert_eq!(table.get(&CategoryId::from(*id)), first, "{id:?} at {i}");
        }
        for other in [
            "b",
            "potholE",
            "water_leak_",
            "district_heating_failurE",
            "pot",
        ] {
            assert_eq!(table.get(&CategoryId::from(other)), None, "{other}");
        }
        assert_eq!(CategoryTable::new(&[]).get(&CategoryId::from("a")), None);
    }

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
                inform: vec![],
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
            traffic: crate::traffic::TrafficRules::default(),
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
            assert_eq!(
                d.chosen.area.as_ref().map(AreaId::as_str),
                c.area,
                "{}",
                c.name
            );
            let alts: Vec<&str> = d.alternatives.iter().map(|a| a.agency.as_str()).collect();
            assert_eq!(alts, c.alternatives, "{}", c.name);
        }
    }

    #[test]
    fn jurisdictions_are_every_area_holding_the_place_best_first() {
        let index = CityIndex::new(city());
        /// Category, place, the (agency, area) pairs.
        type Case = (
            &'static str,
            (f64, f64),
            &'static [(&'static str, &'static str)],
        );
        let cases: [Case; 5] = [
            (
                "heat",
                (1.5, 1.5),
                &[
                    ("heat-small", "block"),
                    ("heat-west", "west"),
                    ("dispatch", "city"),
                ],
            ),
            (
                "water",
                (7.0, 7.0),
                &[("water", "north"), ("dispatch", "city")],
            ),
            // On the west area's edge: in it.
            (
                "heat",
                (5.0, 3.0),
                &[("heat-west", "west"), ("dispatch", "city")],
            ),
            ("heat", (20.0, 20.0), &[]),
            ("nope", (1.5, 1.5), &[]),
        ];
        for (category, (x, y), want) in cases {
            let got: Vec<(&str, &str)> = index
                .jurisdictions(&category.into(), Point::new(x, y))
                .map(|(a, r)| (a.as_str(), r.as_str()))
                .collect();
            assert_eq!(got, want, "{category} at ({x}, {y})");
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

    #[test]
    fn informed_agencies_table() {
        let mut c = city();
        let mut police_west = agency(
            "police-west",
            &[],
            10,
            vec![("west", square(0.0, 0.0, 5.0, 10.0))],
        );
        police_west.kind = "police".into();
        let mut police_city = agency(
            "police-city",
            &[],
            50,
            vec![("city", square(0.0, 0.0, 10.0, 10.0))],
        );
        police_city.kind = "police".into();
        let mut transport = agency(
            "transport",
            &[],
            10,
            vec![("north", square(0.0, 5.0, 10.0, 10.0))],
        );
        transport.kind = "transport".into();
        c.agencies.extend([police_west, police_city, transport]);
        c.categories[0].inform = vec![
            InformTarget::Kind("police".into()),
            InformTarget::Kind("transport".into()),
            InformTarget::Agency("dispatch".into()),
            InformTarget::Kind("nobody-has-this-kind".into()),
            InformTarget::Agency("police-west".into()),
        ];
        let index = CityIndex::new(c);
        type Case = (
            &'static str,
            (f64, f64),
            &'static str,
            &'static [(&'static str, &'static str, Option<&'static str>)],
        );
        let cases: [Case; 4] = [
            (
                "west, north: the west police by priority, transport, the named dispatch once",
                (3.0, 8.0),
                "heat-west",
                &[
                    ("police-west", "category_kind", Some("west")),
                    ("transport", "category_kind", Some("north")),
                    ("dispatch", "category_agency", None),
                ],
            ),
            (
                "east, south: the city police, no transport here; dispatch is responsible, not informed",
                (8.0, 2.0),
                "dispatch",
                &[
                    ("police-city", "category_kind", Some("city")),
                    ("police-west", "category_agency", None),
                ],
            ),
            (
                "inside the small block: the west police (priority beats the bigger area)",
                (1.5, 1.5),
                "heat-small",
                &[
                    ("police-west", "category_kind", Some("west")),
                    ("dispatch", "category_agency", None),
                ],
            ),
            (
                "outside the city: only the named agencies, the responsible one left out",
                (20.0, 20.0),
                "dispatch",
                &[("police-west", "category_agency", None)],
            ),
        ];
        for (name, (x, y), responsible, expected) in cases {
            let d = index.route(&"heat".into(), Point::new(x, y));
            assert_eq!(d.chosen.agency.as_str(), responsible, "{name}");
            let got: Vec<(&str, &str, Option<&str>)> = d
                .informed
                .iter()
                .map(|i| {
                    (
                        i.agency.as_str(),
                        i.rule.as_str(),
                        i.area.as_ref().map(AreaId::as_str),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{name}");
        }
        let water = index.route(&"water".into(), Point::new(7.0, 7.0));
        assert!(
            water.informed.is_empty(),
            "a category that names nobody informs nobody"
        );
    }

    #[test]
    fn override_report_table() {
        let rule = |agency: &str, area: Option<&str>| RouteCandidate {
            agency: agency.into(),
            rule: if area.is_some() {
                RoutingRule::Jurisdiction
            } else {
                RoutingRule::Fallback
            },
            area: area.map(Into::into),
        };
        let water = rule("apa", Some("city"));
        let roads = rule("drumuri", Some("city"));
        let fallback = rule("dispecerat", None);
        let routed = vec![
            ("w1".into(), water.clone()),
            ("w2".into(), water.clone()),
            ("w3".into(), water.clone()),
            ("w4".into(), water.clone()),
            ("r1".into(), roads.clone()),
            ("f1".into(), fallback.clone()),
            ("f2".into(), fallback.clone()),
        ];
        let moves = |v: &[(&str, &str, &str)]| -> Vec<(IncidentId, AgencyId, AgencyId)> {
            v.iter()
                .map(|(i, a, b)| ((*i).into(), (*a).into(), (*b).into()))
                .collect()
        };
        let reassignments = moves(&[
            // w1 away to the roads, then on to the police: counted once, to the roads.
            ("w1", "apa", "drumuri"),
            ("w1", "drumuri", "politie"),
            ("w2", "apa", "politie"),
            ("w3", "apa", "drumuri"),
            // The fallback's incidents both go to the water company.
            ("f1", "dispecerat", "apa"),
            ("f2", "dispecerat", "apa"),
            // An incident the report does not know (opened before routing was kept): ignored.
            ("x9", "apa", "drumuri"),
        ]);
        let report = override_report(routed, reassignments);
        /// Agency of the rule, routed, overridden, reassigned to.
        type Row<'a> = (&'a str, u32, u32, Vec<(&'a str, u32)>);
        let got: Vec<Row> = report
            .iter()
            .map(|r| {
                (
                    r.rule.agency.as_str(),
                    r.routed,
                    r.overridden,
                    r.reassigned_to
                        .iter()
                        .map(|(a, n)| (a.as_str(), *n))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("dispecerat", 2, 2, vec![("apa", 2)]),
                ("apa", 4, 3, vec![("drumuri", 2), ("politie", 1)]),
                ("drumuri", 1, 0, vec![]),
            ]
        );
        assert_eq!(report[1].override_rate(), 0.75);
        assert!(override_report(Vec::new(), Vec::new()).is_empty());
    }
}

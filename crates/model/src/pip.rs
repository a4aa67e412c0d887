//! Prepared areas: point-in-polygon in a handful of edge tests, whatever the polygon's size.
//!
//! A jurisdiction drawn from a survey has hundreds of vertices; testing a point against every
//! edge (as `geo`'s `coordinate_position` does) made the edge walk almost all of a lookup's cost
//! with 200-vertex areas. A prepared area cuts each polygon's latitude range into bands and
//! keeps, per band, the edges that cross it: a point looks only at its band's few edges.
//!
//! Invariant: [`PreparedArea::contains`] answers exactly as `geo`'s
//! `coordinate_position(..) != Outside` (inside or on the boundary), which a property test checks.

use geo::kernels::{Kernel, Orientation};
use geo::{Coord, GeoNum, LineString, MultiPolygon, Point, Polygon};

/// A polygon's edges, banded by latitude.
#[derive(Debug, Clone)]
struct PreparedPolygon {
    /// Every edge of the exterior and the holes, as (start, end).
    edges: Vec<(Coord, Coord)>,
    min_y: f64,
    max_y: f64,
    /// Band height (degrees); bands cover `[min_y, max_y]`.
    band: f64,
    /// `starts[b]..starts[b + 1]` indexes `members` for band `b` (compressed rows).
    starts: Vec<u32>,
    /// Edge indexes, band after band.
    members: Vec<u32>,
}

/// A (multi)polygon prepared for many point-in-area tests.
#[derive(Debug, Clone)]
pub struct PreparedArea {
    polygons: Vec<PreparedPolygon>,
}

/// Edges per band aimed at: a few crossings to count per test, a few bands per edge to store.
const EDGES_PER_BAND: usize = 2;

fn ring_edges(ring: &LineString, out: &mut Vec<(Coord, Coord)>) {
    out.extend(ring.lines().map(|l| (l.start, l.end)));
    // An unclosed ring (geo closes rings it builds, but not every source does) still bounds.
    if let (Some(first), Some(last)) = (ring.0.first(), ring.0.last()) {
        if first != last {
            out.push((*last, *first));
        }
    }
}

/// Every edge of `polygon`'s exterior and holes (an unclosed ring closed), appended to `out`.
pub(crate) fn polygon_edges(polygon: &Polygon, out: &mut Vec<(Coord, Coord)>) {
    ring_edges(polygon.exterior(), out);
    for hole in polygon.interiors() {
        ring_edges(hole, out);
    }
}

impl PreparedPolygon {
    fn new(polygon: &Polygon) -> Option<Self> {
        let mut edges = Vec::new();
        polygon_edges(polygon, &mut edges);
        let (min_y, max_y) = edges
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (a, b)| {
                (lo.min(a.y).min(b.y), hi.max(a.y).max(b.y))
            });
        if edges.is_empty() || !min_y.is_finite() || !max_y.is_finite() {
            return None;
        }
        let bands = (edges.len() / EDGES_PER_BAND).max(1);
        let band = ((max_y - min_y) / bands as f64).max(f64::MIN_POSITIVE);
        let index = |y: f64| (((y - min_y) / band) as usize).min(bands - 1);
        let mut per_band: Vec<Vec<u32>> = vec![Vec::new(); bands];
        for (i, (a, b)) in edges.iter().enumerate() {
            let (lo, hi) = if a.y <= b.y { (a.y, b.y) } else { (b.y, a.y) };
            for members in &mut per_band[index(lo)..=index(hi)] {
                members.push(i as u32);
            }
        }
        let mut starts = Vec::with_capacity(bands + 1);
        let mut members = Vec::new();
        for m in per_band {
            starts.push(members.len() as u32);
            members.extend(m);
        }
        starts.push(members.len() as u32);
        Some(PreparedPolygon {
            edges,
            min_y,
            max_y,
            band,
            starts,
            members,
        })
    }

    /// Inside or on the boundary.
    fn contains(&self, p: Coord) -> bool {
        if !(p.y >= self.min_y && p.y <= self.max_y) {
            return false;
        }
        let bands = self.starts.len() - 1;
        let b = (((p.y - self.min_y) / self.band) as usize).min(bands - 1);
        let (from, to) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let mut inside = false;
        for &i in &self.members[from..to] {
            let (a, c) = self.edges[i as usize];
            // On the boundary: collinear with the edge and within its extent.
            if p.x >= a.x.min(c.x)
                && p.x <= a.x.max(c.x)
                && p.y >= a.y.min(c.y)
                && p.y <= a.y.max(c.y)
                && <f64 as GeoNum>::Ker::orient2d(a, c, p) == Orientation::Collinear
            {
                return true;
            }
            // A ray towards +x crosses the edge (half-open in y, so a vertex counts once).
            if (a.y > p.y) != (c.y > p.y) {
                let o = <f64 as GeoNum>::Ker::orient2d(a, c, p);
                // The crossing is right of p when p is left of an upward edge (or right of a
                // downward one): robust orientation instead of a division.
                let upward = c.y > a.y;
                if (upward && o == Orientation::CounterClockwise)
                    || (!upward && o == Orientation::Clockwise)
                {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

impl PreparedArea {
    /// Prepares `geometry` (its empty or degenerate polygons are skipped).
    pub fn new(geometry: &MultiPolygon) -> Self {
        PreparedArea {
            polygons: geometry.iter().filter_map(PreparedPolygon::new).collect(),
        }
    }

    /// Whether `point` is inside the area or on its boundary.
    pub fn contains(&self, point: Point) -> bool {
        self.polygons.iter().any(|p| p.contains(point.0))
    }

    /// The polygons kept (empty and degenerate ones are not).
    pub(crate) fn parts(&self) -> usize {
        self.polygons.len()
    }

    /// Polygon `part`'s edges, exterior and holes (none past the last part).
    pub(crate) fn part_edges(&self, part: usize) -> &[(Coord, Coord)] {
        self.polygons.get(part).map_or(&[], |p| &p.edges)
    }

    /// Whether polygon `part` holds `p` (inside or on its boundary).
    pub(crate) fn part_contains(&self, part: usize, p: Coord) -> bool {
        self.polygons
            .get(part)
            .is_some_and(|polygon| polygon.contains(p))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use geo::coordinate_position::CoordPos;
    use geo::{polygon, CoordinatePosition};
    use proptest::prelude::*;

    fn geo_says(area: &MultiPolygon, p: Point) -> bool {
        area.coordinate_position(&p.0) != CoordPos::Outside
    }

    /// A star-like ring around (cx, cy), a vertex per radius in `radii` (shared with the grid's
    /// tests).
    pub(crate) fn star(cx: f64, cy: f64, radii: &[f64]) -> LineString {
        let n = radii.len();
        let mut ring: Vec<Coord> = radii
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = std::f64::consts::TAU * i as f64 / n as f64;
                Coord {
                    x: cx + r * t.cos(),
                    y: cy + r * t.sin(),
                }
            })
            .collect();
        ring.push(ring[0]);
        LineString(ring)
    }

    #[test]
    fn squares_with_a_hole_edges_and_corners() {
        let outer = polygon![
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [[(x: 4., y: 4.), (x: 6., y: 4.), (x: 6., y: 6.), (x: 4., y: 6.), (x: 4., y: 4.)]],
        ];
        let far = polygon![(x: 20., y: 0.), (x: 30., y: 0.), (x: 25., y: 5.), (x: 20., y: 0.)];
        let area = MultiPolygon(vec![outer, far]);
        let prepared = PreparedArea::new(&area);
        let cases = [
            ((1., 1.), true),
            ((5., 5.), false), // in the hole
            ((4., 5.), true),  // on the hole's edge
            ((0., 0.), true),  // a corner
            ((10., 5.), true), // an edge
            ((10.0001, 5.), false),
            ((25., 2.), true),   // the second polygon
            ((25., 5.), true),   // its apex
            ((15., 5.), false),  // between them
            ((5., -0.1), false), // below
            ((5., 10.), true),   // the top edge
        ];
        for ((x, y), want) in cases {
            let p = Point::new(x, y);
            assert_eq!(prepared.contains(p), want, "({x}, {y})");
            assert_eq!(geo_says(&area, p), want, "geo disagrees at ({x}, {y})");
        }
    }

    #[test]
    fn an_empty_area_contains_nothing() {
        let prepared = PreparedArea::new(&MultiPolygon(vec![]));
        assert!(!prepared.contains(Point::new(0., 0.)));
    }

    proptest! {
        /// The same answer as geo for irregular polygons of many vertices, at random points and
        /// exactly at their vertices.
        #[test]
        fn agrees_with_geo(
            radii in prop::collection::vec(0.2f64..1.0, 3..240),
            hole in prop::collection::vec(0.02f64..0.15, 3..12),
            points in prop::collection::vec((-1.2f64..1.2, -1.2f64..1.2), 50),
        ) {
            let area = MultiPolygon(vec![Polygon::new(star(0., 0., &radii), vec![star(0., 0., &hole)])]);
            let prepared = PreparedArea::new(&area);
            for (x, y) in points {
                let p = Point::new(x, y);
                prop_assert_eq!(prepared.contains(p), geo_says(&area, p), "at ({}, {})", x, y);
            }
            for c in area.0[0].exterior().coords() {
                prop_assert_eq!(prepared.contains(Point(*c)), geo_says(&area, Point(*c)));
            }
            // Same latitude as a vertex: the half-open rule must count the vertex once.
            for c in area.0[0].exterior().coords().take(20) {
                for dx in [-0.5, 0.3, 0.9] {
                    let p = Point::new(c.x + dx, c.y);
                    prop_assert_eq!(prepared.contains(p), geo_says(&area, p), "at ({}, {})", p.x(), p.y());
                }
            }
        }
    }
}

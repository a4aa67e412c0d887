//! An adaptive grid over the city's areas that answers a point-in-area question with a few edge
//! tests, whatever the areas' sizes.
//!
//! A uniform grid of up to 65 536 top cells covers the areas' extent; a top cell that many edges
//! cross is halved in both directions, again and again (at most [`MAX_DEPTH`] times), until its
//! leaves hold few edges. Each leaf lists the areas that reach it, and for each area only the
//! edges that meet the leaf, and whether the leaf's *reference point* (its centre, or a nearby
//! point that lies on none of those edges) is inside the area. A point finds its top cell by two
//! divisions and its leaf by comparisons; it is inside an area when it lies on one of the area's
//! leaf edges, or when the segment from it to the reference point crosses those edges an odd
//! number of times and the reference point is outside (or an even number of times and the
//! reference point is inside). An area with no edge in the leaf covers it whole: no test at all.
//!
//! Boundary rule: a point on an area's boundary (an edge or a vertex, a hole's included) is in
//! the area, as `geo`'s `coordinate_position(..) != Outside` and [`PreparedArea::contains`] say.
//!
//! Invariant: a leaf's edges of an area are every edge of the area that meets the leaf's closed
//! rectangle widened by a margin (far more than the rounding of a point's cell), tested exactly
//! (robust orientation); so the segment between a point of the leaf and the reference point,
//! which stays in that rectangle, can only cross edges listed there. Crossings are counted with
//! robust orientation and vertices exactly on the segment's line counted on its left (a
//! symbolic perturbation), so every answer is exact, which property tests check against `geo`.
//! A leaf where no reference point off the edges was found (never seen; it would take edges
//! through 33 chosen points) answers with the area's prepared test instead.

use geo::kernels::{Kernel, Orientation};
use geo::{Coord, GeoNum, Point, Rect};

use std::collections::HashMap;

use crate::pip::PreparedArea;

/// Top cells aimed at (fewer for a small extent).
const CELLS: f64 = 65_536.0;
/// A cell where a polygon has more edges than this is halved (if it may be).
const LEAF_EDGES: usize = 4;
/// Halvings of a top cell, at most (32 × 32 leaves).
pub const MAX_DEPTH: u32 = 5;
/// A node that is split in four; any other `b` is a leaf's entry count and [`CUSTOM`].
const SPLIT: u32 = u32::MAX;
/// [`Node::b`] of a leaf: its reference point is not its centre but in `AreaGrid::custom`.
const CUSTOM: u32 = 1 << 31;
/// [`Entry::flags`]: the leaf's reference point is inside the area.
const REFERENCE_INSIDE: u32 = 1 << 31;
/// [`Entry::flags`]: answer with the area's prepared test (`first` indexes `exact`).
const EXACT: u32 = 1 << 30;
/// [`Entry::flags`]: the edge count.
const COUNT: u32 = EXACT - 1;

type Edge = (Coord, Coord);

fn orient(a: Coord, b: Coord, c: Coord) -> Orientation {
    <f64 as GeoNum>::Ker::orient2d(a, b, c)
}

/// Whether `p` lies on the closed segment `e`.
fn on_edge((a, b): Edge, p: Coord) -> bool {
    p.x >= a.x.min(b.x)
        && p.x <= a.x.max(b.x)
        && p.y >= a.y.min(b.y)
        && p.y <= a.y.max(b.y)
        && orient(a, b, p) == Orientation::Collinear
}

/// Whether the closed segment `e` meets the closed rectangle `r` (exact: separated on an axis of
/// the rectangle, or every corner strictly on one side of the segment's line).
fn meets((a, b): Edge, r: &Rect) -> bool {
    let (lo, hi) = (r.min(), r.max());
    if a.x.max(b.x) < lo.x || a.x.min(b.x) > hi.x || a.y.max(b.y) < lo.y || a.y.min(b.y) > hi.y {
        return false;
    }
    let corners = [
        lo,
        Coord { x: hi.x, y: lo.y },
        hi,
        Coord { x: lo.x, y: hi.y },
    ];
    let sides = corners.map(|c| orient(a, b, c));
    !(sides.iter().all(|s| *s == Orientation::CounterClockwise)
        || sides.iter().all(|s| *s == Orientation::Clockwise))
}

/// Whether the segment `p`–`r` crosses the edge `a`–`b`, neither `p` nor `r` lying on the edge,
/// with vertices on the segment's line taken as left of it (so a vertex the segment passes
/// through is counted once, by exactly one of its two edges, or by neither).
fn crosses(p: Coord, r: Coord, (a, b): Edge) -> bool {
    let right_a = orient(p, r, a) == Orientation::Clockwise;
    let right_b = orient(p, r, b) == Orientation::Clockwise;
    if right_a == right_b {
        return false;
    }
    let (op, or) = (orient(a, b, p), orient(a, b, r));
    // Neither is collinear here unless p or r is on the edge (excluded): then a and b would
    // lie on the same side.
    op != Orientation::Collinear && or != Orientation::Collinear && op != or
}

/// Whether `p` is in the polygon (or on its boundary), given every one of the polygon's edges
/// that may meet the segment from `p` to `reference`, a point not on the boundary whose status
/// is `reference_inside`.
fn holds(p: Coord, reference: Coord, reference_inside: bool, edges: &[Edge]) -> bool {
    let mut inside = reference_inside;
    for &edge in edges {
        if on_edge(edge, p) {
            return true;
        }
        if crosses(p, reference, edge) {
            inside = !inside;
        }
    }
    inside
}

/// A node, 8 bytes (a lookup reads a few of them, from arrays too large for the nearest
/// caches): a split cell (`a` its first of four children, `b` = [`SPLIT`]) or a leaf (`a..a + b`
/// its entries, `b` with [`CUSTOM`]). A cell splits at its centre ([`quarter`]); children:
/// left-bottom, right-bottom, left-top, right-top; a point at the centre's `x` (`y`) goes right
/// (top). A leaf's reference point is its centre unless marked.
#[derive(Debug, Clone, Copy)]
struct Node {
    a: u32,
    b: u32,
}

/// Quarter `k` of `rect`, whose centre is `centre` (the same arithmetic in building and lookups).
fn quarter(rect: Rect, centre: Coord, k: usize) -> Rect {
    let (lo, hi) = (rect.min(), rect.max());
    let (x0, x1) = if k & 1 == 0 {
        (lo.x, centre.x)
    } else {
        (centre.x, hi.x)
    };
    let (y0, y1) = if k & 2 == 0 {
        (lo.y, centre.y)
    } else {
        (centre.y, hi.y)
    };
    Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 })
}

/// One area reaching a leaf.
#[derive(Debug, Clone, Copy)]
struct Entry {
    owner: u32,
    area: u32,
    /// The area's edges in the leaf start here in `edges` (in `exact`, with [`EXACT`]).
    first: u32,
    /// Edge count and [`REFERENCE_INSIDE`], [`EXACT`].
    flags: u32,
}

/// The grid.
#[derive(Debug, Clone)]
pub struct AreaGrid {
    min: Coord,
    /// The extent's far corner, as given (not recomputed from the cells: rounding).
    max: Coord,
    /// Top cell width and height, degrees.
    size: Coord,
    cols: usize,
    rows: usize,
    /// The top cells, row-major, then the cells they split into.
    nodes: Vec<Node>,
    /// Reference points of the leaves marked [`CUSTOM`] (their centre lay on an edge).
    custom: HashMap<u32, Coord>,
    /// Where each list of entries with no edge (the leaf lies whole in the areas) starts in
    /// `entries`: leaves with the same list share it (while building).
    shared: HashMap<Vec<(u32, u32)>, u32>,
    entries: Vec<Entry>,
    edges: Vec<Edge>,
    /// Prepared areas and the part for entries marked [`EXACT`] (normally none).
    exact: Vec<(PreparedArea, usize)>,
}

/// An area to put in the grid: its owner's index, its index, and its prepared form.
pub type GridArea<'a> = (usize, usize, &'a PreparedArea);

/// A polygon of an area reaching a cell while the grid is built: the area's index in the areas
/// given, the polygon's among the area's parts, and its edges meeting the cell (none: the cell
/// lies inside the polygon).
struct Item {
    area: usize,
    part: usize,
    edges: Vec<Edge>,
}

/// The bounding rectangle of `edges`, if any.
fn bounds(edges: &[Edge]) -> Option<Rect> {
    let (first, _) = edges.first()?;
    let (lo, hi) = edges.iter().fold((*first, *first), |(lo, hi), (a, b)| {
        (
            Coord {
                x: lo.x.min(a.x).min(b.x),
                y: lo.y.min(a.y).min(b.y),
            },
            Coord {
                x: hi.x.max(a.x).max(b.x),
                y: hi.y.max(a.y).max(b.y),
            },
        )
    });
    Some(Rect::new(lo, hi))
}

/// What the grid's size may be, at most, as a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridMemory {
    /// Leaves.
    pub leaves: usize,
    /// Area entries in the leaves.
    pub entries: usize,
    /// Edges stored (an edge is stored once for each leaf and area it meets).
    pub edges: usize,
    /// Bytes of the grid's arrays (capacity, not length; prepared fallbacks not counted).
    pub bytes: usize,
}

impl AreaGrid {
    /// A grid over the extent of `areas`. `None` when there is nothing to index.
    pub fn build(areas: &[GridArea<'_>]) -> Option<Self> {
        let extent = areas
            .iter()
            .flat_map(|(_, _, a)| (0..a.parts()).filter_map(|k| bounds(a.part_edges(k))))
            .reduce(|a, b| {
                Rect::new(
                    Coord {
                        x: a.min().x.min(b.min().x),
                        y: a.min().y.min(b.min().y),
                    },
                    Coord {
                        x: a.max().x.max(b.max().x),
                        y: a.max().y.max(b.max().y),
                    },
                )
            })?;
        let (w, h) = (extent.width(), extent.height());
        if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()) {
            return None;
        }
        let side = (w * h / CELLS).sqrt();
        let cols = ((w / side).ceil() as usize).clamp(1, 4096);
        let rows = ((h / side).ceil() as usize).clamp(1, 4096);
        let size = Coord {
            x: w / cols as f64,
            y: h / rows as f64,
        };
        let mut grid = AreaGrid {
            min: extent.min(),
            max: extent.max(),
            size,
            cols,
            rows,
            nodes: Vec::with_capacity(cols * rows),
            custom: HashMap::new(),
            shared: HashMap::new(),
            entries: Vec::new(),
            edges: Vec::new(),
            exact: Vec::new(),
        };
        // Far more than a point's rounding into a cell, far less than a cell.
        let magnitude = [
            extent.min().x,
            extent.min().y,
            extent.max().x,
            extent.max().y,
        ]
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
        let margin = size.x.min(size.y) * 1e-6 + magnitude * 1e-12;
        let mut per_cell: Vec<Vec<Item>> = Vec::new();
        per_cell.resize_with(cols * rows, Vec::new);
        for (index, (_, _, prepared)) in areas.iter().enumerate() {
            for part in 0..prepared.parts() {
                let edges = prepared.part_edges(part);
                let Some(rect) = bounds(edges) else {
                    continue;
                };
                let (c0, r0) = grid.cell_of(Coord {
                    x: rect.min().x - margin,
                    y: rect.min().y - margin,
                });
                let (c1, r1) = grid.cell_of(Coord {
                    x: rect.max().x + margin,
                    y: rect.max().y + margin,
                });
                let width = c1 - c0 + 1;
                let mut cells: Vec<Vec<Edge>> = Vec::new();
                cells.resize_with(width * (r1 - r0 + 1), Vec::new);
                for &e in edges {
                    let (a0, b0) = grid.cell_of(Coord {
                        x: e.0.x.min(e.1.x) - margin,
                        y: e.0.y.min(e.1.y) - margin,
                    });
                    let (a1, b1) = grid.cell_of(Coord {
                        x: e.0.x.max(e.1.x) + margin,
                        y: e.0.y.max(e.1.y) + margin,
                    });
                    for r in b0.max(r0)..=b1.min(r1) {
                        for c in a0.max(c0)..=a1.min(c1) {
                            if meets(e, &grid.top_rect(c, r, margin)) {
                                cells[(r - r0) * width + (c - c0)].push(e);
                            }
                        }
                    }
                }
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        let edges = std::mem::take(&mut cells[(r - r0) * width + (c - c0)]);
                        // No edge meets the cell: all of it is in the polygon, or none.
                        if !edges.is_empty()
                            || prepared.part_contains(part, grid.top_rect(c, r, 0.0).center())
                        {
                            per_cell[r * cols + c].push(Item {
                                area: index,
                                part,
                                edges,
                            });
                        }
                    }
                }
            }
        }
        grid.nodes.resize(cols * rows, Node { a: 0, b: 0 });
        for (cell, items) in per_cell.into_iter().enumerate() {
            let rect = grid.top_rect(cell % cols, cell / cols, 0.0);
            grid.fill(cell, rect, 0, items, areas, margin)?;
        }
        grid.shared = HashMap::new();
        grid.nodes.shrink_to_fit();
        grid.entries.shrink_to_fit();
        grid.edges.shrink_to_fit();
        Some(grid)
    }

    /// The cell of `p`, clamped into the grid.
    fn cell_of(&self, p: Coord) -> (usize, usize) {
        // `as` truncates, which is `floor` at and above 0 (and NaN goes to 0).
        let c = ((p.x - self.min.x) / self.size.x).max(0.0) as usize;
        let r = ((p.y - self.min.y) / self.size.y).max(0.0) as usize;
        (c.min(self.cols - 1), r.min(self.rows - 1))
    }

    /// Top cell `(c, r)`'s rectangle, widened by `margin` on every side.
    fn top_rect(&self, c: usize, r: usize, margin: f64) -> Rect {
        let x0 = self.min.x + c as f64 * self.size.x;
        let y0 = self.min.y + r as f64 * self.size.y;
        Rect::new(
            Coord {
                x: x0 - margin,
                y: y0 - margin,
            },
            Coord {
                x: x0 + self.size.x + margin,
                y: y0 + self.size.y + margin,
            },
        )
    }

    /// Makes node `node` the cell `rect` at `depth` with `items` (each area's edges meeting the
    /// rectangle widened by `margin`): a leaf, or four children. `None` if an index overflows.
    fn fill(
        &mut self,
        node: usize,
        rect: Rect,
        depth: u32,
        items: Vec<Item>,
        areas: &[GridArea<'_>],
        margin: f64,
    ) -> Option<()> {
        // The most edges of one polygon: areas that share a boundary (several agencies'
        // copies of a district) keep their shared edges however small the cell.
        let most = items.iter().map(|i| i.edges.len()).max().unwrap_or(0);
        let centre = rect.center();
        // Halves stay far wider than the margin, so the cells stay apart.
        let splittable = rect.width().min(rect.height()) > margin * 1e3;
        if most > LEAF_EDGES && depth < MAX_DEPTH && splittable {
            let first = self.nodes.len();
            self.nodes[node] = Node {
                a: u32::try_from(first).ok()?,
                b: SPLIT,
            };
            self.nodes.resize(first + 4, Node { a: 0, b: 0 });
            for k in 0..4 {
                let quarter = quarter(rect, centre, k);
                let wide = Rect::new(
                    Coord {
                        x: quarter.min().x - margin,
                        y: quarter.min().y - margin,
                    },
                    Coord {
                        x: quarter.max().x + margin,
                        y: quarter.max().y + margin,
                    },
                );
                let mut inner = Vec::with_capacity(items.len());
                for item in &items {
                    if item.edges.is_empty() {
                        inner.push(Item {
                            edges: Vec::new(),
                            ..*item
                        });
                        continue;
                    }
                    let edges: Vec<Edge> = item
                        .edges
                        .iter()
                        .copied()
                        .filter(|e| meets(*e, &wide))
                        .collect();
                    if !edges.is_empty()
                        || areas[item.area]
                            .2
                            .part_contains(item.part, quarter.center())
                    {
                        inner.push(Item { edges, ..*item });
                    }
                }
                self.fill(first + k, quarter, depth + 1, inner, areas, margin)?;
            }
            return Some(());
        }
        if items.iter().all(|i| i.edges.is_empty()) {
            let key: Vec<(u32, u32)> = items
                .iter()
                .map(|i| {
                    let (owner, area, _) = areas[i.area];
                    Some((u32::try_from(owner).ok()?, u32::try_from(area).ok()?))
                })
                .collect::<Option<_>>()?;
            let count = u32::try_from(key.len()).ok().filter(|n| *n <= COUNT)?;
            let start = match self.shared.get(&key) {
                Some(start) => *start,
                None => {
                    let start = u32::try_from(self.entries.len()).ok()?;
                    self.entries.extend(key.iter().map(|&(owner, area)| Entry {
                        owner,
                        area,
                        first: 0,
                        flags: REFERENCE_INSIDE,
                    }));
                    self.shared.insert(key, start);
                    start
                }
            };
            self.nodes[node] = Node { a: start, b: count };
            return Some(());
        }
        let reference = reference_point(&rect, &items);
        let start = u32::try_from(self.entries.len()).ok()?;
        for item in items {
            let (owner, area, prepared) = areas[item.area];
            let (first, flags) = match reference {
                _ if item.edges.is_empty() => (0, REFERENCE_INSIDE),
                Some(r) if item.edges.len() <= COUNT as usize => {
                    let first = u32::try_from(self.edges.len()).ok()?;
                    let count = item.edges.len() as u32;
                    self.edges.extend(item.edges);
                    let inside = if prepared.part_contains(item.part, r) {
                        REFERENCE_INSIDE
                    } else {
                        0
                    };
                    (first, count | inside)
                }
                _ => {
                    self.exact.push((prepared.clone(), item.part));
                    (u32::try_from(self.exact.len() - 1).ok()?, EXACT)
                }
            };
            self.entries.push(Entry {
                owner: u32::try_from(owner).ok()?,
                area: u32::try_from(area).ok()?,
                first,
                flags,
            });
        }
        let count = u32::try_from(self.entries.len()).ok()? - start;
        if count > COUNT {
            return None;
        }
        let b = match reference {
            Some(r) if r != centre => {
                self.custom.insert(u32::try_from(node).ok()?, r);
                count | CUSTOM
            }
            _ => count,
        };
        self.nodes[node] = Node { a: start, b };
        Some(())
    }

    /// The areas that may hold `point`, each once, in the order given to [`AreaGrid::build`];
    /// [`Candidate::contains`] says whether it does. None outside the grid.
    pub fn candidates(&self, point: Point) -> Candidates<'_> {
        let p = point.0;
        let none = Candidates {
            grid: self,
            entries: &[],
            point: p,
            reference: p,
        };
        if !(p.x >= self.min.x && p.x <= self.max.x && p.y >= self.min.y && p.y <= self.max.y) {
            return none;
        }
        let (c, r) = self.cell_of(p);
        let mut index = r * self.cols + c;
        let mut node = self.nodes[index];
        let mut rect = self.top_rect(c, r, 0.0);
        while node.b == SPLIT {
            let centre = rect.center();
            let k = usize::from(p.x >= centre.x) + 2 * usize::from(p.y >= centre.y);
            rect = quarter(rect, centre, k);
            index = node.a as usize + k;
            node = self.nodes[index];
        }
        let reference = if node.b & CUSTOM == 0 {
            rect.center()
        } else {
            let at = u32::try_from(index).ok();
            at.and_then(|at| self.custom.get(&at).copied())
                .unwrap_or_else(|| rect.center())
        };
        let from = node.a as usize;
        Candidates {
            grid: self,
            entries: &self.entries[from..from + (node.b & !CUSTOM) as usize],
            point: p,
            reference,
        }
    }

    /// The grid's size.
    pub fn memory(&self) -> GridMemory {
        GridMemory {
            leaves: self.nodes.iter().filter(|n| n.b != SPLIT).count(),
            entries: self.entries.len(),
            edges: self.edges.len(),
            bytes: self.nodes.capacity() * std::mem::size_of::<Node>()
                + self.entries.capacity() * std::mem::size_of::<Entry>()
                + self.edges.capacity() * std::mem::size_of::<Edge>()
                + self.exact.capacity() * std::mem::size_of::<(PreparedArea, usize)>()
                + self.custom.capacity() * std::mem::size_of::<(u32, Coord)>(),
        }
    }
}

/// A point of `rect` on none of `items`' edges: the centre, or else one of 32 points spread
/// over the rectangle. `None` if every one lies on an edge.
fn reference_point(rect: &Rect, items: &[Item]) -> Option<Coord> {
    let free = |p: Coord| !items.iter().any(|i| i.edges.iter().any(|e| on_edge(*e, p)));
    let centre = rect.center();
    if free(centre) {
        return Some(centre);
    }
    // Additive recurrences (golden ratio and plastic number): no two on a line by accident.
    (1..=32u32)
        .map(|k| {
            let fx = (0.5 + f64::from(k) * 0.618_033_988_749_895).fract();
            let fy = (0.5 + f64::from(k) * 0.754_877_666_246_693).fract();
            Coord {
                x: rect.min().x + rect.width() * fx,
                y: rect.min().y + rect.height() * fy,
            }
        })
        .find(|p| free(*p))
}

/// The areas that may hold a point, from [`AreaGrid::candidates`].
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    grid: &'a AreaGrid,
    /// The leaf's entries not yet seen.
    entries: &'a [Entry],
    point: Coord,
    reference: Coord,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = Candidate<'a>;

    fn next(&mut self) -> Option<Candidate<'a>> {
        let first = self.entries.first()?;
        // An area's polygons are side by side.
        let n = self
            .entries
            .iter()
            .position(|e| e.owner != first.owner || e.area != first.area)
            .unwrap_or(self.entries.len());
        let (parts, rest) = self.entries.split_at(n);
        self.entries = rest;
        Some(Candidate {
            grid: self.grid,
            parts,
            point: self.point,
            reference: self.reference,
        })
    }
}

/// An area that may hold a point.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    grid: &'a AreaGrid,
    /// One entry per polygon of the area reaching the leaf (at least one).
    parts: &'a [Entry],
    point: Coord,
    reference: Coord,
}

impl Candidate<'_> {
    /// The owner's index given to [`AreaGrid::build`].
    pub fn owner(&self) -> usize {
        self.parts.first().map_or(0, |e| e.owner as usize)
    }

    /// The area's index given to [`AreaGrid::build`].
    pub fn area(&self) -> usize {
        self.parts.first().map_or(0, |e| e.area as usize)
    }

    /// Whether the area holds the point (inside or on its boundary): a few edge tests at most.
    pub fn contains(&self) -> bool {
        self.parts.iter().any(|e| self.part_contains(e))
    }

    fn part_contains(&self, e: &Entry) -> bool {
        if e.flags & EXACT != 0 {
            return self
                .grid
                .exact
                .get(e.first as usize)
                .is_some_and(|(a, part)| a.part_contains(*part, self.point));
        }
        let first = e.first as usize;
        let edges = &self.grid.edges[first..first + (e.flags & COUNT) as usize];
        holds(
            self.point,
            self.reference,
            e.flags & REFERENCE_INSIDE != 0,
            edges,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pip::tests::star;
    use geo::coordinate_position::CoordPos;
    use geo::{polygon, CoordinatePosition, Intersects, MultiPolygon, Polygon};
    use proptest::prelude::*;

    fn geo_says(area: &MultiPolygon, p: Point) -> bool {
        area.coordinate_position(&p.0) != CoordPos::Outside
    }

    /// The areas the grid says hold `p`, as (owner, area).
    fn grid_says(grid: &AreaGrid, p: Point) -> Vec<(usize, usize)> {
        grid.candidates(p)
            .filter(|c| c.contains())
            .map(|c| (c.owner(), c.area()))
            .collect()
    }

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    #[test]
    fn a_square_holds_its_middle_and_edges_not_the_outside() {
        let square = MultiPolygon(vec![square(0., 0., 10., 10.)]);
        let prepared = PreparedArea::new(&square);
        let grid = AreaGrid::build(&[(0, 0, &prepared)]).expect("a grid");
        for (x, y, want) in [
            (5., 5., true),
            (0.01, 5., true),
            (0., 5., true),
            (10., 10., true),
            (10., 3.3, true),
            (11., 5., false),
            (-0.0001, 5., false),
        ] {
            let got = !grid_says(&grid, Point::new(x, y)).is_empty();
            assert_eq!(got, want, "({x}, {y})");
        }
        let m = grid.memory();
        assert!(m.leaves >= 65_536 && m.edges > 0 && m.bytes > 0, "{m:?}");
    }

    #[test]
    fn a_leaf_with_edges_through_every_reference_point_has_none() {
        let rect = Rect::new(Coord { x: 0., y: 0. }, Coord { x: 1., y: 1. });
        let mut xs = vec![0.5];
        xs.extend((1..=32u32).map(|k| (0.5 + f64::from(k) * 0.618_033_988_749_895).fract()));
        let edges = xs
            .iter()
            .map(|x| (Coord { x: *x, y: -1. }, Coord { x: *x, y: 2. }))
            .collect();
        assert_eq!(
            reference_point(
                &rect,
                &[Item {
                    area: 0,
                    part: 0,
                    edges
                }]
            ),
            None
        );
        let some = vec![(Coord { x: 0.5, y: -1. }, Coord { x: 0.5, y: 2. })];
        let r = reference_point(
            &rect,
            &[Item {
                area: 0,
                part: 0,
                edges: some,
            }],
        )
        .expect("a point");
        assert!(r.x != 0.5 && rect.intersects(&Point(r)));
    }

    #[test]
    fn a_leaf_whose_centre_is_on_an_edge_takes_another_reference_point() {
        let whole = MultiPolygon(vec![square(0., 0., 1., 1.)]);
        let c = |k: f64| (k + 0.5) / 256.0;
        let block = MultiPolygon(vec![square(c(10.), c(20.), c(30.), c(40.))]);
        let (pw, pb) = (PreparedArea::new(&whole), PreparedArea::new(&block));
        let grid = AreaGrid::build(&[(0, 0, &pw), (1, 0, &pb)]).expect("a grid");
        assert!(!grid.custom.is_empty(), "centres on the block's edges");
        for i in 0..=200 {
            for j in 0..=200 {
                let p = Point::new(f64::from(i) / 1000.0, f64::from(j) / 1000.0 + 0.03);
                let mut want = vec![(0, 0)];
                if geo_says(&block, p) {
                    want.push((1, 0));
                }
                assert_eq!(grid_says(&grid, p), want, "({}, {})", p.x(), p.y());
            }
        }
        for k in 10..=30 {
            let p = Point::new(c(f64::from(k)), c(20.));
            assert_eq!(
                grid_says(&grid, p),
                vec![(0, 0), (1, 0)],
                "on the edge at {k}"
            );
        }
    }

    #[test]
    fn exact_entries_answer_with_the_prepared_test() {
        let area = MultiPolygon(vec![Polygon::new(
            square(0., 0., 4., 4.).exterior().clone(),
            vec![square(1., 1., 2., 2.).exterior().clone()],
        )]);
        let prepared = PreparedArea::new(&area);
        let mut grid = AreaGrid::build(&[(0, 0, &prepared)]).expect("a grid");
        grid.exact = vec![(prepared.clone(), 0)];
        for e in &mut grid.entries {
            e.first = 0;
            e.flags = EXACT;
        }
        for (x, y) in [
            (0.5, 0.5),
            (1.5, 1.5),
            (1., 1.5),
            (4., 4.),
            (5., 1.),
            (3.9, 0.1),
        ] {
            let p = Point::new(x, y);
            assert_eq!(
                !grid_says(&grid, p).is_empty(),
                geo_says(&area, p),
                "({x}, {y})"
            );
        }
    }

    /// Probes for `area`: random points, every vertex, points at a vertex's latitude and
    /// longitude, midpoints of edges (on the boundary), and cell borders of `grid`.
    fn probes(grid: &AreaGrid, area: &MultiPolygon, random: &[(f64, f64)]) -> Vec<Point> {
        let mut out: Vec<Point> = random.iter().map(|(x, y)| Point::new(*x, *y)).collect();
        for polygon in area.iter() {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                for (i, line) in ring.lines().enumerate().take(40) {
                    out.push(Point(line.start));
                    out.push(Point::new(
                        (line.start.x + line.end.x) / 2.0,
                        (line.start.y + line.end.y) / 2.0,
                    ));
                    let d = 0.01 * (i % 7) as f64 - 0.03;
                    out.push(Point::new(line.start.x + d, line.start.y));
                    out.push(Point::new(line.start.x, line.start.y + d));
                }
            }
        }
        for i in 0..50 {
            let r = grid.top_rect(i * 7 % grid.cols, i * 13 % grid.rows, 0.0);
            out.push(Point(r.min()));
            out.push(Point::new(r.min().x, r.center().y));
            out.push(Point(r.center()));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The grid answers as `geo` (and the prepared test) everywhere: random points,
        /// vertices, edges, cell borders; irregular star polygons with a hole; and as the
        /// prepared test (inside any of its polygons) for a multipolygon of it and another
        /// star that overlaps it or lies apart.
        #[test]
        fn agrees_with_geo(
            radii in prop::collection::vec(0.2f64..1.0, 3..200),
            hole in prop::collection::vec(0.02f64..0.15, 3..12),
            second in prop::collection::vec(0.1f64..0.5, 3..40),
            at in prop::sample::select(vec![0.6, 1.5]),
            points in prop::collection::vec((-1.2f64..2.2, -1.2f64..1.2), 300),
        ) {
            let first = Polygon::new(star(0., 0., &radii), vec![star(0., 0., &hole)]);
            let one = MultiPolygon(vec![first.clone()]);
            let two = MultiPolygon(vec![first, Polygon::new(star(at, 0.2, &second), vec![])]);
            let (p1, p2) = (PreparedArea::new(&one), PreparedArea::new(&two));
            let grid = AreaGrid::build(&[(0, 0, &p1), (1, 0, &p2)]).expect("a grid");
            for p in probes(&grid, &two, &points) {
                prop_assert_eq!(p1.contains(p), geo_says(&one, p));
                let mut want = Vec::new();
                if p1.contains(p) {
                    want.push((0, 0));
                }
                if p2.contains(p) {
                    want.push((1, 0));
                }
                prop_assert_eq!(grid_says(&grid, p), want, "at ({}, {})", p.x(), p.y());
            }
        }

        /// Counting crossings from a reference point is exact where it is hardest: vertices,
        /// the point and the reference on a coarse lattice (segments through vertices, along
        /// edges; self-crossing rings), against the prepared test's rays.
        #[test]
        fn crossings_from_a_reference_point_are_exact(
            ring in prop::collection::vec((-6i32..=6, -6i32..=6), 3..16),
            probes in prop::collection::vec(((-14i32..=14, -14i32..=14), (-14i32..=14, -14i32..=14)), 60),
        ) {
            let mut coords: Vec<Coord> = ring.iter().map(|(x, y)| Coord { x: f64::from(*x), y: f64::from(*y) }).collect();
            coords.push(coords[0]);
            let area = MultiPolygon(vec![Polygon::new(geo::LineString(coords), vec![])]);
            let prepared = PreparedArea::new(&area);
            let edges = prepared.part_edges(0).to_vec();
            for ((px, py), (rx, ry)) in probes {
                // Half-lattice too: through vertices' midlines.
                let p = Coord { x: f64::from(px) / 2.0, y: f64::from(py) / 2.0 };
                let r = Coord { x: f64::from(rx) / 2.0, y: f64::from(ry) / 2.0 };
                if edges.iter().any(|e| on_edge(*e, r)) {
                    continue;
                }
                let want = prepared.contains(Point(p));
                prop_assert_eq!(holds(p, r, prepared.contains(Point(r)), &edges), want, "p {:?} r {:?}", p, r);
            }
        }

        /// Tiny and huge extents, and a point far outside: still exact.
        #[test]
        fn agrees_with_geo_at_any_scale(
            radii in prop::collection::vec(0.2f64..1.0, 3..60),
            scale in prop::sample::select(vec![1e-7, 1e-3, 1.0, 80.0]),
            points in prop::collection::vec((-1.2f64..1.2, -1.2f64..1.2), 100),
        ) {
            let ring = star(0., 0., &radii);
            let moved = geo::LineString(ring.0.iter().map(|c| Coord { x: 25.5 + c.x * scale, y: 45.6 + c.y * scale }).collect());
            let area = MultiPolygon(vec![Polygon::new(moved, vec![])]);
            let prepared = PreparedArea::new(&area);
            let grid = AreaGrid::build(&[(0, 0, &prepared)]).expect("a grid");
            let scaled: Vec<(f64, f64)> = points.iter().map(|(x, y)| (25.5 + x * scale, 45.6 + y * scale)).collect();
            for p in probes(&grid, &area, &scaled) {
                prop_assert_eq!(!grid_says(&grid, p).is_empty(), geo_says(&area, p), "at ({}, {})", p.x(), p.y());
            }
        }
    }
}

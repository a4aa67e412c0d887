//! An adaptive grid over the city's areas that answers a point-in-area question with a few edge
//! tests, whatever the areas' sizes.
//!
//! A uniform grid of up to 65 536 top cells covers the areas' extent; a top cell that many edges
//! cross is halved in both directions, again and again (at most [`MAX_DEPTH`] times), until its
//! leaves hold few edges. Each leaf lists the areas that reach it (at most 64 per *group*, a
//! bit each), and once each the edges that meet the leaf, each with a bit mask of the areas it
//! bounds (two neighbours' shared border, or several agencies' copies of one district, is
//! stored and tested once), and a mask of the areas its *reference point* (its centre, or a
//! nearby point that lies on none of those edges) is inside. A point finds its top cell by two
//! divisions and its leaf by comparisons; an area holds it when it lies on one of the area's
//! edges, or when the segment from it to the reference point crosses the area's edges an odd
//! number of times and the reference point is outside (or an even number of times and the
//! reference point is inside): each crossed edge flips its mask's bits. An area with no edge in
//! the leaf covers it whole: no test at all.
//!
//! Layout, for a lookup's few cache misses: a node is 4 bytes, and a leaf is one contiguous run
//! of words (reference point, entries, masks, edges); a leaf's edges of the same areas that meet
//! end to end are stored as a chain of vertices (a polygon's boundary through a leaf is one or
//! two chains: a vertex per edge, not two); leaves lying whole in the same areas share
//! one run, and a leaf lying whole in one area is only its node (the area's number in it). Areas are numbered by the caller ([`AreaGrid::build`]'s order), and a lookup reports
//! them in that order, so a caller that numbers its areas in the order it ranks them needs no
//! sorting.
//!
//! Boundary rule: a point on an area's boundary (an edge or a vertex, a hole's included) is in
//! the area, as `geo`'s `coordinate_position(..) != Outside` and [`PreparedArea::contains`] say.
//!
//! Invariant: a leaf's edges of an area are every edge of the area that meets the leaf's closed
//! rectangle widened by a margin (far more than the rounding of a point's cell), tested exactly
//! (robust orientation); so the segment between a point of the leaf and the reference point,
//! which stays in that rectangle, can only cross edges listed there. Crossings are counted with
//! robust orientation and vertices exactly on the segment's line counted on its left (a
//! symbolic perturbation, the same whichever way an edge runs, so an edge shared by areas is
//! tested once for all), so every answer is exact, which property tests check against `geo`.
//! An edge that one polygon has twice is stored twice. A leaf where no reference point off the
//! edges was found (never seen; it would take edges through 33 chosen points) answers with the
//! areas' prepared tests instead.

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
/// A node with this bit is split in four, its first child at the other bits.
const SPLIT: u32 = 1 << 31;
/// A node with this bit (and not [`SPLIT`]) is a leaf lying whole in one area, whose number is
/// the other bits (no word in `AreaGrid::leaves` to read); any other node is a leaf, the other
/// bits its first word in `AreaGrid::leaves`.
const WHOLE: u32 = 1 << 30;
/// Areas of a group: one bit each in a `u64` mask.
const GROUP: usize = 64;
/// Leaf header: the reference point follows (two words, `x` and `y`); the low 32 bits count
/// the groups.
const HAS_REFERENCE: u64 = 1 << 32;
/// Group header: its entries are answered with the prepared test (`exact`), not edges; bits
/// 0–7 count the entries, bits 32–63 the edges.
const EXACT: u64 = 1 << 8;
/// A chain's header (a group of at most this many entries): the mask of the entries its edges
/// bound in the low bits, its vertices from bit [`CHAIN_COUNT`] up. A group of more entries
/// gives a chain two header words: the mask, then the vertices.
const NARROW: usize = 48;
/// The shift of a narrow chain header's vertex count.
const CHAIN_COUNT: u32 = 48;

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
/// through is counted once, by exactly one of its two edges, or by neither). Symmetric in `a`
/// and `b`.
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

/// The entries of a group of `entries` holding `p` (a bit each), given the mask of those whose
/// polygon holds `reference` (a point on none of the edges) and, as chains of vertices (a
/// header, then `x` and `y` of each vertex; consecutive vertices are an edge), every edge of
/// theirs that may meet the segment from `p` to `reference`.
fn group_holds(
    p: Coord,
    reference: Coord,
    reference_inside: u64,
    entries: usize,
    chains: &[u64],
) -> u64 {
    let mut inside = reference_inside;
    let mut boundary = 0u64;
    // The segment's box: an edge whose box misses it neither holds `p` (which is in it) nor
    // crosses the segment (their crossing would be in both): no orientation to compute.
    let (lo, hi) = (
        Coord {
            x: p.x.min(reference.x),
            y: p.y.min(reference.y),
        },
        Coord {
            x: p.x.max(reference.x),
            y: p.y.max(reference.y),
        },
    );
    let vertex = |w: &[u64]| Coord {
        x: f64::from_bits(w[0]),
        y: f64::from_bits(w[1]),
    };
    let mut i = 0;
    while i < chains.len() {
        let (mask, vertices, at) = if entries <= NARROW {
            let h = chains[i];
            (
                h & ((1 << CHAIN_COUNT) - 1),
                (h >> CHAIN_COUNT) as usize,
                i + 1,
            )
        } else {
            (chains[i], chains[i + 1] as usize, i + 2)
        };
        let words = &chains[at..at + 2 * vertices];
        i = at + 2 * vertices;
        let mut a = vertex(words);
        for w in words[2..].chunks_exact(2) {
            let b = vertex(w);
            let edge = (a, b);
            a = b;
            if edge.0.x.max(edge.1.x) < lo.x
                || edge.0.x.min(edge.1.x) > hi.x
                || edge.0.y.max(edge.1.y) < lo.y
                || edge.0.y.min(edge.1.y) > hi.y
            {
                continue;
            }
            if on_edge(edge, p) {
                boundary |= mask;
            } else if crosses(p, reference, edge) {
                inside ^= mask;
            }
        }
    }
    inside | boundary
}

/// `edges` (each once, with the mask of the entries it bounds) as chains: runs of edges of the
/// same mask end to end, each edge in exactly one chain (a chain's vertices in order; each
/// edge's direction does not matter: the tests are symmetric in its ends).
fn chains(edges: &[([u64; 4], u64)]) -> Vec<(u64, Vec<[u64; 2]>)> {
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_by_key(|&e| edges[e].1);
    for same in order.chunk_by(|a, b| edges[*a].1 == edges[*b].1) {
        let ends = |e: usize| {
            let k = edges[e].0;
            ([k[0], k[1]], [k[2], k[3]])
        };
        let mut at: HashMap<[u64; 2], Vec<usize>> = HashMap::new();
        for &e in same {
            let (a, b) = ends(e);
            at.entry(a).or_default().push(e);
            at.entry(b).or_default().push(e);
        }
        let mut used = vec![false; edges.len()];
        // Paths start where an odd number of edges meet (their ends), then what is left
        // (closed loops) anywhere.
        let starts = same
            .iter()
            .flat_map(|&e| {
                let (a, b) = ends(e);
                [a, b]
            })
            .filter(|v| at[v].len() % 2 == 1)
            .chain(same.iter().map(|&e| ends(e).0))
            .collect::<Vec<_>>();
        for start in starts {
            let mut vertices = vec![start];
            let mut current = start;
            while let Some(&e) = at[&current].iter().find(|e| !used[**e]) {
                used[e] = true;
                let (a, b) = ends(e);
                current = if a == current { b } else { a };
                vertices.push(current);
            }
            if vertices.len() > 1 {
                out.push((edges[same[0]].1, vertices));
            }
        }
    }
    out
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

/// The grid.
#[derive(Debug, Clone)]
pub struct AreaGrid {
    min: Coord,
    /// The extent's far corner, as given (not recomputed from the cells: rounding).
    max: Coord,
    /// Top cell width and height, degrees.
    size: Coord,
    /// Their inverses (a point's cell by multiplication: the same in building and lookups,
    /// and the margin covers its rounding).
    inverse: Coord,
    cols: usize,
    rows: usize,
    /// The top cells, row-major, then the cells they split into, four siblings side by side
    /// (left-bottom, right-bottom, left-top, right-top; a point at the centre's `x` (`y`) goes
    /// right (top)): [`SPLIT`] and the first child, [`WHOLE`] and an area's number, or a leaf's
    /// first word in `leaves`.
    nodes: Vec<u32>,
    /// The leaves, one run of words each: a header (groups, [`HAS_REFERENCE`]), the reference
    /// point if any, then each group: a header (entries, edges, [`EXACT`]), the mask of entries
    /// holding the reference point, the entries' area numbers (two to a word; one a word with
    /// the index in `exact` in the high half if [`EXACT`]), the edges as chains of vertices
    /// (consecutive edges of the same entries share a vertex; [`NARROW`]).
    /// Word 0 is the empty leaf.
    leaves: Vec<u64>,
    /// Where each list of areas lying whole over a leaf starts in `leaves` (while building).
    shared: HashMap<Vec<u32>, u32>,
    /// Prepared areas and the part, for groups marked [`EXACT`] (normally none).
    exact: Vec<(PreparedArea, usize)>,
    /// Leaves, area entries and stored edges, and leaves whose reference point is not their
    /// centre (it lay on an edge).
    counts: Counts,
    /// Build every leaf with edges as [`EXACT`] (tests of that path).
    exact_always: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    leaves: usize,
    entries: usize,
    edges: usize,
    moved_references: usize,
}

/// A polygon of an area reaching a cell while the grid is built: the area's number, the
/// polygon's index among the area's parts, and its edges meeting the cell (none: the cell lies
/// inside the polygon).
struct Item {
    area: u32,
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

/// `e` with its ends in a fixed order (by `x`, then `y`), and the bits of its coordinates: the
/// key under which areas share it.
fn edge_key((a, b): Edge) -> [u64; 4] {
    let (lo, hi) = if (a.x, a.y) <= (b.x, b.y) {
        (a, b)
    } else {
        (b, a)
    };
    [
        lo.x.to_bits(),
        lo.y.to_bits(),
        hi.x.to_bits(),
        hi.y.to_bits(),
    ]
}

/// What the grid's size may be, at most, as a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridMemory {
    /// Leaves.
    pub leaves: usize,
    /// Area entries in the leaves (a run of entries shared by several leaves counted once).
    pub entries: usize,
    /// Edges stored (an edge is stored once for each leaf it meets, whatever the areas it
    /// bounds there).
    pub edges: usize,
    /// Bytes of the grid's arrays (capacity, not length; prepared fallbacks not counted).
    pub bytes: usize,
}

impl AreaGrid {
    /// A grid over the extent of `areas`; an area's number is its index here. `None` when
    /// there is nothing to index (or more than `u32` can number).
    pub fn build(areas: &[&PreparedArea]) -> Option<Self> {
        Self::build_inner(areas, false)
    }

    fn build_inner(areas: &[&PreparedArea], exact_always: bool) -> Option<Self> {
        let extent = areas
            .iter()
            .flat_map(|a| (0..a.parts()).filter_map(|k| bounds(a.part_edges(k))))
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
        u32::try_from(areas.len()).ok()?;
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
            inverse: Coord {
                x: 1.0 / size.x,
                y: 1.0 / size.y,
            },
            cols,
            rows,
            nodes: Vec::with_capacity(cols * rows),
            // The empty leaf: no group.
            leaves: vec![0],
            shared: HashMap::new(),
            exact: Vec::new(),
            counts: Counts::default(),
            exact_always,
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
        for (index, prepared) in areas.iter().enumerate() {
            let area = u32::try_from(index).ok()?;
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
                            per_cell[r * cols + c].push(Item { area, part, edges });
                        }
                    }
                }
            }
        }
        grid.nodes.resize(cols * rows, 0);
        for (cell, items) in per_cell.into_iter().enumerate() {
            let rect = grid.top_rect(cell % cols, cell / cols, 0.0);
            grid.fill(cell, rect, 0, items, areas, margin)?;
        }
        grid.shared = HashMap::new();
        grid.nodes.shrink_to_fit();
        grid.leaves.shrink_to_fit();
        Some(grid)
    }

    /// The cell of `p`, clamped into the grid.
    fn cell_of(&self, p: Coord) -> (usize, usize) {
        // `as` truncates, which is `floor` at and above 0 (and NaN goes to 0).
        let c = ((p.x - self.min.x) * self.inverse.x).max(0.0) as usize;
        let r = ((p.y - self.min.y) * self.inverse.y).max(0.0) as usize;
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
    /// rectangle widened by `margin`, in the areas' order): a leaf, or four children. `None` if
    /// an index overflows.
    fn fill(
        &mut self,
        node: usize,
        rect: Rect,
        depth: u32,
        items: Vec<Item>,
        areas: &[&PreparedArea],
        margin: f64,
    ) -> Option<()> {
        // The most edges of one polygon: areas that share a boundary (several agencies'
        // copies of a district) keep their shared edges however small the cell.
        let most = items.iter().map(|i| i.edges.len()).max().unwrap_or(0);
        let centre = rect.center();
        // Halves stay far wider than the margin, so the cells stay apart.
        let splittable = rect.width().min(rect.height()) > margin * 1e3;
        if most > LEAF_EDGES && depth < MAX_DEPTH && splittable {
            let first = u32::try_from(self.nodes.len())
                .ok()
                .filter(|f| f & SPLIT == 0)?;
            self.nodes[node] = SPLIT | first;
            self.nodes.resize(first as usize + 4, 0);
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
                        || areas[item.area as usize].part_contains(item.part, quarter.center())
                    {
                        inner.push(Item { edges, ..*item });
                    }
                }
                self.fill(first as usize + k, quarter, depth + 1, inner, areas, margin)?;
            }
            return Some(());
        }
        self.counts.leaves += 1;
        let start = match items.as_slice() {
            [] => 0,
            // Most cells of areas that do not overlap: no word to read.
            [one] if one.edges.is_empty() && one.area < WHOLE => WHOLE | one.area,
            _ => self.leaf(rect, items, areas)?,
        };
        self.nodes[node] = start;
        Some(())
    }

    /// The first word of the leaf `rect` with `items` (some).
    fn leaf(&mut self, rect: Rect, items: Vec<Item>, areas: &[&PreparedArea]) -> Option<u32> {
        let centre = rect.center();
        Some(if items.iter().all(|i| i.edges.is_empty()) {
            self.whole_leaf(items.iter().map(|i| i.area).collect())?
        } else {
            let reference = reference_point(&rect, &items).filter(|_| !self.exact_always);
            if reference.is_some_and(|r| r != centre) {
                self.counts.moved_references += 1;
            }
            self.edge_leaf(reference, items, areas)?
        })
    }

    /// The first word of a leaf lying whole in `areas` (in order), shared by every such leaf.
    fn whole_leaf(&mut self, areas: Vec<u32>) -> Option<u32> {
        if let Some(start) = self.shared.get(&areas) {
            return Some(*start);
        }
        let start = self.next_leaf()?;
        let groups = areas.chunks(GROUP);
        self.leaves.push(groups.len() as u64);
        for group in groups {
            self.leaves.push(group.len() as u64);
            self.leaves.push(u64::MAX >> (GROUP - group.len()));
            self.push_pairs(group);
        }
        self.counts.entries += areas.len();
        self.shared.insert(areas, start);
        Some(start)
    }

    /// The first word of a leaf with `items` (some with edges), whose reference point is
    /// `reference` (`None`: answer with the prepared tests).
    fn edge_leaf(
        &mut self,
        reference: Option<Coord>,
        items: Vec<Item>,
        areas: &[&PreparedArea],
    ) -> Option<u32> {
        let start = self.next_leaf()?;
        let groups = items.len().div_ceil(GROUP) as u64;
        match reference {
            Some(r) => self
                .leaves
                .extend([groups | HAS_REFERENCE, r.x.to_bits(), r.y.to_bits()]),
            None => self.leaves.push(groups),
        }
        self.counts.entries += items.len();
        for group in items.chunks(GROUP) {
            let Some(r) = reference else {
                self.leaves.push(group.len() as u64 | EXACT);
                self.leaves.push(0);
                for item in group {
                    let at = u64::try_from(self.exact.len()).ok()?;
                    self.exact
                        .push((areas[item.area as usize].clone(), item.part));
                    self.leaves.push(u64::from(item.area) | at << 32);
                }
                continue;
            };
            let mut inside = 0u64;
            // Every edge with the entry it bounds, by key: an edge of several areas once.
            let mut keyed: Vec<([u64; 4], usize)> = Vec::new();
            for (bit, item) in group.iter().enumerate() {
                if item.edges.is_empty() || areas[item.area as usize].part_contains(item.part, r) {
                    inside |= 1 << bit;
                }
                keyed.extend(item.edges.iter().map(|e| (edge_key(*e), bit)));
            }
            keyed.sort_unstable();
            // Masks of the edges, an edge that one polygon has twice in two (their crossings
            // cancel out, as they do in the polygon).
            let mut edges: Vec<([u64; 4], u64)> = Vec::new();
            for (key, bit) in keyed {
                let from = edges
                    .iter()
                    .rposition(|(k, _)| *k != key)
                    .map_or(0, |i| i + 1);
                match edges[from..].iter_mut().find(|(_, m)| m & 1 << bit == 0) {
                    Some((_, mask)) => *mask |= 1 << bit,
                    None => edges.push((key, 1 << bit)),
                }
            }
            let narrow = group.len() <= NARROW;
            let mut words: Vec<u64> = Vec::new();
            for (mask, vertices) in chains(&edges) {
                let n = vertices.len() as u64;
                if narrow {
                    // No vertex count that reaches the mask's bits (a leaf's few edges).
                    (n < 1 << (64 - CHAIN_COUNT)).then_some(())?;
                    words.push(mask | n << CHAIN_COUNT);
                } else {
                    words.extend([mask, n]);
                }
                words.extend(vertices.into_iter().flatten());
            }
            let count = u64::try_from(words.len())
                .ok()
                .filter(|n| *n <= u32::MAX as u64)?;
            self.leaves.push(group.len() as u64 | count << 32);
            self.leaves.push(inside);
            let numbers: Vec<u32> = group.iter().map(|i| i.area).collect();
            self.push_pairs(&numbers);
            self.leaves.extend(words);
            self.counts.edges += edges.len();
        }
        Some(start)
    }

    /// Where the next leaf starts (`None` past what a node can point at).
    fn next_leaf(&self) -> Option<u32> {
        u32::try_from(self.leaves.len()).ok().filter(|s| *s < WHOLE)
    }

    /// Appends area numbers two to a word (the first in the low half).
    fn push_pairs(&mut self, numbers: &[u32]) {
        self.leaves.extend(
            numbers
                .chunks(2)
                .map(|p| u64::from(p[0]) | p.get(1).map_or(0, |n| u64::from(*n) << 32)),
        );
    }

    /// Calls `found` with the number of each area holding `point` (inside or on its boundary),
    /// once each, in increasing order. Nothing outside the grid.
    pub fn holding(&self, point: Point, mut found: impl FnMut(u32)) {
        let p = point.0;
        if !(p.x >= self.min.x && p.x <= self.max.x && p.y >= self.min.y && p.y <= self.max.y) {
            return;
        }
        let (c, r) = self.cell_of(p);
        let mut node = self.nodes[r * self.cols + c];
        if node & SPLIT != 0 {
            let mut rect = self.top_rect(c, r, 0.0);
            while node & SPLIT != 0 {
                let centre = rect.center();
                let k = usize::from(p.x >= centre.x) + 2 * usize::from(p.y >= centre.y);
                rect = quarter(rect, centre, k);
                node = self.nodes[(node & !SPLIT) as usize + k];
            }
        }
        if node & WHOLE != 0 {
            found(node & !WHOLE);
        } else {
            self.leaf_holding(node as usize, p, &mut found);
        }
    }

    /// [`AreaGrid::holding`] in the leaf starting at word `at` of `leaves`.
    fn leaf_holding(&self, at: usize, p: Coord, found: &mut impl FnMut(u32)) {
        let leaves = self.leaves.as_slice();
        let header = leaves[at];
        let mut i = at + 1;
        let reference = if header & HAS_REFERENCE != 0 {
            i += 2;
            Coord {
                x: f64::from_bits(leaves[at + 1]),
                y: f64::from_bits(leaves[at + 2]),
            }
        } else {
            p
        };
        // An area's polygons are side by side: report it once.
        let mut last = None;
        let mut report = |area: u32| {
            if last != Some(area) {
                last = Some(area);
                found(area);
            }
        };
        for _ in 0..header as u32 {
            let group = leaves[i];
            let n = (group & 0xff) as usize;
            if group & EXACT != 0 {
                for &entry in &leaves[i + 2..i + 2 + n] {
                    let (area, exact) = (entry as u32, (entry >> 32) as usize);
                    if self
                        .exact
                        .get(exact)
                        .is_some_and(|(a, part)| a.part_contains(*part, p))
                    {
                        report(area);
                    }
                }
                i += 2 + n;
                continue;
            }
            let words = (group >> 32) as usize;
            let numbers = &leaves[i + 2..i + 2 + n.div_ceil(2)];
            let from = i + 2 + numbers.len();
            let mut held = if words == 0 {
                leaves[i + 1]
            } else {
                group_holds(p, reference, leaves[i + 1], n, &leaves[from..from + words])
            };
            while held != 0 {
                let bit = held.trailing_zeros() as usize;
                held &= held - 1;
                report((numbers[bit / 2] >> (32 * (bit % 2))) as u32);
            }
            i = from + words;
        }
    }

    /// The grid's size.
    pub fn memory(&self) -> GridMemory {
        GridMemory {
            leaves: self.counts.leaves,
            entries: self.counts.entries,
            edges: self.counts.edges,
            bytes: self.nodes.capacity() * std::mem::size_of::<u32>()
                + self.leaves.capacity() * std::mem::size_of::<u64>()
                + self.exact.capacity() * std::mem::size_of::<(PreparedArea, usize)>(),
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

    /// The numbers of the areas the grid says hold `p`.
    fn grid_says(grid: &AreaGrid, p: Point) -> Vec<u32> {
        let mut out = Vec::new();
        grid.holding(p, |a| out.push(a));
        out
    }

    /// `edges` as a group's words, each its own chain bounding entry 0.
    fn one_entry(edges: &[Edge]) -> Vec<u64> {
        edges
            .iter()
            .flat_map(|(a, b)| {
                [
                    1 | 2 << CHAIN_COUNT,
                    a.x.to_bits(),
                    a.y.to_bits(),
                    b.x.to_bits(),
                    b.y.to_bits(),
                ]
            })
            .collect()
    }

    /// Whether `p` is in the polygon of `edges` (inside or on them), counting crossings from
    /// `reference` (on none of them), whose status is `reference_inside`.
    fn holds(p: Coord, reference: Coord, reference_inside: bool, edges: &[Edge]) -> bool {
        group_holds(
            p,
            reference,
            u64::from(reference_inside),
            1,
            &one_entry(edges),
        ) == 1
    }

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    #[test]
    fn a_square_holds_its_middle_and_edges_not_the_outside() {
        let square = MultiPolygon(vec![square(0., 0., 10., 10.)]);
        let prepared = PreparedArea::new(&square);
        let grid = AreaGrid::build(&[&prepared]).expect("a grid");
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
        let grid = AreaGrid::build(&[&pw, &pb]).expect("a grid");
        assert!(
            grid.counts.moved_references > 0,
            "centres on the block's edges"
        );
        for i in 0..=200 {
            for j in 0..=200 {
                let p = Point::new(f64::from(i) / 1000.0, f64::from(j) / 1000.0 + 0.03);
                let mut want = vec![0];
                if geo_says(&block, p) {
                    want.push(1);
                }
                assert_eq!(grid_says(&grid, p), want, "({}, {})", p.x(), p.y());
            }
        }
        for k in 10..=30 {
            let p = Point::new(c(f64::from(k)), c(20.));
            assert_eq!(grid_says(&grid, p), vec![0, 1], "on the edge at {k}");
        }
    }

    #[test]
    fn exact_entries_answer_with_the_prepared_test() {
        let area = MultiPolygon(vec![Polygon::new(
            square(0., 0., 4., 4.).exterior().clone(),
            vec![square(1., 1., 2., 2.).exterior().clone()],
        )]);
        let prepared = PreparedArea::new(&area);
        let grid = AreaGrid::build_inner(&[&prepared], true).expect("a grid");
        assert!(
            !grid.exact.is_empty(),
            "leaves answered by the prepared test"
        );
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

    /// More than a group's 64 areas over a leaf, with edges: 100 nested squares, each
    /// copied once (so every edge bounds two areas), every third with a hole; a lattice that
    /// lands on their edges and corners.
    #[test]
    fn a_hundred_areas_over_a_leaf_answer_as_geo() {
        let areas: Vec<MultiPolygon> = (0..100)
            .map(|i| {
                let k = f64::from(i / 2) * 0.01;
                let (x1, y1) = (1.0 - k / 2.0, 1.0 - k / 3.0);
                let holes = if i % 3 == 0 {
                    // Off-centre, well inside the square.
                    let (cx, cy, s) = ((k + x1) / 2.0, (k + y1) / 2.0, (x1 - k) / 5.0);
                    vec![square(cx - s, cy - s, cx + s / 2.0, cy + s / 2.0)
                        .exterior()
                        .clone()]
                } else {
                    vec![]
                };
                let outer = square(k, k, x1, y1);
                MultiPolygon(vec![Polygon::new(outer.exterior().clone(), holes)])
            })
            .collect();
        let prepared: Vec<PreparedArea> = areas.iter().map(PreparedArea::new).collect();
        let refs: Vec<&PreparedArea> = prepared.iter().collect();
        let grid = AreaGrid::build(&refs).expect("a grid");
        let mut checked = 0;
        for i in 0..=200 {
            for j in 0..=200 {
                let p = Point::new(f64::from(i) / 200.0, f64::from(j) / 200.0);
                let want: Vec<u32> = (0..100u32)
                    .filter(|a| geo_says(&areas[*a as usize], p))
                    .collect();
                checked += usize::from(want.len() > GROUP);
                assert_eq!(grid_says(&grid, p), want, "({}, {})", p.x(), p.y());
            }
        }
        assert!(
            checked > 1000,
            "{checked} points in more than {GROUP} areas"
        );
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
        /// Chains hold every edge exactly once, with its mask, end to end: edges on a small
        /// lattice (so many share ends, some twice, some of no length) under a few masks.
        #[test]
        fn chains_hold_every_edge_once(
            edges in prop::collection::vec(((0u8..4, 0u8..4), (0u8..4, 0u8..4), 1u64..4), 0..40),
        ) {
            let c = |(x, y): (u8, u8)| [f64::from(x).to_bits(), f64::from(y).to_bits()];
            let keyed: Vec<([u64; 4], u64)> = edges
                .iter()
                .map(|(a, b, m)| {
                    let (a, b) = (c(*a), c(*b));
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    ([lo[0], lo[1], hi[0], hi[1]], *m)
                })
                .collect();
            let mut want: Vec<([u64; 4], u64)> = keyed.clone();
            want.sort_unstable();
            let mut got: Vec<([u64; 4], u64)> = Vec::new();
            for (mask, vertices) in chains(&keyed) {
                prop_assert!(vertices.len() >= 2);
                for w in vertices.windows(2) {
                    let (lo, hi) = if w[0] <= w[1] { (w[0], w[1]) } else { (w[1], w[0]) };
                    got.push(([lo[0], lo[1], hi[0], hi[1]], mask));
                }
            }
            got.sort_unstable();
            prop_assert_eq!(got, want);
        }
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
            let grid = AreaGrid::build(&[&p1, &p2]).expect("a grid");
            for p in probes(&grid, &two, &points) {
                prop_assert_eq!(p1.contains(p), geo_says(&one, p));
                let mut want = Vec::new();
                if p1.contains(p) {
                    want.push(0);
                }
                if p2.contains(p) {
                    want.push(1);
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
            let grid = AreaGrid::build(&[&prepared]).expect("a grid");
            let scaled: Vec<(f64, f64)> = points.iter().map(|(x, y)| (25.5 + x * scale, 45.6 + y * scale)).collect();
            for p in probes(&grid, &area, &scaled) {
                prop_assert_eq!(!grid_says(&grid, p).is_empty(), geo_says(&area, p), "at ({}, {})", p.x(), p.y());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Many areas at once, as `geo` answers each: up to 90 irregular polygons piled over
        /// each other (so leaves hold more than a group of 64), some with a hole, some copies
        /// of the area before (every edge shared), some the area before's hole filled (its
        /// edges shared, the other way round), some of two polygons apart; probed at random, at
        /// vertices and midpoints of edges, a hair off them on every side, and in holes.
        #[test]
        fn agrees_with_geo_over_many_areas(
            shapes in prop::collection::vec(
                (
                    (-0.6f64..0.6, -0.6f64..0.6),
                    prop::collection::vec(0.2f64..1.0, 3..40),
                    prop::option::of(prop::collection::vec(0.02f64..0.15, 3..8)),
                    0u8..6,
                ),
                1..90,
            ),
            points in prop::collection::vec((-1.7f64..4.7, -1.7f64..1.7), 200),
        ) {
            let mut areas: Vec<MultiPolygon> = Vec::new();
            for ((cx, cy), radii, hole, kind) in &shapes {
                let previous = areas.last().cloned();
                let area = match (kind, previous) {
                    (0, Some(p)) => p,
                    (1, Some(p)) if !p.0[0].interiors().is_empty() => {
                        MultiPolygon(vec![Polygon::new(p.0[0].interiors()[0].clone(), vec![])])
                    }
                    _ => {
                        // Inside every edge of the star: its nearest vertex's distance, times
                        // the cosine of half the angle between vertices, bounds them all.
                        let n = radii.len() as f64;
                        let fit = radii.iter().fold(1.0f64, |m, r| m.min(*r))
                            * (std::f64::consts::PI / n).cos()
                            / 0.2;
                        let holes = hole
                            .iter()
                            .map(|h| star(*cx, *cy, &h.iter().map(|r| r * fit).collect::<Vec<_>>()))
                            .collect();
                        let mut parts = vec![Polygon::new(star(*cx, *cy, radii), holes)];
                        if *kind == 2 {
                            // Apart from the first (geo counts overlapping parts oddly).
                            parts.push(Polygon::new(star(cx + 3.0, *cy, &radii[..3]), vec![]));
                        }
                        MultiPolygon(parts)
                    }
                };
                areas.push(area);
            }
            let prepared: Vec<PreparedArea> = areas.iter().map(PreparedArea::new).collect();
            let refs: Vec<&PreparedArea> = prepared.iter().collect();
            let grid = AreaGrid::build(&refs).expect("a grid");
            let mut probes: Vec<Point> = points.iter().map(|(x, y)| Point::new(*x, *y)).collect();
            for ((cx, cy), ..) in &shapes {
                probes.push(Point::new(*cx, *cy));
            }
            for area in &areas {
                for polygon in area.iter() {
                    for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                        for line in ring.lines().step_by(7) {
                            let (a, b) = (line.start, line.end);
                            let mid = Coord { x: (a.x + b.x) / 2.0, y: (a.y + b.y) / 2.0 };
                            probes.push(Point(a));
                            probes.push(Point(mid));
                            for d in [1e-12, 1e-9] {
                                for (dx, dy) in [(d, 0.), (-d, 0.), (0., d), (0., -d)] {
                                    probes.push(Point::new(a.x + dx, a.y + dy));
                                }
                                // Off the edge's midpoint, across it.
                                let (nx, ny) = (a.y - b.y, b.x - a.x);
                                probes.push(Point::new(mid.x + nx * d, mid.y + ny * d));
                                probes.push(Point::new(mid.x - nx * d, mid.y - ny * d));
                            }
                        }
                    }
                }
            }
            for p in probes {
                let want: Vec<u32> = (0..areas.len() as u32)
                    .filter(|a| geo_says(&areas[*a as usize], p))
                    .collect();
                prop_assert_eq!(grid_says(&grid, p), want, "at ({}, {})", p.x(), p.y());
            }
        }
    }
}

//! A uniform grid over the city's areas that answers most point-in-area questions without a
//! single edge test.
//!
//! Each cell lists the areas that reach it, marked *inside* (the whole cell lies in the area)
//! or *boundary* (an edge of the area may cross the cell: the point needs the exact test). A
//! point finds its cell by two divisions; in a city of 1 000 detailed polygons, most points fall
//! in a cell that one area covers whole.
//!
//! Invariant: a cell is marked inside only when no edge of the area reaches the cell's closed
//! rectangle and the cell's centre is inside the area, so every point of that cell is inside; a
//! cell an edge may reach is a boundary cell. Points map to cells by `floor`, clamped at the far
//! edges, in building and in lookups alike.

use geo::{BoundingRect, Coord, MultiPolygon, Point, Rect};

use crate::pip::PreparedArea;

/// Cells aimed at (fewer for a small extent): a few hundred kilobytes of offsets.
const CELLS: f64 = 65_536.0;

/// One area reaching a cell: `(owner, area, inside)`, as [`AreaGrid::entries`] returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridEntry {
    /// The owner's index (e.g. the agency's).
    pub owner: u32,
    /// The area's index within its owner.
    pub area: u32,
    /// The whole cell lies in the area: no exact test needed.
    pub inside: bool,
}

/// The grid.
#[derive(Debug, Clone)]
pub struct AreaGrid {
    min: Coord,
    /// The extent's far corner, as given (not recomputed from the cells: rounding).
    max: Coord,
    /// Cell width and height, degrees.
    size: Coord,
    cols: usize,
    rows: usize,
    /// `starts[c]..starts[c + 1]` indexes `entries` for cell `c` (row-major).
    starts: Vec<u32>,
    entries: Vec<GridEntry>,
}

/// An area to put in the grid: its owner's index, its index, its geometry and its prepared form.
pub type GridArea<'a> = (usize, usize, &'a MultiPolygon, &'a PreparedArea);

impl AreaGrid {
    /// A grid over the extent of `areas`. `None` when there is nothing to index.
    pub fn build(areas: &[GridArea<'_>]) -> Option<Self> {
        let extent = areas
            .iter()
            .filter_map(|(_, _, g, _)| g.bounding_rect())
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
        let mut grid = AreaGrid {
            min: extent.min(),
            max: extent.max(),
            size: Coord {
                x: w / cols as f64,
                y: h / rows as f64,
            },
            cols,
            rows,
            starts: Vec::new(),
            entries: Vec::new(),
        };
        let mut per_cell: Vec<Vec<GridEntry>> = vec![Vec::new(); cols * rows];
        for (owner, area, geometry, prepared) in areas {
            let Some(rect) = geometry.bounding_rect() else {
                continue;
            };
            let (c0, r0) = grid.cell_of(rect.min());
            let (c1, r1) = grid.cell_of(rect.max());
            let width = c1 - c0 + 1;
            // Cells an edge may reach: every cell its bounding rectangle overlaps.
            let mut boundary = vec![false; width * (r1 - r0 + 1)];
            for polygon in geometry.iter() {
                for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                    for line in ring.lines() {
                        let lo = Coord {
                            x: line.start.x.min(line.end.x),
                            y: line.start.y.min(line.end.y),
                        };
                        let hi = Coord {
                            x: line.start.x.max(line.end.x),
                            y: line.start.y.max(line.end.y),
                        };
                        let (a0, b0) = grid.cell_of(lo);
                        let (a1, b1) = grid.cell_of(hi);
                        // One cell further on each side: an edge on a cell's border reaches
                        // the neighbour's closed rectangle too.
                        for r in b0.saturating_sub(1).max(r0)..=(b1 + 1).min(r1) {
                            for c in a0.saturating_sub(1).max(c0)..=(a1 + 1).min(c1) {
                                boundary[(r - r0) * width + (c - c0)] = true;
                            }
                        }
                    }
                }
            }
            for r in r0..=r1 {
                for c in c0..=c1 {
                    let inside = if boundary[(r - r0) * width + (c - c0)] {
                        false
                    } else if prepared.contains(grid.centre(c, r)) {
                        true
                    } else {
                        continue;
                    };
                    per_cell[r * cols + c].push(GridEntry {
                        owner: *owner as u32,
                        area: *area as u32,
                        inside,
                    });
                }
            }
        }
        grid.starts.reserve(per_cell.len() + 1);
        for cell in per_cell {
            grid.starts.push(grid.entries.len() as u32);
            grid.entries.extend(cell);
        }
        grid.starts.push(grid.entries.len() as u32);
        Some(grid)
    }

    /// The cell of `p`, clamped into the grid.
    fn cell_of(&self, p: Coord) -> (usize, usize) {
        let c = ((p.x - self.min.x) / self.size.x).floor();
        let r = ((p.y - self.min.y) / self.size.y).floor();
        (
            (c.max(0.0) as usize).min(self.cols - 1),
            (r.max(0.0) as usize).min(self.rows - 1),
        )
    }

    fn centre(&self, c: usize, r: usize) -> Point {
        Point::new(
            self.min.x + (c as f64 + 0.5) * self.size.x,
            self.min.y + (r as f64 + 0.5) * self.size.y,
        )
    }

    /// The areas that reach `point`'s cell; empty outside the grid.
    pub fn entries(&self, point: Point) -> &[GridEntry] {
        let (x, y) = (point.x(), point.y());
        if !(x >= self.min.x && x <= self.max.x && y >= self.min.y && y <= self.max.y) {
            return &[];
        }
        let (c, r) = self.cell_of(point.0);
        let cell = r * self.cols + c;
        &self.entries[self.starts[cell] as usize..self.starts[cell + 1] as usize]
    }

    /// Entries stored (for memory figures).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no area reaches any cell.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pip::tests::star;
    use geo::{polygon, Polygon};
    use proptest::prelude::*;

    /// Whether the grid, with the exact test on boundary cells only, puts `p` in the area.
    fn grid_says(grid: &AreaGrid, prepared: &PreparedArea, p: Point) -> bool {
        grid.entries(p)
            .iter()
            .any(|e| e.inside || prepared.contains(p))
    }

    #[test]
    fn a_square_is_inside_in_its_middle_and_boundary_at_its_edges() {
        let square = MultiPolygon(vec![
            polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
        ]);
        let prepared = PreparedArea::new(&square);
        let grid = AreaGrid::build(&[(0, 0, &square, &prepared)]).expect("a grid");
        assert!(grid.entries(Point::new(5., 5.))[0].inside);
        assert!(!grid.entries(Point::new(0.01, 5.))[0].inside);
        assert!(grid.entries(Point::new(11., 5.)).is_empty());
        assert!(grid_says(&grid, &prepared, Point::new(10., 10.)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The grid with exact tests on boundary cells answers as the exact test everywhere,
        /// also on cell borders and at vertices.
        #[test]
        fn agrees_with_the_exact_test(
            radii in prop::collection::vec(0.2f64..1.0, 3..200),
            hole in prop::collection::vec(0.02f64..0.15, 3..12),
            points in prop::collection::vec((-1.2f64..1.2, -1.2f64..1.2), 200),
        ) {
            let area = MultiPolygon(vec![Polygon::new(star(0., 0., &radii), vec![star(0., 0., &hole)])]);
            let prepared = PreparedArea::new(&area);
            let grid = AreaGrid::build(&[(0, 0, &area, &prepared)]).expect("a grid");
            let mut probes: Vec<Point> = points.iter().map(|(x, y)| Point::new(*x, *y)).collect();
            probes.extend(area.0[0].exterior().coords().map(|c| Point(*c)));
            // Cell corners and borders, where `floor` decides the cell.
            for i in 0..50 {
                let c = grid.centre(i * 7 % grid.cols, i * 13 % grid.rows);
                probes.push(Point::new(c.x() - grid.size.x / 2.0, c.y() - grid.size.y / 2.0));
                probes.push(Point::new(c.x() - grid.size.x / 2.0, c.y()));
            }
            for p in probes {
                prop_assert_eq!(grid_says(&grid, &prepared, p), prepared.contains(p), "at ({}, {})", p.x(), p.y());
            }
        }
    }
}

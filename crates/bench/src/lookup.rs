//! Jurisdiction lookup: points/s of `CityIndex::jurisdictions` on one thread (every area
//! holding the point whose agency handles the point's category, the areas' ids in hand), against
//! a PostGIS `ST_Contains` join of the same points and polygons answering the same question
//! (GiST indexes; an area counts for a point when its agency handles the point's category) on
//! one connection without parallel workers (`max_parallel_workers_per_gather = 0`), in the same
//! run: both on one core, and both counted per CPU second of the thread or backend that did the
//! work (`schedstat`), so a machine shared with other work changes neither side's figure much.
//! The row fails unless both sides found the same number of (point, area) pairs. The whole
//! routing decision (`CityIndex::route`: ranked, an agency once, the agencies informed, owned
//! ids) is measured on the same points too, and reported beside it with its own ratio.
//!
//! Two data sets: Brașov's jurisdiction areas (every area of every agency), with points inside the
//! municipality; and 1 000 synthetic 200-vertex polygons tiling the city's bounds (a 40 × 25 grid
//! whose shared edges zigzag, so the tiling has no gaps), with points over the bounds.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use geo::{Coord, Intersects, LineString, MultiPolygon, Point, Polygon};
use model::{Agency, Area, CategoryId, City, CityIndex, Contact, Localized, RoutingRule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sqlx::Connection;

use crate::report::{cpu_seconds, Row, Target};
use crate::services::PgDatabase;

/// The target: at least this many times PostGIS's points/s, per core.
const TARGET: f64 = 20.0;
/// Columns and rows of the synthetic tiling (1 000 polygons).
const GRID: (usize, usize) = (40, 25);
/// Segments per polygon edge (4 × 50 = 200 vertices).
const SEGMENTS: usize = 50;

/// Points of a run, normal and quick.
fn points_count(quick: bool) -> usize {
    if quick {
        5_000
    } else {
        100_000
    }
}

/// CPU seconds our lookups are repeated over the points, at least, normal and quick.
fn seconds(quick: bool) -> f64 {
    if quick {
        0.3
    } else {
        3.0
    }
}

/// SplitMix64 of `x`, as a number in [-1, 1].
fn wobble(x: u64) -> f64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// 1 000 polygons of 200 vertices tiling `city`'s bounds: a grid whose edges zigzag by up to
/// 0.3 of a segment's length across the edge (so neighbours share each edge exactly and no edge
/// crosses another), in one agency that handles every category, which is also the fallback.
fn tiled_city(mut city: City) -> City {
    let b = city.bounds;
    let (cols, rows) = GRID;
    let dx = b.width() / cols as f64;
    let dy = b.height() / rows as f64;
    // Sample `g` along an axis (SEGMENTS per cell): the same expression for a corner whichever
    // edge it ends, so neighbours share it to the bit.
    let x_at = |g: usize| b.min().x + g as f64 * dx / SEGMENTS as f64;
    let y_at = |g: usize| b.min().y + g as f64 * dy / SEGMENTS as f64;
    // Vertical line `c` at sample `g` from the bottom; horizontal line `r` at sample `g` from the
    // left. Corners stay put; the others zigzag across the edge.
    let vertical = |c: usize, g: usize| -> Coord {
        let amp = if g % SEGMENTS == 0 {
            0.0
        } else {
            0.3 * dy / SEGMENTS as f64
        };
        Coord {
            x: x_at(c * SEGMENTS) + amp * wobble((c * 1_000_003 + g) as u64),
            y: y_at(g),
        }
    };
    let horizontal = |r: usize, g: usize| -> Coord {
        let amp = if g % SEGMENTS == 0 {
            0.0
        } else {
            0.3 * dx / SEGMENTS as f64
        };
        Coord {
            x: x_at(g),
            y: y_at(r * SEGMENTS) + amp * wobble((1 << 40) + (r * 1_000_003 + g) as u64),
        }
    };
    let mut areas = Vec::with_capacity(cols * rows);
    for r in 0..rows {
        for c in 0..cols {
            let mut ring = Vec::with_capacity(4 * SEGMENTS + 1);
            ring.extend((0..SEGMENTS).map(|k| horizontal(r, c * SEGMENTS + k)));
            ring.extend((0..SEGMENTS).map(|k| vertical(c + 1, r * SEGMENTS + k)));
            ring.extend((0..SEGMENTS).map(|k| horizontal(r + 1, (c + 1) * SEGMENTS - k)));
            ring.extend((0..SEGMENTS).map(|k| vertical(c, (r + 1) * SEGMENTS - k)));
            ring.push(ring[0]);
            areas.push(Area {
                id: model::AreaId::new(format!("grid-{c}-{r}")),
                name: format!("grid {c} {r}"),
                geometry: MultiPolygon(vec![Polygon::new(LineString(ring), vec![])]),
            });
        }
    }
    let agency = Agency {
        id: model::AgencyId::new("bench-grid"),
        kind: "roads".into(),
        name: Localized {
            ro: "grilă".into(),
            en: "grid".into(),
        },
        categories: city.categories.iter().map(|c| c.id.clone()).collect(),
        priority: 1,
        contact: Contact::default(),
        areas,
    };
    city.fallback_agency = agency.id.clone();
    city.agencies = vec![agency];
    city
}

/// `n` seeded points uniformly over the city's bounds; only inside its boundary if `inside`.
fn points(city: &City, n: usize, inside: bool) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let b = city.bounds;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = Point::new(
            rng.gen_range(b.min().x..b.max().x),
            rng.gen_range(b.min().y..b.max().y),
        );
        if !inside || city.boundary.intersects(&p) {
            out.push(p);
        }
    }
    out
}

/// `geometry` as WKT.
fn wkt(geometry: &MultiPolygon) -> String {
    let ring = |l: &LineString| {
        let coords: Vec<String> = l.0.iter().map(|c| format!("{} {}", c.x, c.y)).collect();
        format!("({})", coords.join(", "))
    };
    let polys: Vec<String> = geometry
        .0
        .iter()
        .map(|p| {
            let rings: Vec<String> = std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(ring)
                .collect();
            format!("({})", rings.join(", "))
        })
        .collect();
    format!("MULTIPOLYGON({})", polys.join(", "))
}

/// Points per CPU second of `f` over `points` (each with its index) on this thread, repeated for
/// at least `seconds` of CPU time, and points per wall second.
fn per_cpu_second(
    points: &[Point],
    seconds: f64,
    mut f: impl FnMut(usize, Point),
) -> Result<(f64, f64, u64)> {
    let started = Instant::now();
    let cpu_started = cpu_seconds("/proc/thread-self")?;
    let mut done = 0u64;
    let cpu = loop {
        for (i, p) in points.iter().enumerate() {
            f(i, *p);
        }
        done += points.len() as u64;
        let cpu = cpu_seconds("/proc/thread-self")? - cpu_started;
        if cpu >= seconds {
            break cpu;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    Ok((done as f64 / cpu, done as f64 / wall, done))
}

/// Our side: `jurisdictions`, then `route`, over `points` (categories in turn) on one thread,
/// each repeated for at least `seconds` of CPU time.
fn ours(city: City, points: Arc<Vec<Point>>, seconds: f64) -> Result<Ours> {
    let categories: Vec<CategoryId> = city.categories.iter().map(|c| c.id.clone()).collect();
    let built = Instant::now();
    let index = CityIndex::new(city);
    let build_seconds = built.elapsed().as_secs_f64();
    let matched = points
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            index
                .route(&categories[i % categories.len()], **p)
                .chosen
                .rule
                == RoutingRule::Jurisdiction
        })
        .count();
    let pairs: usize = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            index
                .jurisdictions(&categories[i % categories.len()], *p)
                .count()
        })
        .sum();
    let (per_cpu_s, per_wall_s, looked_up) = per_cpu_second(&points, seconds, |i, p| {
        for pair in index.jurisdictions(&categories[i % categories.len()], p) {
            std::hint::black_box(pair);
        }
    })?;
    let (route_per_cpu_s, _, routed) = per_cpu_second(&points, seconds, |i, p| {
        std::hint::black_box(index.route(&categories[i % categories.len()], p));
    })?;
    Ok(Ours {
        per_cpu_s,
        per_wall_s,
        pairs,
        looked_up,
        route_per_cpu_s,
        matched,
        routed,
        build_seconds,
        grid: index.grid_memory(),
    })
}

/// What [`ours`] measured.
struct Ours {
    /// Points looked up per CPU second of the thread.
    per_cpu_s: f64,
    /// Points looked up per wall second.
    per_wall_s: f64,
    /// (point, area) pairs of one pass of lookups.
    pairs: usize,
    /// Points looked up.
    looked_up: u64,
    /// Points routed per CPU second of the thread.
    route_per_cpu_s: f64,
    /// Points of one pass that found a jurisdiction.
    matched: usize,
    /// Points routed.
    routed: u64,
    /// Wall seconds `CityIndex::new` took.
    build_seconds: f64,
    /// The jurisdictions' grid's size.
    grid: Option<model::grid::GridMemory>,
}

/// An area and the categories its agency handles.
type AreaOf<'a> = (&'a MultiPolygon, Vec<String>);

/// PostGIS's side: points per CPU second of its backend (`/proc/{pid}/schedstat`; the server
/// shares this machine's process ids) and per wall second of the `ST_Contains` join (an area counts for a point when its
/// agency handles the point's category, as in `route`), and the pairs it found.
async fn postgis(
    pg_url: &str,
    areas: &[AreaOf<'_>],
    points: &[Point],
    categories: &[String],
) -> Result<(f64, f64, i64)> {
    let db = PgDatabase::create(pg_url).await?;
    let out = async {
        let mut conn = sqlx::PgConnection::connect(&db.url).await?;
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS postgis")
            .execute(&mut conn)
            .await
            .context(
                "PostGIS is not installed on the PostgreSQL server: run `scripts/timescaledb.sh \
                 start` (it installs postgresql-17-postgis-3 into its root)",
            )?;
        sqlx::raw_sql(
            "CREATE TABLE areas (id int PRIMARY KEY, categories text[] NOT NULL,
                                 geom geometry(MultiPolygon, 4326) NOT NULL);
             CREATE TABLE points (id int PRIMARY KEY, category text NOT NULL,
                                  geom geometry(Point, 4326) NOT NULL);",
        )
        .execute(&mut conn)
        .await?;
        let ids: Vec<i32> = (0..areas.len() as i32).collect();
        let wkts: Vec<String> = areas.iter().map(|(a, _)| wkt(a)).collect();
        // Arrays of arrays must be rectangular: the categories travel as one string each.
        let cats: Vec<String> = areas.iter().map(|(_, c)| c.join(",")).collect();
        sqlx::query(
            "INSERT INTO areas SELECT i, string_to_array(c, ','), ST_GeomFromText(w, 4326) \
             FROM unnest($1::int[], $2::text[], $3::text[]) AS t(i, c, w)",
        )
        .bind(&ids)
        .bind(&cats)
        .bind(&wkts)
        .execute(&mut conn)
        .await?;
        let ids: Vec<i32> = (0..points.len() as i32).collect();
        let xs: Vec<f64> = points.iter().map(|p| p.x()).collect();
        let ys: Vec<f64> = points.iter().map(|p| p.y()).collect();
        let cats: Vec<&str> = (0..points.len())
            .map(|i| categories[i % categories.len()].as_str())
            .collect();
        sqlx::query(
            "INSERT INTO points SELECT i, c, ST_SetSRID(ST_MakePoint(x, y), 4326) \
             FROM unnest($1::int[], $2::text[], $3::float8[], $4::float8[]) AS t(i, c, x, y)",
        )
        .bind(&ids)
        .bind(&cats)
        .bind(&xs)
        .bind(&ys)
        .execute(&mut conn)
        .await?;
        sqlx::raw_sql(
            "CREATE INDEX areas_geom ON areas USING gist (geom);
             CREATE INDEX points_geom ON points USING gist (geom);
             ANALYZE areas; ANALYZE points;
             SET max_parallel_workers_per_gather = 0;",
        )
        .execute(&mut conn)
        .await?;
        // The category test only where it changes the answer (it costs PostGIS about 40 %).
        let every = areas
            .iter()
            .all(|(_, c)| categories.iter().all(|k| c.contains(k)));
        let join = if every {
            "SELECT count(*) FROM points p JOIN areas a ON ST_Contains(a.geom, p.geom)"
        } else {
            "SELECT count(*) FROM points p JOIN areas a \
             ON ST_Contains(a.geom, p.geom) AND p.category = ANY (a.categories)"
        };
        // A warm-up (caches, plan), then the measurement.
        let pairs: i64 = sqlx::query_scalar(join).fetch_one(&mut conn).await?;
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        let proc = format!("/proc/{backend}");
        let started = Instant::now();
        let cpu_started = cpu_seconds(&proc)
            .context("the PostgreSQL server must run on this machine (its backend's CPU time)")?;
        let again: i64 = sqlx::query_scalar(join).fetch_one(&mut conn).await?;
        let cpu = cpu_seconds(&proc)? - cpu_started;
        let wall = points.len() as f64 / started.elapsed().as_secs_f64();
        anyhow::ensure!(pairs == again, "the join found {pairs}, then {again} pairs");
        conn.close().await?;
        Ok((points.len() as f64 / cpu, wall, pairs))
    }
    .await;
    db.drop_database().await?;
    out
}

/// One lookup row.
async fn row(
    id: &str,
    setup: String,
    city: City,
    inside: bool,
    pg_url: &str,
    quick: bool,
) -> Result<Row> {
    let pts = Arc::new(points(&city, points_count(quick), inside));
    let areas: Vec<AreaOf> = city
        .agencies
        .iter()
        .flat_map(|a| {
            let cats: Vec<String> = a.categories.iter().map(|c| c.as_str().to_owned()).collect();
            a.areas.iter().map(move |r| (&r.geometry, cats.clone()))
        })
        .collect();
    let vertices: usize = areas
        .iter()
        .map(|(a, _)| a.0.iter().map(|p| p.exterior().0.len()).sum::<usize>())
        .sum();
    let categories: Vec<String> = city
        .categories
        .iter()
        .map(|c| c.id.as_str().to_owned())
        .collect();
    let (limit, limit_wall, pairs) = postgis(pg_url, &areas, &pts, &categories)
        .await
        .context("PostGIS ST_Contains join (the limit)")?;
    let n_areas = areas.len();
    let seconds = seconds(quick);
    let ours_pts = pts.clone();
    let ours = tokio::task::spawn_blocking(move || ours(city, ours_pts, seconds)).await??;
    // The same answer on both sides (ST_Contains leaves out a point on an area's boundary,
    // where ours counts it in: random points never land there).
    anyhow::ensure!(
        i64::try_from(ours.pairs).ok() == Some(pairs),
        "the lookups found {} (point, area) pairs, PostGIS {pairs}",
        ours.pairs
    );
    Ok(Row::new(
        id,
        "jurisdiction lookup",
        setup,
        (ours.per_cpu_s, "points/s/core"),
        Some((limit, "PostGIS ST_Contains join, 1 core")),
        Target::RatioAtLeast { ratio: TARGET },
        quick,
        json!({
            "areas": n_areas,
            "vertices": vertices,
            "points": pts.len(),
            "looked_up": ours.looked_up,
            "pairs": ours.pairs,
            "route_points_per_cpu_s": ours.route_per_cpu_s,
            "route_ratio": ours.route_per_cpu_s / limit,
            "routed": ours.routed,
            "points_with_jurisdiction": ours.matched,
            "postgis_pairs": pairs,
            "points_per_wall_s": ours.per_wall_s,
            "index_build_s": ours.build_seconds,
            "grid_bytes": ours.grid.map(|g| g.bytes),
            "grid_leaves": ours.grid.map(|g| g.leaves),
            "grid_entries": ours.grid.map(|g| g.entries),
            "grid_edges": ours.grid.map(|g| g.edges),
            "postgis_points_per_wall_s": limit_wall,
            "measured_as": "CityIndex::jurisdictions on one thread, categories in turn (every area holding the point whose agency handles its category, as (agency id, area id), the same pairs as PostGIS's, checked); points / CPU seconds of that thread (/proc/thread-self/schedstat). route_points_per_cpu_s: CityIndex::route (the whole routing decision) on the same points, the same way",
            "limit_as": "SELECT count(*) FROM points p JOIN areas a ON ST_Contains(a.geom, p.geom) AND p.category = ANY (a.categories) (the category test left out where every agency handles every category): the areas of agencies handling each point's category, as route asks; GiST indexes, one connection, max_parallel_workers_per_gather = 0, second run timed; points / CPU seconds of the backend (/proc/{pid}/schedstat)",
        }),
    ))
}

/// Brașov's areas.
pub async fn brasov(city: &City, pg_url: &str, quick: bool) -> Result<Row> {
    let n: usize = city.agencies.iter().map(|a| a.areas.len()).sum();
    row(
        "lookup-brasov",
        format!("Brașov, {n} areas"),
        city.clone(),
        true,
        pg_url,
        quick,
    )
    .await
}

/// 1 000 synthetic 200-vertex polygons.
pub async fn polygons(city: &City, pg_url: &str, quick: bool) -> Result<Row> {
    row(
        "lookup-polygons",
        format!("{} polygons × {} vertices", GRID.0 * GRID.1, 4 * SEGMENTS),
        tiled_city(city.clone()),
        false,
        pg_url,
        quick,
    )
    .await
}

#[cfg(test)]
mod tests {
    //! `CityIndex::route` against a brute-force reference (every area of every agency tested with
    //! `geo`, polygon by polygon, inside or on the boundary), over the data sets the rows measure.

    use super::*;
    use geo::coordinate_position::CoordPos;
    use geo::{Area as _, BoundingRect, CoordinatePosition};
    use model::{InformRule, InformTarget, Informed, RouteCandidate, RoutingDecision};

    /// Each polygon's bounding rectangle, per agency and area (the reference's only shortcut).
    type Boxes = Vec<Vec<Vec<Option<geo::Rect>>>>;

    fn boxes(city: &City) -> Boxes {
        city.agencies
            .iter()
            .map(|a| {
                a.areas
                    .iter()
                    .map(|r| r.geometry.iter().map(|p| p.bounding_rect()).collect())
                    .collect()
            })
            .collect()
    }

    /// Whether `area` holds `p`: inside or on the boundary of one of its polygons.
    fn holds(area: &MultiPolygon, boxes: &[Option<geo::Rect>], p: Point) -> bool {
        area.iter().zip(boxes).any(|(polygon, rect)| {
            rect.is_some_and(|r| r.intersects(&p))
                && polygon.coordinate_position(&p.0) != CoordPos::Outside
        })
    }

    /// Of the agencies `wanted` accepts, the best area of each holding `p` (smallest, then
    /// first), ranked by priority, area size, agency id: (agency index, area index).
    fn ranked(
        city: &City,
        boxes: &Boxes,
        p: Point,
        wanted: impl Fn(&Agency) -> bool,
    ) -> Vec<(usize, usize)> {
        let mut found: Vec<(i32, f64, usize, usize)> = Vec::new();
        for (ai, agency) in city.agencies.iter().enumerate() {
            if !wanted(agency) {
                continue;
            }
            let best = agency
                .areas
                .iter()
                .enumerate()
                .filter(|(ri, a)| holds(&a.geometry, &boxes[ai][*ri], p))
                .map(|(ri, a)| (a.geometry.unsigned_area(), ri))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if let Some((size, ri)) = best {
                found.push((agency.priority, size, ai, ri));
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then_with(|| city.agencies[a.2].id.cmp(&city.agencies[b.2].id))
        });
        found.into_iter().map(|(_, _, ai, ri)| (ai, ri)).collect()
    }

    fn reference(city: &City, boxes: &Boxes, category: &CategoryId, p: Point) -> RoutingDecision {
        let candidate = |(ai, ri): (usize, usize)| RouteCandidate {
            agency: city.agencies[ai].id.clone(),
            rule: RoutingRule::Jurisdiction,
            area: Some(city.agencies[ai].areas[ri].id.clone()),
        };
        let mut order = ranked(city, boxes, p, |a| a.handles(category))
            .into_iter()
            .map(candidate);
        let (chosen, alternatives) = match order.next() {
            Some(chosen) => (chosen, order.collect()),
            None => (
                RouteCandidate {
                    agency: city.fallback_agency.clone(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                Vec::new(),
            ),
        };
        let mut informed: Vec<Informed> = Vec::new();
        for target in city
            .category(category.as_str())
            .map_or(&[][..], |c| &c.inform)
        {
            let found = match target {
                InformTarget::Agency(agency) => Some(Informed {
                    agency: agency.clone(),
                    rule: InformRule::CategoryAgency,
                    area: None,
                }),
                InformTarget::Kind(kind) => ranked(city, boxes, p, |a| a.kind == *kind)
                    .first()
                    .map(|&(ai, ri)| Informed {
                        agency: city.agencies[ai].id.clone(),
                        rule: InformRule::CategoryKind,
                        area: Some(city.agencies[ai].areas[ri].id.clone()),
                    }),
            };
            if let Some(i) = found {
                if i.agency != chosen.agency && !informed.iter().any(|o| o.agency == i.agency) {
                    informed.push(i);
                }
            }
        }
        RoutingDecision {
            chosen,
            alternatives,
            informed,
        }
    }

    /// Every area holding `p` whose agency handles `category`, ranked (priority, area size,
    /// agency id, area index): what `CityIndex::jurisdictions` must answer.
    fn all_pairs(
        city: &City,
        boxes: &Boxes,
        category: &CategoryId,
        p: Point,
    ) -> Vec<(String, String)> {
        let mut found: Vec<(i32, f64, &str, usize, &str)> = Vec::new();
        for (ai, agency) in city.agencies.iter().enumerate() {
            if !agency.handles(category) {
                continue;
            }
            for (ri, area) in agency.areas.iter().enumerate() {
                if holds(&area.geometry, &boxes[ai][ri], p) {
                    let size = area.geometry.unsigned_area();
                    found.push((
                        agency.priority,
                        size,
                        agency.id.as_str(),
                        ri,
                        area.id.as_str(),
                    ));
                }
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(b.2))
                .then(a.3.cmp(&b.3))
        });
        found
            .into_iter()
            .map(|(_, _, agency, _, area)| (agency.to_owned(), area.to_owned()))
            .collect()
    }

    /// Random points over the bounds, every `step`-th vertex of every area and the midpoint of
    /// its edge (the boundary rule), each with every category in turn.
    fn check(city: City, random: usize, step: usize) {
        let mut probes = points(&city, random, false);
        for agency in &city.agencies {
            for area in &agency.areas {
                for polygon in area.geometry.iter() {
                    for line in polygon.exterior().lines().step_by(step) {
                        probes.push(Point(line.start));
                        probes.push(Point::new(
                            (line.start.x + line.end.x) / 2.0,
                            (line.start.y + line.end.y) / 2.0,
                        ));
                    }
                }
            }
        }
        let categories: Vec<CategoryId> = city.categories.iter().map(|c| c.id.clone()).collect();
        let index = CityIndex::new(city.clone());
        let boxes = boxes(&city);
        let mut jurisdiction = 0;
        for (i, p) in probes.iter().enumerate() {
            let category = &categories[i % categories.len()];
            let pairs: Vec<(String, String)> = index
                .jurisdictions(category, *p)
                .map(|(a, r)| (a.as_str().to_owned(), r.as_str().to_owned()))
                .collect();
            assert_eq!(
                pairs,
                all_pairs(&city, &boxes, category, *p),
                "{category} at ({}, {})",
                p.x(),
                p.y()
            );
            let want = reference(&city, &boxes, category, *p);
            jurisdiction += usize::from(want.chosen.rule == RoutingRule::Jurisdiction);
            assert_eq!(
                index.route(category, *p),
                want,
                "{category} at ({}, {})",
                p.x(),
                p.y()
            );
        }
        // The comparison means something: most probes have a jurisdiction.
        assert!(
            jurisdiction * 2 > probes.len(),
            "{jurisdiction} of {}",
            probes.len()
        );
    }

    fn brasov() -> City {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).expect("the Brașov city folder loads")
    }

    #[test]
    fn routes_as_the_brute_force_reference_in_brasov() {
        check(brasov(), 4_000, 1);
    }

    #[test]
    fn routes_as_the_brute_force_reference_over_1000_polygons() {
        check(tiled_city(brasov()), 4_000, 13);
    }
}

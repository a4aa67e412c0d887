//! Small geometric helpers shared by routing and fusion.
//!
//! Invariant: points are (longitude, latitude) degrees; distances are meters.

use geo::{Distance, Haversine, Point};

/// Mean meters per degree of latitude.
const METERS_PER_DEGREE: f64 = 111_320.0;

/// Haversine distance between two points, in meters.
pub fn distance_m(a: Point, b: Point) -> f64 {
    Haversine.distance(a, b)
}

/// A (longitude, latitude) envelope that contains every point within `radius_m` meters of
/// `center`, as `([west, south], [east, north])` degrees. Deliberately generous (a square around
/// the circle, with a 10 % margin); callers re-rank candidates by [`distance_m`].
pub fn envelope_around(center: Point, radius_m: f64) -> ([f64; 2], [f64; 2]) {
    let dlat = radius_m * 1.1 / METERS_PER_DEGREE;
    let cos_lat = center.y().to_radians().cos().abs().max(0.01);
    let dlon = radius_m * 1.1 / (METERS_PER_DEGREE * cos_lat);
    (
        [center.x() - dlon, center.y() - dlat],
        [center.x() + dlon, center.y() + dlat],
    )
}

/// Whether a (longitude, latitude) pair is a position on Earth.
pub fn valid_position(lon: f64, lat: f64) -> bool {
    lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_contains_points_at_the_radius() {
        let c = Point::new(25.5887, 45.6419);
        let (min, max) = envelope_around(c, 100.0);
        // 100 m north and east, measured with haversine, must fall inside.
        let north = Point::new(c.x(), c.y() + 100.0 / METERS_PER_DEGREE);
        let east = Point::new(
            c.x() + 100.0 / (METERS_PER_DEGREE * c.y().to_radians().cos()),
            c.y(),
        );
        for p in [north, east] {
            assert!(p.x() >= min[0] && p.x() <= max[0] && p.y() >= min[1] && p.y() <= max[1]);
            let d = distance_m(c, p);
            assert!((d - 100.0).abs() < 1.0, "distance was {d}");
        }
    }
}

//! An OASIS CAP 1.2 alert (a utility's XML on its events topic): `cap::parse` never panics and
//! never expands an entity; an accepted alert has non-empty identifier and sender, polygons of 4
//! or more closed (longitude, latitude) positions, finite circles, references for an Update or
//! Cancel. `inbound::cap_event` on the same bytes: an accepted event lies inside the city, and
//! its logged payload parses again to the same event (what `dispecer rebuild` does).
#![no_main]

use dispecer_fuzz::{assert_replays, assert_utility, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::cap::{self, MsgType};
use protocol::inbound::cap_event;

fuzz_target!(|data: &[u8]| {
    if let Ok(alert) = cap::parse(data) {
        for token in [&alert.identifier, &alert.sender] {
            assert!(!token.is_empty(), "empty identifier or sender");
            assert!(
                !token.contains(|c: char| {
                    c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '&')
                }),
                "token {token:?}"
            );
        }
        if matches!(alert.msg_type, MsgType::Update | MsgType::Cancel) {
            assert!(
                !alert.references.is_empty(),
                "an Update/Cancel without references"
            );
        }
        for r in &alert.references {
            for part in [&r.sender, &r.identifier] {
                assert!(!part.is_empty(), "an empty part in references");
                assert!(
                    !part.contains(|c: char| {
                        c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '&')
                    }),
                    "reference part {part:?}"
                );
            }
        }
        for info in &alert.infos {
            assert!(!info.categories.is_empty(), "an <info> without a category");
            for area in &info.areas {
                for p in &area.polygons {
                    let ring = &p.exterior().0;
                    assert!(ring.len() >= 4, "a polygon of {} positions", ring.len());
                    assert_eq!(ring.first(), ring.last(), "an open polygon");
                    for c in ring {
                        assert!(model::geometry::valid_position(c.x, c.y), "{c:?}");
                    }
                }
                for (centre, radius) in &area.circles {
                    assert!(model::geometry::valid_position(centre.x(), centre.y()));
                    assert!(radius.is_finite() && *radius >= 0.0, "radius {radius}");
                }
            }
        }
    }
    let (city, now) = (brasov(), received_at());
    if let Ok(event) = cap_event(data, "isu-brasov", city, now) {
        assert_utility(city, &event, "isu-brasov", now);
        assert_replays(
            &event,
            cap_event(event.payload.as_bytes(), "isu-brasov", city, now),
        );
    }
});

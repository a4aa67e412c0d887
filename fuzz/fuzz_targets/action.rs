//! Actions on incidents: the body of `POST /api/v1/incidents/{id}/actions` and an agency's
//! update on `dispecer/v1/in/agencies/{agency}/updates`. Never panics; an accepted action's
//! reason is trimmed, non-empty and at most 2000 characters (present for a note), an assignment
//! names one of the city's agencies, and an update's id and incident are non-empty, trimmed and
//! bounded. A public warning's body (`publish_warning`, …): its texts are trimmed and within
//! their limits in both languages, its polygons' rings closed with at least 4 positions inside
//! the city's bounds, its circle's radius within its limits.
#![no_main]

use dispecer_fuzz::brasov;
use libfuzzer_sys::fuzz_target;
use model::Action;
use model::warning::{WarningArea, WarningOp, WarningText};
use protocol::action::{self, ActionCommand, MAX_REASON};
use protocol::warning::{self, MAX_HEADLINE, MAX_INSTRUCTION, RADIUS_M};

fn check_text(text: &WarningText) {
    for (v, max) in [
        (&text.headline.ro, MAX_HEADLINE),
        (&text.headline.en, MAX_HEADLINE),
        (&text.instruction.ro, MAX_INSTRUCTION),
        (&text.instruction.en, MAX_INSTRUCTION),
    ] {
        assert!(!v.is_empty() && v.chars().count() <= max, "text {v:?}");
        assert_eq!(v.trim(), v, "text not trimmed");
    }
}

fn check_area(area: &WarningArea) {
    let b = brasov().bounds;
    let inside = |x: f64, y: f64| {
        x >= b.min().x && x <= b.max().x && y >= b.min().y && y <= b.max().y
    };
    match area {
        WarningArea::Circle { center, radius_m } => {
            assert!(inside(center.x(), center.y()), "circle outside {center:?}");
            assert!((RADIUS_M.0..=RADIUS_M.1).contains(radius_m), "radius {radius_m}");
        }
        WarningArea::Polygons(mp) => {
            assert!(!mp.0.is_empty(), "no polygon");
            for p in &mp.0 {
                for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                    assert!(ring.0.len() >= 4 && ring.is_closed(), "ring {ring:?}");
                    assert!(ring.coords().all(|c| inside(c.x, c.y)), "ring outside {ring:?}");
                }
            }
        }
    }
}

fn check(command: &ActionCommand) {
    if let Some(r) = &command.reason {
        assert!(!r.is_empty(), "reason Some(\"\")");
        assert_eq!(r.trim(), r, "reason not trimmed");
        assert!(r.chars().count() <= MAX_REASON, "reason too long");
    }
    match &command.action {
        Action::Assign { agency } => assert!(
            brasov().agency(agency.as_str()).is_some(),
            "assigned to unknown agency {agency:?}"
        ),
        Action::Note => assert!(command.reason.is_some(), "a note without text"),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let city = brasov();
    if let Ok(command) = action::action_request(data, city) {
        check(&command);
    }
    if let Ok(update) = action::agency_update(data, city) {
        for (what, v) in [
            ("id", &update.id),
            ("incident", &update.incident.as_str().to_owned()),
        ] {
            assert!(!v.is_empty() && v.len() <= 200, "{what} {v:?}");
            assert_eq!(v.trim(), v, "{what} not trimmed");
        }
        check(&update.command);
    }
    if let Ok(command) = warning::warning_request(data, city) {
        match &command.op {
            WarningOp::Publish { text, area } => {
                check_text(text);
                area.iter().for_each(check_area);
            }
            WarningOp::Update { text, area } => {
                assert!(text.is_some() || area.is_some(), "an empty update");
                text.iter().for_each(check_text);
                area.iter().for_each(check_area);
            }
            WarningOp::Cancel => {}
        }
    }
});

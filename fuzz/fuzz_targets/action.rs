//! Actions on incidents: the body of `POST /api/v1/incidents/{id}/actions` and an agency's
//! update on `dispecer/v1/in/agencies/{agency}/updates`. Never panics; an accepted action's
//! reason is trimmed, non-empty and at most 2000 characters (present for a note), an assignment
//! names one of the city's agencies, and an update's id and incident are non-empty, trimmed and
//! bounded.
#![no_main]

use dispecer_fuzz::brasov;
use libfuzzer_sys::fuzz_target;
use model::Action;
use protocol::action::{self, ActionCommand, MAX_REASON};

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
});

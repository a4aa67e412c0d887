//! Found with the `cap` fuzz target's invariants: a CAP alert's description, like every other
//! event's, is `None` or trimmed non-empty text of at most `MAX_DESCRIPTION` characters; and the
//! logged payload of a Latin-1 alert parses again to the same event (`dispecer rebuild`).

use protocol::inbound::{cap_event, MAX_DESCRIPTION};

use crate::support::{brasov, received_at};

const EXAMPLE: &str = include_str!("../../../../docs/examples/cap-planned-power-cut.xml");

/// The example alert with its `<headline>` and `<description>` texts replaced.
fn alert(headline: &str, description: &str) -> String {
    let replace = |doc: &str, tag: &str, text: &str| {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let start = doc.find(&open).expect("the example has the element") + open.len();
        let end = doc.find(&close).expect("the example closes the element");
        format!("{}{text}{}", &doc[..start], &doc[end..])
    };
    replace(
        &replace(EXAMPLE, "headline", headline),
        "description",
        description,
    )
}

fn description(doc: &str) -> Option<String> {
    cap_event(doc.as_bytes(), "deer-brasov", brasov(), received_at())
        .unwrap_or_else(|e| panic!("the alert is accepted: {e}"))
        .description
}

#[test]
fn a_blank_headline_falls_back_to_the_description_and_blank_both_give_none() {
    // U+00A0 and U+3000 are not XML whitespace, so the CAP parser keeps them.
    assert_eq!(
        description(&alert("\u{a0}", " Lucrări ")),
        Some("Lucrări".into())
    );
    assert_eq!(description(&alert("\u{a0}\u{3000}", "\u{a0}")), None);
}

#[test]
fn a_long_headline_is_cut_to_the_description_limit() {
    let long = format!("{} x", "ă".repeat(MAX_DESCRIPTION));
    let d = description(&alert(&long, "d")).expect("a description");
    assert_eq!(d.chars().count(), MAX_DESCRIPTION);
    assert!(d.ends_with("ă…"), "cut with an ellipsis");
    let exact = "a".repeat(MAX_DESCRIPTION);
    assert_eq!(description(&alert(&exact, "d")), Some(exact));
}

#[test]
fn a_latin1_alert_is_logged_as_utf8_that_parses_to_the_same_event() {
    // The example in ISO-8859-1: Romanian letters outside Latin-1 become plain ones.
    let text = EXAMPLE
        .replace("UTF-8", "ISO-8859-1")
        .replace(['ă', 'ș', 'ț'], "a");
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    assert!(std::str::from_utf8(&latin1).is_err(), "not UTF-8 (Î, â)");
    let event = cap_event(&latin1, "deer-brasov", brasov(), received_at()).expect("accepted");
    assert!(event
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with("Întrerupere")));
    assert!(event
        .payload
        .starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
    let again = cap_event(
        event.payload.as_bytes(),
        "deer-brasov",
        brasov(),
        received_at(),
    );
    assert_eq!(again.as_ref(), Ok(&event));
}

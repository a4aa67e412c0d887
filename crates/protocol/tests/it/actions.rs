//! Actions on incidents: the API's request body and the agencies' MQTT updates, one row each.

use model::Action;
use protocol::action::{action_request, agency_update, ActionCommand, MAX_REASON};
use protocol::WireError;

use crate::support::brasov;

fn variant(e: &WireError) -> &'static str {
    match e {
        WireError::NotJson(_) => "NotJson",
        WireError::NotAnAction(_) => "NotAnAction",
        WireError::Missing(_) => "Missing",
        WireError::Invalid { .. } => "Invalid",
        WireError::TooLarge { .. } => "TooLarge",
        _ => "other",
    }
}

#[test]
fn action_bodies() {
    let ok = |action: Action, reason: Option<&str>| {
        Ok::<_, (&str, &str)>(ActionCommand {
            action,
            reason: reason.map(str::to_owned),
        })
    };
    let long = format!(
        r#"{{"action":"reject","reason":"{}"}}"#,
        "ă".repeat(MAX_REASON + 1)
    );
    /// name, body, the command or the refusal's variant and words.
    type Row = (
        &'static str,
        String,
        Result<ActionCommand, (&'static str, &'static str)>,
    );
    let rows: Vec<Row> = vec![
        (
            "acknowledge with a reason",
            r#"{"action":"acknowledge","reason":"  echipa e pe drum  "}"#.into(),
            ok(Action::Acknowledge, Some("echipa e pe drum")),
        ),
        (
            "no reason",
            r#"{"action":"start"}"#.into(),
            ok(Action::Start, None),
        ),
        (
            "blank reason is none",
            r#"{"action":"resolve","reason":"   "}"#.into(),
            ok(Action::Resolve, None),
        ),
        (
            "assign to an agency of the city",
            r#"{"action":"assign","agency":"apa-brasov"}"#.into(),
            ok(
                Action::Assign {
                    agency: "apa-brasov".into(),
                },
                None,
            ),
        ),
        (
            "a note with its text",
            r#"{"action":"note","reason":"sunat la dispecerat"}"#.into(),
            ok(Action::Note, Some("sunat la dispecerat")),
        ),
        (
            "unknown action",
            r#"{"action":"ack"}"#.into(),
            Err(("Invalid", "unknown action \"ack\"")),
        ),
        (
            "assign without agency",
            r#"{"action":"assign"}"#.into(),
            Err(("Missing", "\"agency\" is required")),
        ),
        (
            "assign to an unknown agency",
            r#"{"action":"assign","agency":"nobody"}"#.into(),
            Err(("Invalid", "\"nobody\" is not one of this city's agencies")),
        ),
        (
            "agency with another action",
            r#"{"action":"close","agency":"apa-brasov"}"#.into(),
            Err(("Invalid", "only \"assign\" takes an agency")),
        ),
        (
            "a note without text",
            r#"{"action":"note"}"#.into(),
            Err(("Invalid", "a note needs its text")),
        ),
        ("a reason too long", long, Err(("Invalid", "at most 2000"))),
        (
            "unknown field",
            r#"{"action":"close","why":"x"}"#.into(),
            Err(("NotAnAction", "unknown field `why`")),
        ),
        (
            "no action",
            r#"{"reason":"x"}"#.into(),
            Err(("NotAnAction", "missing field `action`")),
        ),
        ("not JSON", "acknowledge".into(), Err(("NotJson", ""))),
        (
            "merge into another incident",
            r#"{"action":"merge","into":" 0193-b ","reason":"același"}"#.into(),
            ok(
                Action::Merge {
                    into: "0193-b".into(),
                },
                Some("același"),
            ),
        ),
        (
            "merge without into",
            r#"{"action":"merge"}"#.into(),
            Err(("Missing", "\"into\" is required")),
        ),
        (
            "into with another action",
            r#"{"action":"close","into":"0193-b"}"#.into(),
            Err(("Invalid", "only \"merge\" takes \"into\"")),
        ),
        (
            "split a report out",
            r#"{"action":"split","event":"citizen:r-2"}"#.into(),
            ok(
                Action::Split {
                    event: "citizen:r-2".into(),
                    new_incident: None,
                },
                None,
            ),
        ),
        (
            "split without event",
            r#"{"action":"split"}"#.into(),
            Err(("Missing", "\"event\" is required")),
        ),
        (
            "split with a blank event",
            r#"{"action":"split","event":"  "}"#.into(),
            Err(("Invalid", "1 to 200 characters")),
        ),
        (
            "event with another action",
            r#"{"action":"merge","into":"b","event":"e"}"#.into(),
            Err(("Invalid", "only \"split\" takes \"event\"")),
        ),
        (
            "unmerge",
            r#"{"action":"unmerge","reason":"nu e același"}"#.into(),
            ok(Action::Unmerge, Some("nu e același")),
        ),
    ];
    for (name, body, expected) in rows {
        let got = action_request(body.as_bytes(), brasov());
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{name}"),
            (Err(e), Err((v, words))) => {
                assert_eq!(variant(&e), v, "{name}: {e}");
                assert!(e.to_string().contains(words), "{name}: {e}");
            }
            (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn agency_updates() {
    let city = brasov();
    let update = agency_update(
        br#"{"id":"u-1","incident":"0193","action":"acknowledge","reason":"am preluat"}"#,
        city,
    )
    .expect("a valid update");
    assert_eq!(update.id, "u-1");
    assert_eq!(update.incident.as_str(), "0193");
    assert_eq!(update.command.action, Action::Acknowledge);
    assert_eq!(update.command.reason.as_deref(), Some("am preluat"));

    for (name, body, words) in [
        (
            "no id",
            r#"{"incident":"0193","action":"start"}"#,
            "missing field `id`",
        ),
        (
            "blank incident",
            r#"{"id":"u","incident":" ","action":"start"}"#,
            "\"incident\"",
        ),
        (
            "bad action",
            r#"{"id":"u","incident":"i","action":"fix"}"#,
            "unknown action",
        ),
        (
            "an operator's action",
            r#"{"id":"u","incident":"i","action":"unmerge"}"#,
            "only operators may unmerge",
        ),
    ] {
        let e = agency_update(body.as_bytes(), city).expect_err(name);
        assert!(e.to_string().contains(words), "{name}: {e}");
    }
    let huge = vec![b' '; 20_000];
    assert!(matches!(
        agency_update(&huge, city),
        Err(WireError::TooLarge { .. })
    ));
}

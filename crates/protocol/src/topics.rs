//! MQTT topics of version 1.

/// Citizens' reports (GeoJSON Feature, QoS 1).
pub const CITIZEN_REPORTS: &str = "dispecer/v1/in/citizen/reports";

/// Utility companies' events, one topic per operator (GeoJSON Feature, QoS 1).
pub const UTILITY_EVENTS_FILTER: &str = "dispecer/v1/in/utilities/+/events";

/// Traffic counters' readings, one topic per sensor (SenML JSON, QoS 1).
pub const TRAFFIC_FILTER: &str = "dispecer/v1/in/traffic/+";

/// The topic on which traffic counter `sensor` publishes its SenML packs.
pub fn traffic(sensor: &str) -> String {
    format!("dispecer/v1/in/traffic/{sensor}")
}

/// The sensor id of a traffic topic, if `topic` is one.
pub fn traffic_sensor(topic: &str) -> Option<&str> {
    let sensor = topic.strip_prefix("dispecer/v1/in/traffic/")?;
    (!sensor.is_empty() && !sensor.contains('/')).then_some(sensor)
}

/// Dead letters: what was refused, with the reason (JSON, QoS 1).
pub const DEAD_LETTERS: &str = "dispecer/v1/out/dead-letters";

/// Supervisors' notifications: every escalation (an incident that missed a deadline), as an
/// incident frame carrying `escalation` (JSON, QoS 1).
pub const SUPERVISOR_ESCALATIONS: &str = "dispecer/v1/out/supervisors/escalations";

/// The topic on which an agency receives its incidents.
pub fn agency_incidents(agency: &str) -> String {
    format!("dispecer/v1/out/agencies/{agency}/incidents")
}

/// Agencies' updates on their incidents (JSON, see [`crate::action`], QoS 1).
pub const AGENCY_UPDATES_FILTER: &str = "dispecer/v1/in/agencies/+/updates";

/// The topic on which an agency publishes its updates.
pub fn agency_updates(agency: &str) -> String {
    format!("dispecer/v1/in/agencies/{agency}/updates")
}

/// The agency id of an agency updates topic, if `topic` is one.
pub fn updating_agency(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("dispecer/v1/in/agencies/")?;
    let agency = rest.strip_suffix("/updates")?;
    (!agency.is_empty() && !agency.contains('/')).then_some(agency)
}

/// The topic on which a utility operator publishes its events.
pub fn utility_events(operator: &str) -> String {
    format!("dispecer/v1/in/utilities/{operator}/events")
}

/// The operator id of a utility events topic, if `topic` is one.
pub fn utility_operator(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("dispecer/v1/in/utilities/")?;
    let op = rest.strip_suffix("/events")?;
    (!op.is_empty() && !op.contains('/')).then_some(op)
}

/// Where the embedded broker routes a publish its sender's login may not make: Dispecer reads
/// them and keeps each as a dead letter naming the login and the topic it tried.
pub const REFUSED_FILTER: &str = "dispecer/v1/refused/#";

/// The topic a publish by `login` on `topic` is redirected to when refused. The login is
/// percent-encoded (anything but ASCII letters, digits, `-`, `_` and `.`), so that it stays one
/// level with no wildcard.
pub fn refused(login: &str, topic: &str) -> String {
    let mut out = String::with_capacity(20 + login.len() + topic.len());
    out.push_str("dispecer/v1/refused/");
    for b in login.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push('/');
    out.push_str(topic);
    out
}

/// The login and the topic it tried, if `topic` is one of [`refused`]'s.
pub fn refused_parts(topic: &str) -> Option<(String, &str)> {
    let rest = topic.strip_prefix("dispecer/v1/refused/")?;
    let (encoded, tried) = rest.split_once('/')?;
    let mut login = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            login.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            login.push(b);
        }
    }
    Some((String::from_utf8(login).ok()?, tried))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_topics_round_trip() {
        for login in ["apa-brasov", "gateway 7/b#+", "ștefan", "", "%41"] {
            let topic = refused(login, "dispecer/v1/in/utilities/deer-brasov/events");
            let level = topic
                .strip_prefix("dispecer/v1/refused/")
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            assert!(!level.contains(['+', '#']), "{topic}");
            assert_eq!(
                refused_parts(&topic),
                Some((
                    login.to_owned(),
                    "dispecer/v1/in/utilities/deer-brasov/events"
                ))
            );
        }
        assert_eq!(refused_parts("dispecer/v1/refused/a%4"), None);
        assert_eq!(refused_parts(CITIZEN_REPORTS), None);
    }

    #[test]
    fn utility_topics_round_trip() {
        assert_eq!(
            utility_operator(&utility_events("apa-brasov")),
            Some("apa-brasov")
        );
        assert_eq!(utility_operator("dispecer/v1/in/utilities//events"), None);
        assert_eq!(
            utility_operator("dispecer/v1/in/utilities/a/b/events"),
            None
        );
        assert_eq!(utility_operator(CITIZEN_REPORTS), None);
    }

    #[test]
    fn agency_update_topics_round_trip() {
        assert_eq!(
            updating_agency(&agency_updates("apa-brasov")),
            Some("apa-brasov")
        );
        assert_eq!(updating_agency("dispecer/v1/in/agencies//updates"), None);
        assert_eq!(updating_agency("dispecer/v1/in/agencies/a/b/updates"), None);
        assert_eq!(updating_agency(&agency_incidents("apa-brasov")), None);
    }
}

//! Typed identifiers. Each is a validated, non-empty string chosen by the city data or a sender.
//!
//! An identifier is immutable (`smol_str::SmolStr`): up to 23 bytes it is held inline, longer
//! it is shared, so a clone (every routing decision clones its agencies' and areas' ids) never
//! allocates, and a short one (a city's agency, area and category ids) touches no reference
//! count either.

use std::fmt;

use smol_str::SmolStr;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(SmolStr);

        impl $name {
            /// Wraps an identifier; callers validate it (see [`valid_id`]).
            pub fn new(id: impl Into<String>) -> Self {
                Self(SmolStr::from(id.into()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(SmolStr::new(s))
            }
        }
    };
}

string_id!(
    /// An incident category of the city, e.g. `pothole`.
    CategoryId
);
string_id!(
    /// An agency of the city, e.g. `apa-brasov`.
    AgencyId
);
string_id!(
    /// A district of the city, e.g. `tractorul`.
    DistrictId
);
string_id!(
    /// An area of an agency's jurisdiction, e.g. `city` or a district's id.
    AreaId
);
string_id!(
    /// A fixed sensor site, e.g. `tc-eroilor-e`.
    SensorId
);
string_id!(
    /// An incident, assigned by Dispecer (a UUIDv7, time-ordered).
    IncidentId
);
string_id!(
    /// The identity of an inbound event: `{source}:{sender's id}`. Delivering the same event twice
    /// must have no further effect.
    EventId
);

/// Longest identifier accepted from a city file or a sender.
pub const MAX_ID_LEN: usize = 128;

/// Whether `id` is acceptable as an identifier: 1 to [`MAX_ID_LEN`] characters, printable, no
/// whitespace, no MQTT wildcard or topic separator (ids end up in topics).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '/' | '+' | '#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_break_topics_are_refused() {
        for bad in ["", "a b", "a/b", "x+", "#", "\u{7}", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad:?} should be refused");
        }
        for good in ["pothole", "apa-brasov", "r-2026-0001", "rapoarte:ăîș"] {
            assert!(valid_id(good), "{good:?} should be accepted");
        }
    }
}

//! Why an inbound payload was refused.

/// A refusal, worded for the sender; it becomes a dead-letter reason or a problem+json detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// Larger than the channel accepts.
    #[error("payload of {size} bytes is larger than the {limit} bytes accepted")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not UTF-8 JSON.
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON of the wrong shape.
    #[error("payload is not a GeoJSON Feature: {0}")]
    NotAFeature(String),
    /// Valid JSON that is not an action on an incident.
    #[error("payload is not an action: {0}")]
    NotAnAction(String),
    /// The geometry is missing, of the wrong type or off the Earth.
    #[error("geometry: {0}")]
    Geometry(String),
    /// A required property is absent.
    #[error("property {0:?} is required")]
    Missing(&'static str),
    /// A property has a wrong value.
    #[error("property {name:?}: {reason}")]
    Invalid {
        /// Property name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The category is not one of the city's.
    #[error("category {0:?} is not one of this city's categories")]
    UnknownCategory(String),
    /// The place is outside the city.
    #[error("location [{lon}, {lat}] is outside the city")]
    OutsideCity {
        /// Longitude.
        lon: f64,
        /// Latitude.
        lat: f64,
    },
    /// The sensor is not one of the city's sensor sites.
    #[error("sensor {0:?} is not one of this city's sensor sites")]
    UnknownSensor(String),
    /// A SenML pack that breaks RFC 8428 or the traffic metrics' rules.
    #[error("SenML: {0}")]
    Senml(String),
    /// A CAP 1.2 alert that is not valid or not one Dispecer acts on.
    #[error("CAP: {0}")]
    Cap(String),
    /// The topic is not one Dispecer reads.
    #[error("topic {0:?} is not an input topic of Dispecer")]
    UnknownTopic(String),
}

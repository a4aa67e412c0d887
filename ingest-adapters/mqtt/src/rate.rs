//! How many messages one sender may publish: governor's GCRA per sender, as the HTTP side limits
//! citizens' writes per client address (`api::limits`).
//!
//! The adapter sees a message's topic, not the client that published it (MQTT forwards no
//! publisher identity, and rumqttd 0.20 offers no per-publish hook), so a sender is what the
//! topic names: the utility of `…/utilities/{operator}/events`, the counter of
//! `…/traffic/{sensor}`, the agency of `…/agencies/{agency}/updates`. Citizens' reports share one
//! topic and name no reporter (a report carries its own id and, perhaps, a contact: personal data
//! and anyone's to forge), so they count as one sender, `citizen`, with [`CITIZEN_FACTOR`] times
//! the allowance. A sender the city does not know (a topic naming no agency or sensor of it)
//! counts as `unknown`, so that made-up names cannot grow the limiter's memory.
//!
//! A message beyond its sender's allowance is refused like a bad one: acknowledged, kept as a
//! dead letter with the reason "rate limit: …" (and its payload, as any dead letter), counted as
//! rejected in its feed, so that one flooding sender fills its own feed's dead letters instead
//! of the engine's queue. A broker's redelivery (DUP) is not counted again.

use std::fmt;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use model::City;
use protocol::topics;

/// The allowance of each sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderRate {
    /// Messages a minute, sustained.
    pub per_minute: NonZeroU32,
    /// Messages at once before the pace applies.
    pub burst: NonZeroU32,
}

impl SenderRate {
    /// Default messages a minute per sender: ten a second, far above a counter's pack a minute
    /// or a utility's notices.
    pub const PER_MINUTE: u32 = 600;
    /// Default burst per sender: ten minutes at that pace, so that what a broker kept for
    /// Dispecer during an outage (an ordinary sender's hours of messages, delivered at once when
    /// it reconnects) is taken, not refused.
    pub const BURST: u32 = 6000;
}

impl Default for SenderRate {
    fn default() -> Self {
        SenderRate {
            per_minute: NonZeroU32::new(Self::PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(Self::BURST).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// The citizens' topic (every citizens' app's reports) gets this many times a sender's allowance.
pub const CITIZEN_FACTOR: u32 = 10;

/// A message refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateLimited {
    /// The sender, as counted.
    pub(crate) sender: String,
    /// Its allowance.
    pub(crate) rate: SenderRate,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limit: {} sent more than {} messages a minute (burst {}); this one was not \
             processed, send it again later",
            self.sender, self.rate.per_minute, self.rate.burst
        )
    }
}

/// The limiter of every sender of one ingest.
pub(crate) struct SenderLimiter {
    rate: SenderRate,
    citizen_rate: SenderRate,
    senders: DefaultKeyedRateLimiter<String>,
    citizens: governor::DefaultDirectRateLimiter,
}

impl fmt::Debug for SenderLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderLimiter")
            .field("rate", &self.rate)
            .field("senders", &self.senders.len())
            .finish()
    }
}

impl SenderLimiter {
    pub(crate) fn new(rate: SenderRate) -> Self {
        let times = |n: NonZeroU32| {
            n.saturating_mul(NonZeroU32::new(CITIZEN_FACTOR).unwrap_or(NonZeroU32::MIN))
        };
        let citizen_rate = SenderRate {
            per_minute: times(rate.per_minute),
            burst: times(rate.burst),
        };
        let quota = |r: SenderRate| Quota::per_minute(r.per_minute).allow_burst(r.burst);
        SenderLimiter {
            rate,
            citizen_rate,
            senders: RateLimiter::keyed(quota(rate)),
            citizens: RateLimiter::direct(quota(citizen_rate)),
        }
    }

    /// Takes one message on `topic`; `Err` when its sender is over its allowance.
    pub(crate) fn check(&self, topic: &str, city: &City) -> Result<(), RateLimited> {
        if topic == topics::CITIZEN_REPORTS {
            return self.citizens.check().map_err(|_| RateLimited {
                sender: "citizen".into(),
                rate: self.citizen_rate,
            });
        }
        let sender = sender(topic, city);
        self.senders.check_key(&sender).map_err(|_| RateLimited {
            sender,
            rate: self.rate,
        })
    }
}

/// The sender a topic names, if the city knows it; what the embedded broker refused counts
/// against its login (`login:{name}`) when that is one of the city's operators or agencies
/// (a gateway may log in under any name: those share `unknown`, so that made-up names cannot
/// grow the table); else `unknown`.
fn sender(topic: &str, city: &City) -> String {
    let known_agency = |a: &str| city.agency(a).is_some();
    if let Some((login, _)) = topics::refused_parts(topic) {
        return if known_agency(&login) {
            format!("login:{login}")
        } else {
            "unknown".into()
        };
    }
    if let Some(op) = topics::utility_operator(topic).filter(|a| known_agency(a)) {
        return format!("utility:{op}");
    }
    if let Some(s) = topics::traffic_sensor(topic)
        .filter(|s| city.sensors.iter().any(|site| site.id.as_str() == *s))
    {
        return format!("traffic:{s}");
    }
    if let Some(a) = topics::updating_agency(topic).filter(|a| known_agency(a)) {
        return format!("agency:{a}");
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brasov() -> City {
        city::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../cities/brasov"
        )))
        .expect("the demo city")
    }

    fn rate(per_minute: u32, burst: u32) -> SenderRate {
        SenderRate {
            per_minute: NonZeroU32::new(per_minute).expect("non-zero"),
            burst: NonZeroU32::new(burst).expect("non-zero"),
        }
    }

    #[test]
    fn a_sender_beyond_its_burst_is_refused_and_others_are_not() {
        let city = brasov();
        let l = SenderLimiter::new(rate(1, 3));
        let flood = "dispecer/v1/in/utilities/apa-brasov/events";
        for i in 0..3 {
            assert_eq!(l.check(flood, &city), Ok(()), "message {i} of the burst");
        }
        let refused = l.check(flood, &city).expect_err("the fourth");
        assert_eq!(refused.sender, "utility:apa-brasov");
        assert!(refused.to_string().starts_with("rate limit: "), "{refused}");
        // Another utility, a counter, an agency: their own allowances.
        for other in [
            "dispecer/v1/in/utilities/distrigaz-sud/events",
            "dispecer/v1/in/traffic/tc-eroilor-e",
            "dispecer/v1/in/agencies/apa-brasov/updates",
        ] {
            assert_eq!(l.check(other, &city), Ok(()), "{other}");
        }
    }

    #[test]
    fn citizens_share_ten_times_the_allowance() {
        let city = brasov();
        let l = SenderLimiter::new(rate(1, 2));
        for i in 0..20 {
            assert_eq!(
                l.check(topics::CITIZEN_REPORTS, &city),
                Ok(()),
                "report {i}"
            );
        }
        let refused = l
            .check(topics::CITIZEN_REPORTS, &city)
            .expect_err("the 21st");
        assert_eq!(refused.sender, "citizen");
    }

    #[test]
    fn made_up_senders_share_one_allowance() {
        let city = brasov();
        let l = SenderLimiter::new(rate(1, 2));
        assert_eq!(sender("dispecer/v1/in/traffic/nowhere-1", &city), "unknown");
        assert_eq!(
            sender("dispecer/v1/in/utilities/nobody/events", &city),
            "unknown"
        );
        for n in 0..2 {
            assert_eq!(
                l.check(&format!("dispecer/v1/in/traffic/made-up-{n}"), &city),
                Ok(())
            );
        }
        assert!(l.check("dispecer/v1/in/traffic/made-up-3", &city).is_err());
        assert_eq!(l.senders.len(), 1, "one key for all of them");
    }

    #[test]
    fn what_the_broker_refused_counts_against_the_login() {
        let city = brasov();
        let forged = topics::refused("apa-brasov", "dispecer/v1/in/utilities/electrica/events");
        assert_eq!(sender(&forged, &city), "login:apa-brasov");
        let l = SenderLimiter::new(rate(1, 1));
        assert_eq!(l.check(&forged, &city), Ok(()));
        assert!(l.check(&forged, &city).is_err());
        // Not the victim's allowance.
        assert_eq!(
            l.check("dispecer/v1/in/utilities/electrica/events", &city),
            Ok(())
        );
        assert_eq!(
            sender(
                &topics::refused("gateway-7", topics::CITIZEN_REPORTS),
                &city
            ),
            "unknown"
        );
    }
}

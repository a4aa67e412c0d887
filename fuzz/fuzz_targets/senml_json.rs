//! A SenML JSON pack (RFC 8428; traffic counters on `dispecer/v1/in/traffic/{sensor}` and
//! `POST /api/v1/readings`): `senml::parse_json` never panics, and an accepted pack's records
//! have valid names, finite numbers and times in years 1970–9999; `traffic::readings` and
//! `readings_named` on the same bytes give readings of a known sensor and metric, in range, not
//! from the future, one per record.
#![no_main]

use dispecer_fuzz::{assert_reading, assert_records, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::{senml, traffic};

fuzz_target!(|data: &[u8]| {
    let (city, now) = (brasov(), received_at());
    let records = senml::parse_json(data, now);
    if let Ok(records) = &records {
        assert_records(records);
    }
    if senml::is_cbor(data) {
        return;
    }
    for readings in [
        traffic::readings(data, "tc-eroilor-e", city, now),
        traffic::readings_named(data, city, now),
    ]
    .into_iter()
    .flatten()
    {
        let records = records.as_ref().map(Vec::len).unwrap_or(usize::MAX);
        assert_eq!(readings.len(), records, "not one reading per record");
        readings.iter().for_each(|r| assert_reading(city, r, now));
    }
});

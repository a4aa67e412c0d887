//! A SenML CBOR pack (RFC 8428 §6, `application/senml+cbor`): `senml::parse_cbor` never panics
//! (deep nesting included), an accepted pack keeps the same invariants as a JSON one, and
//! `traffic::readings` on the same bytes gives valid readings, one per record.
#![no_main]

use dispecer_fuzz::{assert_reading, assert_records, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::{senml, traffic};

fuzz_target!(|data: &[u8]| {
    let (city, now) = (brasov(), received_at());
    let records = senml::parse_cbor(data, now);
    if let Ok(records) = &records {
        assert_records(records);
    }
    if !senml::is_cbor(data) {
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

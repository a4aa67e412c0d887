//! `city::from_texts`: the same city from the files' texts as from the folder, without the disk.

use std::collections::BTreeMap;
use std::fs;

use city::CityError;

use crate::fixture::brasov_dir;

/// Every file of the Brașov folder that the loader reads, by its name inside the folder.
fn brasov_texts() -> BTreeMap<String, String> {
    let dir = brasov_dir();
    let mut texts = BTreeMap::new();
    for name in [
        "city.toml",
        "boundary.geojson",
        "districts.geojson",
        "categories.toml",
        "agencies.toml",
        "sensors.toml",
    ] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        texts.insert(name.to_owned(), text);
    }
    let jurisdictions = fs::read_dir(dir.join("jurisdictions")).expect("jurisdictions folder");
    for entry in jurisdictions {
        let path = entry.expect("folder entry").path();
        let name = format!(
            "jurisdictions/{}",
            path.file_name().expect("file name").to_string_lossy()
        );
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        texts.insert(name, text);
    }
    texts
}

#[test]
fn texts_give_the_same_city_as_the_folder() {
    let from_disk = city::load(&brasov_dir()).expect("Brașov loads from its folder");
    let from_texts = city::from_texts(&brasov_texts()).expect("Brașov loads from its texts");
    // City has no PartialEq; its Debug form shows every field.
    assert_eq!(format!("{from_disk:?}"), format!("{from_texts:?}"));
}

#[test]
fn a_missing_text_is_named() {
    let mut texts = brasov_texts();
    texts.remove("sensors.toml");
    match city::from_texts(&texts) {
        Err(e @ CityError::Io { .. }) => {
            assert!(e.to_string().starts_with("sensors.toml: "), "{e}")
        }
        other => panic!("expected a missing sensors.toml, got {other:?}"),
    }
}

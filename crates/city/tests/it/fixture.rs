//! A copy of the Brașov folder under the system's temporary folder, to break one thing in.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use city::CityError;
use model::City;

/// The Brașov demo city in the repository.
pub fn brasov_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov")
}

/// A copy of the Brașov folder, removed when dropped.
pub struct CityCopy {
    dir: PathBuf,
}

impl CityCopy {
    /// Copies `cities/brasov` to a folder of its own.
    pub fn new() -> CityCopy {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dispecer-city-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let copy = CityCopy { dir };
        let _ = fs::remove_dir_all(&copy.dir);
        copy_dir(&brasov_dir(), &copy.dir);
        copy
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Loads the copy.
    pub fn load(&self) -> Result<City, CityError> {
        city::load(&self.dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.file(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.file(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    /// Removes a file of the copy.
    pub fn remove(&self, name: &str) {
        fs::remove_file(self.file(name)).unwrap_or_else(|e| panic!("remove {name}: {e}"));
    }

    /// Replaces the first `from` in file `name`, which must contain it.
    pub fn replace(&self, name: &str, from: &str, to: &str) {
        let text = self.read(name);
        assert!(text.contains(from), "{name} contains {from:?}");
        self.write(name, &text.replacen(from, to, 1));
    }

    /// Replaces every `from` in file `name`, which must contain it.
    pub fn replace_all(&self, name: &str, from: &str, to: &str) {
        let text = self.read(name);
        assert!(text.contains(from), "{name} contains {from:?}");
        self.write(name, &text.replace(from, to));
    }

    /// Replaces the first `from` within the TOML entry of file `name` that contains `entry`
    /// (e.g. `id = "pothole"`), from that line to the next `[[...]]`.
    pub fn replace_in_entry(&self, name: &str, entry: &str, from: &str, to: &str) {
        let text = self.read(name);
        let start = text
            .find(entry)
            .unwrap_or_else(|| panic!("{name} contains {entry:?}"));
        // The entry ends where the next `[[...]]` table begins.
        let end = text[start..].find("\n[[").map_or(text.len(), |i| start + i);
        let at = text[start..end]
            .find(from)
            .unwrap_or_else(|| panic!("{name}: entry {entry:?} contains {from:?}"));
        let mut edited = text.clone();
        edited.replace_range(start + at..start + at + from.len(), to);
        self.write(name, &edited);
    }

    /// Inserts a GeoJSON Feature first in the FeatureCollection of file `name`.
    pub fn insert_feature(&self, name: &str, feature: &str) {
        self.replace(
            name,
            "\"features\": [",
            &format!("\"features\": [\n{feature},"),
        );
    }
}

impl Drop for CityCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("list {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("list {}: {e}", from.display()));
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

//! Test support for the reve workspace: a fake of the AIML API
//! ([`fake`]), shared by reve-core's tests, reve-mcp's end-to-end tests
//! (in `tests/tests/`) and `cargo xtask demo`.

pub mod fake;
pub mod mcp;

pub use fake::{FakeApi, FakeApiBuilder, RecordedRequest, RetryAfter, Scenario};

use std::path::{Path, PathBuf};

/// Every entry under `dir`, folders and hidden files (such as a save's
/// temporary file) included, sorted: what a test compares to prove that a
/// call left exactly what it reported on disk.
///
/// # Panics
/// If `dir` cannot be listed, which no test could carry on from.
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the folder can be listed") {
        let path = entry.expect("the folder can be listed").path();
        if path.is_dir() {
            found.extend(entries_under(&path));
        }
        found.push(path);
    }
    found.sort();
    found
}

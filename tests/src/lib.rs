//! Test support for the reve workspace: a fake of the AIML API
//! ([`fake`]), an MCP client driving the real binary ([`mcp`]) and the
//! small helpers every test binary needs; shared by reve-core's tests,
//! reve-mcp's end-to-end tests and `cargo xtask demo`.

pub mod fake;
pub mod mcp;
pub mod services;

pub use fake::{FakeApi, FakeApiBuilder, RecordedRequest, RetryAfter, Scenario};

use std::path::{Path, PathBuf};
use std::time::Duration;

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
        // A symlinked folder is listed, not entered: it may point anywhere.
        if path
            .symlink_metadata()
            .is_ok_and(|metadata| metadata.is_dir())
        {
            found.extend(entries_under(&path));
        }
        found.push(path);
    }
    found.sort();
    found
}

/// The names of the entries directly in `dir`, sorted.
///
/// # Panics
/// If `dir` cannot be listed.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the folder can be listed")
        .map(|entry| {
            let entry = entry.expect("the folder can be listed");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Bounds a wait on something a test expects to happen (the fake's
/// counters, a child's exit), so that a broken expectation fails instead of
/// hanging.
///
/// # Panics
/// If `future` takes longer than 30 s.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the awaited state was reached within 30 s")
}

//! The checked-in generated modules must be what the checked-in spec produces, so `cargo test` catches a spec edit
//! without a rerun of `cargo xtask codegen` (or a hand edit of the output).

use std::fs;

use xtask::codegen::{STALE_MESSAGE, generate_from_files, stale_files};

#[test]
fn generated_code_is_fresh() {
    let root = xtask::project_root();
    let generated = generate_from_files(&root).expect("the checked-in spec generates");
    let stale = stale_files(&root, &generated).unwrap();
    assert!(
        stale.is_empty(),
        "{STALE_MESSAGE} (made by no document: {stale:?})"
    );
    for (path, expected) in &generated {
        // A checkout with CRLF line endings (Git's autocrlf on Windows) is as fresh as one without.
        let actual = fs::read_to_string(root.join(path))
            .expect("the generated module is checked in")
            .replace("\r\n", "\n");
        if actual != *expected {
            let line = actual
                .lines()
                .zip(expected.lines())
                .position(|(a, e)| a != e)
                .map_or_else(
                    || actual.lines().count().min(expected.lines().count()) + 1,
                    |index| index + 1,
                );
            panic!("{STALE_MESSAGE} ({path} first differs at line {line})");
        }
    }
}

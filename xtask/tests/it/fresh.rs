//! The checked-in generated module must be what the checked-in spec produces, so `cargo test` catches a spec edit
//! without a rerun of `cargo xtask codegen` (or a hand edit of the output).

use std::fs;

use xtask::codegen::{OUTPUT_PATH, STALE_MESSAGE, generate_from_files};

#[test]
fn generated_code_is_fresh() {
    let root = xtask::project_root();
    let expected = generate_from_files(&root)
        .expect("the checked-in spec generates")
        .rust;
    let actual =
        fs::read_to_string(root.join(OUTPUT_PATH)).expect("the generated module is checked in");
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .map_or_else(
                || actual.lines().count().min(expected.lines().count()) + 1,
                |index| index + 1,
            );
        panic!("{STALE_MESSAGE} ({OUTPUT_PATH} first differs at line {line})");
    }
}

//! `cargo xtask snapshots` selects the snapshot tests by name, so a snapshot test named otherwise would silently never
//! be checked or accepted by it: this keeps the whole workspace to the rule.

use xtask::snapshots::{TEST_SUFFIX, filter};

#[test]
fn every_insta_assertion_sits_in_a_test_the_snapshots_task_selects() {
    let offenders = filter::offenders(&xtask::project_root()).expect("the sources are readable");
    assert!(
        offenders.is_empty(),
        "`cargo xtask snapshots` runs exactly the tests whose names end in `{TEST_SUFFIX}`, which must be exactly the \
         tests asserting a snapshot:\n  {}",
        offenders.join("\n  ")
    );
}

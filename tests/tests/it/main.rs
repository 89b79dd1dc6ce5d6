//! The fake's own tests, in one binary: that it follows the published contract, and that each
//! scenario behaves as the end-to-end tests rely on.

mod fake_contract;
mod fake_scenarios;

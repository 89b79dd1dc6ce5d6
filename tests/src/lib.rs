//! Test support for the reve workspace: a fake of the AIML API
//! ([`fake`]), shared by reve-core's tests, reve-mcp's end-to-end tests
//! (in `tests/tests/`) and `cargo xtask demo`.

pub mod fake;
pub mod mcp;

pub use fake::{FakeApi, FakeApiBuilder, RecordedRequest, RetryAfter, Scenario};

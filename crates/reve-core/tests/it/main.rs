//! reve-core's integration tests, in one binary (every extra test binary is another link, and
//! on two cores the links dominate). Each module tests one concern against the fake API.

mod common;
mod edit;
mod errors;
mod properties;
mod redirects;
mod retries;
mod save;
mod staged;

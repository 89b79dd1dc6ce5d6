//! reve-mcp: the `edit_image` MCP tool and the `reve-mcp edit` command line over `reve-core`.
//!
//! Both are thin adapters over one edit pipeline ([`edit`]); the binary's `main` only parses
//! the command line ([`cli`]) and wires the parts together. Everything here is a library so
//! that the tests reach the same code.

pub mod access;
pub mod byte_pool;
pub mod cli;
pub mod descriptors;
pub mod edit;
pub mod edit_command;
pub mod generation;
pub mod jobs;
pub mod jobs_command;
// Written by `cargo xtask codegen` as prettyplease prints it; its freshness test compares it byte for byte.
#[rustfmt::skip]
pub mod generated;
pub mod mcp;
pub mod preview;
pub mod report;
pub mod transport;

//! reve-mcp: the `edit_image` MCP tool and command line over `reve-core`.
//!
//! The binary's `main` is thin; everything here is a library so that the
//! end-to-end tests and `cargo xtask` can reach the same code.

pub mod access;
pub mod edit_command;
pub mod http;
pub mod preview;
pub mod server;
pub mod settings;
pub mod stdio;
pub mod tool_schema;
pub mod tools;

//! The MCP face of the pipeline: the server handler, the tools, what a call returns, and the
//! tasks extension over the same jobs.

pub mod output;
pub mod resources;
pub mod server;
pub mod task;
pub mod tool;

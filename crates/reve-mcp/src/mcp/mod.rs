//! The MCP face of the pipeline: the server handler, the `edit_image` tool and what a call
//! returns.

pub mod output;
pub mod server;
pub mod tool;

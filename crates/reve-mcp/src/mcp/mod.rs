//! The MCP face of the pipeline: the server handler, the tools, what a call returns, the prompt
//! that asks a person for an edit, the tasks extension over the same jobs, the skill it serves,
//! and what the agent hosts we know pass on to their model.

pub mod hosts;
pub mod output;
pub mod page;
pub mod prompt;
pub mod resources;
pub mod server;
pub mod skill;
pub mod task;
pub mod tool;

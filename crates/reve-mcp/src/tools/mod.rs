//! One module per MCP tool.

pub mod edit_image;

//! How MCP messages reach the server: stdio for a client that launches it, Streamable HTTP for
//! one that cannot.

pub mod http;
pub mod stdio;

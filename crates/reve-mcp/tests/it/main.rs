//! reve-mcp's tests, in one binary (every extra test binary is another link, and on two cores
//! the links dominate): end to end through the real executable over stdio, HTTP and the command
//! line, against the fake API, plus property tests of the pipeline.

mod cli_edit;
mod doc_examples;
mod edits_in_flight;
mod family;
mod faults;
mod help;
mod hostile_input;
mod hosts;
mod http_limits;
mod iterate;
mod jobs;
mod mcp_http;
mod mcp_stdio;
mod money_edges;
mod properties;
mod protocol_abuse;
mod registry;
mod resources;
mod scale_out;
mod secrets;
mod skill;
mod soak;
mod store_rules;
mod support;
mod terminal;
mod view;

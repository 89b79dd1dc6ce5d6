//! The baseline `cargo xtask bench` compares reve-mcp's start-up and idle
//! memory with: an rmcp stdio server with one trivial tool, written the way
//! rmcp's own examples are, with nothing else in it.

use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};

#[derive(Clone)]
struct Minimal;

#[tool_router]
impl Minimal {
    #[tool(description = "Answers pong")]
    async fn ping(&self) -> String {
        "pong".to_owned()
    }
}

#[tool_handler]
impl ServerHandler for Minimal {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Minimal
        .serve(rmcp::transport::io::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}

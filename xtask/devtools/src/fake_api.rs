//! `cargo xtask fake-api`: the fake AIML API as a long-running server, so a
//! person can try `reve-mcp` in Claude Desktop, Cursor or the MCP Inspector
//! without an API key or network access.

use anyhow::{Context as _, Result};
use reve_tests::FakeApi;

/// The port the fake listens on unless `--port` says otherwise; fixed so the
/// printed client configuration stays valid across restarts.
pub const DEFAULT_PORT: u16 = 8787;

/// `latency` is added to every generation: a way to try how a client lives with an edit that
/// outlasts the server's wait (`--latency-secs`).
pub fn run(port: u16, latency: std::time::Duration) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let fake = FakeApi::builder()
                .port(port)
                .latency(latency)
                .try_start()
                .await
                .with_context(|| format!("binding 127.0.0.1:{port} (try --port <another>)"))?;
            println!("The fake AIML API is serving at {}", fake.base_url());
            println!("Start reve-mcp (or configure your MCP client) with:");
            println!("  AIML_API_BASE_URL={}", fake.base_url());
            println!("  AIML_API_KEY={}", fake.api_key());
            println!("Every request is checked against spec/ and answered with an edited picture.");
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            println!(
                "Stopping after {} generation request(s) and {} download(s).",
                fake.generation_attempts(),
                fake.file_downloads()
            );
            Ok(())
        })
}

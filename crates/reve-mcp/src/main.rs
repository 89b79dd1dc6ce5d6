//! `reve-mcp`: serves the `edit_image` MCP tool over stdio.

use anyhow::Context as _;
use clap::Parser as _;
use reve_mcp::server::ReveServer;
use reve_mcp::settings::{Cli, Command, Settings};
use reve_mcp::tools::edit_image::{EditImage, EditImageSettings};
use rmcp::ServiceExt as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // stdout carries the protocol; every log line goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve_stdio(&cli.settings).await,
    }
}

async fn serve_stdio(settings: &Settings) -> anyhow::Result<()> {
    let server = ReveServer::new(build_tool(settings)?);
    tracing::info!("serving MCP on stdio");
    let running = server
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .context("the MCP handshake failed")?;
    running
        .waiting()
        .await
        .context("the MCP session ended with an error")?;
    Ok(())
}

fn build_tool(settings: &Settings) -> anyhow::Result<EditImage> {
    let mut config = reve_core::Config::from_env()
        .context("reading AIML_API_KEY / AIML_API_BASE_URL")?
        .with_timeout(settings.timeout())
        .with_max_retries(settings.max_retries)
        .with_max_input_bytes(settings.max_input_bytes);
    if let Some(base_url) = &settings.base_url {
        config = config.with_base_url(base_url).context("--base-url")?;
    }
    let client = reve_core::Client::new(config).context("building the HTTP client")?;
    Ok(EditImage::new(
        client,
        EditImageSettings {
            output_dir: settings.output_dir()?,
            allowed_dirs: settings.allowed_dirs.clone(),
            max_input_bytes: settings.max_input_bytes,
            preview_budget: settings.preview_budget(),
            response_mode: settings.response_mode,
        },
    ))
}

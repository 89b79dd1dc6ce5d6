//! `reve-mcp`: serves the `edit_image` MCP tool over stdio, or runs
//! `reve-mcp edit` from a terminal.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use reve_mcp::edit_command;
use reve_mcp::server::ReveServer;
use reve_mcp::settings::{Cli, Command, ResponseMode, ServeArgs, Settings};
use reve_mcp::tools::edit_image::{EditImage, EditImageSettings};
use rmcp::ServiceExt as _;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, or `default` when it is unset or invalid. rmcp logs every
/// request whole at debug and trace, so raising the level would put each
/// picture a client sends (as base64) and each prompt into the client's log
/// file; rmcp stays at info unless `RUST_LOG` names it.
fn log_filter(default: &str) -> EnvFilter {
    let names_rmcp = std::env::var("RUST_LOG").is_ok_and(|spec| spec.contains("rmcp"));
    match EnvFilter::try_from_default_env() {
        Ok(filter) if names_rmcp => filter,
        Ok(filter) => filter.add_directive("rmcp=info".parse().expect("a valid directive")),
        Err(_) => EnvFilter::new(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // The command line reports through its own output and progress bars;
    // routine log lines would only get in their way.
    let default_filter = match cli.command {
        Some(Command::Edit(_)) => "warn",
        // rmcp logs the whole initialize request at info: noise in a client's log.
        _ => "info,rmcp=warn",
    };
    // stdout carries the protocol; every log line goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(log_filter(default_filter))
        .init();

    let command = cli.command.unwrap_or_else(|| {
        Command::Serve(ServeArgs::from_env().unwrap_or_else(|error| error.exit()))
    });
    match command {
        Command::Serve(args) => serve(&cli.settings, &args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Edit(args) => {
            edit_command::run(args, &cli.settings, build_client(&cli.settings)?).await
        }
    }
}

async fn serve(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    let mut tool = build_tool(settings)?;
    if args.no_save {
        if settings.response_mode == ResponseMode::Base64 {
            tracing::warn!(
                "with --no-save and --response-mode base64 the full-resolution result is kept \
                 nowhere: clients get only the preview"
            );
        }
        tool = tool.without_saving();
    }
    match args.http {
        None => serve_stdio(ReveServer::new(tool)).await,
        Some(addr) => {
            // An HTTP client is not the user of this machine: neither its
            // roots nor this user's home folder say what it may read here.
            let server = ReveServer::new(tool.confine_to_configured_dirs());
            Ok(reve_mcp::http::serve(server, args.http_options(addr)).await?)
        }
    }
}

async fn serve_stdio(server: ReveServer) -> anyhow::Result<()> {
    tracing::info!("serving MCP on stdio");
    let (stdin, stdout) = rmcp::transport::io::stdio_pipes();
    let stdio = reve_mcp::stdio::guard(stdin, stdout);
    let running = server
        .serve(stdio.transport)
        .await
        .context("the MCP handshake failed")?;
    running
        .waiting()
        .await
        .context("the MCP session ended with an error")?;
    stdio
        .output
        .await
        .context("the stdout task failed")?
        .context("writing to stdout")?;
    Ok(())
}

fn build_tool(settings: &Settings) -> anyhow::Result<EditImage> {
    Ok(EditImage::new(
        build_client(settings)?,
        EditImageSettings {
            output_dir: settings.output_dir()?,
            allowed_dirs: settings.allowed_dirs.clone(),
            max_input_bytes: settings.max_input_bytes,
            preview_budget: settings.preview_budget(),
            response_mode: settings.response_mode,
        },
    ))
}

fn build_client(settings: &Settings) -> anyhow::Result<reve_core::Client> {
    let mut config = reve_core::Config::from_env()
        .context("reading AIML_API_KEY / AIML_API_BASE_URL")?
        .with_timeout(settings.timeout())
        .with_max_retries(settings.max_retries)
        .with_max_input_bytes(settings.max_input_bytes);
    if let Some(base_url) = &settings.base_url {
        config = config.with_base_url(base_url).context("--base-url")?;
    }
    reve_core::Client::new(config).context("building the HTTP client")
}

//! `cargo xtask demo`: the whole product on one command, offline.
//!
//! Starts the fake AIML API on loopback, launches the real `reve-mcp` binary
//! over stdio exactly as Claude Desktop or Cursor would, lists its tools,
//! edits a generated picture and prints what the agent gets back, then writes
//! the viewer a host shows, filled with that edit, to a page a person opens.
//! With `--live` (and `AIML_API_KEY` set) the same happens against the real API.
//!
//! A package cannot depend on another package's binary, so `cargo xtask demo` builds `reve-mcp` (`--locked`, like
//! everything CI runs) and names it in `REVE_MCP_BIN`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use reve_tests::fake::sample_png;
use reve_tests::mcp::{McpSession, TestClient, result_text};
use rmcp::model::{CallToolResult, ContentBlock, ReadResourceRequestParams, ResourceContents};
use serde_json::json;

/// The instruction the published model page uses for its own example.
const PROMPT: &str = "Make the dinosaur sit on a lounge chair with its back to the camera, \
looking toward the water. The setting sun has almost disappeared below the horizon.";

/// Where the demo keeps its input and results, so the user can open them.
const DEMO_DIR: &str = "target/demo";

pub fn run(root: &Path, live: bool) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(root, live))
}

async fn run_async(root: &Path, live: bool) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context(
            "REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask demo`, which builds it",
        )?;
    let demo_dir = root.join(DEMO_DIR);
    let output_dir = demo_dir.join("results");
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let input = demo_dir.join("input.png");
    std::fs::write(&input, sample_png(1024, 768))
        .with_context(|| format!("writing {}", input.display()))?;

    let mut env = BTreeMap::from([
        ("REVE_OUTPUT_DIR".to_owned(), path_text(&output_dir)?),
        (
            "REVE_STATE_DIR".to_owned(),
            path_text(&demo_dir.join("state"))?,
        ),
        ("REVE_ALLOWED_DIRS".to_owned(), path_text(&demo_dir)?),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]);
    let fake = if live {
        let key = std::env::var("AIML_API_KEY")
            .or_else(|_| std::env::var("AIMLAPI_API_KEY"))
            .context("--live needs AIML_API_KEY set to your AIML API key")?;
        env.insert("AIML_API_KEY".into(), key);
        println!("Using the real AIML API (this call is billed).");
        None
    } else {
        let fake = FakeApi::start().await;
        env.insert("AIML_API_KEY".into(), fake.api_key().into());
        env.insert("AIML_API_BASE_URL".into(), fake.base_url().into());
        println!("Started the fake AIML API at {}", fake.base_url());
        Some(fake)
    };

    println!("Launching reve-mcp over stdio, as an MCP client would...");
    // A client that renders MCP Apps, as Claude Desktop does.
    let client = TestClient {
        apps: true,
        ..TestClient::default()
    };
    let session = McpSession::start(&binary, &env, client).await;
    let tools = session.client.peer().list_all_tools().await?;
    for tool in &tools {
        println!(
            "tools/list -> {} ({})",
            tool.name,
            tool.title.as_deref().unwrap_or("")
        );
    }

    println!("\ntools/call edit_image");
    println!("  image_url: {}", input.display());
    println!("  prompt:    {PROMPT}");
    let result = session
        .edit_image(json!({ "prompt": PROMPT, "image_url": path_text(&input)? }))
        .await?;
    let progress = session.observed.progress.lock().unwrap().len();
    if result.is_error == Some(true) {
        bail!("edit_image failed: {}", result_text(&result));
    }

    println!("\nWhat the agent gets back:");
    for block in &result.content {
        match block {
            ContentBlock::Image(image) => println!(
                "  [image]         {}, {} KiB of base64 (shown to the model)",
                image.mime_type,
                image.data.len() / 1024
            ),
            ContentBlock::Text(text) => {
                for line in text.text.lines() {
                    println!("  [text]          {line}");
                }
            }
            ContentBlock::ResourceLink(link) => println!(
                "  [resource_link] {} ({})",
                link.uri,
                link.mime_type.as_deref().unwrap_or("?")
            ),
            other => println!("  [other]         {other:?}"),
        }
    }
    if let Some(structured) = &result.structured_content {
        println!(
            "  [structured]    {}",
            serde_json::to_string_pretty(structured)?.replace('\n', "\n                  ")
        );
    }
    println!("  ({progress} progress notifications while waiting)");
    if let Some(fake) = &fake {
        println!(
            "\nThe fake saw {} generation request(s) and {} download(s).",
            fake.generation_attempts(),
            fake.file_downloads()
        );
    }
    let viewer = demo_dir.join("viewer.html");
    let arguments = json!({ "prompt": PROMPT, "image_url": path_text(&input)? });
    std::fs::write(&viewer, viewer_page(&session, arguments, &result).await?)
        .with_context(|| format!("writing {}", viewer.display()))?;
    println!(
        "\nOpen {} in a browser to see the edit before and after, as a host that renders MCP \
         Apps shows it; the input and the result are in {}.",
        viewer.display(),
        demo_dir.display()
    );
    session.stop().await;
    Ok(())
}

/// The viewer, read from the server, with the edit and its pictures (read as resources, as a
/// host reads them for the viewer) written in.
async fn viewer_page(
    session: &McpSession,
    arguments: serde_json::Value,
    result: &CallToolResult,
) -> Result<String> {
    let output = result
        .structured_content
        .clone()
        .context("the result has no structured content")?;
    let mut pictures = serde_json::Map::new();
    for uri in [&output["preview_uri"], &output["input_image"]["uri"]] {
        let Some(uri) = uri.as_str() else { continue };
        let read = session
            .client
            .peer()
            .read_resource(ReadResourceRequestParams::new(uri))
            .await?;
        if let Some(ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        }) = read.contents.first()
        {
            let mime_type = mime_type.as_deref().unwrap_or("image/png");
            pictures.insert(
                uri.to_owned(),
                format!("data:{mime_type};base64,{blob}").into(),
            );
        }
    }
    let edit = json!({
        "arguments": arguments,
        "result": { "structuredContent": output, "isError": result.is_error },
        "pictures": pictures,
    });
    Ok(reve_mcp::standalone_viewer(&edit))
}

pub(crate) fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", PathBuf::from(path).display()))
}

//! The hardening figures: what a client feels while thousands of hostile connections sit idle
//! on the HTTP server, and the most memory a preview bomb makes the server take.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use reve_tests::fake::{gif_canvas, grey_png, interlaced_gif_canvas, png_declaring};
use reve_tests::{FakeApi, Scenario};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::rpc::{PROTOCOL_VERSION, Server, Stderr};

/// Hostile connections held open during the second half of measurement 9.
pub const HOSTILE_CONNECTIONS: usize = 2000;

#[derive(Default)]
pub struct UnderSiege {
    /// Median call time before the hostile connections were opened, and while they were.
    pub calm: Duration,
    pub besieged: Duration,
    /// The fewest of the hostile connections the server was still holding after a call.
    pub held: usize,
}

/// Median `tools/call` time over HTTP without, and alternately with, [`HOSTILE_CONNECTIONS`]
/// idle connections that never send a byte. The server's idle timeout is raised for the measurement
/// so that the connections stay open throughout: an attacker who reconnects as fast as they are
/// closed keeps as many open.
pub async fn under_siege(
    binary: &Path,
    env: &[(String, String)],
    image_url: &str,
    runs: usize,
) -> Result<UnderSiege> {
    // The harness holds the hostile side's descriptors itself.
    reve_mcp::raise_limit();
    let (mut child, url) = start_http(binary, env).await?;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        http_edit(&http, &url, image_url).await?;
    }
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .context("the server's URL")?
        .to_owned();
    // Calm and besieged calls alternate, so that both see the same machine.
    let mut calm = Vec::new();
    let mut besieged = Vec::new();
    let mut held = usize::MAX;
    for _ in 0..runs {
        calm.push(http_edit(&http, &url, image_url).await?);
        let mut hostile = Vec::with_capacity(HOSTILE_CONNECTIONS);
        for _ in 0..HOSTILE_CONNECTIONS {
            hostile.push(TcpStream::connect(&addr).await?);
        }
        besieged.push(http_edit(&http, &url, image_url).await?);
        held = held.min(hostile.iter().filter(|stream| still_open(stream)).count());
        drop(hostile);
        // Let the server see the closes before the next calm call.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().await?;
    Ok(UnderSiege {
        held,
        calm: crate::measure::median(calm),
        besieged: crate::measure::median(besieged),
    })
}

/// Whether the server still holds `stream` open: nothing to read yet, rather than end of file.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

/// Starts `reve-mcp serve --http` on a free loopback port and returns it with its MCP URL.
pub async fn start_http(binary: &Path, env: &[(String, String)]) -> Result<(Child, String)> {
    let mut command = Command::new(binary);
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = command
        .envs(env.iter().map(|(name, value)| (name, value)))
        .args(["serve", "--http", "127.0.0.1:0", "--stateless"])
        .args(["--idle-timeout-secs", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut lines = BufReader::new(child.stderr.take().context("piped stderr")?).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return Ok(rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned());
            }
        }
        bail!("the server exited before listening")
    })
    .await
    .context("the server did not start listening within 30 s")??;
    // Keep reading, so that the server never blocks on a full stderr pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, listening))
}

/// One `tools/call` over Streamable HTTP, timed from sending to the end of its answer.
pub async fn http_edit(http: &reqwest::Client, url: &str, image_url: &str) -> Result<Duration> {
    let started = Instant::now();
    let call = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "edit_image",
            "arguments": { "prompt": crate::PROMPT, "image_url": image_url },
        },
    });
    let body = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .body(call.to_string())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let elapsed = started.elapsed();
    let result = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|message| message["id"] == 1)
        .context("no answer in the SSE stream")?;
    if result["result"]["isError"] != false {
        bail!("the call failed: {result}");
    }
    if let Some(path) = result["result"]["structuredContent"]["path"].as_str() {
        let _ = std::fs::remove_file(path);
    }
    Ok(elapsed)
}

/// The preview bombs of measurement 10: each as small as it can be and as expensive as the
/// preview's limits let it be.
pub fn bombs() -> Vec<(&'static str, Bytes)> {
    vec![
        // The largest RGBA canvas under the 512 MiB of pixels a preview may hold, interlaced so
        // that it is decoded whole.
        (
            "GIF, 10400x10400 canvas, interlaced",
            Bytes::from(interlaced_gif_canvas(10_400)),
        ),
        // The largest pictures that are decoded a row at a time.
        ("GIF, 16000x16000 canvas", Bytes::from(gif_canvas(16_000))),
        ("PNG, 16384x16384 grey", Bytes::from(grey_png(16_384))),
        (
            "PNG declaring 100000x100000",
            Bytes::from(png_declaring(100_000, 100_000)),
        ),
    ]
}

/// Peak RSS of a fresh stdio server after one call whose result is `bomb`.
pub async fn bomb_peak(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
    image_url: &str,
    bomb: Bytes,
) -> Result<u64> {
    fake.set_default(Scenario::ResultBytes(bomb));
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    // A bomb that cannot be previewed is a tool error naming the saved file, not a failure here.
    let answer = server.call_edit_image(image_url).await?;
    let peak = server.peak_rss()?;
    if let Some(path) = answer.result["structuredContent"]["path"].as_str() {
        let _ = std::fs::remove_file(path);
    }
    for text in answer.result["content"].as_array().into_iter().flatten() {
        if let Some(path) = text["text"]
            .as_str()
            .and_then(|text| text.split("saved to ").nth(1))
            .and_then(|rest| rest.split(", but").next())
        {
            let _ = std::fs::remove_file(path);
        }
    }
    server.stop().await?;
    Ok(peak)
}

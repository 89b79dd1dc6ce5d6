//! Measurement 5: a large local image turned into the request body.
//!
//! reve-mcp does this in-process (it opens the file, then
//! `RequestBody::with_image_file` reads, checks and encodes it straight into
//! the body), so it is measured in-process too, through the same public
//! reve-core calls, in a child process of its own: a fresh process's peak RSS
//! (`VmHWM`) minus its RSS before the work is exactly the extra memory the
//! work needed, with no allocator state left over from earlier runs. The
//! body is then sent (`Client::edit`) to a loopback sink that reads and
//! discards it and answers 400; that send is timed apart, since the budget is
//! about building the body, and counts in the peak memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::rpc::proc_status;

/// What one child measured.
pub struct Probe {
    /// Open, read, type check, base64 and JSON: the request body built.
    pub build: Duration,
    /// The body sent over loopback, to the sink's answer.
    pub send: Duration,
    pub peak_extra_bytes: u64,
}

/// Runs the probe in a fresh child process (`reve-bench --probe-local-input`).
pub fn run_child(harness: &Path, file: &Path) -> Result<Probe> {
    let output = std::process::Command::new(harness)
        .arg("--probe-local-input")
        .arg(file)
        .output()
        .context("starting the local-input probe")?;
    if !output.status.success() {
        bail!(
            "the local-input probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let seconds = |name: &str| Duration::from_secs_f64(report[name].as_f64().unwrap_or_default());
    Ok(Probe {
        build: seconds("build_s"),
        send: seconds("send_s"),
        peak_extra_bytes: report["peak_extra_bytes"].as_u64().unwrap_or_default(),
    })
}

/// The child's side: measures once and prints the figures as JSON.
pub fn probe(file: &Path) -> Result<()> {
    let report = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure(file))?;
    println!("{report}");
    Ok(())
}

async fn measure(file: &Path) -> Result<Value> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sink(listener));
    let size = std::fs::metadata(file)?.len();
    let client = reve_core::Client::new(
        reve_core::Config::default()
            .with_api_key("bench-key")
            .with_base_url(&base_url)?
            .with_max_retries(0)
            .with_max_input_bytes(size),
    )?;
    let pid = std::process::id();
    let before = proc_status(pid, "VmRSS")?;

    let started = Instant::now();
    let request = reve_core::EditImageRequest::new(file.display().to_string(), crate::PROMPT);
    let opened = std::fs::File::open(file)?;
    let body = reve_core::RequestBody::with_image_file(&request, &opened, file, size)?;
    let built = Instant::now();
    match client.edit(&body).await {
        Err(reve_core::Error::Api { status: 400, .. }) => {}
        other => bail!("the sink answers 400, but the client returned {other:?}"),
    }
    let sent = Instant::now();
    let peak = proc_status(pid, "VmHWM")?;
    Ok(json!({
        "build_s": (built - started).as_secs_f64(),
        "send_s": (sent - built).as_secs_f64(),
        "peak_extra_bytes": peak.saturating_sub(before),
    }))
}

/// Reads each request whole into a small reused buffer and answers 400.
async fn sink(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = drain_and_refuse(stream).await;
        });
    }
}

async fn drain_and_refuse(mut stream: TcpStream) -> Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: u64 = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .context("the request declares its length")?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut left = length;
    while left > 0 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            bail!("the body ended early");
        }
        left = left.saturating_sub(read as u64);
    }
    let body = r#"{"message":"sink","statusCode":400}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

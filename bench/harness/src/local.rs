//! Measurement 5: a large local image turned into the request body.
//!
//! reve-mcp does this in-process (`ImageSource::File(..).into_image_url`, then
//! `Client::edit_image` validates and serialises), so it is measured
//! in-process too, through the same public reve-core calls, in a child process
//! of its own: a fresh process's peak RSS (`VmHWM`) minus its RSS before the
//! work is exactly the extra memory the work needed, with no allocator state
//! left over from earlier runs. The request goes to a loopback sink that reads
//! and discards the body and answers 400, so nothing but the client's work
//! (and one pass over loopback) is timed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::rpc::proc_status;

/// What one child measured.
pub struct Probe {
    /// Read, type check and base64 into the data URI.
    pub encode: Duration,
    /// Validation, JSON serialisation and handing the body to the socket.
    pub body: Duration,
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
        encode: seconds("encode_s"),
        body: seconds("body_s"),
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
    let image_url = reve_core::ImageSource::File(file.to_owned()).into_image_url(size)?;
    let encoded = Instant::now();
    let request = reve_core::EditImageRequest::new(image_url, crate::PROMPT);
    match client.edit_image(&request).await {
        Err(reve_core::Error::Api { status: 400, .. }) => {}
        other => bail!("the sink answers 400, but the client returned {other:?}"),
    }
    let sent = Instant::now();
    let peak = proc_status(pid, "VmHWM")?;
    Ok(json!({
        "encode_s": (encoded - started).as_secs_f64(),
        "body_s": (sent - encoded).as_secs_f64(),
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

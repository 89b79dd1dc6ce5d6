//! A bare MCP client over a child's stdio: JSON-RPC lines written and read by
//! hand, so that what is timed is the server and the pipes, not a client
//! library's own start-up or bookkeeping.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The last protocol revision with an `initialize` handshake, which both
/// servers speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(Instant, Value)>>>>;

/// A line the server wrote to stderr, stamped when it arrived.
pub type LogLine = (Instant, String);

/// A running MCP server with a finished handshake.
pub struct Server {
    pid: u32,
    child: Child,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Pending,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
    /// Present when the server was started with [`Stderr::Lines`].
    pub log: Option<mpsc::UnboundedReceiver<LogLine>>,
}

/// What becomes of the server's stderr.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    Discard,
    /// Read line by line, each stamped on arrival (see [`Server::log`]).
    Lines,
}

/// A `tools/call` answer with the times it was sent and answered.
pub struct Answer {
    pub sent: Instant,
    pub answered: Instant,
    pub result: Value,
}

impl Answer {
    pub fn elapsed(&self) -> Duration {
        self.answered - self.sent
    }
}

impl Server {
    /// Spawns `program` with exactly `env` (plus `PATH` and `HOME`), runs
    /// `initialize` and `tools/list`, and returns the server with the time
    /// from spawn to the `tools/list` answer: the cold start a client sees.
    pub async fn start(
        program: &Path,
        env: &[(String, String)],
        stderr: Stderr,
    ) -> Result<(Server, Duration)> {
        let started = Instant::now();
        let mut command = Command::new(program);
        command.env_clear();
        for name in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match stderr {
                Stderr::Discard => Stdio::null(),
                Stderr::Lines => Stdio::piped(),
            })
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id().context("the child has a pid")?;
        let stdin = child.stdin.take().context("piped stdin")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let pending = Pending::default();
        let reader = tokio::spawn(read_answers(BufReader::new(stdout), Arc::clone(&pending)));
        let log = child.stderr.take().map(|stderr| {
            let (lines, log) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut stderr = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    if lines.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
            log
        });
        let server = Server {
            pid,
            child,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending,
            next_id: AtomicU64::new(1),
            reader,
            log,
        };
        server
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": { "name": "reve-bench", "version": "0" },
                }),
            )
            .await?;
        server
            .write(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await?;
        let tools = server.request("tools/list", json!({})).await?;
        let elapsed = started.elapsed();
        if tools.result["tools"].as_array().is_none_or(Vec::is_empty) {
            bail!("{} lists no tools", program.display());
        }
        Ok((server, elapsed))
    }

    pub async fn request(&self, method: &str, params: Value) -> Result<Answer> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.pending
            .lock()
            .expect("the reader does not panic")
            .insert(id, answer);
        let sent = Instant::now();
        self.write(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await?;
        let (at, message) = answered
            .await
            .map_err(|_| anyhow!("the server closed stdout before answering {method}"))?;
        if let Some(error) = message.get("error") {
            bail!("{method} failed: {error}");
        }
        Ok(Answer {
            sent,
            answered: at,
            result: message["result"].clone(),
        })
    }

    /// Calls `edit_image`; a tool error is an error here, since every call
    /// the bench makes should succeed.
    pub async fn edit(&self, image_url: &str) -> Result<Answer> {
        let answer = self.call_edit_image(image_url).await?;
        if answer.result["isError"] == true {
            bail!("edit_image failed: {}", answer.result["content"]);
        }
        Ok(answer)
    }

    /// Calls the tool `name` with `arguments` and returns its result, a tool error included.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<Answer> {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    /// Calls `edit_image` and returns its result, a tool error included.
    pub async fn call_edit_image(&self, image_url: &str) -> Result<Answer> {
        self.request(
            "tools/call",
            json!({
                "name": "edit_image",
                "arguments": { "prompt": crate::PROMPT, "image_url": image_url },
            }),
        )
        .await
    }

    async fn write(&self, message: Value) -> Result<()> {
        let mut line = serde_json::to_vec(&message)?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let stdin = stdin.as_mut().context("stdin already closed")?;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> Result<u64> {
        proc_status(self.pid, "VmRSS")
    }

    /// The most resident memory the process has had, in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        proc_status(self.pid, "VmHWM")
    }

    /// Closes stdin, which ends an MCP stdio session, and waits for the exit.
    pub async fn stop(mut self) -> Result<()> {
        drop(self.stdin.lock().await.take());
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the server did not exit within 10 s of stdin closing");
            }
        }
        self.reader.abort();
        Ok(())
    }
}

async fn read_answers(mut stdout: BufReader<tokio::process::ChildStdout>, pending: Pending) {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let at = Instant::now();
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // Notifications and requests from the server have a method; only
        // answers are waited for.
        if message.get("method").is_some() {
            continue;
        }
        let waiter = message
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| pending.lock().expect("no panics").remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send((at, message));
        }
    }
}

/// A `kB` figure from `/proc/<pid>/status`, in bytes.
pub fn proc_status(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

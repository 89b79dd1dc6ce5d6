//! Drives the real `reve-mcp` binary over stdio, the way an MCP client does.
//!
//! The end-to-end tests and `cargo xtask demo` both use it, so what the demo
//! shows is exactly what the tests check.
#![expect(
    deprecated,
    reason = "roots are deprecated by SEP-2577, but today's clients still send them and the server honours them"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    JsonObject, ListRootsResult, ProgressNotificationParam, Root, RootsCapabilities,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceError, ServiceExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::process::{ChildStderr, Command};
use tokio::task::JoinHandle;

/// A command for `binary` with exactly these environment variables plus
/// `PATH` and `HOME`, so that nothing from the developer's shell (a real
/// API key, a `RUST_LOG`) leaks into a test.
pub fn child_command(binary: &Path, env: &BTreeMap<String, String>) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(env);
    command
}

/// What the test client saw from the server besides responses.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    /// How many `notifications/tools/list_changed` arrived.
    pub tool_list_changes: Arc<std::sync::atomic::AtomicUsize>,
}

/// A minimal MCP client: records progress, declares roots when given some, and the tasks
/// and MCP Apps extensions when asked to.
#[derive(Debug, Clone, Default)]
pub struct TestClient {
    pub observed: Observed,
    pub roots: Option<Vec<PathBuf>>,
    pub tasks: bool,
    /// Speaks 2026-07-28 (`server/discover` and metadata on every request) rather than an
    /// `initialize` handshake of 2025-11-25: the revision that defines the tasks extension.
    pub modern: bool,
    /// The `clientInfo.name` it sends, `reve-tests` unless set: a host's name, to be
    /// answered as that host is.
    pub name: Option<&'static str>,
    /// Declares that it renders MCP Apps (`io.modelcontextprotocol/ui`), as Claude and VS Code do.
    pub apps: bool,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = match self.tasks {
            true => ClientCapabilities::builder().enable_tasks().build(),
            false => ClientCapabilities::default(),
        };
        if self.roots.is_some() {
            capabilities.roots = Some(RootsCapabilities::default());
        }
        if self.apps {
            let serde_json::Value::Object(settings) =
                serde_json::json!({ "mimeTypes": ["text/html;profile=mcp-app"] })
            else {
                unreachable!("an object literal")
            };
            capabilities
                .extensions
                .get_or_insert_default()
                .insert("io.modelcontextprotocol/ui".into(), settings);
        }
        ClientConfig::new(
            capabilities,
            Implementation::new(self.name.unwrap_or("reve-tests"), "0"),
        )
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let roots = self.roots.iter().flatten().map(|dir| {
            Root::new(
                url::Url::from_directory_path(dir)
                    .expect("absolute root")
                    .to_string(),
            )
        });
        Ok(ListRootsResult::new(roots.collect()))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.observed.progress.lock().unwrap().push(params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.observed
            .tool_list_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running `reve-mcp` child process with an MCP session on its stdio.
pub struct McpSession {
    pub client: RunningService<RoleClient, TestClient>,
    pub observed: Observed,
    /// The server's process id, to look at its `/proc` entry.
    pub pid: u32,
    stderr: JoinHandle<String>,
}

impl McpSession {
    /// Starts `binary` (the `reve-mcp` executable) with exactly these
    /// environment variables (see [`child_command`]).
    pub async fn start(binary: &Path, env: &BTreeMap<String, String>, client: TestClient) -> Self {
        Self::start_command(child_command(binary, env), client).await
    }

    /// Starts `command` as it is, arguments and environment included: as a host's
    /// configuration (a bundle's manifest, say) says to.
    pub async fn start_command(command: std::process::Command, client: TestClient) -> Self {
        let command = Command::from(command);
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .expect("reve-mcp starts");
        let pid = transport.id().expect("a freshly spawned child has an id");
        let stderr = tokio::spawn(read_all(stderr));
        let observed = client.observed.clone();
        let client = if client.modern {
            use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _};
            let lifecycle = ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            };
            client.serve_with_lifecycle(transport, lifecycle).await
        } else {
            client.serve(transport).await
        };
        let client = client.expect("MCP handshake");
        Self {
            client,
            observed,
            pid,
            stderr,
        }
    }

    /// Calls `edit_image`. rmcp's client gives every request a progress
    /// token of its own, so the server always has one to report against.
    pub async fn edit_image(
        &self,
        arguments: serde_json::Value,
    ) -> Result<CallToolResult, ServiceError> {
        let arguments: JsonObject = match arguments {
            serde_json::Value::Object(map) => map,
            other => panic!("tool arguments must be an object, got {other}"),
        };
        self.call("edit_image", arguments).await
    }

    /// Calls `get_edit` for `job_id`.
    pub async fn get_edit(&self, job_id: &str) -> Result<CallToolResult, ServiceError> {
        self.call(
            "get_edit",
            serde_json::json!({ "job_id": job_id })
                .as_object()
                .unwrap()
                .clone(),
        )
        .await
    }

    /// The names of the tools the server lists, in its order.
    pub async fn tool_names(&self) -> Result<Vec<String>, ServiceError> {
        Ok(self
            .client
            .peer()
            .list_all_tools()
            .await?
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect())
    }

    /// Calls the tool `name` with `arguments`.
    pub async fn call(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        arguments: JsonObject,
    ) -> Result<CallToolResult, ServiceError> {
        let params = CallToolRequestParams::new(name).with_arguments(arguments);
        self.client.peer().call_tool(params).await
    }

    /// Ends the session and returns everything the server wrote to stderr.
    pub async fn stop(self) -> String {
        self.client
            .cancel()
            .await
            .expect("the session closes cleanly");
        self.stderr.await.expect("stderr reader")
    }
}

async fn read_all(stderr: Option<ChildStderr>) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = stderr {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes).await;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// The text blocks of a tool result, joined by newlines.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured content of a tool result, as an object.
///
/// # Panics
/// If the result has none, which the test then reports with the result.
pub fn structured(result: &CallToolResult) -> &serde_json::Map<String, serde_json::Value> {
    result
        .structured_content
        .as_ref()
        .and_then(serde_json::Value::as_object)
        .unwrap_or_else(|| panic!("no structured content in {result:?}"))
}

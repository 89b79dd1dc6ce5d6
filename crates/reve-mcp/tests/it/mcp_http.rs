//! End-to-end: the real `reve-mcp serve --http` against the fake API, driven
//! by rmcp's Streamable HTTP client and by plain HTTP requests.
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use reve_tests::Scenario;
use reve_tests::fake::{data_uri, sample_png};
use reve_tests::mcp::{TestClient, structured};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{World, command, files_under};

/// How long anything the server does on its own may take before a test gives
/// up (a bound on waiting, never a measured expectation).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) const PROTOCOL_VERSION: &str = "2025-11-25";

/// A running `reve-mcp serve --http` process and what it logged.
pub(crate) struct HttpServer {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: watch::Receiver<String>,
}

impl HttpServer {
    /// Starts the binary on a free loopback port with exactly these
    /// variables (plus `PATH` and `HOME`) and these extra `serve` flags.
    pub(crate) async fn start(env: &BTreeMap<String, String>, flags: &[&str]) -> Self {
        let mut child = spawn(env, &[&["--http", "127.0.0.1:0"], flags].concat());
        let log = collect_log(&mut child);
        let mut server = Self {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        };
        let line = server.wait_for_log("listening on http://").await;
        let url = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        server.addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .unwrap_or_else(|| panic!("unexpected URL {url:?}"))
            .parse()
            .unwrap();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Everything the server has logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.borrow().clone()
    }

    /// Waits until a log line contains `fragment`, and returns that line.
    pub(crate) async fn wait_for_log(&mut self, fragment: &str) -> String {
        let found = tokio::time::timeout(PATIENCE, self.log.wait_for(|log| log.contains(fragment)))
            .await
            .map(|result| result.map(|log| log.clone()));
        match found {
            Ok(Ok(log)) => log
                .lines()
                .find(|line| line.contains(fragment))
                .unwrap()
                .to_owned(),
            _ => panic!(
                "the server never logged {fragment:?}; it logged:\n{}",
                *self.log.borrow()
            ),
        }
    }

    /// Kills the process at once, as a crash or an OOM kill does: nothing is finished or saved.
    pub(crate) async fn kill(mut self) {
        self.signal("KILL");
        self.exit_status().await;
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the server is running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    async fn exit_status(&mut self) -> ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the server exits")
            .unwrap()
    }

    /// Sends SIGTERM, checks the exit is clean and returns the whole log.
    pub(crate) async fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.exit_status().await;
        let log = self.full_log().await;
        assert!(status.success(), "{status}; log:\n{log}");
        log
    }

    /// The log once the process has closed stderr.
    pub(crate) async fn full_log(&mut self) -> String {
        let _ = tokio::time::timeout(PATIENCE, self.log.wait_for(|_| false)).await;
        self.log.borrow().clone()
    }

    /// An MCP client session over Streamable HTTP.
    pub(crate) async fn client(
        &self,
        token: Option<&str>,
        client: TestClient,
    ) -> RunningService<RoleClient, TestClient> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url());
        if let Some(token) = token {
            config = config.auth_header(token);
        }
        client
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP handshake over HTTP")
    }

    /// A JSON-RPC POST as any HTTP client would send it.
    pub(crate) fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        post_to(&self.url(), body)
    }

    /// A JSON-RPC POST in session `session_id`, as a 2025-era client sends it.
    pub(crate) fn post_in(
        &self,
        session_id: &HeaderValue,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        self.post(body)
            .header("mcp-session-id", session_id.clone())
            .header("mcp-protocol-version", PROTOCOL_VERSION)
    }

    /// Tells session `session_id` that its client is initialized, as the handshake ends.
    pub(crate) async fn initialized(&self, session_id: &HeaderValue) {
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = self.post_in(session_id, &initialized).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

fn spawn(env: &BTreeMap<String, String>, flags: &[&str]) -> Child {
    command(env)
        .arg("serve")
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("reve-mcp starts")
}

/// Follows the child's stderr into a watch channel, line by line; the
/// sender is dropped (ending waits) when the process closes stderr.
fn collect_log(child: &mut Child) -> watch::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = watch::channel(String::new());
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sender.send_modify(|log| {
                log.push_str(&line);
                log.push('\n');
            });
        }
    });
    receiver
}

pub(crate) fn post_to(url: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// The JSON-RPC messages of an SSE response body, in order.
pub(crate) fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .flat_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .collect()
}

pub(crate) fn initialize_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "plain-http", "version": "0" }
        }
    })
}

pub(crate) fn tools_call(id: u64, arguments: Value, progress_token: Option<&str>) -> Value {
    let mut params = json!({ "name": "edit_image", "arguments": arguments });
    if let Some(token) = progress_token {
        params["_meta"] = json!({ "progressToken": token });
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
}

fn edit_request(arguments: Value) -> CallToolRequestParams {
    let Value::Object(arguments) = arguments else {
        panic!("tool arguments must be an object, got {arguments}");
    };
    CallToolRequestParams::new("edit_image").with_arguments(arguments)
}

async fn call_edit_image(
    client: &RunningService<RoleClient, TestClient>,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    client.peer().call_tool(edit_request(arguments)).await
}

/// Starts an edit the fake takes `latency` to answer, and returns once the
/// request has reached the fake, with the call still waiting.
pub(crate) async fn start_slow_edit(
    world: &World,
    server: &HttpServer,
    latency: Duration,
) -> (
    RunningService<RoleClient, TestClient>,
    JoinHandle<Result<CallToolResult, ServiceError>>,
) {
    world.fake.push(Scenario::Latency(latency));
    let session = server.client(None, TestClient::default()).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let request = edit_request(json!({ "prompt": "p", "image_url": input }));
    let peer = session.peer().clone();
    let call = tokio::spawn(async move { peer.call_tool(request).await });
    tokio::time::timeout(
        PATIENCE,
        world.fake.wait_until(|c| c.generation_attempts == 1),
    )
    .await
    .expect("the edit reached the API");
    (session, call)
}

fn result_text(result: &CallToolResult) -> String {
    reve_tests::mcp::result_text(result)
}

/// The server's environment in these tests: no folder readable, logs at info.
pub(crate) fn env(world: &World) -> BTreeMap<String, String> {
    world.env(&[("RUST_LOG", "info")])
}

#[tokio::test]
async fn a_tool_call_over_streamable_http_saves_the_result_and_reports_progress() {
    let world = World::new().await;
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(2500)));
    let server = HttpServer::start(&env(&world), &[]).await;
    let session = server.client(None, TestClient::default()).await;

    let tools = session.peer().list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(
        names,
        ["edit_image", "create_image", "remix_images", "get_edit"]
    );

    let input = data_uri("image/png", &sample_png(64, 48));
    let result = call_edit_image(
        &session,
        json!({ "prompt": "make it night", "image_url": input }),
    )
    .await
    .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");

    let sent = world.fake.generation_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json.as_ref().unwrap();
    assert_eq!(body["prompt"], "make it night");
    assert_eq!(body["image_url"], input.as_str());

    let output = structured(&result);
    let saved = PathBuf::from(output["path"].as_str().unwrap());
    assert_eq!(
        files_under(world.outputs.as_path()),
        std::slice::from_ref(&saved)
    );
    let served = reqwest::get(output["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), served.as_ref());
    assert_eq!(
        (output["width"].clone(), output["height"].clone()),
        (json!(64), json!(48))
    );

    let progress = session.observed_progress();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");

    session.cancel().await.unwrap();
    server.stop().await;
}

/// What the tests' client saw, reached through the running service.
trait ObservedProgress {
    fn observed_progress(&self) -> Vec<f64>;
}

impl ObservedProgress for RunningService<RoleClient, TestClient> {
    fn observed_progress(&self) -> Vec<f64> {
        self.service()
            .observed
            .progress
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.progress)
            .collect()
    }
}

#[tokio::test]
async fn plain_http_initialize_then_a_call_with_progress_on_its_sse_stream() {
    let world = World::new().await;
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(2500)));
    let server = HttpServer::start(&env(&world), &[]).await;

    let response = server.post(&initialize_request()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let session_id = response.headers()["mcp-session-id"].clone();
    let messages = sse_messages(&response.text().await.unwrap());
    assert_eq!(messages.len(), 1, "{messages:?}");
    let result = &messages[0]["result"];
    assert_eq!(messages[0]["id"], 1);
    assert_eq!(result["protocolVersion"], PROTOCOL_VERSION);
    assert_eq!(result["serverInfo"]["name"], "reve-mcp");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");

    server.initialized(&session_id).await;

    let input = data_uri("image/png", &sample_png(16, 16));
    let call = tools_call(
        2,
        json!({ "prompt": "p", "image_url": input }),
        Some("edit-1"),
    );
    let response = server.post_in(&session_id, &call).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let messages = sse_messages(&response.text().await.unwrap());
    let (last, before) = messages.split_last().unwrap();
    assert_eq!(last["id"], 2, "{last}");
    assert_ne!(last["result"]["isError"], true, "{last}");
    assert!(last["result"]["structuredContent"]["path"].is_string());
    assert!(before.len() >= 2, "{messages:?}");
    for message in before {
        assert_eq!(message["method"], "notifications/progress", "{message}");
        assert_eq!(message["params"]["progressToken"], "edit-1");
        assert!(
            message["params"]["message"]
                .as_str()
                .unwrap()
                .contains("reve/edit-image")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn origins_and_hosts_outside_the_allow_lists_get_403() {
    let world = World::new().await;
    let server = HttpServer::start(
        &env(&world),
        &[
            "--allow-origin",
            "https://app.example.com",
            "--allow-host",
            "mcp.example.com",
        ],
    )
    .await;
    let port = server.addr.port();
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "origin",
            "https://evil.example".into(),
            StatusCode::FORBIDDEN,
        ),
        (
            "origin",
            "http://localhost.evil.example".into(),
            StatusCode::FORBIDDEN,
        ),
        (
            "origin",
            "https://app.example.com:8443".into(),
            StatusCode::FORBIDDEN,
        ),
        ("origin", "null".into(), StatusCode::FORBIDDEN),
        ("origin", "http://localhost:5173".into(), StatusCode::OK),
        ("origin", format!("http://127.0.0.1:{port}"), StatusCode::OK),
        ("origin", "https://app.example.com".into(), StatusCode::OK),
        (
            "host",
            format!("evil.example:{port}"),
            StatusCode::FORBIDDEN,
        ),
        ("host", "mcp.example.com".into(), StatusCode::OK),
        ("host", format!("localhost:{port}"), StatusCode::OK),
    ];
    for (header, value, expected) in cases {
        let response = server
            .post(&initialize_request())
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{header}: {value}");
    }
    // A browser asks first (CORS preflight): only allowed origins are told
    // yes, and their answers let the page read the session id.
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, server.url())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization,mcp-protocol-version",
            )
            .send()
    };
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("http://localhost:5173", true),
        ("https://evil.example", false),
        ("https://app.example.com:8443", false),
    ] {
        let answer = preflight(origin).await.unwrap();
        assert!(
            answer.status().is_success(),
            "{origin}: {}",
            answer.status()
        );
        let allow_origin = answer.headers().get("access-control-allow-origin");
        if allowed {
            assert_eq!(allow_origin.unwrap(), origin);
            let methods = answer.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap();
            assert!(methods.contains("POST"), "{methods}");
            let headers = answer.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap();
            // Those of both eras: 2026-07-28 clients send the method and name as headers.
            for header in [
                "authorization",
                "mcp-protocol-version",
                "mcp-session-id",
                "last-event-id",
                "mcp-method",
                "mcp-name",
            ] {
                assert!(headers.contains(header), "{header} missing from {headers}");
            }
        } else {
            assert_eq!(allow_origin, None, "{origin}");
        }
    }
    let answer = server
        .post(&initialize_request())
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        answer.headers()["access-control-expose-headers"],
        "mcp-session-id"
    );

    let log = server.stop().await;
    assert!(log.contains("Origin"), "{log}");
}

#[tokio::test]
async fn the_token_is_required_on_every_request_and_never_echoed() {
    let token = "tok-REVE-3a1f9c0e7b2d4e6f8a9b0c1d";
    let wrong = "tok-REVE-WRONG-77aa66bb55cc";
    let world = World::new().await;
    let mut env = env(&world);
    env.insert("REVE_HTTP_TOKEN".into(), token.into());
    env.insert("RUST_LOG".into(), "trace".into());
    let server = HttpServer::start(&env, &[]).await;

    let attempts = [
        None,
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Basic {token}")),
        Some("Bearer".to_owned()),
    ];
    for authorization in attempts {
        let mut request = server.post(&initialize_request());
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = response.text().await.unwrap();
        assert!(!body.contains("tok-REVE"), "{body}");
    }
    // GET and DELETE are guarded too, not only POST.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = reqwest::Client::new()
            .request(method.clone(), server.url())
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method}");
    }
    // A browser's CORS preflight carries no credentials, and grants nothing:
    // it is answered without the token.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    assert_eq!(world.fake.generation_attempts(), 0);

    let response = server
        .post(&initialize_request())
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Load balancers probe without the token.
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // rmcp's client with the token does a whole call.
    let session = server.client(Some(token), TestClient::default()).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    world.fake.push(Scenario::EchoAuthorization);
    let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    let result_json = serde_json::to_string(&result).unwrap();
    session.cancel().await.unwrap();

    let log = server.stop().await;
    assert!(log.contains("rejected a request without the right bearer token"));
    for text in [&log, &result_json] {
        assert!(!text.contains("tok-REVE"), "a token leaked: {text}");
        assert!(
            !text.contains(world.fake.api_key()),
            "the API key leaked: {text}"
        );
    }
}

#[tokio::test]
async fn refuses_to_listen_beyond_loopback_without_a_token() {
    let world = World::new().await;
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let mut child = spawn(&env(&world), &["--http", addr]);
        let log = collect_log(&mut child);
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("the server refuses and exits")
            .unwrap();
        let _ = tokio::time::timeout(PATIENCE, log.clone().wait_for(|_| false)).await;
        let log = log.borrow().clone();
        assert!(!status.success(), "{addr}: {status}");
        assert!(log.contains("refusing to listen on"), "{log}");
        assert!(log.contains("REVE_HTTP_TOKEN"), "{log}");
        assert!(!log.contains("listening on http://"), "{log}");
    }
}

/// A `tools/list` request padded to exactly `size` bytes of JSON.
pub(crate) fn padded_request(size: usize) -> String {
    let template = |padding: &str| {
        json!({
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/list",
            "params": { "_meta": { "padding": padding } }
        })
        .to_string()
    };
    let overhead = template("").len();
    let body = template(&"x".repeat(size - overhead));
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn request_bodies_up_to_the_limit_are_served() {
    let world = World::new().await;
    let small =
        HttpServer::start(&env(&world), &["--stateless", "--max-body-bytes", "100000"]).await;
    let default = HttpServer::start(&env(&world), &["--stateless"]).await;
    let mib = 1024 * 1024;
    // One byte more is answered 413 before the body is read
    // (`http_limits::a_declared_body_over_the_limit_gets_413_before_it_is_sent`).
    let cases = [
        (&small, 100_000, StatusCode::OK),
        // The default takes a 20 MiB picture sent as a data URI (~27 MiB).
        (&default, 30 * mib, StatusCode::OK),
    ];
    for (server, size, expected) in cases {
        let response = reqwest::Client::new()
            .post(server.url())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(padded_request(size))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{size} bytes");
        if expected == StatusCode::OK {
            let messages = sse_messages(&response.text().await.unwrap());
            assert_eq!(messages[0]["result"]["tools"][0]["name"], "edit_image");
        }
    }
    small.stop().await;
    default.stop().await;
}

#[tokio::test]
async fn stateless_replicas_serve_calls_without_a_session() {
    let world = World::new().await;
    let first = HttpServer::start(&env(&world), &["--stateless"]).await;
    let second = HttpServer::start(&env(&world), &["--stateless"]).await;

    // Initialize at one replica: no session is handed out.
    let response = first.post(&initialize_request()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("mcp-session-id").is_none());

    // Call at the other, with no session id and no handshake of its own.
    let input = data_uri("image/png", &sample_png(24, 24));
    let response = second
        .post(&tools_call(
            3,
            json!({ "prompt": "p", "image_url": input }),
            None,
        ))
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("mcp-session-id").is_none());
    let messages = sse_messages(&response.text().await.unwrap());
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 3);
    assert_ne!(last["result"]["isError"], true, "{last}");
    let saved = last["result"]["structuredContent"]["path"]
        .as_str()
        .unwrap();
    assert!(Path::new(saved).starts_with(world.outputs.as_path()));
    assert_eq!(world.fake.generation_attempts(), 1);

    // On the 2026-07-28 wire there is no ping: the server says so, as that revision does, and
    // goes on serving (a host must not need it; the viewer never sends it).
    let ping = json!({ "jsonrpc": "2.0", "id": 4, "method": "ping", "params": { "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "reve-tests", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {},
    } } });
    let response = second
        .post(&ping)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "ping")
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let answer = sse_messages(&text)
        .pop()
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| panic!("no answer to ping in {text}"));
    assert_eq!(answer["id"], 4, "{answer}");
    assert_eq!(answer["error"]["code"], -32601, "{answer}");

    // rmcp's own client works against a stateless server too.
    let session = first.client(None, TestClient::default()).await;
    let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    session.cancel().await.unwrap();

    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn server_files_and_client_roots_are_off_limits_over_http() {
    let world = World::new().await;
    let inputs = TempDir::new().unwrap();
    let picture = inputs.path().join("cat.png");
    std::fs::write(&picture, sample_png(8, 8)).unwrap();
    let picture = picture.to_str().unwrap().to_owned();
    let server = HttpServer::start(&env(&world), &[]).await;
    // The client offers the folder as a root: a remote client's roots are
    // folders on its machine, so they must not open this one.
    let client = TestClient {
        roots: Some(vec![inputs.path().to_path_buf()]),
        ..TestClient::default()
    };
    let session = server.client(None, client).await;
    let previous = {
        let input = data_uri("image/png", &sample_png(8, 8));
        let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": input }))
            .await
            .unwrap();
        structured(&result)["path"].as_str().unwrap().to_owned()
    };
    // Nor is the output folder, which on a shared server holds everyone's results.
    for image_url in [picture.clone(), format!("file://{picture}"), previous] {
        let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": image_url }))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true), "{result:?}");
        assert!(
            result_text(&result).contains("REVE_ALLOWED_DIRS"),
            "{result:?}"
        );
    }
    assert_eq!(world.fake.generation_attempts(), 1);
    session.cancel().await.unwrap();
    server.stop().await;

    // With REVE_ALLOWED_DIRS set explicitly, that folder is readable.
    let mut env = env(&world);
    env.insert(
        "REVE_ALLOWED_DIRS".into(),
        inputs.path().to_str().unwrap().into(),
    );
    let server = HttpServer::start(&env, &[]).await;
    let session = server.client(None, TestClient::default()).await;
    let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": picture }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(world.fake.generation_attempts(), 2);
    session.cancel().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn no_save_returns_the_result_without_writing_it() {
    let world = World::new().await;
    let server = HttpServer::start(&env(&world), &["--no-save"]).await;
    let session = server.client(None, TestClient::default()).await;

    let tools = session.peer().list_all_tools().await.unwrap();
    for tool in &tools {
        let done = &tool.output_schema.as_ref().unwrap()["oneOf"][0];
        assert_eq!(done["properties"]["status"]["const"], json!("succeeded"));
        assert!(done["properties"].get("path").is_none());
        assert!(
            !done["required"]
                .as_array()
                .unwrap()
                .contains(&json!("path"))
        );
    }
    assert!(
        tools[0].input_schema["properties"]
            .get("output_path")
            .is_none()
    );

    let input = data_uri("image/png", &sample_png(32, 32));
    let result = call_edit_image(&session, json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let output = structured(&result);
    assert!(output.get("path").is_none(), "{output:?}");
    let url = output["url"].as_str().unwrap();
    let link = result
        .content
        .iter()
        .find_map(|block| match block {
            ContentBlock::ResourceLink(link) => Some(link.uri.clone()),
            _ => None,
        })
        .expect("a link to the result");
    // Nothing saved: the link is the preview's resource; the URL is in the text.
    assert_eq!(output["result_uri"], Value::Null);
    assert_eq!(link, output["preview_uri"].as_str().unwrap());
    assert!(result_text(&result).contains(url), "{result:?}");
    assert!(result_text(&result).contains("does not save"), "{result:?}");
    assert!(result.content[0].as_image().is_some());
    assert!(files_under(world.outputs.as_path()).is_empty());

    let result = call_edit_image(
        &session,
        json!({ "prompt": "p", "image_url": input, "output_path": "cat.png" }),
    )
    .await
    .unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert_eq!(world.fake.generation_attempts(), 1);
    assert!(files_under(world.outputs.as_path()).is_empty());
    session.cancel().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn sigterm_lets_an_edit_in_flight_finish_then_exits_0() {
    let world = World::new().await;
    let mut server = HttpServer::start(&env(&world), &[]).await;
    let (session, call) = start_slow_edit(&world, &server, Duration::from_secs(3)).await;

    server.signal("TERM");
    server.wait_for_log("SIGTERM: shutting down").await;
    // New connections are refused from now on (the listener closes as soon
    // as the accept loop sees the signal).
    tokio::time::timeout(PATIENCE, async {
        while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server stops accepting connections");

    let result = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the call completes")
        .unwrap()
        .expect("the edit in flight was answered");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let saved = structured(&result)["path"].as_str().unwrap().to_owned();
    assert!(Path::new(&saved).is_file());

    let status = server.exit_status().await;
    let log = server.full_log().await;
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(log.contains("stopped"), "{log}");
    drop(session);
}

#[tokio::test]
async fn the_grace_period_bounds_the_shutdown() {
    let world = World::new().await;
    let mut server = HttpServer::start(&env(&world), &["--shutdown-grace-secs", "1"]).await;
    let (session, call) = start_slow_edit(&world, &server, Duration::from_secs(120)).await;

    server.signal("TERM");
    let status = server.exit_status().await;
    let log = server.full_log().await;
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(
        log.contains("grace period over; abandoning 1 request(s)"),
        "{log}"
    );
    // The abandoned edit's API request was closed, and nothing was saved.
    tokio::time::timeout(
        PATIENCE,
        world.fake.wait_until(|c| c.cancelled_requests == 1),
    )
    .await
    .expect("the API request was abandoned");
    assert!(files_under(world.outputs.as_path()).is_empty());
    // rmcp's client keeps retrying the dead server on its own schedule; what
    // it eventually reports is its business, not the server's.
    call.abort();
    drop(session);
}

#[tokio::test]
async fn custom_headers_reach_the_server_through_rmcps_client() {
    // A browser-like Origin on rmcp's client: foreign is refused, local passes.
    let world = World::new().await;
    let server = HttpServer::start(&env(&world), &[]).await;
    let with_origin = |origin: &'static str| {
        StreamableHttpClientTransportConfig::with_uri(server.url()).custom_headers(HashMap::from([
            (
                HeaderName::from_static("origin"),
                HeaderValue::from_static(origin),
            ),
        ]))
    };
    let refused = TestClient::default()
        .serve(StreamableHttpClientTransport::from_config(with_origin(
            "https://evil.example",
        )))
        .await;
    assert!(refused.is_err(), "a foreign origin got a session");
    let accepted = TestClient::default()
        .serve(StreamableHttpClientTransport::from_config(with_origin(
            "http://localhost:6274",
        )))
        .await
        .expect("a local origin is served");
    assert_eq!(accepted.peer().list_all_tools().await.unwrap().len(), 4);
    accepted.cancel().await.unwrap();
    server.stop().await;
}

/// Reads an SSE body until `done` holds for an event, or the stream ends; returns each event
/// as its id (if any) and its JSON-RPC message (if any).
async fn read_events(
    response: &mut reqwest::Response,
    done: impl Fn(Option<&str>, Option<&Value>) -> bool,
) -> Vec<(Option<String>, Option<Value>)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, response.chunk())
        .await
        .expect("an event within the patience")
        .unwrap()
    {
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let id = event
                .lines()
                .find_map(|line| line.strip_prefix("id:"))
                .map(|id| id.trim().to_owned());
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            let message = serde_json::from_str::<Value>(&data.join("\n")).ok();
            let finished = done(id.as_deref(), message.as_ref());
            events.push((id, message));
            if finished {
                return events;
            }
        }
    }
    events
}

#[tokio::test]
async fn a_stream_dropped_mid_edit_is_resumed_with_last_event_id_and_gets_the_answer() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(3)));
    let server = HttpServer::start(&env(&world), &[]).await;
    let response = server.post(&initialize_request()).send().await.unwrap();
    let session_id = response.headers()["mcp-session-id"].clone();
    response.text().await.unwrap();
    server.initialized(&session_id).await;

    // The call's stream drops after its first progress report, while the API works.
    let input = data_uri("image/png", &sample_png(16, 16));
    let call = tools_call(7, json!({ "prompt": "p", "image_url": input }), Some("t"));
    let mut response = server.post_in(&session_id, &call).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = read_events(&mut response, |_, message| {
        message.is_some_and(|message| message["method"] == "notifications/progress")
    })
    .await;
    let last_id = seen
        .iter()
        .rev()
        .find_map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no event id before the drop: {seen:?}"));
    drop(response);

    // The answer comes while no stream is open (rmcp's own cache forgets a request's stream
    // once it is answered); a reconnect with the last id seen gets it.
    tokio::time::timeout(PATIENCE, async {
        while world.saved_files().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the edit is saved with no stream open");
    let mut resumed = reqwest::Client::new()
        .get(server.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session_id)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let replayed = read_events(&mut resumed, |_, message| {
        message.is_some_and(|message| message["id"] == 7)
    })
    .await;
    let (_, answer) = replayed.last().unwrap();
    let answer = answer.as_ref().unwrap_or_else(|| panic!("{replayed:?}"));
    assert_eq!(answer["id"], 7, "{replayed:?}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    let path = answer["result"]["structuredContent"]["path"]
        .as_str()
        .unwrap();
    assert!(Path::new(path).is_file(), "{answer}");
    // Nothing before the id given is sent again.
    assert!(
        replayed
            .iter()
            .all(|(id, _)| id.as_deref() != Some(last_id.as_str())),
        "{replayed:?}"
    );
    assert_eq!(world.fake.generation_attempts(), 1);
    server.stop().await;
}

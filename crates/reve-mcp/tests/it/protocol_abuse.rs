//! Raw bytes on the stdio transport, as a broken or hostile client sends
//! them: the server answers each line as JSON-RPC and MCP say (or, where
//! rmcp 3.11 deliberately departs from that, as documented below) and stays
//! up for the next request.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reve_tests::FakeApi;
use reve_tests::fake::{data_uri, sample_png};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::support::path_string;

/// The server on raw pipes, after the MCP handshake.
struct Raw {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    _outputs: TempDir,
}

impl Raw {
    async fn start(fake: &FakeApi) -> Self {
        let outputs = TempDir::new().unwrap();
        let folder = path_string(outputs.path());
        let env = BTreeMap::from([
            ("AIML_API_KEY".to_owned(), fake.api_key().to_owned()),
            ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
            ("REVE_OUTPUT_DIR".to_owned(), folder.clone()),
            ("REVE_STATE_DIR".to_owned(), format!("{folder}/.state")),
            ("REVE_ALLOWED_DIRS".to_owned(), folder),
        ]);
        let mut command = crate::support::command(&env);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("reve-mcp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut raw = Self {
            child,
            stdin,
            stdout,
            _outputs: outputs,
        };
        let initialized = raw
            .call(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "raw", "version": "0" }
                }
            }))
            .await;
        assert!(
            initialized["result"]["serverInfo"].is_object(),
            "{initialized}"
        );
        raw.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.as_bytes())
            .await;
        raw
    }

    async fn send_line(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next message the server writes that is not a notification.
    async fn next_response(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
                .await
                .expect("the server answered instead of hanging")
                .unwrap()
                .expect("the server is still running");
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|error| panic!("stdout carried non-JSON ({error}): {line}"));
            assert_eq!(message["jsonrpc"], "2.0", "{message}");
            if message.get("method").is_none() || message.get("id").is_some() {
                return message;
            }
        }
    }

    async fn call(&mut self, request: Value) -> Value {
        self.send_line(request.to_string().as_bytes()).await;
        let response = self.next_response().await;
        assert_eq!(response["id"], request["id"], "{response}");
        response
    }

    /// Still serving: a `ping` gets its own answer next, so nothing was
    /// queued up in between (such as a reply to a line that deserved none).
    async fn assert_alive(&mut self, id: u64) {
        let pong = self
            .call(json!({ "jsonrpc": "2.0", "id": id, "method": "ping" }))
            .await;
        assert_eq!(pong["result"], json!({}), "{pong}");
        assert!(self.child.try_wait().unwrap().is_none());
    }
}

fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error response: {response}"))
}

#[tokio::test]
async fn malformed_lines_get_json_rpc_errors_and_the_server_stays_up() {
    let fake = FakeApi::start().await;
    let mut raw = Raw::start(&fake).await;

    // Not JSON at all: -32700 Parse error, id null (rmcp 3.11 alone would
    // stay silent; reve-mcp's stdio filter answers).
    for junk in [
        &b"{not json"[..],
        b"\xff\xfe\x00garbage",
        b"[1, 2",
        b"\"just a string",
    ] {
        raw.send_line(junk).await;
        let response = raw.next_response().await;
        assert_eq!(error_code(&response), -32700, "{response}");
        assert_eq!(response["id"], Value::Null, "{response}");
        raw.assert_alive(1).await;
    }

    // JSON that is not a JSON-RPC message: -32600 Invalid Request, id null.
    for not_a_message in [
        json!([]),
        json!(42),
        json!({ "jsonrpc": "2.0" }),
        json!({ "jsonrpc": "1.0", "id": 5, "method": "ping" }),
        json!({ "id": 6, "method": "ping" }),
    ] {
        raw.send_line(not_a_message.to_string().as_bytes()).await;
        let response = raw.next_response().await;
        assert_eq!(error_code(&response), -32600, "{not_a_message}: {response}");
        assert_eq!(response["id"], Value::Null, "{response}");
        raw.assert_alive(2).await;
    }
}

#[tokio::test]
async fn bad_requests_get_json_rpc_errors_or_tool_errors() {
    let fake = FakeApi::start().await;
    let mut raw = Raw::start(&fake).await;
    let request = |id: u64, method: &str, params: Value| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });

    let unknown = raw.call(request(10, "images/generate", json!({}))).await;
    assert_eq!(error_code(&unknown), -32601, "{unknown}");

    let no_tool = raw
        .call(request(
            11,
            "tools/call",
            json!({ "name": "delete_everything" }),
        ))
        .await;
    assert_eq!(error_code(&no_tool), -32602, "{no_tool}");
    assert!(
        no_tool["error"]["message"]
            .as_str()
            .unwrap()
            .contains("edit_image"),
        "{no_tool}"
    );

    // A `tools/call` whose params do not parse: -32602 Invalid params for
    // that id (rmcp 3.11 alone would say -32601, method not found).
    let no_name = raw.call(request(12, "tools/call", json!({}))).await;
    assert_eq!(error_code(&no_name), -32602, "{no_name}");

    let mistyped = raw
        .call(request(
            13,
            "tools/call",
            json!({ "name": "edit_image", "arguments": "prompt=p" }),
        ))
        .await;
    assert_eq!(error_code(&mistyped), -32602, "{mistyped}");

    // Arguments of the right shape but wrong content are the tool's to judge:
    // a result flagged as an error, with text the model can act on.
    for (id, arguments, phrase) in [
        (14, json!({}), "missing field"),
        (15, json!({ "prompt": "p" }), "image_url"),
        (16, json!({ "prompt": 7, "image_url": "x" }), "prompt"),
        (
            17,
            json!({ "prompt": "p", "image_url": "data:image/png;base64,!!" }),
            "base64",
        ),
    ] {
        let response = raw
            .call(request(
                id,
                "tools/call",
                json!({ "name": "edit_image", "arguments": arguments }),
            ))
            .await;
        let result = &response["result"];
        assert_eq!(result["isError"], true, "{response}");
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(phrase), "{text}");
    }
    assert_eq!(fake.generation_attempts(), 0);
    raw.assert_alive(18).await;
}

#[tokio::test]
async fn a_20_mb_line_is_refused_with_its_size_and_the_next_request_is_served() {
    let fake = FakeApi::start().await;
    let mut raw = Raw::start(&fake).await;
    // A well-formed call whose prompt alone is 20 MB: over the 16 MiB line
    // limit of rmcp's stdio transport. Its id gets an error that says what
    // to do instead (rmcp alone would drop the line and never answer).
    let huge = json!({
        "jsonrpc": "2.0", "id": 30, "method": "tools/call",
        "params": { "name": "edit_image", "arguments": {
            "prompt": "x".repeat(20 * 1024 * 1024),
            "image_url": data_uri("image/png", &sample_png(8, 8)),
        } }
    });
    let response = raw.call(huge).await;
    assert_eq!(error_code(&response), -32600, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the limit over stdio is 16777216 bytes"),
        "{message}"
    );
    assert!(message.contains("local file path"), "{message}");
    raw.assert_alive(31).await;
    assert_eq!(fake.generation_attempts(), 0);

    // Just under the limit it is read, and refused by the tool for its length.
    let big = json!({
        "jsonrpc": "2.0", "id": 32, "method": "tools/call",
        "params": { "name": "edit_image", "arguments": {
            "prompt": "x".repeat(15 * 1024 * 1024),
            "image_url": data_uri("image/png", &sample_png(8, 8)),
        } }
    });
    let response = raw.call(big).await;
    assert_eq!(response["result"]["isError"], true, "{response:.300}");
    let text = response["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("the limit is 2560"), "{text:.300}");
    assert!(text.len() < 4096, "{} bytes", text.len());
    raw.assert_alive(33).await;
}

#[tokio::test]
async fn a_burst_of_a_thousand_requests_is_answered_one_for_one() {
    let fake = FakeApi::start().await;
    let mut raw = Raw::start(&fake).await;
    let mut burst = Vec::new();
    for id in 1000..2000u64 {
        let request = match id % 4 {
            0 => json!({ "jsonrpc": "2.0", "id": id, "method": "ping" }),
            1 => json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list" }),
            2 => json!({ "jsonrpc": "2.0", "id": id, "method": "no/such/method" }),
            _ => json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": { "name": "edit_image", "arguments": { "prompt": "p" } } }),
        };
        burst.extend_from_slice(request.to_string().as_bytes());
        burst.push(b'\n');
    }
    // All at once, then read: the server must not deadlock writing answers
    // while the client is still writing requests (the pipe buffers are small),
    // so the writes go on a task of their own.
    let mut stdin = raw.stdin;
    let writer = tokio::spawn(async move {
        stdin.write_all(&burst).await.unwrap();
        stdin.flush().await.unwrap();
        stdin
    });
    raw.stdin = {
        let mut answered = std::collections::BTreeMap::new();
        while answered.len() < 1000 {
            let line = tokio::time::timeout(Duration::from_secs(60), raw.stdout.next_line())
                .await
                .expect("the server keeps answering")
                .unwrap()
                .expect("the server is still running");
            let response: Value = serde_json::from_str(&line).unwrap();
            let Some(id) = response["id"].as_u64() else {
                continue;
            };
            assert!(
                answered.insert(id, response).is_none(),
                "id {id} answered twice"
            );
        }
        for (id, response) in &answered {
            match id % 4 {
                0 => assert_eq!(response["result"], json!({}), "{response}"),
                1 => assert_eq!(response["result"]["tools"][0]["name"], "edit_image"),
                2 => assert_eq!(error_code(response), -32601, "{response}"),
                _ => assert_eq!(response["result"]["isError"], true, "{response}"),
            }
        }
        assert_eq!(
            answered.keys().copied().collect::<Vec<_>>(),
            (1000..2000).collect::<Vec<_>>()
        );
        writer.await.unwrap()
    };
    raw.assert_alive(3000).await;
}

//! The scripted model: one loopback server that speaks the four wire formats the hosts use
//! (Anthropic Messages, OpenAI Responses, OpenAI Chat Completions, Gemini generateContent),
//! each streamed as the host asks, and plays one script in all of them: find reve's tools
//! where the host defers them behind a search, call `edit_image` on the picture, call
//! `get_edit` with the job id while the result says the edit is still running, then say
//! "done". Every request is recorded as it came, so that what the host passed on to its model
//! can be checked afterwards.
//!
//! The script keeps no state: each turn is decided from the conversation the host sends, as a
//! real model's would be, so a host that retries or reorders gets a consistent answer.

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The most `get_edit` calls the script makes before it gives up on an edit.
const MAX_COLLECTS: usize = 20;

/// What the script edits, and how.
#[derive(Debug, Clone)]
pub struct Script {
    /// The picture's absolute path, as the model passes it to `edit_image`.
    pub image: String,
    /// The instruction passed as `prompt`.
    pub prompt: String,
}

/// One request the host sent, and whether it was a turn of the scripted conversation (rather
/// than a side query: a title, a router's choice, a token count).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub body: Value,
    pub turn: Option<Step>,
}

/// What the model does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Looks reve's tools up, where the host defers them behind a search tool.
    Search,
    /// Calls `edit_image`.
    Edit,
    /// Calls `get_edit` with this job id.
    Collect(String),
    /// Answers in words: the end.
    Finish,
}

/// A tool call the model made earlier in the conversation, by what it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Search,
    Edit,
    GetEdit,
    Other,
}

/// The conversation so far, as the script needs it: the calls in order, and every string of
/// the last tool output (text, JSON, data URLs), whatever shape the host gave it.
#[derive(Debug, Default)]
struct Conversation {
    calls: Vec<Call>,
    last_output: String,
}

impl Conversation {
    fn next(&self, defers_tools: bool) -> Step {
        match self.calls.last() {
            None if defers_tools => Step::Search,
            None | Some(Call::Search) => Step::Edit,
            Some(Call::Edit | Call::GetEdit) => {
                let collects = self.calls.iter().filter(|c| **c == Call::GetEdit).count();
                match running_job(&self.last_output) {
                    Some(job) if collects < MAX_COLLECTS => Step::Collect(job),
                    _ => Step::Finish,
                }
            }
            Some(Call::Other) => Step::Finish,
        }
    }
}

/// The job id of a result that says its edit is still running, in any of the ways a host may
/// pass it on: reve's text (`job_id "…"`), its JSON (`"job_id":"…"`), or either escaped again.
pub fn running_job(output: &str) -> Option<String> {
    if !output.contains("still running") {
        return None;
    }
    output.match_indices("job_id").find_map(|(at, _)| {
        let rest = &output[at + "job_id".len()..];
        let start = rest.find(|c: char| c.is_ascii_hexdigit())?;
        let id: String = rest[start..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (start <= 8 && id.len() == 32).then_some(id)
    })
}

fn classify(name: &str) -> Call {
    if name.ends_with("edit_image") {
        Call::Edit
    } else if name.ends_with("get_edit") {
        Call::GetEdit
    } else if name == "ToolSearch" || name == "tool_search" {
        Call::Search
    } else {
        Call::Other
    }
}

/// Every string inside `value`, joined by newlines: what a tool output says, whatever its shape.
pub fn strings(value: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            Value::Object(fields) => fields.values().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out.join("\n")
}

#[derive(Clone)]
struct Shared {
    script: Arc<Script>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl Shared {
    fn record(&self, path: &str, body: &Value, turn: Option<Step>) {
        self.recorded.lock().unwrap().push(Recorded {
            path: path.to_owned(),
            body: body.clone(),
            turn,
        });
    }
}

/// The scripted model, serving on a loopback port until dropped.
pub struct ModelServer {
    url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ModelServer {
    pub async fn start(script: Script) -> Result<ModelServer> {
        let shared = Shared {
            script: Arc::new(script),
            recorded: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/responses", post(responses))
            .route("/v1/chat/completions", post(chat))
            .route("/v1beta/models/{call}", post(gemini))
            .fallback(|request: axum::extract::Request| async move {
                eprintln!(
                    "the scripted model has no {} {}",
                    request.method(),
                    request.uri()
                );
                StatusCode::NOT_FOUND
            })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the scripted model's port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ModelServer { url, shared, task })
    }

    /// Its base URL, without a path.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }
}

fn parse(body: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|error| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                format!("the scripted model reads JSON: {error}"),
            )
                .into_response(),
        )
    })
}

fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> Response {
    let mut body = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            body.push_str(&format!("event: {name}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn arguments(step: &Step, script: &Script) -> Value {
    match step {
        Step::Collect(job) => json!({ "job_id": job }),
        _ => json!({ "image_url": script.image, "prompt": script.prompt }),
    }
}

// --- Anthropic Messages (Claude Code) ---------------------------------------------------------

/// Claude Code defers MCP tools behind `ToolSearch` and names them `mcp__<server>__<tool>`.
async fn anthropic(State(shared): State<Shared>, body: Bytes) -> Response {
    let body = match parse(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let mut conversation = Conversation::default();
    for message in body["messages"].as_array().into_iter().flatten() {
        for block in message["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("tool_use") => conversation
                    .calls
                    .push(classify(block["name"].as_str().unwrap_or_default())),
                Some("tool_result") => conversation.last_output = strings(&block["content"]),
                _ => {}
            }
        }
    }
    let step = conversation.next(true);
    shared.record("/v1/messages", &body, Some(step.clone()));
    let model = body["model"].as_str().unwrap_or("claude").to_owned();
    let (block, delta, stop) = match &step {
        Step::Finish => (
            json!({ "type": "text", "text": "" }),
            json!({ "type": "text_delta", "text": "done" }),
            "end_turn",
        ),
        step => {
            let (name, input) = match step {
                Step::Search => (
                    "ToolSearch",
                    json!({ "query": "select:mcp__reve__edit_image,mcp__reve__get_edit", "max_results": 5 }),
                ),
                Step::Edit => ("mcp__reve__edit_image", arguments(step, &shared.script)),
                _ => ("mcp__reve__get_edit", arguments(step, &shared.script)),
            };
            let id = format!("toolu_{}", shared.recorded.lock().unwrap().len());
            (
                json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                json!({ "type": "input_json_delta", "partial_json": input.to_string() }),
                "tool_use",
            )
        }
    };
    let usage = json!({ "input_tokens": 10, "output_tokens": 1 });
    sse(
        vec![
            (
                Some("message_start"),
                json!({ "type": "message_start", "message": {
                    "id": "msg_scripted", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage } }),
            ),
            (
                Some("content_block_start"),
                json!({ "type": "content_block_start", "index": 0, "content_block": block }),
            ),
            (
                Some("content_block_delta"),
                json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
            ),
            (
                Some("content_block_stop"),
                json!({ "type": "content_block_stop", "index": 0 }),
            ),
            (
                Some("message_delta"),
                json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null },
                        "usage": { "output_tokens": 20 } }),
            ),
            (Some("message_stop"), json!({ "type": "message_stop" })),
        ],
        false,
    )
}

// --- OpenAI Responses (Codex) -----------------------------------------------------------------

/// Codex defers MCP tools behind a client-side `tool_search`, and calls them by their own name
/// within the namespace `mcp__<server>`.
async fn responses(State(shared): State<Shared>, body: Bytes) -> Response {
    let body = match parse(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let mut conversation = Conversation::default();
    for item in body["input"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("tool_search_call") => conversation.calls.push(Call::Search),
            Some("function_call") => conversation
                .calls
                .push(classify(item["name"].as_str().unwrap_or_default())),
            Some("function_call_output") => conversation.last_output = strings(&item["output"]),
            _ => {}
        }
    }
    let step = conversation.next(true);
    shared.record("/v1/responses", &body, Some(step.clone()));
    let call_id = format!("call_{}", shared.recorded.lock().unwrap().len());
    let item = match &step {
        Step::Search => {
            json!({ "type": "tool_search_call", "call_id": call_id, "execution": "client",
                                "arguments": { "query": "reve edit_image", "limit": 8 } })
        }
        Step::Finish => json!({ "type": "message", "role": "assistant",
                                "content": [{ "type": "output_text", "text": "done" }] }),
        step => json!({ "type": "function_call", "call_id": call_id, "namespace": "mcp__reve",
                        "name": if *step == Step::Edit { "edit_image" } else { "get_edit" },
                        "arguments": arguments(step, &shared.script).to_string() }),
    };
    sse(
        vec![
            (
                Some("response.created"),
                json!({ "type": "response.created", "response": { "id": "resp_scripted" } }),
            ),
            (
                Some("response.output_item.done"),
                json!({ "type": "response.output_item.done", "output_index": 0, "item": item }),
            ),
            (
                Some("response.completed"),
                json!({ "type": "response.completed", "response": { "id": "resp_scripted",
                        "usage": { "input_tokens": 10, "input_tokens_details": { "cached_tokens": 0 },
                                   "output_tokens": 5, "output_tokens_details": { "reasoning_tokens": 0 },
                                   "total_tokens": 15 } } }),
            ),
        ],
        false,
    )
}

// --- OpenAI Chat Completions (Qwen Code, opencode) --------------------------------------------

/// Qwen Code defers MCP tools behind `tool_search` and calls them through `tool_call`; opencode
/// lists them as `<server>_<tool>`. A request without reve's tools is a side query (opencode's
/// title, Qwen Code's checks) and gets a short answer.
async fn chat(State(shared): State<Shared>, body: Bytes) -> Response {
    let body = match parse(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let tool_names: Vec<&str> = (body["tools"].as_array().into_iter().flatten())
        .filter_map(|tool| tool["function"]["name"].as_str())
        .collect();
    let through_tool_call = tool_names.contains(&"tool_call");
    let direct = |suffix: &str| {
        tool_names
            .iter()
            .find(|name| name.ends_with(suffix))
            .map(|name| (*name).to_owned())
    };
    let (edit_name, get_edit_name) = (direct("edit_image"), direct("get_edit"));
    let streams = body["stream"].as_bool().unwrap_or(false);
    let serial = shared.recorded.lock().unwrap().len();
    if !through_tool_call && edit_name.is_none() {
        shared.record("/v1/chat/completions", &body, None);
        if tool_names.contains(&"respond_in_schema") {
            let arguments =
                json!({ "reasoning": "", "next_speaker": "user", "shouldBlock": false });
            return chat_answer(
                serial,
                streams,
                None,
                Some(("respond_in_schema", arguments)),
            );
        }
        return chat_answer(serial, streams, Some("Edit a picture with reve"), None);
    }
    let mut conversation = Conversation::default();
    for message in body["messages"].as_array().into_iter().flatten() {
        match message["role"].as_str() {
            Some("assistant") => {
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    let call = if name == "tool_call" {
                        let inner: Value = serde_json::from_str(
                            call["function"]["arguments"].as_str().unwrap_or("{}"),
                        )
                        .unwrap_or_default();
                        classify(inner["name"].as_str().unwrap_or_default())
                    } else {
                        classify(name)
                    };
                    conversation.calls.push(call);
                }
            }
            Some("tool") => conversation.last_output = strings(&message["content"]),
            _ => {}
        }
    }
    let step = conversation.next(through_tool_call);
    shared.record("/v1/chat/completions", &body, Some(step.clone()));
    let call = match &step {
        Step::Finish => return chat_answer(serial, streams, Some("done"), None),
        Step::Search => ("tool_search".to_owned(), json!({ "query": "edit_image" })),
        step if through_tool_call => {
            let tool = match step {
                Step::Edit => "mcp__reve__edit_image",
                _ => "mcp__reve__get_edit",
            };
            (
                "tool_call".to_owned(),
                json!({ "name": tool, "arguments": arguments(step, &shared.script) }),
            )
        }
        step => {
            let name = match step {
                Step::Edit => edit_name,
                _ => get_edit_name,
            };
            (name.unwrap_or_default(), arguments(step, &shared.script))
        }
    };
    chat_answer(serial, streams, None, Some((&call.0, call.1)))
}

/// An answer in words or a tool call, its id `call_<serial>` unique within the conversation
/// (a host may refuse a call whose id it has seen).
fn chat_answer(
    serial: usize,
    streams: bool,
    text: Option<&str>,
    call: Option<(&str, Value)>,
) -> Response {
    let tool_calls = call.map(|(name, arguments)| {
        json!([{ "index": 0, "id": format!("call_{serial}"),
                 "type": "function",
                 "function": { "name": name, "arguments": arguments.to_string() } }])
    });
    let finish = if tool_calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let usage = json!({ "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 });
    if !streams {
        let mut message = json!({ "role": "assistant", "content": text });
        if let Some(calls) = tool_calls {
            message["tool_calls"] = calls;
        }
        return axum::Json(json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1, "model": "scripted",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage,
        }))
        .into_response();
    }
    let mut delta = json!({ "role": "assistant", "content": text });
    if let Some(calls) = tool_calls {
        delta["tool_calls"] = calls;
    }
    let chunk = |choices: Value| {
        json!({ "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
                "model": "scripted", "choices": choices })
    };
    let mut last = chunk(json!([]));
    last["usage"] = usage;
    sse(
        vec![
            (
                None,
                chunk(json!([{ "index": 0, "delta": delta, "finish_reason": null }])),
            ),
            (
                None,
                chunk(json!([{ "index": 0, "delta": {}, "finish_reason": finish }])),
            ),
            (None, last),
        ],
        true,
    )
}

// --- Gemini generateContent (Gemini CLI) ------------------------------------------------------

/// Gemini CLI lists MCP tools as `mcp_<server>_<tool>`, and before each prompt asks a router
/// (a `generateContent` with a JSON schema and no tools) how hard the task is.
async fn gemini(State(shared): State<Shared>, Path(call): Path<String>, body: Bytes) -> Response {
    let body = match parse(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let path = format!("/v1beta/models/{call}");
    let method = call.rsplit(':').next().unwrap_or_default();
    if method == "countTokens" {
        shared.record(&path, &body, None);
        return axum::Json(json!({ "totalTokens": 42 })).into_response();
    }
    let declarations: Vec<&str> = (body["tools"].as_array().into_iter().flatten())
        .flat_map(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|declaration| declaration["name"].as_str())
        .collect();
    let named = |suffix: &str| {
        declarations
            .iter()
            .find(|name| name.ends_with(suffix))
            .map(|name| (*name).to_owned())
    };
    let parts = match named("edit_image") {
        None => {
            shared.record(&path, &body, None);
            let schema = body["generationConfig"].to_string();
            let answer = if schema.contains("model_choice") {
                json!({ "reasoning": "a single tool call", "model_choice": "flash" })
            } else {
                json!({ "complexity_reasoning": "a single tool call", "complexity_score": 10 })
            };
            json!([{ "text": answer.to_string() }])
        }
        Some(edit_name) => {
            let mut conversation = Conversation::default();
            for content in body["contents"].as_array().into_iter().flatten() {
                for part in content["parts"].as_array().into_iter().flatten() {
                    if let Some(name) = part["functionCall"]["name"].as_str() {
                        conversation.calls.push(classify(name));
                    }
                    if part.get("functionResponse").is_some() {
                        conversation.last_output = strings(&part["functionResponse"]["response"]);
                    }
                }
            }
            let step = conversation.next(false);
            shared.record(&path, &body, Some(step.clone()));
            match &step {
                Step::Finish => json!([{ "text": "done" }]),
                step => {
                    let name = match step {
                        Step::Edit => edit_name,
                        _ => named("get_edit").unwrap_or_default(),
                    };
                    json!([{ "functionCall": { "name": name, "args": arguments(step, &shared.script) } }])
                }
            }
        }
    };
    let answer = json!({
        "candidates": [{ "content": { "role": "model", "parts": parts }, "index": 0, "finishReason": "STOP" }],
        "usageMetadata": { "promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15 },
    });
    if method == "streamGenerateContent" {
        sse(vec![(None, answer)], false)
    } else {
        axum::Json(answer).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_job_is_read_from_the_text_the_json_and_json_inside_a_string() {
        let id = "0123456789abcdef0123456789abcdef";
        for output in [
            format!("The edit (job {id}) is still running: x. Call get_edit with job_id \"{id}\""),
            format!("{{\"status\":\"running\",\"job_id\":\"{id}\",\"message\":\"still running\"}}"),
            format!("{{\\\"job_id\\\":\\\"{id}\\\"}} still running"),
        ] {
            assert_eq!(running_job(&output).as_deref(), Some(id), "{output}");
        }
        assert_eq!(running_job(&format!("\"job_id\":\"{id}\" succeeded")), None);
    }

    #[test]
    fn the_script_searches_where_tools_are_deferred_then_edits_collects_and_finishes() {
        let mut conversation = Conversation::default();
        assert_eq!(conversation.next(true), Step::Search);
        assert_eq!(conversation.next(false), Step::Edit);
        conversation.calls.push(Call::Search);
        assert_eq!(conversation.next(true), Step::Edit);
        conversation.calls.push(Call::Edit);
        let id = "0123456789abcdef0123456789abcdef";
        conversation.last_output = format!("still running; job_id \"{id}\"");
        assert_eq!(conversation.next(true), Step::Collect(id.to_owned()));
        conversation.calls.push(Call::GetEdit);
        conversation.last_output = "Edited image saved to /x.png".to_owned();
        assert_eq!(conversation.next(true), Step::Finish);
    }
}

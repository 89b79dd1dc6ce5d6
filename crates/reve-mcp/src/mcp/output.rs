//! What a successful `edit_image` call returns: the picture the model sees, a line of text, a
//! link to the saved file, and `structuredContent` declared by the tool's `outputSchema`.

use std::path::Path;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Resource};
use rmcp::schemars::{self, JsonSchema};
use serde::Serialize;
use serde_json::{Value, json};

use crate::edit::Stage;
use crate::jobs::{self, Outcome, Picture, Waited};
use crate::mcp::resources;

/// What a successful call returns as `structuredContent`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EditOutput {
    /// Always `succeeded`: the edit is done and this is its result.
    pub status: Succeeded,
    /// The edit job's id, for `get_edit`.
    pub job_id: String,
    /// Absolute path of the saved full-resolution result.
    // Empty, and so left out of the JSON, when the server does not save
    // (`--no-save`); that server declares `unsaved_output_schema` instead.
    // A sentinel rather than an Option keeps the declared schema of a saving
    // server exactly as it was: `path` a required string.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Where the API published the result, when it returned a URL.
    pub url: Option<String>,
    /// MIME type of the saved file, detected from its bytes.
    pub mime_type: String,
    /// Width of the saved result in pixels.
    pub width: u32,
    /// Height of the saved result in pixels.
    pub height: u32,
    /// Size of the saved file in bytes.
    pub bytes: u64,
    /// The provider's request id, to quote when reporting a problem.
    pub request_id: Option<String>,
    /// Whether the provider flagged the content.
    pub content_violation: Option<bool>,
    /// What the API reported this edit cost; `null` when it did not say, or when the result
    /// was reused from an identical edit and cost nothing more.
    pub usage: Option<UsageOutput>,
    /// The id of the identical edit job whose result this is, when this call reused it instead
    /// of paying again; otherwise `null`.
    pub reused_from: Option<String>,
    /// The MCP resource of the saved result (`resources/read` returns the file); `null` when
    /// this server does not save results.
    pub result_uri: Option<String>,
    /// The MCP resource of the picture shown here; `null` when none was made.
    pub preview_uri: Option<String>,
    /// The input picture as this server saw it; `null` when it was given by URL (the API
    /// fetches those, this server does not) or could not be read for a preview.
    pub input_image: Option<InputOutput>,
    /// The result in words, exactly the text beside the picture: where it was saved, its size,
    /// and anything to tell the user. Here too because some hosts show their model this JSON
    /// in place of that text.
    pub message: String,
}

/// The input picture of an edit, as it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct InputOutput {
    /// The MCP resource of its preview, as it was sent.
    pub uri: String,
    /// Its MIME type, detected from its bytes.
    pub mime_type: String,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The usage the API reported, as it reported it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UsageOutput {
    pub credits_used: Option<f64>,
    pub tokens_used: Option<f64>,
}

/// What a call returns as `structuredContent` while its edit is still running.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunningOutput {
    /// Always `running`: the edit goes on; collect it with `get_edit`.
    pub status: Running,
    /// Pass this to `get_edit` to collect the result.
    pub job_id: String,
    /// What the edit is doing now, for a person.
    pub doing: String,
    /// What to do next, in words: call `get_edit` with this `job_id`. The same text as beside
    /// it, since some hosts show their model this JSON in place of that text.
    pub message: String,
}

/// The `status` of a finished edit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Succeeded {
    Succeeded,
}

/// The `status` of an edit still running.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Running {
    Running,
}

impl EditOutput {
    pub fn new(job_id: &str, succeeded: &jobs::Succeeded) -> Self {
        let result = &succeeded.result;
        // A reused result's pictures are those of the job that made it.
        let owner = succeeded.reused_from.as_deref().unwrap_or(job_id);
        let mut output = Self {
            status: Succeeded::Succeeded,
            job_id: job_id.to_owned(),
            path: result.path.clone().unwrap_or_default(),
            url: result.url.clone(),
            mime_type: result.mime_type.clone(),
            width: result.width,
            height: result.height,
            bytes: result.bytes,
            request_id: result.request_id.clone(),
            content_violation: result.content_violation,
            usage: succeeded.usage.map(|usage| UsageOutput {
                credits_used: usage.credits_used,
                tokens_used: usage.tokens_used,
            }),
            reused_from: succeeded.reused_from.clone(),
            result_uri: result
                .path
                .as_ref()
                .map(|_| resources::uri(owner, Picture::Result)),
            preview_uri: result
                .preview
                .as_ref()
                .map(|_| resources::uri(owner, Picture::Preview)),
            input_image: result.input.as_ref().map(|input| InputOutput {
                uri: resources::uri(owner, Picture::Input),
                mime_type: input.mime_type.clone(),
                width: input.width,
                height: input.height,
                bytes: input.bytes,
            }),
            message: String::new(),
        };
        output.message = describe(job_id, succeeded, &output);
        output
    }
}

/// The declared `outputSchema`: an object that is one of two shapes, told apart by `status`,
/// each with every key always present (`null` when there is no value) and nothing else.
///
/// schemars' output is adjusted for portability across client SDKs: the
/// `uint32`/`uint64` formats are not JSON Schema formats, and Ajv (inside the
/// TypeScript SDK and every client built on it) warns about them on each
/// `tools/list`; a nullable type becomes `anyOf` rather than a type array,
/// which clients that map schemas onto a single-`type` dialect reject; and the
/// definitions are inlined, since a `$ref` inside `oneOf` trips some of them.
pub fn output_schema() -> JsonObject {
    let mut done = closed_schema(schemars::schema_for!(EditOutput), Some("succeeded"));
    inline_nullable_object(
        &mut done,
        "usage",
        closed_schema(schemars::schema_for!(UsageOutput), None),
        "What the API reported this edit cost.",
    );
    inline_nullable_object(
        &mut done,
        "input_image",
        closed_schema(schemars::schema_for!(InputOutput), None),
        "The input picture, as it was sent.",
    );
    let running = closed_schema(schemars::schema_for!(RunningOutput), Some("running"));
    let mut schema = JsonObject::new();
    schema.insert("type".into(), "object".into());
    schema.insert("oneOf".into(), json!([done, running]));
    schema
}

fn closed_schema(schema: schemars::Schema, status: Option<&str>) -> JsonObject {
    let Ok(Value::Object(mut schema)) = serde_json::to_value(schema) else {
        unreachable!("schemars produces an object schema for a struct")
    };
    schema.remove("$schema");
    schema.remove("title");
    schema.remove("description");
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut().filter_map(Value::as_object_mut) {
            make_portable(property);
        }
        let every_key: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
        schema.insert("required".into(), Value::Array(every_key));
    }
    // The discriminator, written as the constant it is rather than a `$ref` to an enum.
    if let Some(status) = status
        && let Some(Value::Object(properties)) = schema.get_mut("properties")
        && let Some(Value::Object(property)) = properties.get_mut("status")
    {
        let description = property.get("description").cloned();
        property.clear();
        property.insert("type".into(), "string".into());
        property.insert("const".into(), status.into());
        if let Some(description) = description {
            property.insert("description".into(), description);
        }
    }
    schema.remove("$defs");
    schema.insert("additionalProperties".into(), false.into());
    schema
}

/// A nullable object property, written out in place of its `$ref`.
fn inline_nullable_object(
    schema: &mut JsonObject,
    name: &str,
    mut object: JsonObject,
    object_description: &str,
) {
    object.insert("description".into(), object_description.into());
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    if let Some(Value::Object(property)) = properties.get_mut(name) {
        let description = property.get("description").cloned();
        property.clear();
        property.insert(
            "anyOf".into(),
            json!([Value::Object(object), { "type": "null" }]),
        );
        if let Some(description) = description {
            property.insert("description".into(), description);
        }
    }
}

fn make_portable(property: &mut JsonObject) {
    if property.get("type").and_then(Value::as_str) == Some("integer") {
        property.remove("format");
    }
    if property.get("type").and_then(Value::as_str) == Some("number") {
        property.remove("format");
    }
    if let Some(Value::Array(types)) = property.get("type").cloned() {
        property.remove("type");
        property.remove("format");
        let alternatives = types.into_iter().map(|t| json!({ "type": t })).collect();
        property.insert("anyOf".into(), Value::Array(alternatives));
    }
}

/// The output schema of a server that does not save results: no `path`.
pub fn unsaved_output_schema() -> JsonObject {
    let mut schema = output_schema();
    if let Some(Value::Array(shapes)) = schema.get_mut("oneOf")
        && let Some(Value::Object(done)) = shapes.first_mut()
    {
        if let Some(Value::Object(properties)) = done.get_mut("properties") {
            properties.remove("path");
        }
        if let Some(Value::Array(required)) = done.get_mut("required") {
            required.retain(|name| name != "path");
        }
    }
    schema
}

/// The result for the model once a job is done, or still running, or ended badly (a tool
/// error whose text says what happened and what it cost).
pub fn job_result(waited: Waited, max_wait: Option<std::time::Duration>) -> CallToolResult {
    match waited {
        Waited::Finished {
            job_id,
            outcome: Outcome::Succeeded(succeeded),
        } => success_result(&job_id, &succeeded),
        Waited::Finished {
            job_id,
            outcome: Outcome::Ended { message, .. },
        } => CallToolResult::error(vec![ContentBlock::text(format!(
            "{message} (edit job {job_id})"
        ))]),
        Waited::Running { job_id, stage } => running_result(&job_id, stage, max_wait),
    }
}

/// A normal result saying the edit goes on, and how to collect it.
fn running_result(
    job_id: &str,
    stage: Option<Stage>,
    max_wait: Option<std::time::Duration>,
) -> CallToolResult {
    let wait = max_wait.map_or_else(String::new, |wait| {
        format!(" (each call waits up to {} s)", wait.as_secs())
    });
    let doing = doing(stage);
    let text = format!(
        "The edit (job {job_id}) is still running: {doing}. Call get_edit with job_id \
         \"{job_id}\" to collect the picture{wait}; calling edit_image again would not be \
         charged twice, but get_edit is the way to wait."
    );
    let output = RunningOutput {
        status: Running::Running,
        job_id: job_id.to_owned(),
        doing,
        message: text.clone(),
    };
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content =
        Some(serde_json::to_value(output).expect("the output serialises to JSON"));
    result
}

/// What a running edit is doing, for a person or a model.
pub fn doing(stage: Option<Stage>) -> String {
    match stage {
        Some(Stage::Queued { waited }) => format!(
            "queued behind other edits on this server ({} s so far; nothing sent yet)",
            waited.as_secs()
        ),
        Some(Stage::Waiting { elapsed }) => format!(
            "waiting for {} to finish it ({} s so far)",
            reve_core::MODEL,
            elapsed.as_secs()
        ),
        Some(Stage::Held { waited }) => format!(
            "held until the edits in flight report their cost, which the daily spending limit \
             needs ({} s so far; nothing sent yet)",
            waited.as_secs()
        ),
        Some(Stage::Saving) => "saving the result".to_owned(),
        Some(Stage::Preparing) | None => "in progress".to_owned(),
    }
}

/// The result in words: where it was saved and its size, the URL, the request id, the job, the
/// usage, and anything to tell the user (a name that was taken, a reused result). The text
/// beside the picture and the `message` of the structured JSON.
fn describe(job_id: &str, succeeded: &jobs::Succeeded, output: &EditOutput) -> String {
    let saved = succeeded.result.path.as_deref().map(Path::new);
    let (width, height) = (output.width, output.height);
    let mut text = match saved {
        // The user may have moved or deleted it since: never say it is there when it is not.
        Some(path) if path.symlink_metadata().is_err() => format!(
            "Edited image ({}x{}, {}, {} bytes) was saved to {}, which is no longer there \
             (moved or deleted); call edit_image again to make it anew.",
            width, height, output.mime_type, output.bytes, output.path
        ),
        Some(_) => format!(
            "Edited image saved to {} ({}x{}, {}, {} bytes).",
            output.path, width, height, output.mime_type, output.bytes
        ),
        None => format!(
            "Edited image ({}x{}, {}, {} bytes); this server does not save results.",
            width, height, output.mime_type, output.bytes
        ),
    };
    if let Some(asked) = &succeeded.name_taken {
        text.push_str(&format!(
            "\nThe name {asked} was taken by another file by the time the paid result was \
             saved, so it was saved under the fresh name above instead."
        ));
    }
    if let Some(url) = &output.url {
        text.push_str(&format!("\nResult URL: {url}"));
    }
    if let Some(request_id) = &output.request_id {
        text.push_str(&format!("\nRequest id: {request_id}"));
    }
    text.push_str(&format!("\nEdit job: {job_id}"));
    if let Some(usage) = &output.usage {
        let reported: Vec<String> = [
            ("credits", usage.credits_used),
            ("tokens", usage.tokens_used),
        ]
        .into_iter()
        .filter_map(|(unit, used)| Some(format!("{} {unit}", used?)))
        .collect();
        if !reported.is_empty() {
            text.push_str(&format!(
                "\nUsage the API reported: {}",
                reported.join(", ")
            ));
        }
    }
    if let Some(other) = &output.reused_from {
        text.push_str(&format!(
            "\nThis is the result of the identical edit job {other}, reused: nothing more was charged."
        ));
    }
    text
}

/// The result for the model. Without a saved path, the structured output has no `path` and the
/// resource link points at the API's URL instead of a file.
pub fn success_result(job_id: &str, succeeded: &jobs::Succeeded) -> CallToolResult {
    let mut output = EditOutput::new(job_id, succeeded);
    let saved = succeeded.result.path.as_deref().map(Path::new);
    let (width, height) = (output.width, output.height);
    // What only the MCP result says (about the picture shown) goes in both the text and the JSON.
    let text = &mut output.message;
    let mut content = Vec::new();
    match (&succeeded.preview, &succeeded.result.preview) {
        (Some(preview), Some((mime_type, preview_width, preview_height))) => {
            if (*preview_width, *preview_height) != (width, height) {
                let full = match (saved, &output.url) {
                    (Some(_), _) => "the saved file is full resolution",
                    (None, Some(_)) => "the result URL has it in full resolution",
                    (None, None) => "the full-resolution result was not kept",
                };
                text.push_str(&format!(
                    "\nThe picture shown is a {preview_width}x{preview_height} preview; {full}."
                ));
            }
            // The one place a picture becomes base64: MCP carries it so.
            content.push(ContentBlock::image(
                base64::engine::general_purpose::STANDARD.encode(preview),
                mime_type.clone(),
            ));
        }
        _ => text.push_str("\nThe inline preview of this result is no longer kept."),
    }
    content.push(ContentBlock::text(output.message.clone()));
    content.extend(resource_link(&output, succeeded).map(ContentBlock::resource_link));
    let mut result = CallToolResult::success(content);
    result.structured_content =
        Some(serde_json::to_value(output).expect("the output serialises to JSON"));
    result
}

/// A link to the result's resource: the saved file, or the preview when nothing was saved, or
/// the API's URL when there is neither.
fn resource_link(output: &EditOutput, succeeded: &jobs::Succeeded) -> Option<Resource> {
    let result = &succeeded.result;
    let name = result
        .path
        .as_deref()
        .and_then(|path| Path::new(path).file_name())
        .map_or_else(
            || "edited image".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
    let link = match (&output.result_uri, &output.preview_uri, &result.preview) {
        (Some(uri), ..) => Resource::new(uri, name)
            .with_mime_type(output.mime_type.clone())
            .with_size(output.bytes),
        (None, Some(uri), Some((mime_type, ..))) => {
            Resource::new(uri, name).with_mime_type(mime_type.clone())
        }
        _ => Resource::new(output.url.clone()?, name)
            .with_mime_type(output.mime_type.clone())
            .with_size(output.bytes),
    };
    Some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_shape_requires_exactly_the_keys_its_result_carries() {
        let succeeded = jobs::Succeeded {
            result: jobs::JobResult {
                path: Some("/out/reve.png".into()),
                mime_type: "image/png".into(),
                width: 1,
                height: 1,
                bytes: 1,
                ..Default::default()
            },
            preview: None,
            usage: None,
            name_taken: None,
            reused_from: None,
        };
        let done = serde_json::to_value(EditOutput::new("j", &succeeded)).unwrap();
        let running = serde_json::to_value(RunningOutput {
            status: Running::Running,
            job_id: "j".into(),
            doing: "d".into(),
            message: "m".into(),
        })
        .unwrap();
        let schema = output_schema();
        assert_eq!(schema["type"], json!("object"));
        for (index, (value, status)) in [(done, "succeeded"), (running, "running")]
            .into_iter()
            .enumerate()
        {
            let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
            let shape = &schema["oneOf"][index];
            let required: Vec<&str> = shape["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(keys, required);
            assert_eq!(shape["additionalProperties"], json!(false));
            assert_eq!(shape["properties"]["status"]["const"], json!(status));
            assert_eq!(value["status"], json!(status));
        }
        let done = &schema["oneOf"][0]["properties"];
        assert_eq!(
            done["url"]["anyOf"],
            json!([{ "type": "string" }, { "type": "null" }])
        );
        assert_eq!(
            done["width"],
            json!({ "description": "Width of the saved result in pixels.", "type": "integer", "minimum": 0 })
        );
        assert_eq!(done["usage"]["anyOf"][1], json!({ "type": "null" }));
        assert!(!serde_json::to_string(&schema).unwrap().contains("$ref"));
    }
}

//! What a successful `edit_image` call returns: the picture the model sees, a line of text, a
//! link to the saved file, and `structuredContent` declared by the tool's `outputSchema`.

use std::path::Path;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Resource};
use rmcp::schemars;
use serde_json::{Value, json};

use crate::edit::Stage;
use crate::jobs::{self, Outcome, Waited};
pub use crate::report::{EditOutput, InputOutput, Running, RunningOutput, UsageOutput};

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
    if let Some(Value::Object(images)) = done
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("input_images"))
    {
        images.insert(
            "items".into(),
            Value::Object(closed_schema(schemars::schema_for!(InputOutput), None)),
        );
    }
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
        // A refusal that cost nothing (a missing file, a prompt too long, the API turning the
        // request down) is the model's to fix, and its job id would only be noise; one that may
        // have cost something names its job, which get_edit and `reve-mcp jobs` know it by.
        Waited::Finished {
            outcome: Outcome::Ended { message, ending },
            ..
        } if ending.refused_by_api && !ending.unsaved => {
            CallToolResult::error(vec![ContentBlock::text(message)])
        }
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

/// What a running edit is doing, for a person or a model ([`Stage::describe`]).
pub fn doing(stage: Option<Stage>) -> String {
    stage.map_or_else(|| "in progress".to_owned(), |stage| stage.describe())
}

/// The result for the model. Without a saved path, the structured output has no `path` and the
/// resource link points at the API's URL instead of a file.
pub fn success_result(job_id: &str, succeeded: &jobs::Succeeded) -> CallToolResult {
    let mut output = EditOutput::new(job_id, succeeded);
    let result = succeeded.generation.result.as_ref();
    let saved = result.and_then(|result| result.path.as_deref());
    let (width, height) = (output.width, output.height);
    // What only the MCP result says (about the picture shown) goes in both the text and the JSON.
    let text = &mut output.message;
    let mut content = Vec::new();
    match (
        &succeeded.preview,
        result.and_then(|result| result.preview.as_ref()),
    ) {
        (Some(preview), Some(shown)) => {
            let (preview_width, preview_height) = (shown.width, shown.height);
            if (preview_width, preview_height) != (width, height) {
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
                shown.mime_type.clone(),
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
    let result = succeeded.generation.result.clone().unwrap_or_default();
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
        (None, Some(uri), Some(shown)) => {
            Resource::new(uri, name).with_mime_type(shown.mime_type.clone())
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
            generation: crate::generation::Generation {
                result: Some(crate::generation::Picture {
                    path: Some("/out/reve.png".into()),
                    mime_type: "image/png".into(),
                    width: 1,
                    height: 1,
                    bytes: 1,
                    ..Default::default()
                }),
                ..Default::default()
            },
            preview: None,
            cost: None,
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

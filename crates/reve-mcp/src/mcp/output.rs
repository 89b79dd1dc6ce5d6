//! What a successful `edit_image` call returns: the picture the model sees, a line of text, a
//! link to the saved file, and `structuredContent` declared by the tool's `outputSchema`.

use std::path::Path;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Resource};
use rmcp::schemars::{self, JsonSchema};
use serde::Serialize;
use serde_json::{Value, json};

use crate::edit::Edited;

/// What a successful call returns as `structuredContent`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EditOutput {
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
}

impl From<&Edited> for EditOutput {
    fn from(edited: &Edited) -> Self {
        let metadata = &edited.metadata;
        Self {
            path: edited
                .path
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            url: metadata.url.clone(),
            mime_type: metadata.mime_type().to_owned(),
            width: edited.dimensions.0,
            height: edited.dimensions.1,
            bytes: edited.size,
            request_id: metadata.request_id.clone(),
            content_violation: metadata.content_violation,
        }
    }
}

/// The declared `outputSchema`: every key always present (`null` when there
/// is no value), nothing else allowed.
///
/// schemars' output is adjusted for portability across client SDKs: the
/// `uint32`/`uint64` formats are not JSON Schema formats, and Ajv (inside the
/// TypeScript SDK and every client built on it) warns about them on each
/// `tools/list`; a nullable type becomes `anyOf` rather than a type array,
/// which clients that map schemas onto a single-`type` dialect reject.
pub fn output_schema() -> JsonObject {
    let Ok(Value::Object(mut schema)) = serde_json::to_value(schemars::schema_for!(EditOutput))
    else {
        unreachable!("schemars produces an object schema for a struct")
    };
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut().filter_map(Value::as_object_mut) {
            make_portable(property);
        }
        let every_key: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
        schema.insert("required".into(), Value::Array(every_key));
    }
    schema.insert("additionalProperties".into(), false.into());
    schema
}

fn make_portable(property: &mut JsonObject) {
    if property.get("type").and_then(Value::as_str) == Some("integer") {
        property.remove("format");
    }
    if let Some(Value::Array(types)) = property.get("type").cloned() {
        property.remove("type");
        let alternatives = types.into_iter().map(|t| json!({ "type": t })).collect();
        property.insert("anyOf".into(), Value::Array(alternatives));
    }
}

/// The output schema of a server that does not save results: no `path`.
pub fn unsaved_output_schema() -> JsonObject {
    let mut schema = output_schema();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.remove("path");
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| name != "path");
    }
    schema
}

/// The result for the model. Without a saved path, the structured output has no `path` and the
/// resource link points at the API's URL instead of a file.
pub fn success_result(edited: Edited) -> CallToolResult {
    let output = EditOutput::from(&edited);
    let saved = edited.path.as_deref();
    let (width, height) = (output.width, output.height);
    let mut text = match saved {
        Some(_) => format!(
            "Edited image saved to {} ({}x{}, {}, {} bytes).",
            output.path, width, height, output.mime_type, output.bytes
        ),
        None => format!(
            "Edited image ({}x{}, {}, {} bytes); this server does not save results.",
            width, height, output.mime_type, output.bytes
        ),
    };
    if let Some(url) = &output.url {
        text.push_str(&format!("\nResult URL: {url}"));
    }
    if let Some(request_id) = &output.request_id {
        text.push_str(&format!("\nRequest id: {request_id}"));
    }
    let preview = edited
        .preview
        .expect("the MCP tool's editor makes previews");
    if (preview.width, preview.height) != (width, height) {
        let full = match (saved, &output.url) {
            (Some(_), _) => "the saved file is full resolution",
            (None, Some(_)) => "the result URL has it in full resolution",
            (None, None) => "the full-resolution result was not kept",
        };
        text.push_str(&format!(
            "\nThe picture shown is a {}x{} preview; {full}.",
            preview.width, preview.height
        ));
    }
    let mut content = vec![
        ContentBlock::image(preview.base64, preview.mime_type),
        ContentBlock::text(text),
    ];
    content.extend(resource_link(&output, saved).map(ContentBlock::resource_link));
    let mut result = CallToolResult::success(content);
    result.structured_content =
        Some(serde_json::to_value(output).expect("the output serialises to JSON"));
    result
}

/// A link to the saved file, or to the API's URL when nothing was saved.
fn resource_link(output: &EditOutput, saved: Option<&Path>) -> Option<Resource> {
    let (uri, file_name) = match saved {
        Some(saved) => {
            let file_uri = url::Url::from_file_path(saved)
                .map(String::from)
                .unwrap_or_else(|()| format!("file://{}", output.path));
            (file_uri, saved.file_name())
        }
        None => (output.url.clone()?, None),
    };
    let name = file_name.map_or_else(
        || "edited image".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    Some(
        Resource::new(uri, name)
            .with_mime_type(output.mime_type.clone())
            .with_size(output.bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_schema_requires_exactly_the_keys_a_result_carries() {
        let output = EditOutput {
            path: "/out/reve.png".into(),
            url: None,
            mime_type: "image/png".into(),
            width: 1,
            height: 1,
            bytes: 1,
            request_id: None,
            content_violation: None,
        };
        let Value::Object(serialized) = serde_json::to_value(output).unwrap() else {
            panic!("an object")
        };
        let keys: Vec<&String> = serialized.keys().collect();
        let schema = output_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, required);
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["url"]["anyOf"],
            json!([{ "type": "string" }, { "type": "null" }])
        );
        assert_eq!(
            schema["properties"]["width"],
            json!({ "description": "Width of the saved result in pixels.", "type": "integer", "minimum": 0 })
        );
    }
}

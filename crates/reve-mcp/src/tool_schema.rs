//! The `edit_image` tool's declared input and output, derived from the
//! vendor's request schema so that a field the vendor adds reaches MCP
//! clients through `cargo xtask codegen` alone.

use rmcp::model::JsonObject;
use rmcp::schemars::{self, JsonSchema};
use serde::Serialize;
use serde_json::{Value, json};

/// Tool argument that is ours, not the vendor's: where to save the result.
pub const OUTPUT_PATH_ARG: &str = "output_path";
/// Vendor field that carries the input image; it also accepts local files here.
pub const IMAGE_URL_ARG: &str = "image_url";

/// Vendor fields the server sets itself rather than the model: how the
/// result travels back is an operator's choice (`--response-mode`), not
/// something a model should have to reason about; the bytes are saved and
/// previewed the same way in both modes.
pub const SERVER_CHOSEN: &[&str] = &["convert_base64_to_url"];

const IMAGE_URL_DESCRIPTION: &str = "The image to edit. One of: an http(s) URL; a data: URI \
(data:image/png;base64,...); or a local file as an absolute path or file:// URI inside a folder \
this server may read (a previous result's saved path works). PNG, JPEG, WebP or GIF.";

const OUTPUT_PATH_DESCRIPTION: &str = "Optional file name, or path relative to the output folder, \
for the saved result. The extension is corrected to the image's real type; an existing file is \
never overwritten. Default: a unique name in the output folder.";

/// Builds the tool's input schema from the generated request schema.
///
/// Constant fields (single-value enums such as `model`) and the fields in
/// [`SERVER_CHOSEN`] are removed; `image_url` loses `format: uri`, which an
/// absolute path would violate; `output_path` is added. Everything else,
/// including fields the vendor adds later, passes through unchanged.
pub fn input_schema(request_schema: &Value) -> JsonObject {
    let mut schema = request_schema
        .as_object()
        .cloned()
        .expect("the generated request schema is a JSON object");
    schema.remove("$schema");
    schema.remove("title");

    let mut removed = Vec::new();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.retain(|name, property| {
            let constant = property
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|values| values.len() == 1);
            let server_chosen = SERVER_CHOSEN.contains(&name.as_str());
            if constant || server_chosen {
                removed.push(name.clone());
            }
            !(constant || server_chosen)
        });
        if let Some(Value::Object(image_url)) = properties.get_mut(IMAGE_URL_ARG) {
            image_url.remove("format");
            image_url.insert("description".into(), IMAGE_URL_DESCRIPTION.into());
        }
        properties.insert(
            OUTPUT_PATH_ARG.into(),
            json!({ "type": "string", "description": OUTPUT_PATH_DESCRIPTION }),
        );
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| !removed.iter().any(|r| Some(r.as_str()) == name.as_str()));
    }
    schema.insert("additionalProperties".into(), false.into());
    schema
}

/// The values of the fields [`input_schema`] removed, to be put back into
/// the request: single-value enums take their one value, and the server's
/// choice of `convert_base64_to_url` is added.
pub fn fixed_fields(request_schema: &Value, convert_base64_to_url: bool) -> Vec<(String, Value)> {
    let properties = request_schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten();
    let constants = properties.filter_map(|(name, property)| {
        let values = property.get("enum")?.as_array()?;
        (values.len() == 1).then(|| (name.clone(), values[0].clone()))
    });
    constants
        .chain([(
            SERVER_CHOSEN[0].to_owned(),
            Value::Bool(convert_base64_to_url),
        )])
        .collect()
}

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

impl EditOutput {
    /// Describes a result not yet saved (`path` empty): the staged image is
    /// consumed by saving, so its details are taken first, and `path` is
    /// filled in once it is saved.
    pub fn unsaved(edited: &reve_core::StagedImage, (width, height): (u32, u32)) -> Self {
        Self {
            path: String::new(),
            url: edited.url.clone(),
            mime_type: edited.mime_type().to_owned(),
            width,
            height,
            bytes: edited.size,
            request_id: edited.request_id.clone(),
            content_violation: edited.content_violation,
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

/// The input schema of a server that does not save results: without
/// `output_path`, which would name a file that is never written.
pub fn unsaved_input_schema(request_schema: &Value) -> JsonObject {
    let mut schema = input_schema(request_schema);
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.remove(OUTPUT_PATH_ARG);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_schema_keeps_vendor_fields_and_drops_fixed_ones() {
        let schema = input_schema(&reve_core::edit_image_request_schema());
        let properties = schema["properties"].as_object().unwrap();
        assert!(!properties.contains_key("model"));
        assert!(!properties.contains_key("convert_base64_to_url"));
        assert_eq!(
            properties["prompt"]["maxLength"],
            json!(reve_core::PROMPT_MAX_LENGTH)
        );
        assert!(properties["image_url"].get("format").is_none());
        assert_eq!(schema["required"], json!(["image_url", "prompt"]));
    }

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

    #[test]
    fn fixed_fields_fill_in_the_model_and_server_choices() {
        let fixed = fixed_fields(&reve_core::edit_image_request_schema(), true);
        assert!(fixed.contains(&("model".to_owned(), json!(reve_core::MODEL))));
        assert!(fixed.contains(&("convert_base64_to_url".to_owned(), json!(true))));
    }
}

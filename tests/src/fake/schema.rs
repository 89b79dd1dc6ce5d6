//! Validation of request bodies against the published request schema.
//!
//! The schema is read from `spec/reve-edit-image.openapi.json` itself, not
//! from reve-core's generated copy, so the fake checks clients against the
//! vendor's contract rather than against our reading of it. Messages are
//! phrased the way the real API (NestJS and class-validator) phrases them
//! and, like its messages, never repeat the offending value: a rejected
//! `image_url` may be megabytes of base64.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

const SPEC: &str = include_str!("../../../spec/reve-edit-image.openapi.json");
const REQUEST_SCHEMA_POINTER: &str =
    "/paths/~1v1~1images~1generations/post/requestBody/content/application~1json/schema";

static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    let spec: Value = serde_json::from_str(SPEC).expect("spec/ holds valid JSON");
    let schema = spec
        .pointer(REQUEST_SCHEMA_POINTER)
        .expect("the spec describes the request body of POST /v1/images/generations");
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the published request schema compiles")
});

/// Every way `body` breaks the request schema, as the API's error `message`
/// array; empty when the body is valid.
pub(crate) fn violations(body: &Value) -> Vec<String> {
    VALIDATOR.iter_errors(body).map(|e| message(&e)).collect()
}

fn message(error: &ValidationError<'_>) -> String {
    let pointer = error.instance_path().as_str();
    let field = pointer.trim_start_matches('/').replace('/', ".");
    let field = if field.is_empty() { "body" } else { &field };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or(field);
            format!("{property} should not be empty")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{field} must be shorter than or equal to {limit} characters")
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|option| {
                    option
                        .as_str()
                        .map_or_else(|| option.to_string(), str::to_owned)
                })
                .collect();
            format!(
                "{field} must be one of the following values: {}",
                options.join(", ")
            )
        }
        ValidationErrorKind::Type {
            kind: TypeKind::Single(expected),
        } => match expected {
            JsonType::Boolean => format!("{field} must be a boolean value"),
            JsonType::Object => format!("{field} must be an object"),
            other => format!("{field} must be a {other}"),
        },
        ValidationErrorKind::Format { format } if format == "uri" => {
            format!("{field} must be a URL address")
        }
        _ => format!("{field}: {}", error.masked()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({
            "model": "reve/edit-image",
            "image_url": "data:image/png;base64,iVBORw0KGgo=",
            "prompt": "make it blue",
        })
    }

    #[test]
    fn a_minimal_request_is_valid() {
        assert_eq!(violations(&valid()), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_are_allowed_as_the_schema_does_not_forbid_them() {
        let mut body = valid();
        body["seed"] = json!(7);
        assert!(violations(&body).is_empty());
    }

    #[test]
    fn prompt_of_2561_characters_is_too_long_and_not_echoed() {
        let mut body = valid();
        body["prompt"] = json!("x".repeat(2561));
        assert_eq!(
            violations(&body),
            ["prompt must be shorter than or equal to 2560 characters"]
        );
        body["prompt"] = json!("x".repeat(2560));
        assert!(violations(&body).is_empty());
    }

    #[test]
    fn missing_model_and_wrong_types_are_each_reported() {
        let body = json!({ "image_url": 3, "prompt": "p", "convert_base64_to_url": "yes" });
        let mut messages = violations(&body);
        messages.sort();
        assert_eq!(
            messages,
            [
                "convert_base64_to_url must be a boolean value",
                "image_url must be a string",
                "model should not be empty",
            ]
        );
    }

    #[test]
    fn other_models_and_non_uris_are_rejected() {
        let mut body = valid();
        body["model"] = json!("flux/dev");
        body["image_url"] = json!("not a url");
        let mut messages = violations(&body);
        messages.sort();
        assert_eq!(
            messages,
            [
                "image_url must be a URL address",
                "model must be one of the following values: reve/edit-image",
            ]
        );
    }

    #[test]
    fn a_non_object_body_is_rejected() {
        assert_eq!(violations(&json!([1])), ["body must be an object"]);
    }
}

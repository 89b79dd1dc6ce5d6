//! Validation of request bodies against the published request schema of the
//! model they name.
//!
//! The schemas are read from the documents in `spec/` themselves, not from
//! reve-core's generated copies, so the fake checks clients against the
//! vendor's contract rather than against our reading of it. Messages are
//! phrased the way the real API (NestJS and class-validator) phrases them
//! and, like its messages, never repeat the offending value: a rejected
//! `image_url` may be megabytes of base64.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

// `DOCUMENTS`: every document in `spec/`, listed by the build script.
include!(concat!(env!("OUT_DIR"), "/documents.rs"));

/// The model a body without one is checked as: its messages then say what every Reve
/// request lacks (`model`, `prompt`).
const FALLBACK_MODEL: &str = "reve/edit-image";

const REQUEST_SCHEMA_POINTER: &str =
    "/paths/~1v1~1images~1generations/post/requestBody/content/application~1json/schema";

/// A model the fake serves: its id (the single value its document allows for `model`), the
/// validator of its request schema, and the schema itself.
struct Served {
    model: String,
    validator: Validator,
    schema: Value,
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    DOCUMENTS
        .iter()
        .map(|document| {
            let spec: Value = serde_json::from_str(document).expect("spec/ holds valid JSON");
            let schema = spec
                .pointer(REQUEST_SCHEMA_POINTER)
                .expect("the spec describes the request body of POST /v1/images/generations")
                .clone();
            let model = schema
                .pointer("/properties/model/enum/0")
                .and_then(Value::as_str)
                .expect("each document allows one model")
                .to_owned();
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("the published request schema compiles");
            Served {
                model,
                validator,
                schema,
            }
        })
        .collect()
});

/// The models the fake serves: one per document in `spec/`.
pub(crate) fn models() -> impl Iterator<Item = &'static str> {
    SERVED.iter().map(|served| served.model.as_str())
}

/// The request schema of `model`, when the fake serves it.
pub(crate) fn request_schema(model: &str) -> Option<&'static Value> {
    SERVED
        .iter()
        .find(|served| served.model == model)
        .map(|served| &served.schema)
}

/// Every way `body` breaks the request schema of the model it names, as the
/// API's error `message` array; empty when the body is valid. A model the
/// fake does not serve is named as the enum of those it does.
pub(crate) fn violations(body: &Value) -> Vec<String> {
    let named = body.get("model").and_then(Value::as_str);
    let validator = |model: &str| {
        &SERVED
            .iter()
            .find(|served| served.model == model)
            .expect("a known model")
            .validator
    };
    match named {
        Some(model) if models().any(|known| known == model) => validator(model)
            .iter_errors(body)
            .map(|e| message(&e))
            .collect(),
        Some(_) => {
            let mut messages: Vec<String> = validator(FALLBACK_MODEL)
                .iter_errors(body)
                .map(|e| message(&e))
                .filter(|message| !message.starts_with("model "))
                .collect();
            messages.insert(
                0,
                format!(
                    "model must be one of the following values: {}",
                    models().collect::<Vec<_>>().join(", ")
                ),
            );
            messages
        }
        None => validator(FALLBACK_MODEL)
            .iter_errors(body)
            .map(|e| message(&e))
            .collect(),
    }
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
        ValidationErrorKind::MaxItems { limit } => {
            format!("{field} must contain no more than {limit} elements")
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("{field} must contain at least {limit} elements")
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
            match field.rsplit_once('.') {
                // An item of an array, as class-validator's `each` option words it.
                Some((array, index)) if index.parse::<usize>().is_ok() => {
                    format!("each value in {array} must be a URL address")
                }
                _ => format!("{field} must be a URL address"),
            }
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
                "model must be one of the following values: reve/create-image, reve/edit-image, reve/remix-edit-image",
            ]
        );
    }

    /// Each model is checked against its own document: create takes no picture and an
    /// aspect ratio of seven, remix one to four pictures, each a URL.
    #[test]
    fn each_model_is_checked_against_its_own_document() {
        let create = json!({ "model": "reve/create-image", "prompt": "p", "aspect_ratio": "16:9" });
        assert!(violations(&create).is_empty(), "{:?}", violations(&create));
        let mut wide = create.clone();
        wide["aspect_ratio"] = json!("21:9");
        assert_eq!(
            violations(&wide),
            [
                "aspect_ratio must be one of the following values: 16:9, 9:16, 3:2, 2:3, 4:3, 3:4, 1:1"
            ]
        );
        let picture = "data:image/png;base64,iVBORw0KGgo=";
        let remix = |count: usize| {
            json!({
                "model": "reve/remix-edit-image",
                "prompt": "p",
                "image_urls": vec![picture; count],
            })
        };
        assert!(violations(&remix(1)).is_empty());
        assert!(violations(&remix(4)).is_empty());
        assert_eq!(
            violations(&remix(5)),
            ["image_urls must contain no more than 4 elements"]
        );
        assert_eq!(
            violations(&remix(0)),
            ["image_urls must contain at least 1 elements"]
        );
        let mut not_a_url = remix(2);
        not_a_url["image_urls"][1] = json!("not a url");
        assert_eq!(
            violations(&not_a_url),
            ["each value in image_urls must be a URL address"]
        );
        // Edit's picture field is not remix's.
        let mut edit_shaped = remix(1);
        edit_shaped.as_object_mut().unwrap().remove("image_urls");
        edit_shaped["image_url"] = json!(picture);
        assert_eq!(violations(&edit_shaped), ["image_urls should not be empty"]);
    }

    #[test]
    fn a_non_object_body_is_rejected() {
        assert_eq!(violations(&json!([1])), ["body must be an object"]);
    }
}

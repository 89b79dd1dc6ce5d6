//! Reading the vendor's OpenAPI document: applying the overlay, finding the one operation, and turning its
//! OpenAPI 3.0 schemas into JSON Schema.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

use super::pointer::Pointer;

/// The parts of the OpenAPI document the generator types: the single operation it describes.
pub(crate) struct Operation {
    /// `servers[0].url`.
    pub(crate) base_url: String,
    /// The only key of `paths`.
    pub(crate) path: String,
    /// Request body schema, already translated to JSON Schema.
    pub(crate) request: Value,
    /// Where the request body schema sits in the document.
    pub(crate) request_pointer: Pointer,
    /// Schema of the 200 response body, already translated to JSON Schema.
    pub(crate) response: Value,
    /// Where the response body schema sits in the document.
    pub(crate) response_pointer: Pointer,
}

/// Operation keys that carry no typing information; anything else (parameters, security, callbacks...) would change
/// the request in a way the generated code cannot express, so it is refused. Specification extensions (`x-...`, such
/// as the create document's `x-hideTryItPanel` for its documentation site) are descriptive too: OpenAPI says tools
/// that do not know one ignore it.
const DESCRIPTIVE_OPERATION_KEYS: &[&str] = &[
    "operationId",
    "summary",
    "description",
    "tags",
    "deprecated",
];

/// Applies `patch` to `doc` as an RFC 7396 JSON merge patch.
///
/// Hand-rolled rather than `json_patch::merge` because that one deletes with `Map::remove`, which under serde_json's
/// `preserve_order` swaps the last key into the hole and so reorders the spec's properties (and the generated fields).
pub(crate) fn merge_patch(doc: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(map) = doc else {
        unreachable!("made an object just above")
    };
    for (key, value) in patch {
        if value.is_null() {
            map.shift_remove(key);
        } else {
            merge_patch(map.entry(key.as_str()).or_insert(Value::Null), value);
        }
    }
}

/// Finds the document's single `POST` operation and its JSON request and 200 response schemas.
///
/// The project wraps exactly one endpoint, so more than one path or method means the vendor changed the shape of
/// the API and a human has to decide what that means for the client.
pub(crate) fn operation(doc: &Value) -> Result<Operation> {
    let root = Pointer::root();
    let base_url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .with_context(|| {
            format!(
                "`{}` must be a string",
                root.push("servers").push("0").push("url")
            )
        })?
        .to_owned();

    let paths_pointer = root.push("paths");
    let paths = object(doc.get("paths"), &paths_pointer)?;
    ensure!(
        paths.len() == 1,
        "`{paths_pointer}` must hold exactly one path, found {}",
        paths.len()
    );
    let (path, item) = paths.iter().next().expect("length checked above");
    let item_pointer = paths_pointer.push(path);
    let item = object(Some(item), &item_pointer)?;
    if let Some(other) = item.keys().find(|key| *key != "post") {
        bail!(
            "`{}` is not supported: the generator handles a single `post` operation",
            item_pointer.push(other)
        );
    }

    let op_pointer = item_pointer.push("post");
    let op = object(item.get("post"), &op_pointer)?;
    for key in op.keys() {
        if !DESCRIPTIVE_OPERATION_KEYS.contains(&key.as_str())
            && !key.starts_with("x-")
            && key != "requestBody"
            && key != "responses"
        {
            bail!(
                "`{}` is not supported by the generator",
                op_pointer.push(key)
            );
        }
    }

    let request_pointer = op_pointer
        .push("requestBody")
        .push("content")
        .push("application/json")
        .push("schema");
    let request = translate_nullable(schema_at(doc, &request_pointer)?, &request_pointer)?;
    let response_pointer = op_pointer
        .push("responses")
        .push("200")
        .push("content")
        .push("application/json")
        .push("schema");
    let response = translate_nullable(schema_at(doc, &response_pointer)?, &response_pointer)?;

    Ok(Operation {
        base_url,
        path: path.clone(),
        request,
        request_pointer,
        response,
        response_pointer,
    })
}

fn object<'a>(value: Option<&'a Value>, pointer: &Pointer) -> Result<&'a Map<String, Value>> {
    value
        .and_then(Value::as_object)
        .with_context(|| format!("`{pointer}` must be an object"))
}

fn schema_at<'a>(doc: &'a Value, pointer: &Pointer) -> Result<&'a Value> {
    doc.pointer(pointer.as_str())
        .with_context(|| format!("`{pointer}` is missing"))
}

/// Rewrites OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [T, "null"]`, recursively, as progenitor's
/// `to_schema.rs` does; like there, an `enum` is left as written (OpenAPI 3.0.3 asks for `null` to be listed in it).
///
/// A `nullable` without a single `type` beside it has no faithful translation in that scheme, so it is refused.
pub(crate) fn translate_nullable(schema: &Value, pointer: &Pointer) -> Result<Value> {
    let Value::Object(map) = schema else {
        bail!("`{pointer}` must be a schema object");
    };
    let mut out = Map::new();
    for (key, value) in map {
        let here = pointer.push(key);
        let translated = match key.as_str() {
            "nullable" => continue,
            "properties" => {
                let properties = object(Some(value), &here)?;
                let mut translated = Map::new();
                for (name, property) in properties {
                    translated.insert(
                        name.clone(),
                        translate_nullable(property, &here.push(name))?,
                    );
                }
                Value::Object(translated)
            }
            "items" => translate_nullable(value, &here)?,
            "anyOf" | "oneOf" | "allOf" => {
                let branches = value
                    .as_array()
                    .with_context(|| format!("`{here}` must be an array"))?;
                let translated = branches
                    .iter()
                    .enumerate()
                    .map(|(index, branch)| {
                        translate_nullable(branch, &here.push(&index.to_string()))
                    })
                    .collect::<Result<_>>()?;
                Value::Array(translated)
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    match map.get("nullable") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            let Some(Value::String(ty)) = map.get("type") else {
                bail!(
                    "`{}`: `nullable` needs a single `type` beside it to be translated",
                    pointer.push("nullable")
                );
            };
            out.insert(
                "type".to_owned(),
                Value::Array(vec![Value::String(ty.clone()), Value::from("null")]),
            );
        }
        Some(_) => bail!("`{}` must be a boolean", pointer.push("nullable")),
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396_and_keeps_key_order() {
        let mut doc = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3, "d": 4});
        merge_patch(
            &mut doc,
            &json!({"b": {"x": null, "z": 5}, "a": null, "e": [1]}),
        );
        assert_eq!(
            doc,
            json!({"b": {"y": 2, "z": 5}, "c": 3, "d": 4, "e": [1]})
        );
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["b", "c", "d", "e"]);
    }
}

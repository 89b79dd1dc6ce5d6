//! One JSON Schema node, checked against the subset the generator supports.
//!
//! Anything outside the subset is an error naming its JSON Pointer: silently skipping a keyword would produce types
//! that accept what the API rejects, or the reverse.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

use super::pointer::Pointer;

/// A schema node the generator knows how to type.
pub(crate) struct Node<'a> {
    pub(crate) kind: Kind<'a>,
    /// `type` lists `"null"` beside the real type (OpenAPI's `nullable: true`, translated).
    pub(crate) nullable: bool,
    pub(crate) description: Option<&'a str>,
    pub(crate) pointer: Pointer,
}

/// The supported shapes.
pub(crate) enum Kind<'a> {
    String(StringSchema<'a>),
    Boolean {
        default: Option<bool>,
    },
    Number {
        default: Option<f64>,
        format: Option<&'a str>,
    },
    Integer {
        default: Option<i64>,
        format: Option<&'a str>,
    },
    Array(ArraySchema<'a>),
    Object {
        properties: &'a Map<String, Value>,
        required: Vec<&'a str>,
    },
    /// `anyOf` of a string and an array of strings, the usual way to say "one or several".
    OneOrMany {
        one: StringSchema<'a>,
        many: ArraySchema<'a>,
    },
}

/// `type: string` with its constraints.
pub(crate) struct StringSchema<'a> {
    /// Allowed values, without the `null` a nullable enum may list.
    pub(crate) values: Option<Vec<&'a str>>,
    pub(crate) max_length: Option<u64>,
    pub(crate) format: Option<&'a str>,
    pub(crate) default: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) pointer: Pointer,
}

/// `type: array` with its constraints.
pub(crate) struct ArraySchema<'a> {
    pub(crate) items: &'a Value,
    pub(crate) min_items: Option<u64>,
    pub(crate) max_items: Option<u64>,
    pub(crate) description: Option<&'a str>,
    pub(crate) pointer: Pointer,
}

/// Keywords every schema may carry: its type and what only describes it (`example`, which the create and remix
/// documents give their response fields, shows a value and types nothing).
const COMMON: &[&str] = &["type", "description", "title", "example"];

/// Reads the schema at `pointer`, refusing keywords and shapes outside the subset.
pub(crate) fn node<'a>(schema: &'a Value, pointer: &Pointer) -> Result<Node<'a>> {
    let map = schema
        .as_object()
        .with_context(|| format!("`{pointer}` must be a schema object"))?;
    let description = string(map, "description", pointer)?;
    if map.contains_key("anyOf") {
        return one_or_many(map, pointer, description);
    }
    let (ty, nullable) = instance_type(map, pointer)?;
    let kind = match ty {
        "string" => Kind::String(string_schema(map, pointer, nullable)?),
        "boolean" => {
            check_keys(map, pointer, &["default"])?;
            Kind::Boolean {
                default: typed_default(map, pointer, Value::as_bool)?,
            }
        }
        "number" => {
            check_keys(map, pointer, &["default", "format"])?;
            Kind::Number {
                default: typed_default(map, pointer, Value::as_f64)?,
                format: string(map, "format", pointer)?,
            }
        }
        "integer" => {
            check_keys(map, pointer, &["default", "format"])?;
            Kind::Integer {
                default: typed_default(map, pointer, Value::as_i64)?,
                format: string(map, "format", pointer)?,
            }
        }
        "array" => Kind::Array(array_schema(map, pointer)?),
        "object" => object(map, pointer)?,
        other => bail!(
            "`{}`: type `{other}` is outside the subset the generator supports",
            pointer.push("type")
        ),
    };
    Ok(Node {
        kind,
        nullable,
        description,
        pointer: pointer.clone(),
    })
}

fn instance_type<'a>(map: &'a Map<String, Value>, pointer: &Pointer) -> Result<(&'a str, bool)> {
    let here = pointer.push("type");
    match map.get("type") {
        Some(Value::String(ty)) => Ok((ty, false)),
        Some(Value::Array(types)) => match types.as_slice() {
            [Value::String(ty), Value::String(null)] | [Value::String(null), Value::String(ty)]
                if null == "null" && ty != "null" =>
            {
                Ok((ty, true))
            }
            _ => bail!("`{here}`: only one type, optionally with \"null\", is supported"),
        },
        Some(_) => bail!("`{here}` must be a string or an array of strings"),
        None => bail!(
            "`{pointer}`: a schema needs a `type`, or an `anyOf` of a string and an array of strings"
        ),
    }
}

fn string_schema<'a>(
    map: &'a Map<String, Value>,
    pointer: &Pointer,
    nullable: bool,
) -> Result<StringSchema<'a>> {
    check_keys(map, pointer, &["enum", "maxLength", "format", "default"])?;
    let values = match map.get("enum") {
        None => None,
        Some(Value::Array(values)) => {
            let mut strings = Vec::new();
            for (index, value) in values.iter().enumerate() {
                match value {
                    Value::String(value) => strings.push(value.as_str()),
                    Value::Null if nullable => {}
                    _ => bail!(
                        "`{}` must be a string",
                        pointer.push("enum").push(&index.to_string())
                    ),
                }
            }
            ensure!(
                !strings.is_empty(),
                "`{}` must list at least one string",
                pointer.push("enum")
            );
            Some(strings)
        }
        Some(_) => bail!("`{}` must be an array", pointer.push("enum")),
    };
    let default = typed_default(map, pointer, Value::as_str)?;
    if let (Some(default), Some(values)) = (default, &values) {
        ensure!(
            values.contains(&default),
            "`{}` is not one of the `enum` values",
            pointer.push("default")
        );
    }
    Ok(StringSchema {
        values,
        max_length: count(map, "maxLength", pointer)?,
        format: string(map, "format", pointer)?,
        default,
        description: string(map, "description", pointer)?,
        pointer: pointer.clone(),
    })
}

fn array_schema<'a>(map: &'a Map<String, Value>, pointer: &Pointer) -> Result<ArraySchema<'a>> {
    check_keys(map, pointer, &["items", "minItems", "maxItems"])?;
    Ok(ArraySchema {
        items: map
            .get("items")
            .with_context(|| format!("`{pointer}`: an array schema needs `items`"))?,
        min_items: count(map, "minItems", pointer)?,
        max_items: count(map, "maxItems", pointer)?,
        description: string(map, "description", pointer)?,
        pointer: pointer.clone(),
    })
}

fn object<'a>(map: &'a Map<String, Value>, pointer: &Pointer) -> Result<Kind<'a>> {
    check_keys(map, pointer, &["properties", "required"])?;
    let here = pointer.push("properties");
    let properties = map
        .get("properties")
        .with_context(|| format!("`{pointer}`: an object schema needs `properties`"))?
        .as_object()
        .with_context(|| format!("`{here}` must be an object"))?;
    let mut required = Vec::new();
    if let Some(list) = map.get("required") {
        let here = pointer.push("required");
        for (index, name) in list
            .as_array()
            .with_context(|| format!("`{here}` must be an array"))?
            .iter()
            .enumerate()
        {
            let here = here.push(&index.to_string());
            let name = name
                .as_str()
                .with_context(|| format!("`{here}` must be a string"))?;
            ensure!(
                properties.contains_key(name),
                "`{here}` names `{name}`, which is not a property"
            );
            required.push(name);
        }
    }
    Ok(Kind::Object {
        properties,
        required,
    })
}

fn one_or_many<'a>(
    map: &'a Map<String, Value>,
    pointer: &Pointer,
    description: Option<&'a str>,
) -> Result<Node<'a>> {
    for key in map.keys() {
        ensure!(
            matches!(key.as_str(), "anyOf" | "description" | "title" | "example"),
            "`{}`: keyword `{key}` beside `anyOf` is outside the subset the generator supports",
            pointer.push(key)
        );
    }
    let here = pointer.push("anyOf");
    let unsupported =
        || format!("`{here}`: only an `anyOf` of a string and an array of strings is supported");
    let branches = map["anyOf"].as_array().with_context(unsupported)?;
    let [first, second] = branches.as_slice() else {
        bail!(unsupported())
    };
    let (first, second) = (
        node(first, &here.push("0"))?,
        node(second, &here.push("1"))?,
    );
    let (one, many) = match (first.kind, second.kind) {
        (Kind::String(one), Kind::Array(many)) | (Kind::Array(many), Kind::String(one)) => {
            (one, many)
        }
        _ => bail!(unsupported()),
    };
    let item = node(many.items, &many.pointer.push("items"))?;
    let plain_string = matches!(&item.kind, Kind::String(item) if item.values.is_none());
    ensure!(
        !first.nullable
            && !second.nullable
            && plain_string
            && !item.nullable
            && one.values.is_none(),
        unsupported()
    );
    Ok(Node {
        kind: Kind::OneOrMany { one, many },
        nullable: false,
        description,
        pointer: pointer.clone(),
    })
}

fn check_keys(map: &Map<String, Value>, pointer: &Pointer, allowed: &[&str]) -> Result<()> {
    for key in map.keys() {
        ensure!(
            COMMON.contains(&key.as_str()) || allowed.contains(&key.as_str()),
            "`{}`: keyword `{key}` is outside the subset the generator supports (here: {})",
            pointer.push(key),
            [COMMON, allowed].concat().join(", ")
        );
    }
    Ok(())
}

fn string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    pointer: &Pointer,
) -> Result<Option<&'a str>> {
    map.get(key)
        .map(|value| {
            value
                .as_str()
                .with_context(|| format!("`{}` must be a string", pointer.push(key)))
        })
        .transpose()
}

fn count(map: &Map<String, Value>, key: &str, pointer: &Pointer) -> Result<Option<u64>> {
    map.get(key)
        .map(|value| {
            value
                .as_u64()
                .with_context(|| format!("`{}` must be a non-negative integer", pointer.push(key)))
        })
        .transpose()
}

fn typed_default<'a, T>(
    map: &'a Map<String, Value>,
    pointer: &Pointer,
    read: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<T>> {
    map.get("default")
        .map(|value| {
            read(value).with_context(|| {
                format!(
                    "`{}` does not match the schema's type",
                    pointer.push("default")
                )
            })
        })
        .transpose()
}

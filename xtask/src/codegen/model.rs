//! What to generate: Rust items named and documented from the checked schema nodes, in spec order.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail, ensure};

use super::naming::{pascal, screaming, snake};
use super::pointer::Pointer;
use super::schema::{ArraySchema, Kind, Node, StringSchema, node};
use super::spec::Operation;

/// Everything the emitter writes, in output order.
pub(crate) struct Model {
    /// The request schema's `title`, the model's id: `reve/edit-image`.
    pub(crate) title: String,
    pub(crate) constants: Vec<Constant>,
    pub(crate) items: Vec<Item>,
    /// Name of the request body struct, e.g. `EditImageRequest`.
    pub(crate) request_name: String,
    /// Name of the constant holding the request's JSON Schema.
    pub(crate) schema_const: String,
    /// Name of the function parsing that constant.
    pub(crate) schema_fn: String,
}

/// Whether a type is sent (strict, so mistakes fail before the network) or received (tolerant, so a vendor change
/// does not break decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// A generated type.
pub(crate) enum Item {
    Struct(Struct),
    Enum(StringEnum),
    OneOrMany(OneOrMany),
}

/// A struct for an object schema.
pub(crate) struct Struct {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) side: Side,
    pub(crate) fields: Vec<Field>,
    /// Rust names of the required fields, in the order of the schema's `required`.
    pub(crate) required: Vec<String>,
}

/// A struct field for an object property.
pub(crate) struct Field {
    pub(crate) json_name: String,
    pub(crate) rust_name: String,
    pub(crate) ty: Ty,
    pub(crate) doc: Vec<String>,
    pub(crate) presence: Presence,
}

/// How a request field must appear on the wire; response fields are always `Optional`.
pub(crate) enum Presence {
    Required,
    /// Required, but `null` is allowed.
    RequiredNullable,
    Optional,
    /// Required and allowed a single value: the named variant, which constructors fill in.
    Fixed(String),
}

/// The Rust type of a field.
pub(crate) enum Ty {
    String,
    Bool,
    F64,
    I64,
    Vec(Box<Ty>),
    /// A generated struct or string enum.
    Named(String),
    /// A generated one-or-many enum, which converts from strings.
    OneOrMany(String),
}

/// A unit enum for a request string with an `enum`.
pub(crate) struct StringEnum {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) variants: Vec<Variant>,
    /// Index of the variant that is the default: the schema's `default`, or the only value.
    pub(crate) default: Option<usize>,
}

/// A string enum variant and the value it stands for.
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// An untagged enum for an `anyOf` of a string and an array of strings.
pub(crate) struct OneOrMany {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) one_doc: Vec<String>,
    pub(crate) many_doc: Vec<String>,
}

/// A `pub const` recording a fact of the spec that hand-written code checks against.
pub(crate) struct Constant {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) value: ConstValue,
}

/// The value of a generated constant.
pub(crate) enum ConstValue {
    Str(String),
    Usize(u64),
    Bool(bool),
    F64(f64),
    I64(i64),
    Variant { ty: String, variant: String },
}

/// Where a schema node sits: the Rust name its type would get, its dotted JSON path for docs, and the prefix of
/// constants derived from it.
struct Place {
    type_name: String,
    label: String,
    side: Side,
    const_prefix: String,
}

/// A field's type plus what its doc comment should add about constraints.
struct Typed {
    ty: Ty,
    notes: Vec<String>,
    /// The variant of a single-value enum.
    fixed: Option<String>,
}

/// Builds the model of `op`; `title` naming comes from the request schema.
pub(crate) fn build(op: &Operation) -> Result<Model> {
    let title_pointer = op.request_pointer.push("title");
    let title = op
        .request
        .get("title")
        .and_then(|title| title.as_str())
        .with_context(|| {
            format!("`{title_pointer}` must be a string: the generated names derive from it")
        })?;
    let stem = pascal(title.rsplit('/').next().unwrap_or(title))?;
    let mut builder = Builder {
        items: Vec::new(),
        constants: Vec::new(),
        names: HashMap::new(),
    };

    let servers = Pointer::root().push("servers").push("0").push("url");
    let doc = format!("Where the API lives unless configured otherwise (from `{servers}`).");
    builder.constant(
        "DEFAULT_BASE_URL".into(),
        doc,
        ConstValue::Str(op.base_url.clone()),
        &servers,
    )?;
    let paths = Pointer::root().push("paths");
    let doc =
        format!("Path of the operation, relative to the base URL (the only key of `{paths}`).");
    builder.constant(
        "ENDPOINT_PATH".into(),
        doc,
        ConstValue::Str(op.path.clone()),
        &paths,
    )?;

    let request_name = format!("{stem}Request");
    let request = root_object(&op.request, &op.request_pointer)?;
    let doc = request.description.map_or_else(
        || {
            vec![format!(
                "Request body of `POST {}` for {}.",
                op.path,
                code(title)
            )]
        },
        |description| vec![prose(description)],
    );
    let place = Place {
        type_name: request_name.clone(),
        label: String::new(),
        side: Side::Request,
        const_prefix: String::new(),
    };
    builder.object(&request, &place, doc)?;

    let response = root_object(&op.response, &op.response_pointer)?;
    let mut doc = response.description.map_or_else(
        || {
            vec![format!(
                "Body of a successful (200) response to `POST {}`.",
                op.path
            )]
        },
        |description| vec![prose(description)],
    );
    doc.push("Every field is optional and fields the spec does not describe are kept in `extra`, so a response that \
              strays from the spec still decodes."
        .into());
    let place = Place {
        type_name: format!("{stem}Response"),
        label: String::new(),
        side: Side::Response,
        const_prefix: String::new(),
    };
    builder.object(&response, &place, doc)?;

    let schema_const = format!("{}_REQUEST_SCHEMA", screaming(&stem)?);
    let schema_fn = format!("{}_request_schema", snake(&stem)?);
    builder.claim(&schema_const, &op.request_pointer)?;
    builder.claim(&schema_fn, &op.request_pointer)?;
    Ok(Model {
        title: title.to_owned(),
        constants: builder.constants,
        items: builder.items,
        request_name,
        schema_const,
        schema_fn,
    })
}

fn root_object<'a>(schema: &'a serde_json::Value, pointer: &Pointer) -> Result<Node<'a>> {
    let root = node(schema, pointer)?;
    ensure!(
        matches!(root.kind, Kind::Object { .. }) && !root.nullable,
        "`{pointer}` must be a non-nullable object"
    );
    Ok(root)
}

struct Builder {
    items: Vec<Item>,
    constants: Vec<Constant>,
    /// Every generated item name, with the spec location it came from, to report collisions.
    names: HashMap<String, Pointer>,
}

impl Builder {
    fn claim(&mut self, name: &str, pointer: &Pointer) -> Result<()> {
        if let Some(first) = self.names.insert(name.to_owned(), pointer.clone()) {
            bail!("`{pointer}`: the generated name `{name}` is already taken by `{first}`");
        }
        Ok(())
    }

    fn constant(
        &mut self,
        name: String,
        doc: String,
        value: ConstValue,
        pointer: &Pointer,
    ) -> Result<()> {
        self.claim(&name, pointer)?;
        self.constants.push(Constant {
            name,
            doc: vec![doc],
            value,
        });
        Ok(())
    }

    /// Adds the struct for object `node`, followed by the types of its properties.
    fn object(&mut self, node: &Node<'_>, place: &Place, doc: Vec<String>) -> Result<()> {
        let Kind::Object {
            properties,
            required,
        } = &node.kind
        else {
            unreachable!("callers pass objects")
        };
        self.claim(&place.type_name, &node.pointer)?;
        let position = self.items.len();
        let mut fields = Vec::new();
        // `extra` holds a response's undocumented fields, so no property may take that name there.
        let mut rust_names: HashSet<String> = (place.side == Side::Response)
            .then(|| "extra".to_owned())
            .into_iter()
            .collect();
        for (json_name, schema) in *properties {
            let pointer = node.pointer.push("properties").push(json_name);
            let child = super::schema::node(schema, &pointer)?;
            let label = if place.label.is_empty() {
                json_name.clone()
            } else {
                format!("{}.{json_name}", place.label)
            };
            let child_place = Place {
                type_name: format!("{}{}", place.type_name, pascal(json_name)?),
                label: label.clone(),
                side: place.side,
                const_prefix: join(&place.const_prefix, &screaming(json_name)?),
            };
            let typed = self.ty(&child, &child_place)?;
            let rust_name = snake(json_name)?;
            ensure!(
                rust_names.insert(rust_name.clone()),
                "`{pointer}`: field name `{rust_name}` is already taken"
            );
            let presence = match (place.side, required.contains(&json_name.as_str())) {
                (Side::Response, _) | (Side::Request, false) => Presence::Optional,
                (Side::Request, true) if child.nullable => Presence::RequiredNullable,
                (Side::Request, true) => typed.fixed.map_or(Presence::Required, Presence::Fixed),
            };
            let mut doc = vec![child.description.map_or_else(
                || {
                    format!(
                        "{}: the spec gives no description (`{pointer}`).",
                        code(&label)
                    )
                },
                prose,
            )];
            doc.extend(typed.notes);
            fields.push(Field {
                json_name: json_name.clone(),
                rust_name,
                ty: typed.ty,
                doc,
                presence,
            });
        }
        let required = required
            .iter()
            .map(|name| snake(name))
            .collect::<Result<_>>()?;
        let item = Struct {
            name: place.type_name.clone(),
            doc,
            side: place.side,
            fields,
            required,
        };
        self.items.insert(position, Item::Struct(item));
        Ok(())
    }

    /// Types `node` at `place`, adding any types and constants it needs.
    fn ty(&mut self, node: &Node<'_>, place: &Place) -> Result<Typed> {
        let request = place.side == Side::Request;
        let mut notes = Vec::new();
        if node.nullable && request {
            notes.push("May be `null`.".to_owned());
        }
        let (ty, fixed) = match &node.kind {
            Kind::String(string) => return self.string(string, place, notes),
            Kind::Boolean { default } => {
                self.default(*default, ConstValue::Bool, &mut notes, node, place)?;
                (Ty::Bool, None)
            }
            Kind::Number { default, format } => {
                notes.extend(format.map(|format| format!("Format: {}.", code(format))));
                self.default(*default, ConstValue::F64, &mut notes, node, place)?;
                (Ty::F64, None)
            }
            Kind::Integer { default, format } => {
                notes.extend(format.map(|format| format!("Format: {}.", code(format))));
                self.default(*default, ConstValue::I64, &mut notes, node, place)?;
                (Ty::I64, None)
            }
            Kind::Array(array) => (self.array(array, place, &mut notes)?, None),
            Kind::Object { .. } => {
                let side = if request { "request" } else { "response" };
                let doc = match (node.description, place.label.strip_suffix("[]")) {
                    (Some(description), _) => prose(description),
                    (None, Some(array)) => {
                        format!("One item of {} in the {side} body.", code(array))
                    }
                    (None, None) => {
                        format!("The {} object in the {side} body.", code(&place.label))
                    }
                };
                self.object(node, place, vec![doc])?;
                (Ty::Named(place.type_name.clone()), None)
            }
            Kind::OneOrMany { one, many } => (self.one_or_many(node, one, many, place)?, None),
        };
        Ok(Typed { ty, notes, fixed })
    }

    /// Records a scalar's `default` in the field's doc and, for requests, as a `<PROP>_DEFAULT` constant.
    fn default<T: ToString + Copy>(
        &mut self,
        default: Option<T>,
        value: impl Fn(T) -> ConstValue,
        notes: &mut Vec<String>,
        node: &Node<'_>,
        place: &Place,
    ) -> Result<()> {
        let Some(default) = default else {
            return Ok(());
        };
        notes.push(format!(
            "Defaults to {} when absent.",
            code(&default.to_string())
        ));
        if place.side == Side::Request {
            let pointer = node.pointer.push("default");
            let doc = default_doc(&place.label, &pointer);
            self.constant(
                format!("{}_DEFAULT", place.const_prefix),
                doc,
                value(default),
                &pointer,
            )?;
        }
        Ok(())
    }

    fn string(
        &mut self,
        string: &StringSchema<'_>,
        place: &Place,
        mut notes: Vec<String>,
    ) -> Result<Typed> {
        notes.extend(self.string_facts(string, place)?);
        let Some(values) = &string.values else {
            return Ok(Typed {
                ty: Ty::String,
                notes,
                fixed: None,
            });
        };
        if place.side == Side::Response {
            let known: Vec<String> = values.iter().map(|value| code(value)).collect();
            notes.push(format!("Known values: {}.", known.join(", ")));
            return Ok(Typed {
                ty: Ty::String,
                notes,
                fixed: None,
            });
        }
        self.claim(&place.type_name, &string.pointer)?;
        let mut variants = Vec::new();
        let mut taken = HashSet::new();
        for value in values {
            let name =
                pascal(value).with_context(|| format!("`{}`", string.pointer.push("enum")))?;
            ensure!(
                taken.insert(name.clone()),
                "`{}`: two values map to the variant name `{name}`",
                string.pointer.push("enum")
            );
            variants.push(Variant {
                name,
                value: (*value).to_owned(),
            });
        }
        let default = match string.default {
            Some(default) => values.iter().position(|value| *value == default),
            None if values.len() == 1 => Some(0),
            None => None,
        };
        let fixed = (values.len() == 1).then(|| variants[0].name.clone());
        let doc = vec![string.description.map_or_else(
            || format!("Values the request accepts for {}.", code(&place.label)),
            prose,
        )];
        self.items.push(Item::Enum(StringEnum {
            name: place.type_name.clone(),
            doc,
            variants,
            default,
        }));
        Ok(Typed {
            ty: Ty::Named(place.type_name.clone()),
            notes,
            fixed,
        })
    }

    /// Notes and, for requests, constants for a string's single allowed value, `maxLength`, `format` and `default`.
    fn string_facts(&mut self, string: &StringSchema<'_>, place: &Place) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        notes.extend(
            string
                .format
                .map(|format| format!("Format: {}.", code(format))),
        );
        notes.extend(
            string
                .max_length
                .map(|max| format!("At most {max} characters.")),
        );
        notes.extend(
            string
                .default
                .map(|default| format!("Defaults to {} when absent.", code(default))),
        );
        if place.side == Side::Response {
            return Ok(notes);
        }
        let label = code(&place.label);
        if let Some([only]) = string.values.as_deref() {
            let pointer = string.pointer.push("enum");
            let doc = format!("The only value the spec allows for {label} (from `{pointer}`).");
            self.constant(
                place.const_prefix.clone(),
                doc,
                ConstValue::Str((*only).to_owned()),
                &pointer,
            )?;
        }
        if let Some(max) = string.max_length {
            let pointer = string.pointer.push("maxLength");
            let doc = format!(
                "Longest {label} the API accepts, in characters: JSON Schema counts Unicode code points, not bytes \
                 (from `{pointer}`)."
            );
            self.constant(
                format!("{}_MAX_LENGTH", place.const_prefix),
                doc,
                ConstValue::Usize(max),
                &pointer,
            )?;
        }
        if let Some(default) = string.default {
            let pointer = string.pointer.push("default");
            let value = match &string.values {
                Some(_) => ConstValue::Variant {
                    ty: place.type_name.clone(),
                    variant: pascal(default)?,
                },
                None => ConstValue::Str(default.to_owned()),
            };
            self.constant(
                format!("{}_DEFAULT", place.const_prefix),
                default_doc(&place.label, &pointer),
                value,
                &pointer,
            )?;
        }
        Ok(notes)
    }

    fn array(
        &mut self,
        array: &ArraySchema<'_>,
        place: &Place,
        notes: &mut Vec<String>,
    ) -> Result<Ty> {
        let item_pointer = array.pointer.push("items");
        let item = node(array.items, &item_pointer)?;
        ensure!(
            !item.nullable,
            "`{item_pointer}`: nullable array items are not supported"
        );
        let item_place = Place {
            type_name: format!("{}Item", place.type_name),
            label: format!("{}[]", place.label),
            side: place.side,
            const_prefix: join(&place.const_prefix, "ITEM"),
        };
        let typed = self.ty(&item, &item_place)?;
        notes.extend(self.counts(array, place)?);
        notes.extend(typed.notes.iter().map(|note| format!("Each item: {note}")));
        Ok(Ty::Vec(Box::new(typed.ty)))
    }

    /// Notes and, for requests, constants for an array's `minItems` and `maxItems`.
    fn counts(&mut self, array: &ArraySchema<'_>, place: &Place) -> Result<Vec<String>> {
        let note = match (array.min_items, array.max_items) {
            (Some(min), Some(max)) => Some(format!("Between {min} and {max} items.")),
            (Some(min), None) => Some(format!("At least {min} items.")),
            (None, Some(max)) => Some(format!("At most {max} items.")),
            (None, None) => None,
        };
        if place.side == Side::Request {
            let label = code(&place.label);
            for (keyword, suffix, bound, what) in [
                ("minItems", "MIN_ITEMS", array.min_items, "Fewest"),
                ("maxItems", "MAX_ITEMS", array.max_items, "Most"),
            ] {
                if let Some(bound) = bound {
                    let pointer = array.pointer.push(keyword);
                    let doc =
                        format!("{what} items the API accepts in {label} (from `{pointer}`).");
                    self.constant(
                        format!("{}_{suffix}", place.const_prefix),
                        doc,
                        ConstValue::Usize(bound),
                        &pointer,
                    )?;
                }
            }
        }
        Ok(note.into_iter().collect())
    }

    fn one_or_many(
        &mut self,
        node: &Node<'_>,
        one: &StringSchema<'_>,
        many: &ArraySchema<'_>,
        place: &Place,
    ) -> Result<Ty> {
        self.claim(&place.type_name, &node.pointer)?;
        let doc = vec![node.description.map_or_else(
            || {
                format!(
                    "One string or an array of strings for {}.",
                    code(&place.label)
                )
            },
            prose,
        )];
        let mut one_doc = vec![
            one.description
                .map_or_else(|| "A single value.".to_owned(), prose),
        ];
        one_doc.extend(self.string_facts(one, place)?);
        let mut many_doc = vec![
            many.description
                .map_or_else(|| "Several values.".to_owned(), prose),
        ];
        many_doc.extend(self.counts(many, place)?);
        let Kind::String(item) = super::schema::node(many.items, &many.pointer.push("items"))?.kind
        else {
            unreachable!("schema::node accepts only arrays of strings here")
        };
        let item_place = Place {
            type_name: String::new(),
            label: format!("{}[]", place.label),
            side: place.side,
            const_prefix: join(&place.const_prefix, "ITEM"),
        };
        many_doc.extend(
            self.string_facts(&item, &item_place)?
                .iter()
                .map(|note| format!("Each item: {note}")),
        );
        self.items.push(Item::OneOrMany(OneOrMany {
            name: place.type_name.clone(),
            doc,
            one_doc,
            many_doc,
        }));
        Ok(Ty::OneOrMany(place.type_name.clone()))
    }
}

fn default_doc(label: &str, pointer: &Pointer) -> String {
    format!(
        "What the API assumes when the request leaves {} out (from `{pointer}`).",
        code(label)
    )
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}_{name}")
    }
}

/// `text` as a Markdown code span, fenced with more backticks than it contains in a row.
pub(crate) fn code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Spec prose made safe for rustdoc: characters Markdown would read as markup are escaped, and bare URLs become
/// autolinks (rustdoc warns about bare ones).
pub(crate) fn prose(text: &str) -> String {
    text.lines().map(prose_line).collect::<Vec<_>>().join("\n")
}

fn prose_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (index, word) in line.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        if word.starts_with("https://") || word.starts_with("http://") {
            let url = word.trim_end_matches(['.', ',', ';', ':', ')', '!', '?', '\'', '"']);
            out.push_str(&format!("<{url}>{}", &word[url.len()..]));
            continue;
        }
        for c in word.chars() {
            if matches!(c, '\\' | '`' | '*' | '[' | ']' | '<' | '>') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

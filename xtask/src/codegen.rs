//! `cargo xtask codegen`: Rust types, constants and a JSON Schema for the vendor's API, generated from `spec/`.
//!
//! The published OpenAPI document gets the overlay applied as an RFC 7396 merge patch, its OpenAPI 3.0 schemas are
//! translated to JSON Schema (`nullable: true` becomes `type: [T, "null"]`, as progenitor's `to_schema.rs` does),
//! and the result is typed and printed with `quote` and `prettyplease` into `crates/reve-core/src/generated/`: one
//! module per document in `spec/` (`reve-create-image.openapi.json` becomes `create_image.rs`) and `mod.rs`
//! gathering them. `--check` and the `generated_code_is_fresh` test fail when a checked-in file differs from what the
//! spec says, or is there when no document makes it.
//!
//! # Why a generator of our own
//!
//! typify (and progenitor, built on it) is the obvious candidate, but it depends on schemars 0.8 while rmcp, which
//! describes the MCP server's tools, needs schemars 1.x: two majors of schemars in one build, with generated types
//! deriving the wrong one. The vendor's schema is also tiny (one request object, one response, a few scalar
//! constraints), so a compact generator for exactly that subset costs a few hundred lines, refuses anything else by
//! JSON Pointer instead of guessing, and emits what typify would not: constants for the constraints the client
//! checks before sending (model id, `maxLength`, defaults, item counts) and the request's JSON Schema.
//!
//! # Supported subset
//!
//! Objects (`properties`, `required`), strings (`enum`, `maxLength`, `format`, `default`), booleans, numbers and
//! integers (`default`, `format`), arrays (`items`, `minItems`, `maxItems`), `nullable`, an `anyOf` of a string and
//! an array of strings, `description` and `title`. Only the single `POST` operation's JSON request body and 200
//! response are typed: error bodies are free-form, and the client keeps them as they came.
//!
//! # Naming
//!
//! Everything derives mechanically from JSON names so that a spec change maps to a predictable diff: the request
//! type is the PascalCase of the last segment of the request schema's `title` plus `Request` (`reve/edit-image` ->
//! `EditImageRequest`), the response the same plus `Response`; nested objects append the property (`...Meta`),
//! array items append `Item`, string enums append the property and get one variant per value with
//! `#[serde(rename)]`. Request constants are `<PROP>` (single allowed value), `<PROP>_MAX_LENGTH`, `<PROP>_DEFAULT`,
//! `<PROP>_MIN_ITEMS` and `<PROP>_MAX_ITEMS`, nested properties joining their path with `_`.

mod describe;
mod emit;
mod model;
mod naming;
mod pointer;
mod schema;
mod spec;
mod tool_arguments;

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

/// The vendor's OpenAPI document, relative to the workspace root.
pub const SPEC_PATH: &str = "spec/reve-edit-image.openapi.json";
/// Our merge patch of observed deviations, relative to the workspace root.
pub const OVERLAY_PATH: &str = "spec/reve-edit-image.overlay.merge-patch.json";
/// Where the vendor's documents live, relative to the workspace root: each `<name>.openapi.json` beside its
/// `<name>.overlay.merge-patch.json`.
pub const SPEC_DIR: &str = "spec";
const DOCUMENT_SUFFIX: &str = ".openapi.json";
const OVERLAY_SUFFIX: &str = ".overlay.merge-patch.json";

/// The generated modules of reve-core (types, constants, schema), one per document, relative to the workspace root.
pub const OUTPUT_DIR: &str = "crates/reve-core/src/generated";
/// The generated modules of reve-mcp (each model's tool: its arguments and names), one per document, relative to the
/// workspace root.
pub const TOOLS_DIR: &str = "crates/reve-mcp/src/generated";
/// What `--check` and the freshness test say when the checked-in file is out of date.
pub const STALE_MESSAGE: &str = "generated code is stale: run `cargo xtask codegen` and commit";

const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The generator's output.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Source of the model's module of reve-core (in [`OUTPUT_DIR`]).
    pub rust: String,
    /// Source of the model's tool module of reve-mcp (in [`TOOLS_DIR`]).
    pub tool_arguments: String,
    /// JSON Schema of the request body, as embedded in `rust`.
    pub request_schema: Value,
    /// What the module gathering the models needs of this one.
    pub(crate) facts: emit::ModuleFacts,
}

/// Whether `run` may write the output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Regenerate and write the file if it changed.
    Write,
    /// Fail with [`STALE_MESSAGE`] if the file differs from what would be generated.
    Check,
}

/// What `run` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every file already matched the spec.
    UpToDate,
    /// These files (paths relative to the workspace root) were rewritten or removed.
    Written(Vec<String>),
}

/// Generates the module from the OpenAPI document `spec` with the merge patch `overlay` applied.
pub fn generate(spec: &Value, overlay: &Value) -> Result<Generated> {
    let mut doc = spec.clone();
    spec::merge_patch(&mut doc, overlay);
    let operation = spec::operation(&doc)?;
    let model = model::build(&operation)?;
    let mut request_schema = Map::new();
    request_schema.insert("$schema".to_owned(), Value::from(JSON_SCHEMA_DIALECT));
    request_schema.extend(
        operation
            .request
            .as_object()
            .expect("checked to be an object")
            .clone(),
    );
    let request_schema = Value::Object(request_schema);
    let rust = emit::file(&model, &request_schema)?;
    let tool_arguments =
        tool_arguments::file(&model, &request_schema, &describe::of(&request_schema)?)?;
    let facts = emit::ModuleFacts::of(&model, &operation);
    Ok(Generated {
        rust,
        tool_arguments,
        request_schema,
        facts,
    })
}

/// The name of the document of model `id` in `spec/` (without `.openapi.json`): `reve/edit-image` is
/// `reve-edit-image`.
pub(crate) fn document_name(id: &str) -> String {
    id.replace('/', "-")
}

/// The module of reve-core a document's code goes to: `reve-create-image` is `create_image`.
pub(crate) fn module_name(document: &str) -> String {
    document
        .strip_prefix("reve-")
        .unwrap_or(document)
        .replace(['-', '.'], "_")
}

/// Every generated file (its path relative to the workspace root, and its text), from the documents checked in
/// under the workspace root `root`.
pub fn generate_from_files(root: &Path) -> Result<Vec<(String, String)>> {
    let documents = documents(root)?;
    let mut generated = Vec::new();
    for document in &documents {
        let made = generate(&document.spec, &document.overlay)
            .with_context(|| format!("{SPEC_DIR}/{}{DOCUMENT_SUFFIX}", document.name))?;
        ensure!(
            document_name(&made.facts.title) == document.name,
            "{SPEC_DIR}/{}{DOCUMENT_SUFFIX} describes `{}`: name the file {}{DOCUMENT_SUFFIX}",
            document.name,
            made.facts.title,
            document_name(&made.facts.title)
        );
        generated.push((module_name(&document.name), document, made));
    }
    let mut files = Vec::new();
    let shared = |made: &Generated| made.facts.shared.clone();
    if let Some((_, first, made)) = generated.first() {
        for (_, document, other) in &generated[1..] {
            ensure!(
                shared(other) == shared(made),
                "{SPEC_DIR}/{}{DOCUMENT_SUFFIX} and {SPEC_DIR}/{}{DOCUMENT_SUFFIX} disagree on the base URL or the \
                 endpoint",
                first.name,
                document.name
            );
        }
    }
    let mut tools = Vec::new();
    for (module, _, made) in &generated {
        files.push((format!("{OUTPUT_DIR}/{module}.rs"), made.rust.clone()));
        files.push((
            format!("{TOOLS_DIR}/{module}.rs"),
            made.tool_arguments.clone(),
        ));
        tools.push(tool_arguments::ToolFacts {
            module: module.clone(),
            names: tool_arguments::Names::of(&made.facts.title),
        });
    }
    let mut verbs: Vec<&str> = tools
        .iter()
        .map(|facts| facts.names.verb.as_str())
        .collect();
    verbs.sort_unstable();
    if let Some(twice) = verbs.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!(
            "two models in {SPEC_DIR}/ would both be offered as `{}`",
            twice[0]
        );
    }
    let modules: Vec<(String, &emit::ModuleFacts)> = generated
        .iter()
        .map(|(module, _, made)| (module.clone(), &made.facts))
        .collect();
    files.push((
        format!("{OUTPUT_DIR}/mod.rs"),
        emit::modules_file(&modules)?,
    ));
    files.push((
        format!("{TOOLS_DIR}/mod.rs"),
        tool_arguments::modules_file(&tools)?,
    ));
    Ok(files)
}

/// `cargo xtask codegen [--check]` for the workspace at `root`: every generated file written (or checked), and a
/// module no document makes any more removed (or reported).
pub fn run(root: &Path, mode: Mode) -> Result<Outcome> {
    let files = generate_from_files(root)?;
    let mut written = Vec::new();
    for (relative, text) in &files {
        let path = root.join(relative);
        // A checkout with CRLF line endings (Git's autocrlf on Windows) is as fresh as one without.
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current.replace("\r\n", "\n") == *text {
            continue;
        }
        if mode == Mode::Check {
            bail!("{STALE_MESSAGE} ({relative} differs)");
        }
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(relative.clone());
    }
    for stale in stale_files(root, &files)? {
        if mode == Mode::Check {
            bail!("{STALE_MESSAGE} ({stale} is made by no document in {SPEC_DIR}/)");
        }
        fs::remove_file(root.join(&stale)).with_context(|| format!("removing {stale}"))?;
        written.push(stale);
    }
    Ok(if written.is_empty() {
        Outcome::UpToDate
    } else {
        Outcome::Written(written)
    })
}

/// Generated files that no document makes: a module whose document left `spec/`, and the single `generated.rs` of
/// each crate from the releases before one module per model.
pub fn stale_files(root: &Path, files: &[(String, String)]) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for single in [
        "crates/reve-core/src/generated.rs",
        "crates/reve-mcp/src/generated.rs",
    ] {
        if root.join(single).is_file() {
            stale.push(single.to_owned());
        }
    }
    for dir in [OUTPUT_DIR, TOOLS_DIR] {
        if let Ok(entries) = fs::read_dir(root.join(dir)) {
            for entry in entries.flatten() {
                let relative = format!("{dir}/{}", entry.file_name().to_string_lossy());
                if !files.iter().any(|(path, _)| *path == relative) {
                    stale.push(relative);
                }
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// One of the vendor's documents in `spec/`, with its overlay.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file name without `.openapi.json`: `reve-create-image`.
    pub name: String,
    pub spec: Value,
    pub overlay: Value,
}

/// Every document in `spec/` under the workspace root `root`, by name; a document without its overlay is refused,
/// since every published response so far strays from its schema and an empty overlay must be a decision.
pub fn documents(root: &Path) -> Result<Vec<Document>> {
    let folder = root.join(SPEC_DIR);
    let mut names: Vec<String> = fs::read_dir(&folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|file| file.strip_suffix(DOCUMENT_SUFFIX).map(str::to_owned))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let overlay = folder.join(format!("{name}{OVERLAY_SUFFIX}"));
            if !overlay.is_file() {
                bail!(
                    "{SPEC_DIR}/{name}{DOCUMENT_SUFFIX} has no overlay: add {SPEC_DIR}/{name}{OVERLAY_SUFFIX} \
                     (`{{}}` when real responses match the schema)"
                );
            }
            Ok(Document {
                spec: read_json(&folder.join(format!("{name}{DOCUMENT_SUFFIX}")))?,
                overlay: read_json(&overlay)?,
                name,
            })
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

//! Each model's tool for reve-mcp: its arguments struct (the request's fields minus those the server fixes, plus
//! `output_path`, each keeping its Rust type from reve-core and its JSON Schema from the spec, so that a field the
//! vendor adds reaches the tool's input schema and the request body with no hand edit), and its names (tool, command
//! line verb, title) from [`KNOWN`] or, for a model with no entry there, derived from its id.

use anyhow::{Context, Result, bail};
use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{Value, json};

use super::describe::Description;
use super::emit::{doc_attrs, header, rust_type};
use super::model::{Field, Item, Model, Presence, Struct, Ty};
use super::naming::{ident, pascal};

/// The names and words we chose for the models we know; any other model gets names derived from its id (see
/// [`Names::of`]).
const KNOWN: &[Known] = &[
    Known {
        model: "reve/edit-image",
        tool: "edit_image",
        verb: "edit",
        title: "Edit image",
        summary: "Edit a picture with a plain-language instruction",
        prompt: "what to change, e.g. \"put the dinosaur on a lounge chair at sunset\"",
        pictures: &[("image_url", "The image to edit.")],
    },
    Known {
        model: "reve/create-image",
        tool: "create_image",
        verb: "create",
        title: "Create image",
        summary: "Make a new picture from a plain-language description",
        prompt: "the picture to make, e.g. \"a T-Rex relaxing on a beach, lying on a sun lounger and wearing \
                 sunglasses\"",
        pictures: &[],
    },
    Known {
        model: "reve/remix-edit-image",
        tool: "remix_images",
        verb: "remix",
        title: "Remix images",
        summary: "Combine several pictures into a new one with a plain-language instruction",
        prompt: "what to make of the pictures, e.g. \"put the dinosaur in the café, holding the mug\"",
        pictures: &[("image_urls", "The pictures to combine, in order.")],
    },
];

/// An entry of [`KNOWN`].
struct Known {
    model: &'static str,
    tool: &'static str,
    verb: &'static str,
    title: &'static str,
    summary: &'static str,
    prompt: &'static str,
    pictures: &'static [(&'static str, &'static str)],
}

/// A model's tool: its names and words.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) tool: String,
    pub(crate) verb: String,
    pub(crate) title: String,
    /// What the model does, as the tool's description starts.
    pub(crate) summary: String,
    /// What the prompt says, for the description.
    pub(crate) prompt: String,
    /// Our description of a picture field, which the accepted forms follow.
    pictures: Vec<(String, String)>,
}

impl Names {
    /// The entry of `model` in [`KNOWN`], or names derived from its id: `acme/sketch-image` is the tool
    /// `sketch_image`, the verb `sketch-image` and the title "Sketch image".
    pub(crate) fn of(model: &str) -> Names {
        if let Some(known) = KNOWN.iter().find(|known| known.model == model) {
            return Names {
                tool: known.tool.to_owned(),
                verb: known.verb.to_owned(),
                title: known.title.to_owned(),
                summary: known.summary.to_owned(),
                prompt: known.prompt.to_owned(),
                pictures: known
                    .pictures
                    .iter()
                    .map(|(field, text)| ((*field).to_owned(), (*text).to_owned()))
                    .collect(),
            };
        }
        let last = model.rsplit('/').next().unwrap_or(model);
        let verb = last.replace(['_', '.'], "-").to_ascii_lowercase();
        let mut title = verb.replace('-', " ");
        if let Some(first) = title.get(..1) {
            title = format!("{}{}", first.to_ascii_uppercase(), &title[1..]);
        }
        Names {
            tool: verb.replace('-', "_"),
            summary: format!(
                "Make a picture with the {model} model from a plain-language instruction"
            ),
            prompt: "what to make".to_owned(),
            verb,
            title,
            pictures: Vec::new(),
        }
    }

    /// The name of the arguments struct: `edit_image` takes `EditImageArguments`.
    pub(crate) fn arguments_struct(&self) -> Result<String> {
        Ok(format!("{}Arguments", pascal(&self.tool)?))
    }

    /// What a picture field's argument says: ours, or the document's, then the forms it takes.
    fn picture_description(&self, field: &str, many: bool, document: Option<&str>) -> String {
        let ours = self
            .pictures
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, text)| text.as_str());
        let said = ours.or(document).unwrap_or("");
        let forms = if many { "Each one of" } else { "One of" };
        format!("{said} {forms}: {PICTURE_FORMS}").trim().to_owned()
    }
}

/// Request fields the operator chooses rather than the model (`--response-mode`): how the result travels back is
/// not something a model should have to reason about, and the bytes are saved and previewed the same way either way.
pub(crate) const SERVER_CHOSEN: &[&str] = &["convert_base64_to_url"];

/// What a picture field takes as a tool argument, after its description: local files too.
const PICTURE_FORMS: &str = "an http(s) URL; a data: URI (data:image/png;base64,...); a local file as an \
absolute path or file:// URI inside a folder this server may read; or a previous result of yours by reference, \
its result_uri (reve://jobs/JOB_ID/result) or job:JOB_ID, which works over HTTP too and records where the picture \
came from. PNG, JPEG, WebP or GIF.";

/// The argument that is ours, not the vendor's: where to save the result.
const OUTPUT_PATH: &str = "output_path";

const OUTPUT_PATH_DESCRIPTION: &str = "Optional file name, or path relative to the output folder, for the saved \
result. The extension is corrected to the image's real type; an existing file is never overwritten. Default: a \
unique name in the output folder.";

const MODULE_DOC: &str = "Each vendor field keeps its Rust type from `reve_core` and its JSON Schema from the spec, so a \
field the vendor adds reaches the tool's input schema and the request body through `cargo xtask codegen` alone.";

/// One argument: its field declaration, its schema function and how it fills the request.
struct Argument {
    declaration: TokenStream,
    schema_fn: TokenStream,
    name: String,
}

/// The whole generated file of one model's tool, `crates/reve-mcp/src/generated/<module>.rs`.
pub(crate) fn file(
    model: &Model,
    request_schema: &Value,
    description: &Description,
) -> Result<String> {
    let names = Names::of(&model.title);
    let request = model
        .items
        .iter()
        .find_map(|item| match item {
            Item::Struct(item) if item.name == model.request_name => Some(item),
            _ => None,
        })
        .context("the model has the request struct")?;
    for name in SERVER_CHOSEN {
        if !request.fields.iter().any(|field| field.json_name == *name) {
            bail!(
                "the server chooses `{name}`, but the request schema no longer has it: update SERVER_CHOSEN"
            );
        }
    }
    let properties = request_schema["properties"]
        .as_object()
        .context("the request schema has properties")?;
    let mut arguments = Vec::new();
    let mut pictures = Vec::new();
    let mut pictures_mut = Vec::new();
    let mut prompt = quote!("");
    let mut options = Vec::new();
    for field in request.fields.iter().filter(|field| is_argument(field)) {
        let mut schema = properties
            .get(&field.json_name)
            .cloned()
            .with_context(|| format!("the request schema has `{}`", field.json_name))?;
        let optional = !matches!(field.presence, Presence::Required);
        let name = ident(&field.rust_name);
        if let Some(picture) = description
            .pictures
            .iter()
            .find(|picture| picture.name == field.json_name)
        {
            // An absolute path is not a `uri`; the description says what else is accepted.
            let object = schema
                .as_object_mut()
                .context("a picture field's schema is an object")?;
            let target = if picture.many {
                object
                    .get_mut("items")
                    .and_then(Value::as_object_mut)
                    .context("a list of pictures has items")?
            } else {
                &mut *object
            };
            target.remove("format");
            let said = object
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            object.insert(
                "description".into(),
                names
                    .picture_description(&field.json_name, picture.many, said.as_deref())
                    .into(),
            );
            pictures.push(match (picture.many, optional) {
                (false, false) => quote!(pictures.push(self.#name.as_str());),
                (false, true) => quote!(pictures.extend(self.#name.as_deref());),
                (true, false) => quote!(pictures.extend(self.#name.iter().map(String::as_str));),
                (true, true) => {
                    quote!(pictures.extend(self.#name.iter().flatten().map(String::as_str));)
                }
            });
            pictures_mut.push(match (picture.many, optional) {
                (false, false) => quote!(pictures.push(&mut self.#name);),
                (false, true) => quote!(pictures.extend(self.#name.as_mut());),
                (true, false) => quote!(pictures.extend(self.#name.iter_mut());),
                (true, true) => quote!(pictures.extend(self.#name.iter_mut().flatten());),
            });
        }
        let is_picture = description
            .pictures
            .iter()
            .any(|picture| picture.name == field.json_name);
        if field.json_name == "prompt" {
            prompt = if optional {
                quote!(self.#name.as_deref().unwrap_or(""))
            } else {
                quote!(&self.#name)
            };
        } else if !is_picture {
            let json_name = &field.json_name;
            let value = |value: TokenStream| {
                quote! {
                    options.insert(
                        #json_name.to_owned(),
                        serde_json::to_value(#value).expect("an argument serialises to JSON"),
                    );
                }
            };
            options.push(if optional {
                let insert = value(quote!(value));
                quote!(if let Some(value) = &self.#name { #insert })
            } else {
                value(quote!(&self.#name))
            });
        }
        arguments.push(argument(
            &field.json_name,
            &field.rust_name,
            &vendor_type(&field.ty),
            optional,
            &schema,
        )?);
    }
    let output_path = json!({ "type": "string", "description": OUTPUT_PATH_DESCRIPTION });
    arguments.push(argument(
        OUTPUT_PATH,
        OUTPUT_PATH,
        &quote!(String),
        true,
        &output_path,
    )?);

    let declarations = arguments.iter().map(|argument| &argument.declaration);
    let schema_fns = arguments.iter().map(|argument| &argument.schema_fn);
    let argument_names = arguments.iter().map(|argument| &argument.name);
    let constructor = constructor(request);
    let into_request = into_request(request, &model.request_name);
    let arguments_struct = ident(&names.arguments_struct()?);
    let module = ident(&super::module_name(&super::document_name(&model.title)));
    let Names {
        tool,
        verb,
        title,
        summary,
        prompt: prompt_words,
        ..
    } = &names;
    let module_doc = doc_attrs(
        &[
            format!(
                "The `{tool}` tool of `{}` (the command line's `{verb}`): its arguments, generated from the vendor's \
                 request schema (its fields minus those the server fixes, plus `output_path`), and its names.",
                model.title
            ),
            MODULE_DOC.to_owned(),
        ],
        true,
    );
    let struct_doc = doc_attrs(&[format!("What a model passes to `{tool}`.")], false);
    let tokens = quote! {
        #module_doc
        use rmcp::schemars::JsonSchema;
        use serde::{Deserialize, Serialize};
        /// The tool, its command line verb and its words.
        pub const TOOL: super::ModelTool = super::ModelTool {
            model: &reve_core::#module::DESCRIPTION,
            tool: #tool,
            verb: #verb,
            title: #title,
            summary: #summary,
            prompt: #prompt_words,
            arguments: #arguments_struct::NAMES,
            input_schema: rmcp::handler::server::tool::schema_for_type::<#arguments_struct>,
        };
        #struct_doc
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(crate = "rmcp::schemars")]
        pub struct #arguments_struct { #(#declarations,)* }
        impl #arguments_struct {
            /// The argument names, in schema order, for messages that list them.
            pub const NAMES: &[&str] = &[#(#argument_names),*];
            #constructor
            #into_request
            /// Its pictures, in the request's order.
            #[allow(clippy::vec_init_then_push)]
            pub fn pictures(&self) -> Vec<&str> {
                #[allow(unused_mut)]
                let mut pictures = Vec::new();
                #(#pictures)*
                pictures
            }
            /// Its pictures, in the request's order, to be replaced (a reference to an earlier
            /// result by the picture itself).
            #[allow(clippy::vec_init_then_push)]
            pub fn pictures_mut(&mut self) -> Vec<&mut String> {
                #[allow(unused_mut)]
                let mut pictures = Vec::new();
                #(#pictures_mut)*
                pictures
            }
            /// What it asks for in words.
            pub fn prompt(&self) -> &str {
                #prompt
            }
            /// Its other vendor fields given (neither its pictures nor its prompt), as sent.
            pub fn options(&self) -> serde_json::Map<String, serde_json::Value> {
                #[allow(unused_mut)]
                let mut options = serde_json::Map::new();
                #(#options)*
                options
            }
        }
        /// Each argument's JSON Schema, as the tool declares it.
        mod field_schema {
            use rmcp::schemars::{Schema, SchemaGenerator, json_schema};
            #(#schema_fns)*
        }
    };
    let file: syn::File = syn::parse2(tokens).context("generated tokens are not a Rust file")?;
    Ok(format!(
        "{}\n{}",
        header(&model.title),
        prettyplease::unparse(&file)
    ))
}

/// A model's tool as the gathering module needs it.
#[derive(Debug, Clone)]
pub(crate) struct ToolFacts {
    pub(crate) module: String,
    pub(crate) names: Names,
}

/// `crates/reve-mcp/src/generated/mod.rs`: one module per model, the table of tools (known ones first, in
/// [`KNOWN`]'s order), and `ToolArguments`, which a call's arguments are parsed into.
pub(crate) fn modules_file(tools: &[ToolFacts]) -> Result<String> {
    let mut tools = tools.to_vec();
    let rank = |facts: &ToolFacts| {
        KNOWN
            .iter()
            .position(|known| known.tool == facts.names.tool)
            .unwrap_or(KNOWN.len())
    };
    tools.sort_by_key(|facts| (rank(facts), facts.names.tool.clone()));
    let mut declarations = Vec::new();
    let mut entries = Vec::new();
    let mut variants = Vec::new();
    let mut parses = Vec::new();
    let mut matches_tool = Vec::new();
    let mut matches_pictures = Vec::new();
    let mut matches_pictures_mut = Vec::new();
    let mut matches_prompt = Vec::new();
    let mut matches_options = Vec::new();
    let mut matches_output = Vec::new();
    let mut matches_body = Vec::new();
    for facts in &tools {
        let module = ident(&facts.module);
        let arguments = ident(&facts.names.arguments_struct()?);
        let variant = ident(&pascal(&facts.names.tool)?);
        let tool = &facts.names.tool;
        declarations.push(quote! { #[rustfmt::skip] pub mod #module; });
        entries.push(quote!(&#module::TOOL));
        variants.push(quote!(#variant(#module::#arguments)));
        parses.push(quote! {
            #tool => Some(serde_path_to_error::deserialize(arguments).map(ToolArguments::#variant))
        });
        matches_tool.push(quote!(ToolArguments::#variant(_) => &#module::TOOL));
        matches_pictures.push(quote!(ToolArguments::#variant(arguments) => arguments.pictures()));
        matches_pictures_mut
            .push(quote!(ToolArguments::#variant(arguments) => arguments.pictures_mut()));
        matches_prompt.push(quote!(ToolArguments::#variant(arguments) => arguments.prompt()));
        matches_options.push(quote!(ToolArguments::#variant(arguments) => arguments.options()));
        matches_output
            .push(quote!(ToolArguments::#variant(arguments) => &mut arguments.output_path));
        matches_body.push(quote! {
            ToolArguments::#variant(arguments) => {
                reve_core::RequestBody::with_image_files(&arguments.into_request(convert_base64_to_url), sources, max_input_bytes)
            }
        });
    }
    let module_doc = doc_attrs(
        &[
            "The tools, one per model in `spec/`: each model's arguments and names, the table of them, and \
             `ToolArguments`, which a call's arguments are parsed into.",
            MODULE_DOC,
        ],
        true,
    );
    let tokens = quote! {
        #module_doc
        #(#declarations)*
        /// A model offered as a tool and a command line verb.
        #[derive(Debug, Clone, Copy)]
        pub struct ModelTool {
            /// What its document says a request may hold.
            pub model: &'static reve_core::Model,
            /// The tool's name.
            pub tool: &'static str,
            /// The command line's verb.
            pub verb: &'static str,
            pub title: &'static str,
            /// What the model does, as the tool's description starts.
            pub summary: &'static str,
            /// What the prompt says, with an example.
            pub prompt: &'static str,
            /// The argument names, in schema order.
            pub arguments: &'static [&'static str],
            /// The tool's input schema.
            pub input_schema: fn() -> std::sync::Arc<rmcp::model::JsonObject>,
        }
        /// Every model's tool, the known ones first.
        pub const TOOLS: &[&ModelTool] = &[#(#entries),*];
        /// The arguments of a call of one of [`TOOLS`].
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum ToolArguments { #(#variants,)* }
        impl ToolArguments {
            /// `arguments` read as those of the tool `tool`, or `None` when no model has that tool.
            pub fn parse(
                tool: &str,
                arguments: serde_json::Value,
            ) -> Option<Result<ToolArguments, serde_path_to_error::Error<serde_json::Error>>> {
                match tool {
                    #(#parses,)*
                    _ => None,
                }
            }
            /// The tool they are arguments of.
            pub fn tool(&self) -> &'static ModelTool {
                match self { #(#matches_tool,)* }
            }
            /// Their pictures, in the request's order.
            pub fn pictures(&self) -> Vec<&str> {
                match self { #(#matches_pictures,)* }
            }
            /// Their pictures, in the request's order, to be replaced.
            pub fn pictures_mut(&mut self) -> Vec<&mut String> {
                match self { #(#matches_pictures_mut,)* }
            }
            /// What they ask for in words.
            pub fn prompt(&self) -> &str {
                match self { #(#matches_prompt,)* }
            }
            /// Their other vendor fields given, as sent: what the generation records as its
            /// options, with no copy of a picture.
            pub fn options(&self) -> serde_json::Map<String, serde_json::Value> {
                match self { #(#matches_options,)* }
            }
            /// Where the result is saved, relative to the output folder.
            pub fn output_path(&mut self) -> &mut Option<String> {
                match self { #(#matches_output,)* }
            }
            /// The request body they ask for (see `reve_core::RequestBody::with_image_files`).
            pub fn body(
                self,
                convert_base64_to_url: bool,
                sources: &[reve_core::PictureSource<'_>],
                max_input_bytes: u64,
            ) -> reve_core::Result<reve_core::RequestBody> {
                match self { #(#matches_body,)* }
            }
        }
    };
    let file: syn::File = syn::parse2(tokens).context("generated tokens are not a Rust file")?;
    Ok(format!(
        "// @generated by `cargo xtask codegen` from the documents in spec/. Do not edit by hand; edit spec/ and \
         rerun.\n{}",
        prettyplease::unparse(&file)
    ))
}

/// Whether the model passes this request field: not a single-value one, not one the server chooses.
fn is_argument(field: &Field) -> bool {
    !matches!(field.presence, Presence::Fixed(_))
        && !SERVER_CHOSEN.contains(&field.json_name.as_str())
}

fn argument(
    json_name: &str,
    rust_name: &str,
    ty: &TokenStream,
    optional: bool,
    schema: &Value,
) -> Result<Argument> {
    let name = ident(rust_name);
    let rename = (rust_name != json_name).then(|| quote!(#[serde(rename = #json_name)]));
    let schema_fn_path = format!("field_schema::{rust_name}");
    let description = schema.get("description").and_then(Value::as_str);
    // schemars adds a field's doc comment to its schema as the description: the same text, or none.
    let doc = description.map(|text| doc_attrs(&[text], false));
    // `skip_serializing_if` beside `default` is for schemars: it then neither lists the argument as required nor
    // writes `"default": null` into its schema (the struct is never serialised).
    let (ty, default) = if optional {
        (
            quote!(Option<#ty>),
            Some(quote!(#[serde(default, skip_serializing_if = "Option::is_none")])),
        )
    } else {
        (ty.clone(), None)
    };
    let literal: TokenStream = serde_json::to_string(schema)?
        .parse()
        .ok()
        .context("a JSON value is a token stream")?;
    Ok(Argument {
        declaration: quote! {
            #doc
            #rename
            #default
            #[schemars(schema_with = #schema_fn_path)]
            pub #name: #ty
        },
        schema_fn: quote! {
            pub fn #name(_: &mut SchemaGenerator) -> Schema {
                json_schema!(#literal)
            }
        },
        name: json_name.to_owned(),
    })
}

/// `new` taking the required arguments, as the request's own constructor does.
fn constructor(request: &Struct) -> TokenStream {
    let mut params = Vec::new();
    let mut inits = Vec::new();
    for field in request.fields.iter().filter(|field| is_argument(field)) {
        let name = ident(&field.rust_name);
        let ty = vendor_type(&field.ty);
        match (&field.presence, &field.ty) {
            (Presence::Required, Ty::String | Ty::OneOrMany(_)) => {
                params.push(quote!(#name: impl Into<#ty>));
                inits.push(quote!(#name: #name.into()));
            }
            (Presence::Required, _) => {
                params.push(quote!(#name: #ty));
                inits.push(quote!(#name));
            }
            _ => inits.push(quote!(#name: None)),
        }
    }
    let output_path = ident(OUTPUT_PATH);
    let many = (params.len() > 7).then(|| quote!(#[allow(clippy::too_many_arguments)]));
    quote! {
        /// The arguments a call needs at least; optional ones start as `None`.
        #many
        pub fn new(#(#params),*) -> Self { Self { #(#inits,)* #output_path: None } }
    }
}

/// The request these arguments ask for, with what the server fixes filled in.
fn into_request(request: &Struct, request_name: &str) -> TokenStream {
    let mut params = Vec::new();
    let mut inits = Vec::new();
    for field in &request.fields {
        let name = ident(&field.rust_name);
        match &field.presence {
            Presence::Fixed(variant) => {
                let Ty::Named(ty) = &field.ty else {
                    unreachable!("only string enums are fixed")
                };
                let (ty, variant) = (ident(ty), ident(variant));
                inits.push(quote!(#name: reve_core::#ty::#variant));
            }
            presence if SERVER_CHOSEN.contains(&field.json_name.as_str()) => {
                let ty = vendor_type(&field.ty);
                params.push(quote!(#name: #ty));
                inits.push(match presence {
                    Presence::Required => quote!(#name),
                    _ => quote!(#name: Some(#name)),
                });
            }
            _ => inits.push(quote!(#name: self.#name)),
        }
    }
    let request_name = ident(request_name);
    let chosen: Vec<String> = SERVER_CHOSEN
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    let doc = doc_attrs(
        &[format!(
            "The vendor request these arguments ask for: single-value fields take their value, and {} the \
             operator's choice. `output_path` is not part of it.",
            chosen.join(", ")
        )],
        false,
    );
    quote! {
        #doc
        pub fn into_request(self, #(#params),*) -> reve_core::#request_name {
            reve_core::#request_name { #(#inits,)* }
        }
    }
}

/// A request field's Rust type, named from outside reve-core.
fn vendor_type(ty: &Ty) -> TokenStream {
    rust_type(ty, Some(&quote!(reve_core)))
}

//! The `edit_image` tool's arguments struct for reve-mcp: the request's fields minus those the server fixes, plus
//! `output_path`, each keeping its Rust type from reve-core and its JSON Schema from the spec, so that a field the
//! vendor adds reaches the tool's input schema and the request body with no hand edit.

use anyhow::{Context, Result, bail};
use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{Value, json};

use super::emit::{doc_attrs, header, rust_type};
use super::model::{Field, Item, Model, Presence, Struct, Ty};
use super::naming::ident;

/// Request fields the operator chooses rather than the model (`--response-mode`): how the result travels back is
/// not something a model should have to reason about, and the bytes are saved and previewed the same way either way.
pub(crate) const SERVER_CHOSEN: &[&str] = &["convert_base64_to_url"];

/// The request field that carries the input image; as a tool argument it also takes local files.
const IMAGE_URL: &str = "image_url";

const IMAGE_URL_DESCRIPTION: &str = "The image to edit. One of: an http(s) URL; a data: URI \
(data:image/png;base64,...); or a local file as an absolute path or file:// URI inside a folder this server may \
read (a previous result's saved path works). PNG, JPEG, WebP or GIF.";

/// The argument that is ours, not the vendor's: where to save the result.
const OUTPUT_PATH: &str = "output_path";

const OUTPUT_PATH_DESCRIPTION: &str = "Optional file name, or path relative to the output folder, for the saved \
result. The extension is corrected to the image's real type; an existing file is never overwritten. Default: a \
unique name in the output folder.";

const MODULE_DOC: &[&str] = &[
    "The `edit_image` tool's arguments, generated from the vendor's request schema: its fields minus those the \
     server fixes, plus `output_path`.",
    "Each vendor field keeps its Rust type from `reve_core` and its JSON Schema from the spec, so a field the vendor \
     adds reaches the tool's input schema and the request body through `cargo xtask codegen` alone.",
];

/// One argument: its field declaration, its schema function and how it fills the request.
struct Argument {
    declaration: TokenStream,
    schema_fn: TokenStream,
    name: String,
}

/// The whole generated file.
pub(crate) fn file(model: &Model, request_schema: &Value) -> Result<String> {
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
    for field in request.fields.iter().filter(|field| is_argument(field)) {
        let mut schema = properties
            .get(&field.json_name)
            .cloned()
            .with_context(|| format!("the request schema has `{}`", field.json_name))?;
        if field.json_name == IMAGE_URL {
            // An absolute path is not a `uri`; the description says what else is accepted.
            let object = schema
                .as_object_mut()
                .context("image_url's schema is an object")?;
            object.remove("format");
            object.insert("description".into(), IMAGE_URL_DESCRIPTION.into());
        }
        let optional = !matches!(field.presence, Presence::Required);
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
    let names = arguments.iter().map(|argument| &argument.name);
    let constructor = constructor(request);
    let into_request = into_request(request, &model.request_name);
    let module_doc = doc_attrs(MODULE_DOC, true);
    let tokens = quote! {
        #module_doc
        use rmcp::schemars::JsonSchema;
        use serde::Deserialize;
        /// What a model passes to `edit_image`.
        #[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(crate = "rmcp::schemars")]
        pub struct EditImageArguments { #(#declarations,)* }
        impl EditImageArguments {
            /// The argument names, in schema order, for messages that list them.
            pub const NAMES: &[&str] = &[#(#names),*];
            #constructor
            #into_request
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

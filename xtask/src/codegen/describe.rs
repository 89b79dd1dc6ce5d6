//! What a request may hold, read off its JSON Schema as data: the picture fields (a `uri` string is one picture, an
//! array of them a list with its `minItems`/`maxItems`) and the text fields with a length limit. reve-core gets it as
//! each model's `DESCRIPTION`, which its request body is checked against; reve-mcp's tool arguments take local
//! files in exactly these fields.

use anyhow::{Context, Result};
use proc_macro2::{Literal, TokenStream};
use quote::quote;
use serde_json::Value;

use super::emit::doc_attrs;

/// A field that carries pictures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PictureField {
    pub(crate) name: String,
    pub(crate) many: bool,
    pub(crate) min_items: u64,
    pub(crate) max_items: Option<u64>,
}

/// What a request may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Description {
    pub(crate) pictures: Vec<PictureField>,
    /// Text fields with a `maxLength`, and that length.
    pub(crate) texts: Vec<(String, u64)>,
}

fn is_uri_string(schema: &Value) -> bool {
    schema["type"] == "string" && schema["format"] == "uri"
}

/// Reads the description off the request's JSON Schema.
pub(crate) fn of(request_schema: &Value) -> Result<Description> {
    let properties = request_schema["properties"]
        .as_object()
        .context("the request schema has properties")?;
    let required: Vec<&str> = request_schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut pictures = Vec::new();
    let mut texts = Vec::new();
    for (name, schema) in properties {
        if is_uri_string(schema) {
            pictures.push(PictureField {
                name: name.clone(),
                many: false,
                min_items: u64::from(required.contains(&name.as_str())),
                max_items: Some(1),
            });
        } else if schema["type"] == "array" && is_uri_string(&schema["items"]) {
            pictures.push(PictureField {
                name: name.clone(),
                many: true,
                min_items: schema["minItems"].as_u64().unwrap_or(0),
                max_items: schema["maxItems"].as_u64(),
            });
        } else if schema["type"] == "string"
            && let Some(max) = schema["maxLength"].as_u64()
        {
            texts.push((name.clone(), max));
        }
    }
    Ok(Description { pictures, texts })
}

/// `DESCRIPTION` and the request type's `ModelRequest`, for the model's module of reve-core.
pub(crate) fn tokens(id: &str, request_name: &str, description: &Description) -> TokenStream {
    let pictures = description.pictures.iter().map(|field| {
        let PictureField {
            name,
            many,
            min_items,
            max_items,
        } = field;
        let min = Literal::u64_unsuffixed(*min_items);
        let max = match max_items {
            Some(max) => {
                let max = Literal::u64_unsuffixed(*max);
                quote!(Some(#max))
            }
            None => quote!(None),
        };
        quote! { crate::PictureField { name: #name, many: #many, min_items: #min, max_items: #max } }
    });
    let texts = description.texts.iter().map(|(name, max)| {
        let max = Literal::u64_unsuffixed(*max);
        quote! { crate::TextField { name: #name, max_length: #max } }
    });
    let doc = doc_attrs(
        &[format!(
            "What the document says a `{id}` request may hold (its pictures, its text limits), which \
             [`crate::RequestBody`] checks before anything is sent."
        )],
        false,
    );
    let request = super::naming::ident(request_name);
    quote! {
        #doc
        pub const DESCRIPTION: crate::Model = crate::Model {
            id: #id,
            pictures: &[#(#pictures),*],
            texts: &[#(#texts),*],
        };
        impl crate::ModelRequest for #request {
            fn model(&self) -> &'static crate::Model {
                &DESCRIPTION
            }
        }
    }
}

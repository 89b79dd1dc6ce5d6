//! Rust names derived mechanically from JSON names, so that a spec change always maps to the same code.

use anyhow::{Result, bail};
use proc_macro2::{Ident, Span};

/// Splits `text` into words at every non-alphanumeric character and at lower-to-upper case changes.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// `UpperCamelCase` of `text`: `reve/edit-image` -> `ReveEditImage`, `16:9` -> `V16_9`.
///
/// Digits on both sides of a word break keep an underscore so that `1:1` and `11` stay distinct, and a leading digit
/// gets a `V` (for "value") because identifiers cannot start with one.
pub(crate) fn pascal(text: &str) -> Result<String> {
    let mut out = String::new();
    for word in words(text) {
        if out.ends_with(|c: char| c.is_ascii_digit())
            && word.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push('_');
        }
        let mut chars = word.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.extend(chars.map(|c| c.to_ascii_lowercase()));
    }
    if out.is_empty() {
        bail!("`{text}` has no letters or digits to make a Rust name from");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    Ok(out)
}

/// `snake_case` of `text`; a leading digit gets an underscore because identifiers cannot start with one.
pub(crate) fn snake(text: &str) -> Result<String> {
    let words: Vec<String> = words(text)
        .iter()
        .map(|word| word.to_ascii_lowercase())
        .collect();
    if words.is_empty() {
        bail!("`{text}` has no letters or digits to make a Rust name from");
    }
    let joined = words.join("_");
    Ok(if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    })
}

/// `SCREAMING_SNAKE_CASE` of `text`, for constants.
pub(crate) fn screaming(text: &str) -> Result<String> {
    Ok(snake(text)?.to_ascii_uppercase())
}

/// The identifier `name`, raw (`r#type`) when it is a keyword, with a trailing underscore for the few keywords that
/// cannot be raw.
pub(crate) fn ident(name: &str) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
        Ident::new(&format!("{name}_"), Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_mechanically() {
        assert_eq!(pascal("edit-image").unwrap(), "EditImage");
        assert_eq!(pascal("reve/edit-image").unwrap(), "ReveEditImage");
        assert_eq!(pascal("b64_json").unwrap(), "B64Json");
        assert_eq!(pascal("16:9").unwrap(), "V16_9");
        assert_eq!(pascal("imageURL").unwrap(), "ImageUrl");
        assert_eq!(snake("imageUrl").unwrap(), "image_url");
        assert_eq!(
            screaming("convert_base64_to_url").unwrap(),
            "CONVERT_BASE64_TO_URL"
        );
        assert!(pascal("--").is_err());
    }

    #[test]
    fn keywords_become_raw_identifiers() {
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("prompt").to_string(), "prompt");
    }
}

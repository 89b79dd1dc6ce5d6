//! The rule that lets `cargo xtask snapshots` find the snapshot tests by name: an insta assertion sits directly in a
//! test whose name ends in [`TEST_SUFFIX`], and every such test asserts a snapshot, to a file.
//!
//! Source is read token by token, so an assertion in a comment or a string does not count and one inside another
//! macro's input (a `with_settings!` block, a `proptest!`) does; one that sits nowhere the rule can see, such as a
//! `macro_rules!` body, is reported as such.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens as _;

use super::{TEST_SUFFIX, source_files};

/// Every breach of the rule in the Rust sources under `root` (outside `target` and hidden folders), one sentence
/// each naming the file and the function.
pub fn offenders(root: &Path) -> Result<Vec<String>> {
    let mut offenders = Vec::new();
    for path in source_files(root, |name| name.ends_with(".rs"))? {
        let source =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let label = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        offenders.extend(offenders_in(&label, &source));
    }
    Ok(offenders)
}

/// The breaches of the rule in one file's `source`, each prefixed with `label`.
pub fn offenders_in(label: &str, source: &str) -> Vec<String> {
    let Ok(tokens) = source.parse::<TokenStream>() else {
        return Vec::new();
    };
    let total = assertions(tokens).len();
    if total == 0 {
        return Vec::new();
    }
    let file = match syn::parse_file(source) {
        Ok(file) => file,
        Err(error) => {
            return vec![format!(
                "{label}: asserts a snapshot, but is not Rust that syn can read ({error})"
            )];
        }
    };
    let mut functions = Vec::new();
    collect_functions(&file.items, &mut functions);
    let mut offenders = Vec::new();
    let mut seen = 0;
    for function in &functions {
        let found = assertions(function.body.clone());
        seen += found.len();
        let named = function.name.ends_with(TEST_SUFFIX);
        let name = &function.name;
        if found.is_empty() {
            if function.is_test && named {
                offenders.push(format!(
                    "{label}: test `{name}` ends in `{TEST_SUFFIX}` but asserts no snapshot, so `cargo xtask \
                     snapshots` would run it for nothing; rename it"
                ));
            }
            continue;
        }
        if !function.is_test {
            offenders.push(format!(
                "{label}: `{name}` asserts a snapshot but is not a test; assert in the test itself, named \
                 `..{TEST_SUFFIX}`"
            ));
        } else if !named {
            offenders.push(format!(
                "{label}: test `{name}` asserts a snapshot, so its name must end in `{TEST_SUFFIX}`"
            ));
        }
        for assertion in found.iter().filter(|assertion| assertion.inline) {
            offenders.push(format!(
                "{label}: `{name}` uses an inline snapshot (`{}!(.., @\"..\")`), which only cargo-insta can \
                 update; give it a snapshot file",
                assertion.name
            ));
        }
    }
    if seen < total {
        offenders.push(format!(
            "{label}: {} snapshot assertion(s) outside any function (in a macro definition, say), where no test name \
             can select them",
            total - seen
        ));
    }
    offenders
}

struct Function {
    name: String,
    is_test: bool,
    body: TokenStream,
}

/// Free functions, and methods, of `items` and of the modules written inline among them.
fn collect_functions(items: &[syn::Item], functions: &mut Vec<Function>) {
    for item in items {
        match item {
            syn::Item::Fn(item) => functions.push(Function {
                name: item.sig.ident.to_string(),
                is_test: item.attrs.iter().any(is_test_attribute),
                body: item.block.to_token_stream(),
            }),
            syn::Item::Mod(syn::ItemMod {
                content: Some((_, items)),
                ..
            }) => collect_functions(items, functions),
            syn::Item::Impl(item) => {
                for impl_item in &item.items {
                    if let syn::ImplItem::Fn(method) = impl_item {
                        functions.push(Function {
                            name: method.sig.ident.to_string(),
                            is_test: false,
                            body: method.block.to_token_stream(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// `#[test]`, `#[tokio::test]` and the like: any attribute whose path ends in `test`.
fn is_test_attribute(attribute: &syn::Attribute) -> bool {
    attribute
        .path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "test")
}

struct Assertion {
    name: String,
    inline: bool,
}

/// The insta assertion macros invoked in `tokens` (`assert_snapshot!`, `assert_json_snapshot!`, ...), however deeply
/// nested.
fn assertions(tokens: TokenStream) -> Vec<Assertion> {
    let mut found = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                let is_assertion = name.starts_with("assert_") && name.ends_with("snapshot");
                let bang = matches!(tokens.peek(), Some(TokenTree::Punct(punct)) if punct.as_char() == '!');
                if is_assertion && bang {
                    tokens.next();
                    let inline = match tokens.peek() {
                        Some(TokenTree::Group(group)) => group.stream().into_iter().any(
                            |token| matches!(token, TokenTree::Punct(punct) if punct.as_char() == '@'),
                        ),
                        _ => false,
                    };
                    found.push(Assertion { name, inline });
                }
            }
            TokenTree::Group(group) => found.extend(assertions(group.stream())),
            TokenTree::Punct(_) | TokenTree::Literal(_) => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::offenders_in;

    #[test]
    fn named_file_snapshot_tests_pass() {
        let source = r#"
            #[test]
            fn the_schema_snapshot() {
                insta::assert_json_snapshot!("schema", 1);
                insta::with_settings!({sort_maps => true}, { insta::assert_snapshot!("text", "a"); });
            }
            #[tokio::test]
            async fn the_listing_snapshot() { assert_debug_snapshot!(2); }
            // insta::assert_snapshot!(in_a_comment);
            fn helper() -> &'static str { "insta::assert_snapshot!(in_a_string)" }
        "#;
        assert!(offenders_in("a.rs", source).is_empty());
    }

    #[test]
    fn every_breach_is_named_with_its_file_and_function() {
        let source = r#"
            #[test]
            fn error_messages() { insta::assert_snapshot!("x"); }
            #[test]
            fn helpers_snapshot() { assert_eq!(1, 1); }
            fn check(value: &str) { insta::assert_snapshot!(value); }
            mod inner {
                #[test]
                fn inline_snapshot() { insta::assert_snapshot!("x", @"x"); }
            }
            macro_rules! snap { ($e:expr) => { insta::assert_snapshot!($e) }; }
        "#;
        assert_eq!(
            offenders_in("crates/x/tests/it/a.rs", source),
            [
                "crates/x/tests/it/a.rs: test `error_messages` asserts a snapshot, so its name must end in `_snapshot`",
                "crates/x/tests/it/a.rs: test `helpers_snapshot` ends in `_snapshot` but asserts no snapshot, so \
                 `cargo xtask snapshots` would run it for nothing; rename it",
                "crates/x/tests/it/a.rs: `check` asserts a snapshot but is not a test; assert in the test itself, \
                 named `.._snapshot`",
                "crates/x/tests/it/a.rs: `inline_snapshot` uses an inline snapshot (`assert_snapshot!(.., @\"..\")`), \
                 which only cargo-insta can update; give it a snapshot file",
                "crates/x/tests/it/a.rs: 1 snapshot assertion(s) outside any function (in a macro definition, say), \
                 where no test name can select them",
            ]
        );
    }

    #[test]
    fn files_without_assertions_are_not_parsed() {
        assert!(offenders_in("b.rs", "this is not Rust {").is_empty());
    }
}

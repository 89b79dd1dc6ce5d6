//! The settings reference of `docs/settings.md`, written from the command line's own definitions so
//! that it cannot drift from `--help`: every flag of every command, grouped under the headings
//! `--help` shows, with its variable, its default and its text.
//!
//! `cargo xtask codegen` writes it into the document between two markers (through this module's
//! test, run with [`WRITE_VARIABLE`] set), and `cargo xtask codegen --check` and the test itself fail
//! when the document differs.

use clap::{Arg, CommandFactory as _};

use super::Cli;

/// Where the reference goes, from the workspace's root.
const DOCUMENT: &str = "docs/settings.md";
/// The line before the generated part of [`DOCUMENT`].
const BEGIN: &str =
    "<!-- the settings reference: written by `cargo xtask codegen` from the command line -->";
/// The line after it.
const END: &str = "<!-- the settings reference ends -->";
/// Set (to anything) for the freshness test to write the reference instead of comparing it.
const WRITE_VARIABLE: &str = "REVE_WRITE_SETTINGS_REFERENCE";

/// The commands in the order the reference takes them: the server first, as a bare `reve-mcp` is.
const COMMANDS: &[&str] = &["serve", "edit", "create", "remix", "jobs", "usage", "view"];

/// One table of the reference: the flags under one heading, and the commands that take them.
struct Table {
    title: String,
    commands: Vec<String>,
    rows: Vec<String>,
    ids: Vec<String>,
}

/// The reference, in Markdown, without its markers.
fn markdown() -> String {
    let mut top = Cli::command();
    top.build();
    let mut tables: Vec<Table> = Vec::new();
    for name in COMMANDS {
        let Some(command) = top.find_subcommand(name) else {
            continue;
        };
        for arg in command.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let title = match arg.get_help_heading() {
                Some(heading) => heading.to_owned(),
                None => format!("Options of `reve-mcp {name}`"),
            };
            let index = match tables.iter().position(|table| table.title == title) {
                Some(index) => index,
                None => {
                    tables.push(Table {
                        title,
                        commands: Vec::new(),
                        rows: Vec::new(),
                        ids: Vec::new(),
                    });
                    tables.len() - 1
                }
            };
            let table = &mut tables[index];
            let command_name = format!("`{name}`");
            if !table.commands.contains(&command_name) {
                table.commands.push(command_name);
            }
            let id = arg.get_id().to_string();
            if !table.ids.contains(&id) {
                table.ids.push(id);
                table.rows.push(row(arg));
            }
        }
    }
    // The shared headings first, then each command's own flags in the order of the commands.
    tables.sort_by_key(|table| table.title.starts_with("Options of"));
    let mut text = String::new();
    for table in tables {
        text.push_str(&format!("\n### {}\n\n", table.title));
        if !table.title.starts_with("Options of") {
            text.push_str(&format!("Taken by {}.\n\n", table.commands.join(", ")));
        }
        text.push_str("| Flag | Variable | Default | Meaning |\n|---|---|---|---|\n");
        for row in table.rows {
            text.push_str(&row);
        }
    }
    text
}

/// One flag as a table row.
fn row(arg: &Arg) -> String {
    let flag = match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => format!("`-{short}`, `--{long}`"),
        (None, Some(long)) => format!("`--{long}`"),
        _ => {
            let names = arg.get_value_names().unwrap_or_default();
            let name = names
                .first()
                .map_or(arg.get_id().as_str(), |name| name.as_str());
            format!("`{name}...`")
        }
    };
    let variable = arg
        .get_env()
        .map(|name| format!("`{}`", name.to_string_lossy()))
        .unwrap_or_default();
    let mut meaning = cell(
        &arg.get_long_help()
            .or(arg.get_help())
            .map(|help| help.to_string())
            .unwrap_or_default(),
    );
    if !meaning.is_empty() && !meaning.ends_with('.') {
        meaning.push('.');
    }
    let takes_values = arg.get_num_args().is_some_and(|range| range.takes_values());
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|value| format!("`{}`", value.to_string_lossy()))
        .collect();
    let default = match (defaults.as_slice(), stated_default(&mut meaning)) {
        _ if !takes_values => "off".to_owned(),
        (_, Some(stated)) => stated,
        ([], None) => "none".to_owned(),
        (defaults, None) => defaults.join(", "),
    };
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| format!("`{}`", value.get_name()))
        .collect();
    if !possible.is_empty() && takes_values {
        meaning.push_str(&format!(" One of {}.", possible.join(", ")));
    }
    format!("| {flag} | {variable} | {default} | {} |\n", meaning)
}

/// A default the text states in words (`Default: a reve folder in your Pictures folder.`), taken out
/// of `meaning` for the default's column.
fn stated_default(meaning: &mut String) -> Option<String> {
    let start = meaning.find("Default: ")?;
    let rest = &meaning[start + "Default: ".len()..];
    let end = rest.find(". ").map_or(rest.len(), |end| end + 1);
    let stated = rest[..end].trim_end_matches('.').to_owned();
    meaning.replace_range(start..start + "Default: ".len() + end, "");
    *meaning = meaning.trim_end().to_owned();
    Some(stated)
}

/// Text made fit for a table cell: one line, and no `|` taken for a column's end.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/settings.md` holds what the command line says today; with [`WRITE_VARIABLE`] set (as
    /// `cargo xtask codegen` sets it) it is rewritten instead.
    #[test]
    fn settings_reference_is_fresh() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DOCUMENT);
        let document = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
            .replace("\r\n", "\n");
        let (Some(begin), Some(end)) = (document.find(BEGIN), document.find(END)) else {
            panic!("{DOCUMENT} lacks the markers {BEGIN:?} and {END:?}");
        };
        let fresh = format!(
            "{}{BEGIN}\n{}\n{}",
            &document[..begin],
            markdown(),
            &document[end..]
        );
        if std::env::var_os(WRITE_VARIABLE).is_some() {
            if fresh != document {
                std::fs::write(&path, &fresh)
                    .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
            }
            return;
        }
        assert!(
            fresh == document,
            "{DOCUMENT} is stale: run `cargo xtask codegen` to write its settings reference again"
        );
    }

    #[test]
    fn every_command_and_flag_is_in_the_reference() {
        let reference = markdown();
        for name in COMMANDS {
            assert!(
                reference.contains(&format!("`reve-mcp {name}`"))
                    || reference.contains(&format!("`{name}`")),
                "{name} is missing"
            );
        }
        for flag in [
            "`--state-dir`",
            "`--http`",
            "`-p`, `--prompt`",
            "`--aspect-ratio`",
            "`--max-credits-per-day`",
            "`-n`, `--limit`",
        ] {
            assert!(reference.contains(flag), "{flag} is missing:\n{reference}");
        }
        // Each shared flag is listed once, under its heading.
        assert_eq!(reference.matches("| `--base-url` |").count(), 1);
        assert!(reference.contains("Taken by `serve`, `edit`, `create`, `remix`."));
    }
}

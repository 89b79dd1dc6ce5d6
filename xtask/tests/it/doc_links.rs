//! Every relative link in the project's Markdown leads somewhere: the file exists, and a
//! `#fragment` names a heading of that file (as GitHub makes an anchor from a heading). Links to
//! other sites are not followed: the tests never reach the network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Markdown a reader follows links in: the READMEs, `docs/` and the top-level documents.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "README.md",
        "RELEASING.md",
        "BENCHMARKS.md",
        "crates/reve-core/README.md",
        "crates/reve-mcp/README.md",
        "spec/README.md",
    ]
    .iter()
    .map(|path| root.join(path))
    .collect();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .filter_map(|line| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            (1..=6)
                .contains(&hashes)
                .then(|| line[hashes..].strip_prefix(' '))
                .flatten()
                .map(anchor)
        })
        .collect()
}

/// The targets of `[text](target)` links on `line`, with any title dropped.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        targets.push(target);
        rest = &rest[end..];
    }
    targets
}

#[test]
fn every_relative_link_in_the_documents_leads_to_a_file_and_a_heading() {
    let root = xtask::project_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents(&root) {
        let text = std::fs::read_to_string(&document)
            .unwrap_or_else(|error| panic!("{}: {error}", document.display()));
        let folder = document.parent().unwrap();
        for line in prose(&text) {
            for target in link_targets(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                let file = if path.is_empty() {
                    document.clone()
                } else {
                    folder.join(path)
                };
                let name = document.strip_prefix(&root).unwrap().display().to_string();
                if !file.exists() {
                    broken.push(format!("{name}: {target} (no such file)"));
                    continue;
                }
                if !fragment.is_empty()
                    && file.extension().is_some_and(|extension| extension == "md")
                    && !anchors(&std::fs::read_to_string(&file).unwrap()).contains(fragment)
                {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} links were found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor("The `create_image` and `remix_images` tools"),
        "the-create_image-and-remix_images-tools"
    );
    assert_eq!(
        anchor("See the edit: the viewer and the resources"),
        "see-the-edit-the-viewer-and-the-resources"
    );
    assert_eq!(
        anchor("Billing: what can and cannot be charged twice"),
        "billing-what-can-and-cannot-be-charged-twice"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#x \"title\") and [b](b.md)"),
        ["docs/a.md#x", "b.md"]
    );
}

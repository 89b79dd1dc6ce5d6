//! `cargo xtask snapshots [--accept | --review]`: runs every `insta` snapshot test of the workspace, shows what
//! changed, and records the changes through insta's own update modes.
//!
//! The snapshot tests are found by name rather than listed by hand: a test that asserts a snapshot has a name ending
//! in [`TEST_SUFFIX`], and no other test does ([`filter`] checks both, and a test in xtask fails when a file breaks
//! the rule). libtest filters only by substring, so the task lists the workspace's tests, keeps those ending in the
//! suffix and passes them with `--exact`.
//!
//! A run first deletes every `.snap.new` in the workspace, so what it reports is what this run saw, not what an
//! earlier `cargo test` left behind; the ones it writes stay for `cargo insta review`. Only file snapshots are
//! supported: an inline one can be rewritten by cargo-insta alone, so [`filter`] refuses them.

pub mod filter;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cargo;

/// How the name of every test that asserts a snapshot ends, and of no other test.
pub const TEST_SUFFIX: &str = "_snapshot";

/// What `cargo xtask snapshots` does after running the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Report the changed snapshots; fail if any changed.
    Check,
    /// Write the changed snapshots, then check again.
    Accept,
    /// Report, then let `cargo insta review` take each change in turn.
    Review,
}

/// `cargo xtask snapshots` for the workspace at `root`.
pub fn run(root: &Path, action: Action) -> Result<ExitCode> {
    let offenders = filter::offenders(root)?;
    if !offenders.is_empty() {
        bail!(
            "these insta assertions are not where `cargo xtask snapshots` looks for them (a test whose name ends in \
             `{TEST_SUFFIX}`, and only such tests):\n  {}",
            offenders.join("\n  ")
        );
    }
    let tests = snapshot_tests(root)?;
    let passed = match action {
        Action::Check => check(root, &tests)?,
        Action::Accept => accept(root, &tests)?,
        Action::Review => review(root, &tests)?,
    };
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether every snapshot matched.
fn check(root: &Path, tests: &[String]) -> Result<bool> {
    let changed = run_tests(root, tests, Update::New)?;
    if changed.is_empty() {
        println!("All {} snapshot tests match their snapshots.", tests.len());
        return Ok(true);
    }
    for snapshot in &changed {
        print_change(root, snapshot)?;
    }
    println!(
        "{} snapshot(s) changed ({} snapshot tests ran). If the changes are intended, record them with `cargo xtask \
         snapshots --accept`, or take them one by one with `cargo xtask snapshots --review`.",
        changed.len(),
        tests.len()
    );
    Ok(false)
}

fn accept(root: &Path, tests: &[String]) -> Result<bool> {
    let before = snapshot_files(root)?;
    run_tests(root, tests, Update::Always)?;
    let after = snapshot_files(root)?;
    let written: Vec<&PathBuf> = after
        .iter()
        .filter(|(path, text)| before.get(*path) != Some(text))
        .map(|(path, _)| path)
        .collect();
    if written.is_empty() {
        println!("No snapshot changed, so none was written.");
    }
    for path in written {
        println!(
            "Accepted snapshot `{}`\n  file:   {}",
            snapshot_name(path),
            relative(root, path).display()
        );
    }
    println!("Running the snapshot tests again:");
    check(root, tests)
}

fn review(root: &Path, tests: &[String]) -> Result<bool> {
    let installed = cargo::command(root)
        .args(["insta", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if check(root, tests)? {
        return Ok(true);
    }
    if !installed {
        println!(
            "`--review` hands the .snap.new files above to `cargo insta review`, and cargo-insta is not installed: \
             install it with `cargo install --locked cargo-insta`, or accept every change with `cargo xtask \
             snapshots --accept`."
        );
        return Ok(false);
    }
    let status = cargo::command(root)
        .args(["insta", "review"])
        .status()
        .context("running cargo insta review")?;
    Ok(status.success())
}

/// The names of the workspace's snapshot tests, as libtest prints them (`module::test`).
fn snapshot_tests(root: &Path) -> Result<Vec<String>> {
    let output = test_command(root)
        .args(["--list", "--format", "terse"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test -- --list")?;
    if !output.status.success() {
        bail!("listing the workspace's tests failed");
    }
    let tests: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| name.ends_with(TEST_SUFFIX))
        .map(str::to_owned)
        .collect();
    if tests.is_empty() {
        bail!("no test of the workspace has a name ending in `{TEST_SUFFIX}`");
    }
    Ok(tests.into_iter().collect())
}

/// `cargo test` of every library, binary and integration test of the workspace (doctests assert no snapshot, and
/// compiling them is the slowest part of a test build), with what follows going to each test binary.
fn test_command(root: &Path) -> Command {
    let mut command = cargo::command(root);
    command.args([
        "test",
        "--workspace",
        "--tests",
        "--locked",
        "--no-fail-fast",
        "--",
    ]);
    command
}

/// The `INSTA_UPDATE` mode a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Update {
    /// `new`: a changed snapshot goes to a `.snap.new` beside it (and, with `INSTA_FORCE_PASS`, its test goes on to
    /// its other assertions instead of stopping at the first change).
    New,
    /// `always`: a changed snapshot overwrites its `.snap`.
    Always,
}

/// Runs the snapshot tests and returns the `.snap.new` files they wrote, sorted.
fn run_tests(root: &Path, tests: &[String], update: Update) -> Result<Vec<PathBuf>> {
    for stale in pending_files(root)? {
        fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
    }
    let mut command = test_command(root);
    command.arg("--exact").args(tests);
    // Settings from the caller's shell (CI's `INSTA_UPDATE=no`, say) would defeat the mode chosen here; insta's own
    // report would repeat this one.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSTA_") {
            command.env_remove(name);
        }
    }
    command.env("INSTA_OUTPUT", "none");
    match update {
        Update::New => command
            .env("INSTA_UPDATE", "new")
            .env("INSTA_FORCE_PASS", "1"),
        Update::Always => command.env("INSTA_UPDATE", "always"),
    };
    eprintln!("Running {} snapshot tests...", tests.len());
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test")?;
    if !output.status.success() {
        println!("{}", String::from_utf8_lossy(&output.stdout));
        bail!(
            "the snapshot tests failed for a reason other than a changed snapshot (their output is above)"
        );
    }
    let mut written = pending_files(root)?;
    written.sort();
    Ok(written)
}

fn print_change(root: &Path, new: &Path) -> Result<()> {
    let old = new.with_extension("");
    let new_text = fs::read_to_string(new).with_context(|| format!("reading {}", new.display()))?;
    let old_text = fs::read_to_string(&old).ok();
    let state = if old_text.is_some() {
        "changed"
    } else {
        "is new"
    };
    println!(
        "\nSnapshot `{}` {state}\n  file:   {}",
        snapshot_name(&old),
        relative(root, &old).display()
    );
    if let Some(source) = metadata(&new_text, "source") {
        let line = metadata(&new_text, "assertion_line")
            .map(|line| format!(":{line}"))
            .unwrap_or_default();
        println!("  source: {source}{line}");
    }
    print!(
        "{}",
        diff(
            contents(old_text.as_deref().unwrap_or_default()),
            contents(&new_text)
        )?
    );
    Ok(())
}

/// A unified diff of two snapshot contents, from its first hunk on: git is wherever a maintainer works, and its
/// output is what they read in reviews anyway.
fn diff(old: &str, new: &str) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("xtask-snapshots-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("old"), old)?;
    fs::write(dir.join("new"), new)?;
    let output = Command::new("git")
        .current_dir(&dir)
        .args(["diff", "--no-index", "--no-color", "--", "old", "new"])
        .output();
    fs::remove_dir_all(&dir).ok();
    let output = output.context("running git diff (git shows the changes)")?;
    // `git diff --no-index` exits with 1 when the files differ and 0 when they do not; anything else is an error.
    if output.status.code().is_none_or(|code| code > 1) {
        bail!(
            "git diff failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(match text.find("\n@@") {
        Some(start) => text[start + 1..].to_owned(),
        None => "  (the same contents; only the metadata differs)\n".to_owned(),
    })
}

/// What a `.snap` file holds after its metadata header (`---`, YAML, `---`).
fn contents(snap: &str) -> &str {
    snap.strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map_or(snap, |(_, contents)| contents)
}

/// A top-level field of a `.snap` file's metadata header.
fn metadata<'a>(snap: &'a str, key: &str) -> Option<&'a str> {
    let header = snap.strip_prefix("---\n")?.split_once("\n---\n")?.0;
    header
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
}

/// The snapshot's own name: insta prefixes the file name with the test's module path (`it__edit__request_body`).
fn snapshot_name(snap: &Path) -> String {
    let stem = snap
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .trim_end_matches(".new")
        .trim_end_matches(".snap")
        .to_owned();
    match stem.rsplit_once("__") {
        Some((_, name)) => name.to_owned(),
        None => stem,
    }
}

fn relative<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// Every `.snap` file of the workspace and its text.
fn snapshot_files(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut files = BTreeMap::new();
    for path in source_files(root, |name| name.ends_with(".snap"))? {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        files.insert(path, text);
    }
    Ok(files)
}

/// The snapshots insta left for review: `.snap.new` files, and `.pending-snap` ones should an inline snapshot slip
/// past [`filter`].
fn pending_files(root: &Path) -> Result<Vec<PathBuf>> {
    source_files(root, |name| {
        name.ends_with(".snap.new") || name.ends_with(".pending-snap")
    })
}

/// The files under `root` whose name `keep` accepts, outside build output (`target`) and hidden folders (`.git`).
pub(crate) fn source_files(root: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in
            fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    folders.push(entry.path());
                }
            } else if kind.is_file() && keep(&name) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

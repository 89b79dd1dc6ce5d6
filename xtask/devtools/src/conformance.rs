//! `cargo xtask conformance`: the official MCP conformance suite against
//! `reve-mcp serve --http`, stateful and `--stateless`, itself against the fake AIML API.
//!
//! Some of the suite's checks drive fixture tools of its own (`greet`, `slow_compute`,
//! `test_logging_tool`, ...), which a real server does not have: the suite reports them as not
//! testable. Those, and only those, are listed in `tests/conformance/baseline.json`, each with
//! the fixture it needs. Every other check must pass; a listed check must still fail for want
//! of its fixture (so the list cannot hide a real failure, nor outlive the suite's version).
//! The task flow through `edit_image` itself is tested with rmcp's client in
//! `crates/reve-mcp/tests/it/jobs.rs`. The suite and Node 22 are installed, pinned, under
//! `target/tools/conformance` on first use, with the machine's npm.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use serde_json::Value;

use crate::harness::{NodeTools, serve_http};

/// The suite, pinned to the version rmcp's own CI runs (Node 22 comes with it).
const SUITE: &str = "@modelcontextprotocol/conformance@0.2.0-alpha.10";
const SUITE_SCRIPT: &str = "@modelcontextprotocol/conformance/dist/index.js";

/// The scenarios that apply to a tools server over Streamable HTTP at MCP 2026-07-28, and the
/// tasks extension's.
const SCENARIOS: [&str; 15] = [
    "server-stateless",
    "http-header-validation",
    "dns-rebinding-protection",
    "tools-list",
    "caching",
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-dispatch-and-envelope",
    "tasks-required-task-error",
    "tasks-request-headers",
    "tasks-mrtr-input",
    "tasks-mrtr-composition",
    "tasks-status-notifications",
];

/// The server's two ways of serving HTTP, with the environment that selects each.
const MODES: [(&str, &[(&str, &str)]); 2] = [
    ("stateful", &[]),
    ("stateless", &[("REVE_HTTP_STATELESS", "true")]),
];

/// What a fixture-dependent check's failure says: the suite names the missing tool, or says the
/// check is not testable, or that the fixture an earlier step made is missing.
const NOT_TESTABLE_MARKERS: [&str; 2] = ["Not testable", "fixture"];

/// A check of the baseline: it fails only because the server lacks the suite's tool `needs`.
struct Expected {
    scenario: String,
    check: String,
    needs: String,
}

pub fn run(root: &Path) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask conformance`")?;
    let baseline = read_baseline(&root.join("tests/conformance/baseline.json"))?;
    let tools = NodeTools::install(
        root.join("target/tools/conformance"),
        &[SUITE],
        SUITE_SCRIPT,
    )?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(check(root, &binary, &tools, &baseline))
}

fn read_baseline(path: &Path) -> Result<Vec<Expected>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let baseline: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if baseline["suite"] != SUITE {
        bail!(
            "{} was written for {}, but {SUITE} runs: run it and write the baseline anew",
            path.display(),
            baseline["suite"]
        );
    }
    let field = |entry: &Value, name: &str| -> Result<String> {
        entry[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: an entry without {name:?}: {entry}", path.display()))
    };
    baseline["needs_fixture_tools"]
        .as_array()
        .with_context(|| format!("{} has no needs_fixture_tools list", path.display()))?
        .iter()
        .map(|entry| {
            Ok(Expected {
                scenario: field(entry, "scenario")?,
                check: field(entry, "check")?,
                needs: field(entry, "needs")?,
            })
        })
        .collect()
}

async fn check(root: &Path, binary: &Path, tools: &NodeTools, baseline: &[Expected]) -> Result<()> {
    let fake = FakeApi::start().await;
    let mut problems = Vec::new();
    let mut passed = 0;
    for (mode, extra) in MODES {
        let work = root.join("target/conformance").join(mode);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let (_server, url) = serve_http(binary, &fake, &work, extra).await?;
        println!("reve-mcp serves {url} ({mode}); running the suite");
        let mut failed_as_expected = BTreeSet::new();
        for scenario in SCENARIOS {
            let output = work.join(scenario);
            // The suite exits non-zero whenever a check fails, fixture checks included; what
            // counts is read from its report.
            tokio::process::Command::new(tools.node())
                .arg(tools.module(SUITE_SCRIPT))
                .args(["server", "--url", &url, "--scenario", scenario, "-o"])
                .arg(&output)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .context("running the conformance suite")?;
            let checks = checks(&output)?;
            if checks.is_empty() {
                problems.push(format!("{mode} {scenario}: the suite reported no checks"));
            }
            for check in checks {
                let id = check["id"].as_str().unwrap_or_default();
                let status = check["status"].as_str().unwrap_or_default();
                let message = check["errorMessage"].as_str().unwrap_or_default();
                let expected = baseline
                    .iter()
                    .find(|entry| entry.scenario == scenario && entry.check == id);
                let verdict = match (status, expected) {
                    ("SUCCESS", _) => {
                        passed += 1;
                        "passes".to_owned()
                    }
                    ("SKIPPED", _) => format!("skipped by the suite: {message}"),
                    ("FAILURE", Some(entry))
                        if message.contains(entry.needs.as_str())
                            || NOT_TESTABLE_MARKERS
                                .iter()
                                .any(|marker| message.contains(marker)) =>
                    {
                        failed_as_expected.insert((scenario, id.to_owned()));
                        format!("not testable: needs the suite's tool {}", entry.needs)
                    }
                    // A SHOULD the suite exercises only through a tool of its own, which it
                    // reports as missed rather than untestable when the server answers the
                    // unknown tool with -32602, as the specification says.
                    ("WARNING", Some(entry)) => {
                        failed_as_expected.insert((scenario, id.to_owned()));
                        format!(
                            "not testable (a SHOULD): needs the suite's tool {}",
                            entry.needs
                        )
                    }
                    _ => {
                        problems.push(format!("{mode} {scenario} {id}: {status}: {message}"));
                        format!("FAILS: {message}")
                    }
                };
                println!("  {scenario:<30} {id:<60} {verdict}");
            }
        }
        for entry in baseline {
            if !failed_as_expected.contains(&(entry.scenario.as_str(), entry.check.clone())) {
                problems.push(format!(
                    "{mode} {} {}: listed in the baseline as needing {}, but it did not fail \
                     for that: remove it from tests/conformance/baseline.json",
                    entry.scenario, entry.check, entry.needs
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "the conformance suite found {} problem(s) (reports in {}):\n{}",
            problems.len(),
            root.join("target/conformance").display(),
            problems.join("\n")
        );
    }
    println!(
        "{passed} checks passed over both modes; the {} listed in tests/conformance/baseline.json \
         need the suite's fixture tools.",
        baseline.len()
    );
    Ok(())
}

/// The checks in a scenario's report folder.
fn checks(output: &Path) -> Result<Vec<Value>> {
    let mut checks = Vec::new();
    for entry in walk(output)? {
        if entry.file_name().is_some_and(|name| name == "checks.json") {
            let text = std::fs::read_to_string(&entry)?;
            match serde_json::from_str(&text)? {
                Value::Array(found) => checks.extend(found),
                other => bail!("{} is not a list of checks: {other}", entry.display()),
            }
        }
    }
    Ok(checks)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

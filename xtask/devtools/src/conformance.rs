//! `cargo xtask conformance`: the official MCP conformance suite against
//! `reve-mcp serve --http`, itself against the fake AIML API, scored as the suite scores a
//! revision (`--requirements`): 2025-11-25 at its own wire against the stateful server (its
//! sessions), and 2026-07-28 against the stateful and the `--stateless` server. Every message
//! the server sends is checked against the specification's schema (`wire-schema-valid`).
//!
//! Some of the suite's checks drive fixtures of its own (tools such as `greet` or
//! `slow_compute`, prompts, `test://` resources) or capabilities reve-mcp does not declare
//! (logging, completions, resource subscriptions): those, and only those, are listed in
//! `tests/conformance/baseline.json`, each with what it needs. Every other check must pass (or
//! be informational or skipped); a listed check must still fail (so the list cannot hide a real
//! failure, nor outlive the suite's version). Real failures still to fix are listed apart, each
//! with its issue. The suite and Node 22 are installed, pinned, under `target/tools/` on first
//! use, with the machine's npm.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use serde_json::Value;

use crate::harness::{NodeTools, serve_http};

/// The suite, pinned (Node 22 comes with it).
const SUITE: &str = "@modelcontextprotocol/conformance@0.2.0-alpha.12";
const SUITE_SCRIPT: &str = "@modelcontextprotocol/conformance/dist/index.js";

/// The Skills extension's scenarios (SEP-2640), and the revision they run at.
const SKILLS_SCENARIOS: [&str; 3] = [
    "sep-2640-skills-enumeration",
    "sep-2640-skills-manifest",
    "sep-2640-skills-directory",
];
const EXTENSIONS_REVISION: &str = "2026-07-28";

/// One run of the suite.
struct Run {
    /// The server's way of serving HTTP, and the environment that selects it.
    mode: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// The revision whose requirement set is scored against it.
    revision: &'static str,
}

const RUNS: [Run; 3] = [
    Run {
        mode: "stateful",
        env: &[],
        revision: "2025-11-25",
    },
    Run {
        mode: "stateful",
        env: &[],
        revision: "2026-07-28",
    },
    Run {
        mode: "stateless",
        env: &[("REVE_HTTP_STATELESS", "true")],
        revision: "2026-07-28",
    },
];

/// The length of the time the suite ends a report folder's name with, after a `-`
/// (`2026-12-07T09-36-14-129Z`: an ISO time with `:` and `.` made `-`).
const REPORT_TIME_LEN: usize = 24;

/// How long the suite gives one scenario, in milliseconds: more than its default, for a debug
/// binary on two busy cores.
const SCENARIO_TIMEOUT_MS: &str = "60000";

/// A check of the baseline, for the scenarios of one revision.
struct Expected {
    revision: String,
    scenario: String,
    check: String,
    /// What it needs that reve-mcp does not have, or the issue of a finding to fix.
    why: String,
}

pub fn run(root: &Path) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask conformance`")?;
    let baseline = read_baseline(&root.join("tests/conformance/baseline.json"))?;
    // A folder per version, so that a new pin is installed rather than the old one reused.
    let version = SUITE.rsplit('@').next().unwrap_or(SUITE);
    let tools = NodeTools::install(
        root.join("target/tools")
            .join(format!("conformance-{version}")),
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
    let mut expected = Vec::new();
    for (list, why) in [("cannot_apply", "needs"), ("open_findings", "why")] {
        for entry in baseline[list]
            .as_array()
            .with_context(|| format!("{} has no {list} list", path.display()))?
        {
            expected.push(Expected {
                revision: field(entry, "revision")?,
                scenario: field(entry, "scenario")?,
                check: field(entry, "check")?,
                why: field(entry, why)?,
            });
        }
    }
    Ok(expected)
}

async fn check(root: &Path, binary: &Path, tools: &NodeTools, baseline: &[Expected]) -> Result<()> {
    let fake = FakeApi::start().await;
    let mut problems = Vec::new();
    let mut passed = 0;
    let mut failed_as_listed = BTreeSet::new();
    let mut schema_checked = 0;
    for Run {
        mode,
        env: extra,
        revision,
    } in RUNS
    {
        let work = root
            .join("target/conformance")
            .join(format!("{mode}-{revision}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let (_server, url) = serve_http(binary, &fake, &work, extra).await?;
        println!("reve-mcp serves {url} ({mode}); scoring it against the {revision} requirements");
        let output = work.join("reports");
        // The suite exits non-zero whenever a check fails, fixture checks included; what
        // counts is read from its reports.
        let suite = |selection: &[&str]| {
            let mut command = tokio::process::Command::new(tools.node());
            command
                .arg(tools.module(SUITE_SCRIPT))
                .args(["server", "--url", &url])
                .args(selection)
                .args(["--timeout", SCENARIO_TIMEOUT_MS, "-o"])
                .arg(&output)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            async move {
                command
                    .status()
                    .await
                    .context("running the conformance suite")
            }
        };
        suite(&["--requirements", revision]).await?;
        // The Skills extension came after the revision's requirements were frozen: its
        // scenarios run by name, at the revision whose wire extensions use.
        if revision == EXTENSIONS_REVISION {
            for scenario in SKILLS_SCENARIOS {
                suite(&["--scenario", scenario]).await?;
            }
        }
        let reports = reports(&output)?;
        if reports.is_empty() {
            problems.push(format!("{mode} {revision}: the suite reported no scenario"));
        }
        // The suite validates what the server sends in every scenario that speaks JSON-RPC
        // through its client; raw HTTP probes (DNS rebinding, SSE streams) report no such check.
        let validated = reports
            .iter()
            .filter(|(_, checks)| {
                checks
                    .iter()
                    .any(|check| check["id"] == "wire-schema-valid")
            })
            .count();
        if validated == 0 {
            problems.push(format!(
                "{mode} {revision}: no scenario reported wire-schema-valid"
            ));
        }
        schema_checked += validated;
        for (scenario, checks) in reports {
            for check in checks {
                let id = check["id"].as_str().unwrap_or_default();
                let status = check["status"].as_str().unwrap_or_default();
                let message = check["errorMessage"].as_str().unwrap_or_default();
                let listed = baseline.iter().find(|entry| {
                    entry.revision == revision && entry.scenario == scenario && entry.check == id
                });
                let verdict = match (status, listed) {
                    ("SUCCESS", _) => {
                        passed += 1;
                        "passes".to_owned()
                    }
                    ("INFO", _) => format!("informational: {message}"),
                    ("SKIPPED", _) => format!("skipped by the suite: {message}"),
                    ("FAILURE" | "WARNING", Some(entry)) => {
                        failed_as_listed.insert((revision, scenario.clone(), id.to_owned()));
                        format!("cannot apply: needs {}", entry.why)
                    }
                    _ => {
                        problems.push(format!(
                            "{mode} {revision} {scenario} {id}: {status}: {message}"
                        ));
                        format!("FAILS: {message}")
                    }
                };
                println!("  {scenario:<48} {id:<58} {verdict}");
            }
        }
    }
    for entry in baseline {
        let seen = (
            entry.revision.as_str(),
            entry.scenario.clone(),
            entry.check.clone(),
        );
        if !failed_as_listed.contains(&seen) {
            problems.push(format!(
                "{} {} {}: listed in tests/conformance/baseline.json ({}), but it did not fail: \
                 remove it from there",
                entry.revision, entry.scenario, entry.check, entry.why
            ));
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
        "{passed} checks passed in {} runs, every message valid against the schema in the \
         {schema_checked} scenarios the suite validates; the {} listed in \
         tests/conformance/baseline.json cannot apply or are open findings.",
        RUNS.len(),
        baseline.len()
    );
    Ok(())
}

/// Each scenario's checks, from the suite's report folders (`server-{scenario}-{time}`).
fn reports(output: &Path) -> Result<Vec<(String, Vec<Value>)>> {
    let mut reports = Vec::new();
    for entry in
        std::fs::read_dir(output).with_context(|| format!("reading {}", output.display()))?
    {
        let folder = entry?.path();
        let Some(name) = folder.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let Some(scenario) = name
            .strip_prefix("server-")
            .and_then(|rest| rest.get(..rest.len().checked_sub(REPORT_TIME_LEN + 1)?))
        else {
            continue;
        };
        reports.push((scenario.to_owned(), checks(&folder)?));
    }
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reports)
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

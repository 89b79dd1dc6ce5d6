//! `cargo xtask bench`: builds `reve-mcp`, the baseline server
//! (`bench/minimal-mcp-server`) and the measuring harness
//! (`bench/harness`, `reve-bench`) in release, then runs the harness, which
//! measures the real binary from outside and writes `BENCHMARKS.md`.
//!
//! The harness is built in release because `cargo xtask` runs unoptimised,
//! which would make the harness itself (the fake API, the plain HTTP
//! baseline, the in-process probes) slower than what it measures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cargo::{self, Profile};

const USAGE: &str = "usage: cargo xtask bench [--quick]\n   or: cargo xtask bench --compare <another reve-mcp binary> [--large]";

/// `cargo xtask bench [--quick]`, or `cargo xtask bench --compare <reve-mcp> [--large]`:
/// measurement 3 (or 4, with `--large`) for this tree's build and another (a copy of an earlier
/// build, say), their calls in turn.
pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let quick = match args {
        [] => false,
        ["--quick"] => true,
        ["--compare", other] => return compare(root, Path::new(other), false),
        ["--compare", other, "--large"] => return compare(root, Path::new(other), true),
        _ => bail!(USAGE),
    };
    let reve_mcp = build_release(root, "reve-mcp", "reve-mcp")?;
    let baseline = build_release(root, "minimal-mcp-server", "minimal-mcp-server")?;
    let harness = build_release(root, "reve-bench", "reve-bench")?;
    let mut command = Command::new(harness);
    command
        .current_dir(root)
        .arg("--measure")
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

fn compare(root: &Path, other: &Path, large: bool) -> Result<()> {
    if !other.is_file() {
        bail!("{} is not a reve-mcp binary\n{USAGE}", other.display());
    }
    let reve_mcp = build_release(root, "reve-mcp", "reve-mcp")?;
    let harness = build_release(root, "reve-bench", "reve-bench")?;
    let mut command = Command::new(harness);
    command
        .current_dir(root)
        .arg("--compare")
        .arg(reve_mcp)
        .arg(other);
    if large {
        command.arg("--large");
    }
    let status = command.status().context("starting the release harness")?;
    if !status.success() {
        bail!("the comparison failed ({status})");
    }
    Ok(())
}

fn build_release(root: &Path, package: &str, bin: &str) -> Result<PathBuf> {
    eprintln!("building {package} (release)");
    cargo::build_bin(root, package, bin, Profile::Release)
}

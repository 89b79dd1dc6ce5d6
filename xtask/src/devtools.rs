//! `cargo xtask demo` and `cargo xtask fake-api`, run from the `reve-devtools` package (`xtask/devtools`): they need
//! the fake API and an MCP client, dozens of crates that `cargo xtask codegen` should not have to build.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};

use crate::cargo::{self, Profile};

/// `cargo xtask demo [--live]`.
pub fn demo(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let reve_mcp = cargo::build_bin(root, "reve-mcp", "reve-mcp", Profile::Dev)?;
    let mut command = devtools(root, "demo", args);
    command.env("REVE_MCP_BIN", reve_mcp);
    hand_over(command)
}

/// `cargo xtask fake-api [--port N]`.
pub fn fake_api(root: &Path, args: &[&str]) -> Result<ExitCode> {
    hand_over(devtools(root, "fake-api", args))
}

fn devtools(root: &Path, task: &str, args: &[&str]) -> Command {
    let mut command = cargo::command(root);
    command
        .args([
            "run",
            "--quiet",
            "--locked",
            "--package",
            "reve-devtools",
            "--",
            task,
        ])
        .args(args);
    command
}

/// On Unix the task replaces xtask, as `cargo run` itself replaces cargo: Ctrl-C then reaches only the task, which
/// reports what the fake served before it exits, instead of also ending xtask and giving the shell its prompt back
/// in the middle of that report.
#[cfg(unix)]
fn hand_over(mut command: Command) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    Err(command.exec()).context("running cargo run --package reve-devtools")
}

#[cfg(not(unix))]
fn hand_over(mut command: Command) -> Result<ExitCode> {
    let status = command
        .status()
        .context("running cargo run --package reve-devtools")?;
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .map_or(ExitCode::FAILURE, ExitCode::from))
}

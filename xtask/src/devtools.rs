//! `cargo xtask demo` and `cargo xtask fake-api`, run from the `reve-devtools` package (`xtask/devtools`): they need
//! the fake API and an MCP client, dozens of crates that `cargo xtask codegen` should not have to build.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};

use crate::cargo::{self, Profile};

/// `cargo xtask demo [--live]`. The server and the devtools are built in one cargo run, so the crates they share
/// (tokio, rmcp, reqwest, image...) are compiled once.
pub fn demo(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let [reve_mcp, devtools] = built(root, Some(("reve-mcp", "reve-mcp")))?;
    let mut command = Command::new(devtools);
    command.current_dir(root).arg("demo").args(args);
    command.env("REVE_MCP_BIN", reve_mcp);
    hand_over(command)
}

/// `cargo xtask conformance` and `cargo xtask browser`: the devtools' tasks that drive the server itself.
pub fn against_the_server(root: &Path, task: &str, args: &[&str]) -> Result<ExitCode> {
    let [reve_mcp, devtools] = built(root, Some(("reve-mcp", "reve-mcp")))?;
    let mut command = Command::new(devtools);
    command.current_dir(root).arg(task).args(args);
    command.env("REVE_MCP_BIN", reve_mcp);
    hand_over(command)
}

/// `cargo xtask bundle [--debug]`: the bundle of reve-mcp built in `profile`. The release binary
/// is built on its own, as `cargo install` builds it; the debug one with the devtools, as the
/// tests have it already (what CI bundles, to stay within its time).
pub fn bundle(root: &Path, profile: Profile) -> Result<ExitCode> {
    let reve_mcp = match profile {
        Profile::Dev => {
            let [reve_mcp, _] = built(root, Some(("reve-mcp", "reve-mcp")))?;
            reve_mcp
        }
        Profile::Release => cargo::build_bin(root, "reve-mcp", "reve-mcp", Profile::Release)?,
    };
    let [devtools] = built(root, None)?;
    let mut command = Command::new(devtools);
    command.current_dir(root).arg("bundle");
    command.env("REVE_MCP_BIN", reve_mcp);
    hand_over(command)
}

/// `cargo xtask package [--debug]`: the packages of this machine's reve-mcp built in `profile`
/// (the debug one with the devtools, as for the bundle); maturin builds the wheel in the same
/// profile, so cargo reuses that build.
pub fn package(root: &Path, profile: Profile) -> Result<ExitCode> {
    let (reve_mcp, devtools) = match profile {
        Profile::Dev => {
            let [reve_mcp, devtools] = built(root, Some(("reve-mcp", "reve-mcp")))?;
            (reve_mcp, devtools)
        }
        Profile::Release => {
            let reve_mcp = cargo::build_bin(root, "reve-mcp", "reve-mcp", Profile::Release)?;
            let [devtools] = built(root, None)?;
            (reve_mcp, devtools)
        }
    };
    let mut command = Command::new(devtools);
    command.current_dir(root).args([
        "package",
        "--profile",
        match profile {
            Profile::Dev => "dev",
            Profile::Release => "release",
        },
    ]);
    command.env("REVE_MCP_BIN", reve_mcp);
    hand_over(command)
}

/// `cargo xtask package --dist DIR`: the packages of the binaries in cargo-dist's archives.
pub fn package_dist(root: &Path, dir: &str) -> Result<ExitCode> {
    let [devtools] = built(root, None)?;
    let mut command = Command::new(devtools);
    command
        .current_dir(root)
        .args(["package", "--dist"])
        .arg(std::path::absolute(dir)?);
    hand_over(command)
}

/// `cargo xtask fake-api [--port N]`.
pub fn fake_api(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let [devtools] = built(root, None)?;
    let mut command = Command::new(devtools);
    command.current_dir(root).arg("fake-api").args(args);
    hand_over(command)
}

/// The executables of `also` (when given) and of `reve-devtools`, built together, in that order.
///
/// xtask's own binary is built in the same run: its code generator uses proc-macro2, quote and syn at run time,
/// which makes cargo build them once for both uses, as `cargo test --workspace` does. Without it, every proc macro
/// and everything above them (tokio, hyper, reqwest, rmcp...) would be built a second time after the tests, six
/// minutes of CI on two cores.
fn built<const N: usize>(root: &Path, also: Option<(&str, &str)>) -> Result<[PathBuf; N]> {
    let bins: Vec<(&str, &str)> = also
        .into_iter()
        .chain([("reve-devtools", "reve-devtools"), ("xtask", "xtask")])
        .collect();
    let mut paths = cargo::build_bins(root, &bins, Profile::Dev)?;
    paths.pop();
    paths.try_into().map_err(|paths: Vec<PathBuf>| {
        anyhow::anyhow!("expected {N} executables, got {}", paths.len())
    })
}

/// On Unix the task replaces xtask, as `cargo run` itself replaces cargo: Ctrl-C then reaches only the task, which
/// reports what the fake served before it exits, instead of also ending xtask and giving the shell its prompt back
/// in the middle of that report.
#[cfg(unix)]
fn hand_over(mut command: Command) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    Err(command.exec()).context("running reve-devtools")
}

#[cfg(not(unix))]
fn hand_over(mut command: Command) -> Result<ExitCode> {
    let status = command.status().context("running reve-devtools")?;
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .map_or(ExitCode::FAILURE, ExitCode::from))
}

//! Running cargo from a task: the cargo that started `cargo xtask`, in the workspace root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// Which profile [`build_bin`] builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

/// A `cargo` command run in `root`, with the same cargo (and so the same toolchain) as the one running xtask.
pub fn command(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Builds one package's binary on its own, so that its dependencies get only its own features (as they do for a
/// user who installs it), and returns the executable's path as cargo reports it: the path depends on the target
/// directory and platform, which only cargo knows.
pub fn build_bin(root: &Path, package: &str, bin: &str, profile: Profile) -> Result<PathBuf> {
    let mut command = command(root);
    command.args([
        "build",
        "--locked",
        "--package",
        package,
        "--bin",
        bin,
        "--message-format=json-render-diagnostics",
    ]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    let output = command
        .stderr(Stdio::inherit())
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

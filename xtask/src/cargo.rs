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
/// user who installs it), and returns the executable's path (see [`build_bins`]).
pub fn build_bin(root: &Path, package: &str, bin: &str, profile: Profile) -> Result<PathBuf> {
    let mut paths = build_bins(root, &[(package, bin)], profile)?;
    Ok(paths.remove(0))
}

/// Builds these `(package, binary)` pairs in one cargo run, so that the dependencies they share are built once with
/// their features unified, and returns the executables' paths in the same order, as cargo reports them: the path
/// depends on the target directory and platform, which only cargo knows.
pub fn build_bins(root: &Path, bins: &[(&str, &str)], profile: Profile) -> Result<Vec<PathBuf>> {
    let mut command = command(root);
    command.args([
        "build",
        "--locked",
        "--message-format=json-render-diagnostics",
    ]);
    for (package, bin) in bins {
        command.args(["--package", package, "--bin", bin]);
    }
    if profile == Profile::Release {
        command.arg("--release");
    }
    let packages: Vec<&str> = bins.iter().map(|(package, _)| *package).collect();
    let packages = packages.join(", ");
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build for {packages}"))?;
    if !output.status.success() {
        bail!("building {packages} failed");
    }
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    bins.iter()
        .map(|(_, bin)| {
            messages
                .iter()
                .filter(|message| message["target"]["name"] == *bin)
                .find_map(|message| message["executable"].as_str().map(PathBuf::from))
                .with_context(|| format!("cargo did not report the {bin} executable"))
        })
        .collect()
}

//! The PyPI wheel: maturin (pinned, from PyPI, in a virtual environment under `target/tools`)
//! builds `packaging/pypi` with `bindings = "bin"`, so the wheel carries the `reve-mcp` binary and
//! no Python code. It is then installed into a fresh virtual environment, as `uvx` and
//! `pipx run` install it, and its `reve-mcp` run over MCP.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::{check_over_mcp, run_quietly};

/// maturin, pinned.
const MATURIN: &str = "maturin==1.16.0";

/// The wheel of `packaging/pypi` for this machine, built with cargo's `profile` into `out`.
/// With the dev profile cargo reuses what the tests built, so only the binary is linked again.
pub fn build(root: &Path, profile: &str, version: &str, out: &Path) -> Result<PathBuf> {
    let tools = root.join("target/tools/maturin");
    let maturin = tools.join("bin/maturin");
    if !maturin.is_file() {
        println!("Installing {MATURIN} into {}", tools.display());
        run_quietly(
            Command::new("python3").args(["-m", "venv"]).arg(&tools),
            "python3 -m venv (install Python 3 with `apt-get install -y python3-venv`)",
        )?;
        run_quietly(
            Command::new(tools.join("bin/pip")).args(["install", "--quiet", MATURIN]),
            "pip install maturin",
        )?;
    }
    let wheels = out.join("wheels");
    println!("PyPI: maturin build --profile {profile}");
    run_quietly(
        Command::new(&maturin)
            .current_dir(root.join("packaging/pypi"))
            .args(["build", "--profile", profile, "--out"])
            .arg(&wheels),
        "maturin build",
    )?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .context("maturin wrote no wheel")?;
    let name = wheel
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.starts_with(&format!("reve_mcp-{version}-py3-none-")) {
        bail!("the wheel is {name}, not reve_mcp {version} for any Python");
    }
    let placed = out.join(&name);
    std::fs::rename(&wheel, &placed)?;
    std::fs::remove_dir(&wheels)?;
    Ok(placed)
}

/// Installs `wheel` into a fresh virtual environment without an index, and runs its `reve-mcp`.
pub async fn check(root: &Path, wheel: &Path) -> Result<()> {
    let work = root.join("target/packages-check/pypi");
    let _ = std::fs::remove_dir_all(&work);
    let venv = work.join("venv");
    run_quietly(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run_quietly(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--no-index"])
            .arg(wheel),
        "pip install --no-index of the wheel",
    )?;
    let installed = venv.join("bin/reve-mcp");
    let version = run_quietly(
        Command::new(&installed).arg("--version"),
        "reve-mcp --version",
    )?;
    println!(
        "PyPI: installed {} into a fresh virtual environment; reve-mcp --version: {}",
        wheel.file_name().unwrap_or_default().to_string_lossy(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    // Started as the tests start the server: nothing of this shell's environment but PATH and HOME.
    let server = reve_tests::mcp::child_command(&installed, &Default::default());
    check_over_mcp(server, &work).await
}

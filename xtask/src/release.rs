//! `cargo xtask release-plan`: cargo-dist's `dist plan`, at the version `dist-workspace.toml` pins.
//!
//! It lists every artifact a release makes (archives, checksums, installers, the Homebrew
//! formula) and fails when `.github/workflows/release.yml` is not what `dist generate` writes from
//! `dist-workspace.toml`, so the workflow cannot drift from its configuration.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cargo;

/// Installs cargo-dist (unoptimised: `dist plan` does little work, and an optimised build of it
/// takes several minutes more on two cores) under `target/tools`, then runs `dist plan`.
pub fn plan(root: &Path) -> Result<()> {
    let dist = install(root)?;
    let status = Command::new(&dist)
        .arg("plan")
        .current_dir(root)
        .status()
        .context("running dist plan")?;
    if !status.success() {
        bail!(
            "dist plan failed ({status}); if dist-workspace.toml changed, run `dist generate` (the cargo-dist of its cargo-dist-version) and commit .github/workflows/release.yml"
        );
    }
    Ok(())
}

/// `cargo xtask release-plan --install-only`: cargo-dist installed and nothing run, so that CI
/// can build it in the background, at low priority, while other steps wait on the network.
pub fn install_only(root: &Path) -> Result<()> {
    install(root).map(|_| ())
}

/// cargo-dist at the version `dist-workspace.toml` pins, installed under `target/tools` unless
/// it is there: the path of its `dist`.
fn install(root: &Path) -> Result<std::path::PathBuf> {
    let config = std::fs::read_to_string(root.join("dist-workspace.toml"))
        .context("reading dist-workspace.toml")?;
    let version = pinned_version(&config)?;
    let tools = root.join("target/tools/cargo-dist").join(&version);
    let dist = tools
        .join("bin")
        .join(format!("dist{}", std::env::consts::EXE_SUFFIX));
    if !dist.is_file() {
        eprintln!(
            "installing cargo-dist {version} from crates.io into {}",
            tools.display()
        );
        let status = cargo::command(root)
            // No debug information either: nobody debugs it here, and it is a large part of the build.
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .args([
                "install",
                "--locked",
                "--debug",
                "--quiet",
                "cargo-dist",
                "--version",
            ])
            .arg(&version)
            .arg("--root")
            .arg(&tools)
            .status()
            .context("running cargo install")?;
        if !status.success() {
            bail!("cargo install cargo-dist --version {version} failed: {status}");
        }
    }
    Ok(dist)
}

/// `cargo-dist-version` of `dist-workspace.toml`.
fn pinned_version(config: &str) -> Result<String> {
    config
        .lines()
        .find_map(|line| line.trim().strip_prefix("cargo-dist-version = "))
        .map(|value| value.trim_matches('"').to_owned())
        .context("dist-workspace.toml does not pin cargo-dist-version")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pinned_version_is_read_from_the_configuration() {
        let config = "[dist]\ncargo-dist-version = \"0.34.0\"\nci = \"github\"\n";
        assert_eq!(super::pinned_version(config).unwrap(), "0.34.0");
        assert!(super::pinned_version("[dist]\n").is_err());
    }
}

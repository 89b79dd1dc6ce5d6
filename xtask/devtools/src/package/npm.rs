//! The npm packages: `reve-mcp`, a launcher in plain JavaScript (`packaging/npm/reve-mcp`), and
//! one `@reve-mcp/<platform>` per system with the binary, which npm picks by its `os`, `cpu` and
//! `libc` fields from the launcher's `optionalDependencies`. No package has an install script,
//! so `npm ci --ignore-scripts` and offline mirrors install them as they are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::{check_over_mcp, run_quietly};
use crate::harness::NodeTools;
use crate::targets::{TARGETS, Target};

/// The launcher, copied from `packaging/npm/reve-mcp` and packed into `out`.
pub fn launcher(root: &Path, version: &str, out: &Path) -> Result<PathBuf> {
    let source = root.join("packaging/npm/reve-mcp");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("package.json"))?)
            .context("parsing packaging/npm/reve-mcp/package.json")?;
    if manifest["version"] != version {
        bail!(
            "packaging/npm/reve-mcp/package.json says version {}, but reve-mcp is {version}: make them agree",
            manifest["version"]
        );
    }
    for target in &TARGETS {
        if manifest["optionalDependencies"][target.npm_package()] != version {
            bail!(
                "packaging/npm/reve-mcp/package.json must depend on {}@{version}",
                target.npm_package()
            );
        }
    }
    let stage = out.join("npm/reve-mcp");
    std::fs::create_dir_all(stage.join("bin"))?;
    for file in ["package.json", "README.md", "bin/reve-mcp.js"] {
        std::fs::copy(source.join(file), stage.join(file))
            .with_context(|| format!("copying packaging/npm/reve-mcp/{file}"))?;
    }
    licenses(root, &stage)?;
    pack(&stage, out)
}

/// `@reve-mcp/<platform>` with `binary` for `target`, packed into `out`.
pub fn platform_package(
    root: &Path,
    target: &Target,
    binary: &Path,
    version: &str,
    out: &Path,
) -> Result<PathBuf> {
    let name = target.npm_package();
    let stage = out
        .join("npm")
        .join(name.trim_start_matches('@').replace('/', "-"));
    std::fs::create_dir_all(stage.join("bin"))?;
    let mut manifest = json!({
        "name": name,
        "version": version,
        "description": format!("The reve-mcp binary for {}, installed by the reve-mcp package", target.description),
        "license": "MIT OR Apache-2.0",
        "repository": { "type": "git", "url": "git+https://github.com/reve-mcp/reve.git" },
        "homepage": "https://github.com/reve-mcp/reve",
        "os": [target.node_platform],
        "cpu": [target.node_arch],
        "files": [format!("bin/{}", target.executable()), "LICENSE-APACHE", "LICENSE-MIT"],
        "preferUnplugged": true,
    });
    if target.os == "linux" {
        // The binaries are linked against glibc; on musl npm skips the package, and the
        // launcher says why.
        manifest["libc"] = json!(["glibc"]);
    }
    std::fs::write(
        stage.join("package.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let installed = stage.join("bin").join(target.executable());
    std::fs::copy(binary, &installed)
        .with_context(|| format!("copying {} into {name}", binary.display()))?;
    make_executable(&installed)?;
    licenses(root, &stage)?;
    pack(&stage, out)
}

fn licenses(root: &Path, stage: &Path) -> Result<()> {
    for license in ["LICENSE-APACHE", "LICENSE-MIT"] {
        std::fs::copy(root.join(license), stage.join(license))?;
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

/// `npm pack` of the package in `stage`, written into `out`: the tarball's path.
fn pack(stage: &Path, out: &Path) -> Result<PathBuf> {
    let output = run_quietly(
        Command::new("npm")
            .args(["pack", "--json", "--pack-destination"])
            .arg(out)
            .arg(stage),
        "npm pack",
    )?;
    let packed: Value =
        serde_json::from_slice(&output.stdout).context("reading npm pack's JSON")?;
    let file = packed[0]["filename"]
        .as_str()
        .context("npm pack named no tarball")?;
    Ok(out.join(file))
}

/// Installs the launcher and this machine's package from their tarballs into fresh folders, with
/// the registry out of reach, and runs them as a person and an MCP client would.
pub async fn check(
    root: &Path,
    node: &NodeTools,
    launcher: &Path,
    package: &Path,
    host: &Target,
) -> Result<()> {
    let work = root.join("target/packages-check/npm");
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "npm: installing {} and {} offline",
        file_name(launcher),
        file_name(package)
    );
    // Node 22 first on the PATH, as `npx` and the launcher's `#!/usr/bin/env node` find it.
    let node_bin = node
        .node()
        .parent()
        .context("node sits in a folder")?
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(node_bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let npm = |program: &str, folder: &Path| {
        let mut command = Command::new(program);
        command
            .current_dir(folder)
            .env("PATH", &path)
            // An empty cache: nothing can come from an earlier download either.
            .env("npm_config_cache", folder.join(".npm-cache"))
            .args(["--offline", "--no-audit", "--no-fund"]);
        command
    };

    let installed = work.join("installed");
    std::fs::create_dir_all(&installed)?;
    std::fs::write(installed.join("package.json"), "{\"private\": true}\n")?;
    run_quietly(
        npm("npm", &installed)
            .arg("install")
            .arg(package)
            .arg(launcher),
        "npm install --offline of the two tarballs",
    )?;
    let platform_dir = installed
        .join("node_modules")
        .join(host.npm_package())
        .join("bin");
    if !platform_dir.join(host.executable()).is_file() {
        bail!("npm did not install {}", host.npm_package());
    }

    let version = run_quietly(
        npm("npx", &installed).args(["-y", "reve-mcp", "--version"]),
        "npx -y reve-mcp --version",
    )?;
    let said = String::from_utf8_lossy(&version.stdout);
    if !said.starts_with("reve-mcp ") {
        bail!("npx reve-mcp --version said {said:?}");
    }
    println!("  npx -y reve-mcp --version: {}", said.trim());

    let mut server = Command::new(installed.join("node_modules/.bin/reve-mcp"));
    server.env_clear().env("PATH", &path);
    if let Some(home) = std::env::var_os("HOME") {
        server.env("HOME", home);
    }
    check_over_mcp(server, &work).await?;

    // Without the platform's package (optional dependencies turned off), and on a platform no
    // package is built for: a clear refusal, never a silent start of nothing.
    let bare = work.join("without-binary");
    std::fs::create_dir_all(&bare)?;
    std::fs::write(bare.join("package.json"), "{\"private\": true}\n")?;
    run_quietly(
        npm("npm", &bare)
            .args(["install", "--omit=optional"])
            .arg(launcher),
        "npm install --offline --omit=optional of the launcher",
    )?;
    let script = bare.join("node_modules/reve-mcp/bin/reve-mcp.js");
    let missing = refusal(Command::new(node.node()).arg(&script).arg("--version"))?;
    for expected in [
        host.npm_package().as_str(),
        "--omit=optional",
        "cargo install --locked reve-mcp",
    ] {
        if !missing.contains(expected) {
            bail!("without its package, the launcher said {missing:?}, not naming {expected:?}");
        }
    }
    let pretend = work.join("pretend-riscv.cjs");
    std::fs::write(
        &pretend,
        "Object.defineProperty(process, 'arch', { value: 'riscv64' });\n",
    )?;
    let unsupported = refusal(
        Command::new(node.node())
            .arg("--require")
            .arg(&pretend)
            .arg(&script),
    )?;
    let platforms: Vec<String> = TARGETS
        .iter()
        .map(|target| format!("{}-{}", target.node_platform, target.node_arch))
        .collect();
    for expected in platforms
        .iter()
        .map(String::as_str)
        .chain(["linux-riscv64", "cargo install --locked reve-mcp"])
    {
        if !unsupported.contains(expected) {
            bail!("on linux-riscv64, the launcher said {unsupported:?}, not naming {expected:?}");
        }
    }
    println!("  with no package for the platform: {}", unsupported.trim());
    Ok(())
}

/// What `command` said on stderr, having failed as it must, with nothing on stdout.
fn refusal(command: &mut Command) -> Result<String> {
    let output = command.output().context("starting the launcher")?;
    if output.status.success() || !output.stdout.is_empty() {
        bail!(
            "{command:?} should fail with a message on stderr only; it exited {} with {:?} on stdout",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

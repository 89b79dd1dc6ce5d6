//! `cargo xtask package`: what a person installs without Rust, made from a built `reve-mcp` and
//! checked as that person would use it.
//!
//! - npm: the launcher `reve-mcp` and the package `@reve-mcp/<platform>` that carries the binary
//!   ([`npm`]), packed by `npm pack`; for this machine, installed from those tarballs into a fresh
//!   folder with the registry out of reach, then run through `npx` and over MCP.
//! - The Claude Desktop bundle, one per system ([`crate::bundle`]), with its SHA-256 filled into
//!   a copy of `server.json`, the registry entry the release publishes.
//! - PyPI: the wheel maturin builds from the crate ([`wheel`]), installed into a fresh virtual
//!   environment and run over MCP. Only for this machine: the release workflow builds the other
//!   wheels with maturin on each system.
//!
//! Two ways in: `--dist DIR` takes the five binaries from cargo-dist's archives in `DIR` (what
//! `.github/workflows/build-packages.yml` runs); otherwise `REVE_MCP_BIN` names this machine's
//! binary (what CI runs, with the debug binary its tests built).

mod npm;
mod wheel;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use reve_tests::mcp::{McpSession, TestClient, structured};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::bundle::{self, binary_version};
use crate::targets::{TARGETS, Target};

/// Where the packages are written, under the workspace.
const OUT: &str = "target/packages";

/// How `cargo xtask package` was asked to run.
pub enum Source {
    /// This machine's binary (`REVE_MCP_BIN`), and the cargo profile maturin builds the wheel with.
    Host { profile: &'static str },
    /// The binaries in cargo-dist's archives in this folder, one per target.
    Dist(PathBuf),
}

pub fn run(root: &Path, source: Source) -> Result<()> {
    let out = root.join(OUT);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let host = Target::host()?;
    let binaries: Vec<(&Target, PathBuf)> = match &source {
        Source::Host { .. } => {
            let binary = std::env::var_os("REVE_MCP_BIN")
                .map(PathBuf::from)
                .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask package`")?;
            vec![(host, binary)]
        }
        Source::Dist(dir) => TARGETS
            .iter()
            .map(|target| Ok((target, unpack_dist_archive(dir, target, &out.join("bin"))?)))
            .collect::<Result<_>>()?,
    };
    let host_binary = binaries
        .iter()
        .find(|(target, _)| *target == host)
        .map(|(_, binary)| binary.clone())
        .context("no binary for this machine, so nothing could be checked")?;
    let version = binary_version(&host_binary)?;

    let node = bundle::node_tools(root)?;
    let launcher = npm::launcher(root, &version, &out)?;
    let mut bundles = BTreeMap::new();
    let mut host_package = None;
    for (target, binary) in &binaries {
        // The version is this system's binary's: the others, built for other systems, do not
        // run here, and come from the same build.
        let package = npm::platform_package(root, target, binary, &version, &out)?;
        if *target == host {
            host_package = Some(package);
        }
        bundles.insert(
            target.triple,
            bundle::make(root, binary, target, &version, &out)?,
        );
    }
    let host_package = host_package.expect("the host's binary is among them");
    let entry = registry_entry(root, &version, &bundles)?;
    std::fs::write(
        out.join("server.json"),
        serde_json::to_string_pretty(&entry)? + "\n",
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(npm::check(root, &node, &launcher, &host_package, host))?;
    if let Source::Host { profile } = source {
        let wheel = wheel::build(root, profile, &version, &out)?;
        runtime.block_on(wheel::check(root, &wheel))?;
    }
    println!("Packages for {version} in {}:", out.display());
    let mut made: Vec<_> = std::fs::read_dir(&out)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    for name in made {
        println!("  {name}");
    }
    Ok(())
}

/// The binary in cargo-dist's archive for `target` in `dir`, unpacked under `into`.
fn unpack_dist_archive(dir: &Path, target: &Target, into: &Path) -> Result<PathBuf> {
    let archive = dir.join(target.dist_archive());
    if !archive.is_file() {
        bail!(
            "{} is missing: cargo-dist's archive for {}",
            archive.display(),
            target.description
        );
    }
    let folder = into.join(target.triple);
    std::fs::create_dir_all(&folder)?;
    let mut command = if target.os == "windows" {
        let mut unzip = Command::new("unzip");
        unzip.arg("-o").arg(&archive).arg("-d").arg(&folder);
        unzip
    } else {
        let mut tar = Command::new("tar");
        tar.arg("-xf").arg(&archive).arg("-C").arg(&folder);
        tar
    };
    run_quietly(&mut command, "unpacking a cargo-dist archive")?;
    // cargo-dist puts the files in a folder named after the archive, or at its top (zip).
    let binary = [
        folder
            .join(format!("reve-mcp-{}", target.triple))
            .join(target.executable()),
        folder.join(target.executable()),
    ]
    .into_iter()
    .find(|path| path.is_file())
    .with_context(|| format!("{} holds no {}", archive.display(), target.executable()))?;
    Ok(binary)
}

/// `server.json` as the release publishes it: the repository's, with each bundle's SHA-256 filled
/// in where it was built here. A bundle listed but not built keeps the repository's placeholder,
/// which the registry would refuse: only `--dist` writes an entry fit to publish.
fn registry_entry(root: &Path, version: &str, bundles: &BTreeMap<&str, PathBuf>) -> Result<Value> {
    let mut entry: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("server.json"))?)
            .context("parsing server.json")?;
    if entry["version"] != version {
        bail!(
            "server.json says version {}, but reve-mcp is {version}",
            entry["version"]
        );
    }
    for package in entry["packages"]
        .as_array_mut()
        .context("server.json has no packages")?
    {
        if package["registryType"] != "mcpb" {
            continue;
        }
        let identifier = package["identifier"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(target) = TARGETS
            .iter()
            .find(|target| identifier.ends_with(&format!("/{}", target.bundle_file(version))))
        else {
            bail!("server.json lists a bundle no release builds: {identifier}");
        };
        if let Some(bundle) = bundles.get(target.triple) {
            let digest = Sha256::digest(std::fs::read(bundle)?);
            package["fileSha256"] = json!(hex(&digest));
        }
    }
    Ok(entry)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs `command`, showing its output only when it fails.
fn run_quietly(command: &mut Command, what: &str) -> Result<std::process::Output> {
    let output = command
        .output()
        .with_context(|| format!("{what}: starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{what}: {command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Checks an installed `reve-mcp` command as a person's MCP client would use it: `command` is
/// started with the key and the fake API in its environment and a flag (`--output-dir`) on its
/// command line, lists the tools, and a `create_image` call through it saves a picture where the
/// flag said. So arguments, environment and the stdio streams all reach the server.
async fn check_over_mcp(mut command: Command, work: &Path) -> Result<()> {
    let fake = FakeApi::start().await;
    let results = work.join("results");
    let _ = std::fs::remove_dir_all(&results);
    command
        .arg("--output-dir")
        .arg(&results)
        .env("AIML_API_KEY", fake.api_key())
        .env("AIML_API_BASE_URL", fake.base_url())
        .env("REVE_STATE_DIR", work.join("state"));
    let session = McpSession::start_command(command, TestClient::default()).await;
    let tools = session.tool_names().await?;
    let created = session
        .call(
            "create_image",
            json!({ "prompt": "a lighthouse at dawn", "aspect_ratio": "1:1" })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .await?;
    let result = Value::Object(structured(&created).clone());
    session.stop().await;
    for expected in ["create_image", "edit_image", "remix_images", "get_edit"] {
        if !tools.iter().any(|tool| tool == expected) {
            bail!("the installed server lists {tools:?}, without {expected}");
        }
    }
    let saved = PathBuf::from(result["path"].as_str().unwrap_or_default());
    if result["status"] != "succeeded" || !saved.starts_with(&results) || !saved.is_file() {
        bail!("create_image through the installed command gave {result}");
    }
    let sent = fake.generation_requests();
    if sent.len() != 1 {
        bail!(
            "the fake API saw {} generation requests for one create_image",
            sent.len()
        );
    }
    println!(
        "  over MCP: lists {}; create_image saved {}",
        tools.join(", "),
        saved.display()
    );
    Ok(())
}

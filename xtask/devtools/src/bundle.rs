//! `cargo xtask bundle`: the Claude Desktop bundle (`.mcpb`) for this platform, checked as a
//! host would use it.
//!
//! The bundle holds the `reve-mcp` binary, `bundle/manifest.json` (its version and platform
//! filled in here, from the binary itself and this machine, so neither can drift), an icon drawn
//! here and the crate's README. Anthropic's `mcpb` tool, pinned and installed with npm beside
//! Node 22 under `target/tools/mcpb`, validates the manifest and packs the archive; the archive
//! is then unpacked and the binary started exactly as the manifest's `mcp_config` says, with the
//! user's settings filled in as the host fills them in, against the fake API: it must list the
//! tools the manifest names, read a picture from the chosen folder and save the edit in the
//! chosen output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use reve_tests::fake::sample_png;
use reve_tests::mcp::{McpSession, TestClient, structured};
use serde_json::{Value, json};

use crate::harness::NodeTools;
use crate::targets::Target;

/// Anthropic's bundle tool, pinned.
const MCPB: &str = "@anthropic-ai/mcpb@2.1.2";
const MCPB_SCRIPT: &str = "@anthropic-ai/mcpb/dist/cli/cli.js";

/// The bundle's icon, square, at the size Claude Desktop recommends.
const ICON_EDGE: u32 = 512;

pub fn run(root: &Path) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask bundle`")?;
    let version = binary_version(&binary)?;
    let archive = make(
        root,
        &binary,
        Target::host()?,
        &version,
        &root.join("target/bundle"),
    )?;
    let size = std::fs::metadata(&archive)?.len();
    println!(
        "Bundle: {} ({:.1} MiB); open it with Claude Desktop to install reve.",
        archive.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The bundle of `binary`, version `version`, built for `target`, written into `out` and
/// validated and packed by `mcpb`; when `target` is this machine, also unpacked and started as
/// Claude Desktop would. The version is given, not asked of the binary: one built for another
/// system does not run here.
pub fn make(
    root: &Path,
    binary: &Path,
    target: &Target,
    version: &str,
    out: &Path,
) -> Result<PathBuf> {
    let work = root.join("target/bundle-work").join(target.triple);
    let _ = std::fs::remove_dir_all(&work);
    let stage = work.join("stage");
    std::fs::create_dir_all(stage.join("server"))?;
    std::fs::create_dir_all(out)?;

    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("bundle/manifest.json"))
            .context("reading bundle/manifest.json")?,
    )
    .context("parsing bundle/manifest.json")?;
    if manifest["version"] != version {
        bail!(
            "bundle/manifest.json says version {}, but reve-mcp is {version}: make them agree",
            manifest["version"]
        );
    }
    manifest["compatibility"] = json!({ "platforms": [target.node_platform] });
    // The entry point is the binary under its name on the target (`reve-mcp.exe` on Windows).
    let entry_point = Path::new(
        manifest["server"]["entry_point"]
            .as_str()
            .context("the manifest has no server.entry_point")?,
    )
    .with_file_name(target.executable());
    let staged_binary = stage.join(&entry_point);
    manifest["server"]["entry_point"] = json!(path_text(&entry_point)?);
    std::fs::copy(binary, &staged_binary).context("copying reve-mcp into the bundle")?;
    std::fs::copy(
        root.join("crates/reve-mcp/README.md"),
        stage.join("README.md"),
    )?;
    draw_icon(&stage.join("icon.png"))?;
    std::fs::write(
        stage.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;

    let tools = node_tools(root)?;
    let mcpb = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let status = Command::new(tools.node())
            .arg(tools.module(MCPB_SCRIPT))
            .args(args)
            .current_dir(&work)
            .status()
            .context("running mcpb")?;
        if !status.success() {
            bail!("mcpb {:?} failed: {status}", args);
        }
        Ok(())
    };
    let archive = out.join(target.bundle_file(version));
    mcpb(&["validate".as_ref(), stage.join("manifest.json").as_os_str()])?;
    mcpb(&["pack".as_ref(), stage.as_os_str(), archive.as_os_str()])?;
    if target != Target::host()? {
        println!(
            "{} is for {}: validated and packed, not started here.",
            archive.display(),
            target.description
        );
        return Ok(archive);
    }
    let unpacked = work.join("unpacked");
    mcpb(&["unpack".as_ref(), archive.as_os_str(), unpacked.as_os_str()])?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(start_as_the_host_does(&unpacked, &work))?;
    Ok(archive)
}

/// Node 22 and `mcpb`, installed once under `target/tools/mcpb`.
pub fn node_tools(root: &Path) -> Result<NodeTools> {
    NodeTools::install(root.join("target/tools/mcpb"), &[MCPB], MCPB_SCRIPT)
}

/// The release `reve-mcp --version` names: the second word of its answer.
pub fn binary_version(binary: &Path) -> Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .context("running reve-mcp --version")?;
    let text = String::from_utf8(output.stdout)?;
    text.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("reve-mcp --version said {text:?}"))
}

/// Starts the unpacked bundle's server as its manifest says, with settings a person would pick,
/// and checks that each setting reached it.
async fn start_as_the_host_does(unpacked: &Path, work: &Path) -> Result<()> {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(unpacked.join("manifest.json"))?)?;
    let fake = FakeApi::start().await;
    let pictures = work.join("pictures");
    let results = work.join("results");
    std::fs::create_dir_all(&pictures)?;
    let picture = pictures.join("cat.png");
    std::fs::write(&picture, sample_png(96, 64))?;
    let settings: BTreeMap<&str, Value> = BTreeMap::from([
        ("api_key", json!(fake.api_key())),
        ("allowed_dirs", json!([path_text(&pictures)?])),
        ("output_dir", json!(path_text(&results)?)),
    ]);
    let mut declared: Vec<&str> = manifest["user_config"]
        .as_object()
        .context("the manifest has no user_config")?
        .keys()
        .map(String::as_str)
        .collect();
    declared.sort_unstable();
    if declared != settings.keys().copied().collect::<Vec<_>>() {
        bail!("the manifest's user_config is {declared:?}; this check fills in {settings:?}");
    }
    let dirname = path_text(unpacked)?;
    let config = &manifest["server"]["mcp_config"];
    let text = |value: &Value| -> Result<String> {
        let template = value.as_str().context("a non-string in mcp_config")?;
        fill_in(template, &dirname, &settings)
    };
    let mut command = Command::new(text(&config["command"])?);
    for arg in config["args"].as_array().into_iter().flatten() {
        // A list setting given alone as an argument becomes one argument per item.
        let list = arg
            .as_str()
            .and_then(|arg| arg.strip_prefix("${user_config.")?.strip_suffix('}'))
            .and_then(|key| settings.get(key)?.as_array());
        match list {
            Some(items) => command.args(items.iter().filter_map(Value::as_str)),
            None => command.arg(text(arg)?),
        };
    }
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in config["env"].as_object().into_iter().flatten() {
        command.env(name, text(value)?);
    }
    // The one addition to what the manifest says: the fake API instead of the real one.
    command.env("AIML_API_BASE_URL", fake.base_url());
    println!("Starting the bundled server as Claude Desktop would: {command:?}");

    let session = McpSession::start_command(command, TestClient::default()).await;
    let listed = session.tool_names().await?;
    let named: Vec<&str> = manifest["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    if listed != named {
        bail!("the bundled server lists the tools {listed:?}; the manifest names {named:?}");
    }
    let edit = session
        .edit_image(json!({ "image_url": path_text(&picture)?, "prompt": "make it night" }))
        .await?;
    let result = Value::Object(structured(&edit).clone());
    let saved = PathBuf::from(result["path"].as_str().unwrap_or_default());
    session.stop().await;
    if result["status"] != "succeeded" || !saved.starts_with(&results) || !saved.is_file() {
        bail!("the bundled server's edit of a picture in the chosen folder gave {result}");
    }
    println!(
        "It lists {listed:?}, read {} and saved the edit to {}.",
        picture.display(),
        saved.display()
    );
    Ok(())
}

/// A manifest string with `${__dirname}` and the `${user_config.KEY}` settings filled in.
fn fill_in(template: &str, dirname: &str, settings: &BTreeMap<&str, Value>) -> Result<String> {
    let mut text = template.replace("${__dirname}", dirname);
    for (key, value) in settings {
        let placeholder = format!("${{user_config.{key}}}");
        if text.contains(&placeholder) {
            let value = value
                .as_str()
                .with_context(|| format!("{placeholder} is a list, used inside {template:?}"))?;
            text = text.replace(&placeholder, value);
        }
    }
    if text.contains("${") {
        bail!("{template:?} has a placeholder this check does not fill in: {text:?}");
    }
    Ok(text)
}

fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The icon: an evening sky over water, the scene of the model's own example, drawn here so that
/// no picture has to be committed.
fn draw_icon(path: &Path) -> Result<()> {
    let edge = ICON_EDGE as f32;
    let icon = image::RgbaImage::from_fn(ICON_EDGE, ICON_EDGE, |x, y| {
        let (x, y) = (x as f32 / edge, y as f32 / edge);
        let corner = 0.18_f32;
        let (cx, cy) = (x.clamp(corner, 1.0 - corner), y.clamp(corner, 1.0 - corner));
        if (x - cx).hypot(y - cy) > corner {
            return image::Rgba([0, 0, 0, 0]);
        }
        let sun = (x - 0.5).hypot(y - 0.58) < 0.17;
        let rgb = match (y < 0.62, sun) {
            (true, true) => [255, 214, 120],
            (true, false) => {
                let t = y / 0.62;
                [
                    (70.0 + 185.0 * t) as u8,
                    (40.0 + 90.0 * t) as u8,
                    (120.0 - 40.0 * t) as u8,
                ]
            }
            (false, _) => {
                let glint = ((y - 0.62) * 60.0).sin() > 0.6 && (x - 0.5).abs() < 0.2;
                if glint { [255, 190, 110] } else { [30, 40, 90] }
            }
        };
        image::Rgba([rgb[0], rgb[1], rgb[2], 255])
    });
    icon.save(path)
        .with_context(|| format!("writing {}", path.display()))
}

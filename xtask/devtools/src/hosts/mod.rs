//! `cargo xtask hosts`: what the model sees, in five real agent hosts. Each host (pinned, from
//! npm, on Node 22) runs headless with a throwaway home, reve-mcp as its stdio server against
//! the fake API, and its model replaced by a scripted one on loopback ([`model`]). The script
//! calls `edit_image` on a generated picture (searching first where the host defers tools),
//! and collects a long edit with `get_edit`; the requests that carry the tool results are
//! recorded, and checked against what reve-mcp sent (recorded between the host and reve-mcp):
//! the picture reached the model byte for byte, so did the saved path, and for a long edit the
//! job id and the instruction to call `get_edit`. What each host shows its model is checked
//! against the table the server decides by (`reve_mcp::mcp::hosts::KNOWN_HOSTS`), and so is
//! the name its client gives. Then the MCP Inspector's command line lists the tools and
//! completes an edit.

mod model;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reve_mcp::{KNOWN_HOSTS, ModelSees, known_host};
use reve_tests::fake::sample_png;
use reve_tests::{FakeApi, Scenario};
use serde_json::Value;

use crate::demo::path_text;
use crate::harness::NodeTools;
use model::{ModelServer, Script, Step, strings};
use setup::{HOSTS, Host, INSPECTOR_CLI, PACKAGES, Run};

/// How long one host may take for one run, start to exit.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// A long edit: the fake takes this long, and reve-mcp waits this long per call, so the first
/// answer says the edit is still running and `get_edit` collects it.
const LONG_EDIT: Duration = Duration::from_secs(6);
const LONG_WAIT_SECS: &str = "2";

pub fn run(root: &Path) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask hosts`")?;
    // No package's install script is needed: the hosts with native executables are run from
    // their platform packages, and the scripts of the others build what headless runs do not use
    // (node-pty, keytar).
    let tools = NodeTools::install_with(
        root.join("target/tools/hosts"),
        &PACKAGES,
        "opencode-ai/package.json",
        &["--ignore-scripts"],
    )
    .context("installing the agent hosts from npm")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(check_all(root, &binary, &tools))
}

/// One run of one host: how reve-mcp was set up, and what the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// An edit within the server's wait.
    Quick,
    /// An edit longer than the server's wait, collected with `get_edit`.
    Long,
    /// A quick edit with `--structured-content always`: what the host shows its model when a
    /// result carries structured JSON, to check the table of known hosts for one that is
    /// otherwise served without it.
    Structured,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Quick => "quick",
            Case::Long => "long",
            Case::Structured => "structured",
        }
    }
}

async fn check_all(root: &Path, binary: &Path, tools: &NodeTools) -> Result<()> {
    let work = root.join("target/hosts");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let fake = FakeApi::start().await;
    let image = work.join("picture.png");
    std::fs::write(&image, sample_png(96, 64))?;

    let mut failures = Vec::new();
    for host in HOSTS {
        let entry = KNOWN_HOSTS
            .iter()
            .find(|known| known.host == host.name())
            .with_context(|| format!("{} is missing from KNOWN_HOSTS", host.name()))?;
        println!(
            "\n{} {} (npm {})",
            host.name(),
            host.version(),
            PACKAGES[host as usize]
        );
        if entry.seen_in != host.version() {
            failures.push(format!(
                "{}: KNOWN_HOSTS says it was seen in {}, the pinned release is {}",
                host.name(),
                entry.seen_in,
                host.version()
            ));
        }
        let mut scenarios = vec![Case::Quick, Case::Long];
        if entry.model_sees == ModelSees::StructuredOnly {
            scenarios.push(Case::Structured);
        }
        for scenario in scenarios {
            let outcome = one_run(&work, binary, tools, &fake, &image, host, scenario).await;
            match outcome {
                Ok(checks) => {
                    for check in &checks {
                        println!(
                            "  {} {:<10} {}",
                            if check.passed { "ok  " } else { "FAIL" },
                            scenario.name(),
                            check.said
                        );
                        if !check.passed {
                            failures.push(format!(
                                "{} ({}): {}",
                                host.name(),
                                scenario.name(),
                                check.said
                            ));
                        }
                    }
                }
                Err(error) => {
                    println!("  FAIL {:<10} {error:#}", scenario.name());
                    failures.push(format!("{} ({}): {error:#}", host.name(), scenario.name()));
                }
            }
        }
    }

    println!(
        "\nMCP Inspector CLI {}",
        PACKAGES[5].rsplit('@').next().unwrap_or_default()
    );
    match inspector(&work, binary, tools, &fake, &image).await {
        Ok(checks) => {
            for check in checks {
                println!(
                    "  {} {}",
                    if check.passed { "ok  " } else { "FAIL" },
                    check.said
                );
                if !check.passed {
                    failures.push(format!("MCP Inspector CLI: {}", check.said));
                }
            }
        }
        Err(error) => {
            println!("  FAIL {error:#}");
            failures.push(format!("MCP Inspector CLI: {error:#}"));
        }
    }

    if !failures.is_empty() {
        bail!(
            "{} check(s) failed (each run's files are in {}):\n  {}",
            failures.len(),
            work.display(),
            failures.join("\n  ")
        );
    }
    println!(
        "\nEvery host's model got the picture (byte for byte reve's preview), the saved path, and \
         for a long edit the job id with the instruction to call get_edit, which then gave it the \
         picture."
    );
    Ok(())
}

/// One check's verdict, in words.
struct Check {
    passed: bool,
    said: String,
}

fn check(passed: bool, said: impl Into<String>) -> Check {
    Check {
        passed,
        said: said.into(),
    }
}

/// The script that starts reve-mcp for a host, recording what passes between them; reve-mcp's
/// environment is in it, so each host's settings only name it.
fn reve_launcher(
    dir: &Path,
    binary: &Path,
    fake: &FakeApi,
    image_dir: &Path,
    extra: &[(&str, &str)],
) -> Result<PathBuf> {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let mut script = String::from(
        "#!/bin/sh\n# Starts reve-mcp for a host, recording what passes between them.\n",
    );
    let env = [
        ("AIML_API_KEY", fake.api_key().to_owned()),
        ("AIML_API_BASE_URL", fake.base_url().to_owned()),
        ("REVE_OUTPUT_DIR", path_text(&dir.join("results"))?),
        ("REVE_STATE_DIR", path_text(&dir.join("state"))?),
        ("REVE_ALLOWED_DIRS", path_text(image_dir)?),
        ("RUST_LOG", "info".to_owned()),
    ];
    for (name, value) in env
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .chain(extra.iter().copied())
    {
        script.push_str(&format!("export {name}={}\n", quote(value)));
    }
    script.push_str(&format!(
        "tee -a {} | {} 2>> {} | tee -a {}\n",
        quote(&path_text(&dir.join("mcp-in.jsonl"))?),
        quote(&path_text(binary)?),
        quote(&path_text(&dir.join("reve-mcp.log"))?),
        quote(&path_text(&dir.join("mcp-out.jsonl"))?),
    ));
    let launcher = dir.join("reve-mcp.sh");
    std::fs::write(&launcher, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(launcher)
}

/// Runs `command` to its end within [`RUN_LIMIT`], its output kept in `dir`.
async fn run_to_end(mut command: std::process::Command, dir: &Path, what: &str) -> Result<()> {
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout"))?)
        .stderr(std::fs::File::create(dir.join("stderr"))?);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Its own process group, so that a host that hangs is stopped with everything it started.
        command.process_group(0);
    }
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let status = match tokio::time::timeout(RUN_LIMIT, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            #[cfg(unix)]
            if let Some(id) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &format!("-{id}")])
                    .status();
            }
            bail!(
                "{what} did not finish within {} s (its output: {})",
                RUN_LIMIT.as_secs(),
                dir.display()
            );
        }
    };
    if !status.success() {
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        bail!(
            "{what} exited with {status}; the end of its stderr:\n    {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
        );
    }
    Ok(())
}

/// What reve-mcp sent and received in one run, from the recording.
struct McpRecord {
    /// The client's `clientInfo.name`, from `initialize` or a request's metadata.
    client_name: Option<String>,
    /// The protocol revision the client asked for.
    protocol: Option<String>,
    /// The tools it called, in order.
    calls: Vec<String>,
    /// The base64 of the last picture reve-mcp returned from a tool call, and that tool.
    last_picture: Option<(String, String)>,
}

fn read_mcp(dir: &Path) -> Result<McpRecord> {
    let lines = |name: &str| -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("the host never started reve-mcp (no {name})"))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    };
    let sent = lines("mcp-in.jsonl")?;
    let mut record = McpRecord {
        client_name: None,
        protocol: None,
        calls: Vec::new(),
        last_picture: None,
    };
    for message in &sent {
        let params = &message["params"];
        let (name, protocol) = match message["method"].as_str() {
            Some("initialize") => (
                params["clientInfo"]["name"].as_str(),
                params["protocolVersion"].as_str(),
            ),
            _ => (
                params["_meta"]["io.modelcontextprotocol/clientInfo"]["name"].as_str(),
                params["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str(),
            ),
        };
        if record.client_name.is_none() && name.is_some() {
            record.client_name = name.map(str::to_owned);
            record.protocol = protocol.map(str::to_owned);
        }
        if message["method"] == "tools/call" {
            record
                .calls
                .push(params["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    let tool_of = |id: &Value| {
        sent.iter()
            .find(|message| message["method"] == "tools/call" && message["id"] == *id)
            .and_then(|message| message["params"]["name"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    for message in lines("mcp-out.jsonl")? {
        let picture = (message["result"]["content"]
            .as_array()
            .into_iter()
            .flatten())
        .find(|block| block["type"] == "image")
        .and_then(|block| block["data"].as_str());
        if let Some(picture) = picture {
            record.last_picture = Some((picture.to_owned(), tool_of(&message["id"])));
        }
    }
    Ok(record)
}

async fn one_run(
    work: &Path,
    binary: &Path,
    tools: &NodeTools,
    fake: &FakeApi,
    image: &Path,
    host: Host,
    scenario: Case,
) -> Result<Vec<Check>> {
    let dir = work.join(host.slug()).join(scenario.name());
    std::fs::create_dir_all(&dir)?;
    let mut extra = Vec::new();
    if scenario == Case::Long {
        extra.push(("REVE_MAX_WAIT_SECS", LONG_WAIT_SECS));
        fake.push(Scenario::Latency(LONG_EDIT));
    }
    if scenario == Case::Structured {
        extra.push(("REVE_STRUCTURED_CONTENT", "always"));
    }
    let image_dir = image.parent().context("the picture has a folder")?;
    let launcher = reve_launcher(&dir, binary, fake, image_dir, &extra)?;
    let model = ModelServer::start(Script {
        image: path_text(image)?,
        prompt: "make it look like a watercolour".to_owned(),
    })
    .await?;
    let prompt = format!(
        "Use reve to edit the picture {}: make it look like a watercolour.",
        path_text(image)?
    );
    let run = Run {
        dir: &dir,
        model_url: model.url(),
        reve: &launcher,
        prompt: &prompt,
    };
    let generations = fake.generation_attempts();
    let started = std::time::Instant::now();
    let command = host.command(tools, &run)?;
    run_to_end(command, &dir, host.name()).await?;
    let took = started.elapsed();
    let recorded = model.recorded();
    std::fs::write(
        dir.join("model-requests.json"),
        serde_json::to_vec_pretty(
            &recorded
                .iter()
                .map(|r| serde_json::json!({ "path": r.path, "answered": format!("{:?}", r.turn), "body": r.body }))
                .collect::<Vec<_>>(),
        )?,
    )?;
    let mcp = read_mcp(&dir)?;

    let mut checks = Vec::new();
    let known = mcp
        .client_name
        .as_deref()
        .map(|name| rmcp::model::Implementation::new(name, "0"))
        .and_then(|client| known_host(&client));
    checks.push(check(
        known.is_some_and(|known| known.host == host.name()),
        format!(
            "its MCP client names itself {:?} (protocol {}), which KNOWN_HOSTS knows as {}",
            mcp.client_name.as_deref().unwrap_or("nothing"),
            mcp.protocol.as_deref().unwrap_or("unknown"),
            known.map_or("no host", |known| known.host)
        ),
    ));
    let turns: Vec<&model::Recorded> = recorded.iter().filter(|r| r.turn.is_some()).collect();
    let finished = turns.last().filter(|r| r.turn == Some(Step::Finish));
    let Some(last) = finished else {
        checks.push(check(
            false,
            format!(
                "the scripted conversation did not end: {} turns, the last {:?}; tools called: {:?}",
                turns.len(),
                turns.last().and_then(|r| r.turn.clone()),
                mcp.calls
            ),
        ));
        return Ok(checks);
    };
    let final_request = last.body.to_string();
    let final_strings = strings(&last.body);
    let saved = files_in(&dir.join("results"))?;
    let (picture, picture_from) = mcp.last_picture.clone().unwrap_or_default();
    let picture_seen = !picture.is_empty() && final_request.contains(&picture);
    let structured_seen = final_strings.contains("\"status\":\"succeeded\"")
        || final_strings.contains("\"status\": \"succeeded\"");
    let paid = fake.generation_attempts() - generations;
    checks.push(check(
        paid == 1 && saved.len() == 1,
        format!(
            "{paid} paid generation(s) and {} saved file(s), in {:.1} s",
            saved.len(),
            took.as_secs_f64()
        ),
    ));
    let expected_sees = match scenario {
        Case::Structured => known.map(|known| known.model_sees),
        // Served without structured JSON, a host shows what it has: the content.
        _ if known.is_some_and(|known| known.model_sees == ModelSees::StructuredOnly) => {
            Some(ModelSees::ContentOnly)
        }
        _ => known.map(|known| known.model_sees),
    };
    let picture_expected = expected_sees != Some(ModelSees::StructuredOnly);
    checks.push(check(
        picture_seen == picture_expected,
        match (picture_seen, picture.len()) {
            (true, length) => format!(
                "the picture reached the model: the {length} base64 characters reve-mcp sent, byte for byte"
            ),
            (false, 0) => "reve-mcp sent no picture".to_owned(),
            (false, _) => "the picture did not reach the model".to_owned(),
        } + if picture_expected {
            ""
        } else {
            " (expected: this host drops pictures beside structured JSON)"
        },
    ));
    if let Some(sees) = expected_sees {
        let structured_expected = matches!(
            sees,
            ModelSees::Both | ModelSees::PicturesAndStructured | ModelSees::StructuredOnly
        );
        checks.push(check(
            structured_seen == structured_expected,
            format!(
                "the structured JSON {} the model, as KNOWN_HOSTS says ({sees:?})",
                if structured_seen {
                    "reached"
                } else {
                    "did not reach"
                }
            ),
        ));
    }
    let path = saved.first().map(|path| path_text(path)).transpose()?;
    checks.push(check(
        path.as_deref()
            .is_some_and(|path| final_strings.contains(path)),
        format!(
            "the saved path reached the model: {}",
            path.as_deref().unwrap_or("(nothing saved)")
        ),
    ));
    let size = match saved.first() {
        Some(file) => {
            let (width, height) = image::image_dimensions(file)?;
            Some((width, height, std::fs::metadata(file)?.len()))
        }
        None => None,
    };
    checks.push(check(
        size.is_some_and(|(width, height, bytes)| {
            final_strings.contains(&format!("{width}x{height}"))
                && final_strings.contains(&format!("{bytes} bytes"))
        }),
        match size {
            Some((width, height, bytes)) => {
                format!("its size reached the model: {width}x{height}, {bytes} bytes")
            }
            None => "no size to tell: nothing was saved".to_owned(),
        },
    ));
    if scenario == Case::Long {
        let collected = turns.iter().find_map(|r| match &r.turn {
            Some(Step::Collect(job)) => Some((job.clone(), strings(&r.body))),
            _ => None,
        });
        match collected {
            Some((job, said)) => {
                let instruction = format!("Call get_edit with job_id \"{job}\"");
                let told =
                    said.contains(&instruction) || said.contains(&instruction.replace('"', "\\\""));
                checks.push(check(
                    told,
                    format!("a running edit's job id {job} and the instruction \"{instruction}\" reached the model"),
                ));
                let get_edits = mcp.calls.iter().filter(|name| *name == "get_edit").count();
                checks.push(check(
                    picture_from == "get_edit" && picture_seen,
                    format!(
                        "get_edit then gave it the picture (after {get_edits} get_edit call(s); \
                         the picture came from {picture_from:?})"
                    ),
                ));
            }
            None => checks.push(check(
                false,
                format!(
                    "the model never learnt of a running edit to collect (tools called: {:?})",
                    mcp.calls
                ),
            )),
        }
    }
    Ok(checks)
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

/// The MCP Inspector's command line: `tools/list`, then `tools/call edit_image`, as it runs by
/// default (protocol 2025-11-25, declaring the tasks extension).
async fn inspector(
    work: &Path,
    binary: &Path,
    tools: &NodeTools,
    fake: &FakeApi,
    image: &Path,
) -> Result<Vec<Check>> {
    let dir = work.join("inspector");
    std::fs::create_dir_all(dir.join("home"))?;
    let launcher = reve_launcher(
        &dir,
        binary,
        fake,
        image.parent().context("the picture has a folder")?,
        &[],
    )?;
    let cli = tools.module(INSPECTOR_CLI);
    if !cli.exists() {
        bail!("the Inspector's CLI is not at {}", cli.display());
    }
    let mut checks = Vec::new();
    let command = |method_args: &[String]| {
        let mut command = std::process::Command::new(tools.node());
        command
            .arg(&cli)
            .arg("-q")
            .args(method_args)
            .arg("--")
            .arg(&launcher)
            .env("HOME", dir.join("home"))
            .current_dir(&dir);
        command
    };
    let list_dir = dir.join("list");
    std::fs::create_dir_all(&list_dir)?;
    run_to_end(
        command(&["--method".into(), "tools/list".into()]),
        &list_dir,
        "the Inspector's tools/list",
    )
    .await?;
    let listed: Value = serde_json::from_slice(&std::fs::read(list_dir.join("stdout"))?)
        .context("the Inspector's tools/list printed no JSON")?;
    let names: Vec<&str> = (listed["tools"].as_array().into_iter().flatten())
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    checks.push(check(
        names == ["edit_image", "create_image", "remix_images", "get_edit"],
        format!("tools/list: {names:?}"),
    ));
    let call_dir = dir.join("call");
    std::fs::create_dir_all(&call_dir)?;
    let generations = fake.generation_attempts();
    run_to_end(
        command(&[
            "--method".into(),
            "tools/call".into(),
            "--tool-name".into(),
            "edit_image".into(),
            "--tool-arg".into(),
            format!("image_url={}", path_text(image)?),
            "--tool-arg".into(),
            "prompt=make it look like a watercolour".into(),
        ]),
        &call_dir,
        "the Inspector's tools/call",
    )
    .await?;
    let called: Value = serde_json::from_slice(&std::fs::read(call_dir.join("stdout"))?)
        .context("the Inspector's tools/call printed no JSON")?;
    let mcp = read_mcp(&dir)?;
    let path = called["structuredContent"]["path"]
        .as_str()
        .unwrap_or_default();
    checks.push(check(
        called["structuredContent"]["status"] == "succeeded"
            && Path::new(path).is_file()
            && (called["content"].as_array().into_iter().flatten()).any(|b| b["type"] == "image")
            && fake.generation_attempts() - generations == 1,
        format!(
            "tools/call edit_image on protocol {} (declaring the tasks extension) returned the edit: {path}",
            mcp.protocol.as_deref().unwrap_or("unknown")
        ),
    ));
    Ok(checks)
}

//! `cargo xtask startup-order [--check]`: which functions the release `reve-mcp` runs to start and
//! answer `initialize` and `tools/list`, written to `crates/reve-mcp/startup-order.txt` for its
//! build script to hand to the linker (see `crates/reve-mcp/build.rs`), or, with `--check`,
//! compared with that file.
//!
//! The functions are recorded by valgrind's callgrind, which sees every function a run enters
//! (a sampling profiler would miss the short ones, and each missed one can cost a 64 KiB window
//! of code in memory). The names are the binary's mangled symbols, as the linker knows them; they
//! are sorted, so that a new recording changes the file only where the startup changed.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cargo::{self, Profile};

/// The file, from the workspace root.
pub const ORDER_FILE: &str = "crates/reve-mcp/startup-order.txt";
/// Where the recording runs: the server's state and output folders, and callgrind's report.
const WORK_DIR: &str = "target/startup-order";
/// The share of the startup's functions the file must name for `--check` to pass.
const FRESH_ENOUGH: f64 = 0.95;
/// How long a server under callgrind (some 50 times slower than on its own) may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

const HEADER: &str = "\
# The functions the release reve-mcp runs to start and answer `initialize` and `tools/list`,
# which its build script asks the linker to place together (see crates/reve-mcp/build.rs).
# Written by `cargo xtask startup-order` (a run under valgrind's callgrind); do not edit.
# `cargo xtask startup-order --check` says how much of today's startup it still names.
";

/// Records the startup's functions and writes them to [`ORDER_FILE`], or checks that file.
pub fn run(root: &Path, check: bool) -> Result<ExitCode> {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|output| output.status.success()) {
        bail!("valgrind is missing; install it with `apt-get install -y valgrind`");
    }
    let binary = cargo::build_bin(root, "reve-mcp", "reve-mcp", Profile::Release)?;
    let work = root.join(WORK_DIR);
    let _ = std::fs::remove_dir_all(&work);
    // A first start makes the job store; every later one opens it: both are startups.
    let mut recorded = record(&work, &binary, "first")?;
    recorded.extend(record(&work, &binary, "later")?);
    let recorded: Vec<String> = recorded.into_iter().collect();
    let path = root.join(ORDER_FILE);
    if !check {
        let mut text = HEADER.to_owned();
        for name in &recorded {
            text.push_str(name);
            text.push('\n');
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {ORDER_FILE}: {} functions; rebuild reve-mcp in release to link by it",
            recorded.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let listed =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let listed: std::collections::HashSet<&str> = listed
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    let named = recorded
        .iter()
        .filter(|name| listed.contains(name.as_str()))
        .count();
    let share = named as f64 / recorded.len().max(1) as f64;
    eprintln!(
        "{ORDER_FILE} names {named} of the {} functions this build runs to start ({:.0}%)",
        recorded.len(),
        share * 100.0
    );
    if share < FRESH_ENOUGH {
        eprintln!(
            "it is stale (under {:.0}%): run `cargo xtask startup-order`",
            FRESH_ENOUGH * 100.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `binary` under callgrind, with its state and output in `work`, until it has answered
/// `initialize` and `tools/list`, then lets it exit, and returns the names of its own functions
/// that ran; callgrind's report is `work/callgrind.<run>.out`.
fn record(work: &Path, binary: &Path, run: &str) -> Result<BTreeSet<String>> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let report = work.join(format!("callgrind.{run}.out"));
    let mut server = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--demangle=no")
        .arg(format!("--callgrind-out-file={}", report.display()))
        .arg(binary)
        .env_clear()
        .envs(
            ["PATH", "HOME"]
                .into_iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
        )
        // As the bench starts it (measurements 1 and 2); the API is never called.
        .env("AIML_API_KEY", "startup-order")
        .env("AIML_API_BASE_URL", "http://127.0.0.1:9")
        .env("REVE_OUTPUT_DIR", work.join("output"))
        .env("REVE_STATE_DIR", work.join("state"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting reve-mcp under valgrind")?;
    let mut stdin = server.stdin.take().context("piped stdin")?;
    let stdout = server.stdout.take().context("piped stdout")?;
    let requests = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"startup-order","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ];
    for request in requests {
        writeln!(stdin, "{request}").context("writing to reve-mcp")?;
    }
    stdin.flush().context("writing to reve-mcp")?;
    // The answers are read on a thread, so that a server that never answers fails the task.
    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let id = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|message| message["id"].as_i64());
            if id == Some(2) {
                let _ = answered.send(());
                break;
            }
        }
    });
    match answers.recv_timeout(ANSWER_TIMEOUT) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // Its output closed: it has ended, or is stopped here.
            let _ = server.kill();
            let status = server.wait()?;
            bail!(
                "reve-mcp under valgrind closed its output ({status}) before it answered tools/list"
            );
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = server.kill();
            bail!("reve-mcp under valgrind did not answer tools/list within {ANSWER_TIMEOUT:?}");
        }
    }
    // Its stdin closed, the server exits, and callgrind writes its report.
    drop(stdin);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while server.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("reve-mcp under valgrind did not exit once its input closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("reading callgrind's report {}", report.display()))?;
    let names = functions_of(&text, binary);
    if names.is_empty() {
        bail!(
            "callgrind's report names no function of {}",
            binary.display()
        );
    }
    Ok(names)
}

/// The functions of `object` that a callgrind report says ran, each named once; functions with
/// no symbol (named by their address) and callgrind's `(below main)` are left out.
///
/// A report names each object and function in full once (`ob=(3) /path`, `fn=(7) name`, also as
/// the callee of a call: `cob=`, `cfn=`) and by its number after that; a function's costs follow
/// its `fn=` line, under the `ob=` line before it. Callgrind marks a function's recursion depth
/// or a second copy with a `'N` suffix, which is not part of the symbol.
fn functions_of(report: &str, object: &Path) -> BTreeSet<String> {
    let mut objects = std::collections::HashMap::new();
    let mut functions = std::collections::HashMap::new();
    let mut in_object = false;
    let mut ran = BTreeSet::new();
    let object: PathBuf = object.canonicalize().unwrap_or_else(|_| object.to_owned());
    for line in report.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let Some((id, name)) = numbered(rest) else {
            continue;
        };
        match key {
            "ob" | "cob" => {
                let ours = *objects.entry(id).or_insert_with(|| {
                    name.is_some_and(|name| {
                        let path = Path::new(name);
                        path.canonicalize().unwrap_or_else(|_| path.to_owned()) == object
                    })
                });
                if key == "ob" {
                    in_object = ours;
                }
            }
            "fn" | "cfn" => {
                let name = match name {
                    Some(name) => functions.entry(id).or_insert(name),
                    None => functions.entry(id).or_default(),
                };
                let symbol_less =
                    name.is_empty() || name.starts_with("0x") || name.starts_with('(');
                if key == "fn" && in_object && !symbol_less {
                    let symbol = match name.rsplit_once('\'') {
                        Some((symbol, copy)) if copy.bytes().all(|b| b.is_ascii_digit()) => symbol,
                        _ => name,
                    };
                    ran.insert(symbol.to_owned());
                }
            }
            _ => {}
        }
    }
    ran
}

/// `(12) name` as `("12", Some("name"))`, `(12)` as `("12", None)`.
fn numbered(text: &str) -> Option<(&str, Option<&str>)> {
    let rest = text.strip_prefix('(')?;
    let (id, name) = rest.split_once(')')?;
    let name = name.trim();
    Some((id, (!name.is_empty()).then_some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_functions_of_its_object_by_name_or_number_once_each() {
        let report = "\
ob=(1) /lib/libc.so.6
fn=(1) malloc
1 10
ob=(2) /bin/reve-mcp
fn=(2) _ZN4main17h0123E
2 5
cob=(1)
cfn=(1)
calls=1 0
cfn=(3) _RNvCs1_4core3fmt
fn=(3)
3 1
fn=(4) _ZN4deep17h4567E'2
fn=(6) 0x000000000045b930
fn=(7) (below main)
fn=(2)
ob=(1)
fn=(5) free
";
        assert_eq!(
            Vec::from_iter(functions_of(report, Path::new("/bin/reve-mcp"))),
            ["_RNvCs1_4core3fmt", "_ZN4deep17h4567E", "_ZN4main17h0123E"]
        );
    }
}

//! `cargo xtask <task>`: see `USAGE`.

use std::process::ExitCode;

use anyhow::Result;
use xtask::cargo::Profile;
use xtask::codegen::{self, Mode, Outcome};
use xtask::snapshots::{self, Action};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  codegen            regenerate reve-core's generated/ (a module per document) and reve-mcp's generated.rs from spec/,
                     then docs/settings.md's reference from reve-mcp's command line (by its test, so a test build)
  codegen --check    fail if any generated file or the settings reference is stale
  snapshots          run every insta snapshot test; show each changed snapshot and fail
  snapshots --accept write the changed snapshots, then run the tests again
  snapshots --review take the changes one by one with cargo-insta (when installed)
  demo               run reve-mcp against the fake AIML API and show what an agent gets
  demo --live        the same against the real API (needs AIML_API_KEY; billed)
  fake-api [--port N] [--latency-secs S]
                     serve the fake AIML API on 127.0.0.1 (default port 8787), each edit
                     taking S seconds more (default 0): for trying reve-mcp in a real MCP
                     client without a key
  conformance        run the official MCP conformance suite against reve-mcp over HTTP,
                     stateful and stateless, with tests/conformance/baseline.json
                     (installs Node 22 and the suite with npm)
  bundle [--debug]   build the Claude Desktop bundle (.mcpb) of the release binary (or
                     the debug one) in target/bundle, validate and pack it with mcpb,
                     and start it as its manifest says (installs Node 22 and mcpb with npm)
  package [--debug]  the packages a person installs without Rust, from the release binary
                     (or the debug one): the npm launcher and this system's npm package,
                     the desktop bundle and the PyPI wheel, in target/packages; each is
                     installed offline (npm, pip) and run over MCP against the fake API
                     (installs Node 22 with npm, and maturin with pip)
  package --dist DIR the same from cargo-dist's five archives in DIR, for every system (what
                     the release workflow runs); this system's packages are checked
  release-plan       `dist plan`: the artifacts a release makes, and a check that
                     .github/workflows/release.yml is what dist-workspace.toml generates
                     (installs cargo-dist, pinned, from crates.io; --install-only: only that)
  browser            the viewer (an MCP App) in headless Chromium, hosted by the MCP
                     Apps SDK's app-bridge, against reve-mcp over HTTP, then the page
                     `reve-mcp view` writes, opened from disk (needs Debian's chromium;
                     installs Node 22 and the test host's packages with npm)
  browser --photo F  the same, with the page's edit made of the picture F: the screenshots
                     of the README (target/browser/view-*.png); its colours are not checked
  hosts              what the model sees in five real agent hosts (Claude Code, Codex,
                     Gemini CLI, Qwen Code, opencode; pinned, from npm, on Node 22), each
                     with reve-mcp over stdio against the fake API and a scripted model on
                     loopback; then the MCP Inspector CLI lists the tools and edits
  scale-out          the multi-replica tests: three reve-mcp replicas sharing a real Redis
                     behind a real HAProxy, from the files in deploy/ (needs Debian's
                     redis-server and haproxy)
  bench [--quick]    build in release, measure reve-mcp against its performance
                     budgets and write BENCHMARKS.md (--quick: fewer repetitions)
  startup-order      record which functions the release reve-mcp runs to start (under
                     valgrind's callgrind; needs Debian's valgrind) into
                     crates/reve-mcp/startup-order.txt, which its build script links together
  startup-order --check
                     fail if that file names under 95% of the functions this build runs to start";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = xtask::project_root();
    let result = match args.as_slice() {
        ["codegen"] => codegen_task(Mode::Write),
        ["codegen", "--check"] => codegen_task(Mode::Check),
        ["snapshots"] => snapshots::run(&root, Action::Check),
        ["snapshots", "--accept"] => snapshots::run(&root, Action::Accept),
        ["snapshots", "--review"] => snapshots::run(&root, Action::Review),
        ["demo", rest @ ..] if matches!(rest, [] | ["--live"]) => {
            xtask::devtools::demo(&root, rest)
        }
        ["fake-api", rest @ ..] => xtask::devtools::fake_api(&root, rest),
        [task @ ("conformance" | "browser" | "hosts")] => {
            xtask::devtools::against_the_server(&root, task, &[])
        }
        ["browser", "--photo", photo] => {
            xtask::devtools::against_the_server(&root, "browser", &["--photo", photo])
        }
        ["bundle"] => xtask::devtools::bundle(&root, Profile::Release),
        ["bundle", "--debug"] => xtask::devtools::bundle(&root, Profile::Dev),
        ["package"] => xtask::devtools::package(&root, Profile::Release),
        ["package", "--debug"] => xtask::devtools::package(&root, Profile::Dev),
        ["package", "--dist", dir] => xtask::devtools::package_dist(&root, dir),
        ["release-plan"] => xtask::release::plan(&root).map(|()| ExitCode::SUCCESS),
        ["release-plan", "--install-only"] => {
            xtask::release::install_only(&root).map(|()| ExitCode::SUCCESS)
        }
        ["scale-out"] => scale_out(&root),
        ["startup-order"] => xtask::startup_order::run(&root, false),
        ["startup-order", "--check"] => xtask::startup_order::run(&root, true),
        ["bench", rest @ ..] => xtask::bench::run(&root, rest).map(|()| ExitCode::SUCCESS),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    result.unwrap_or_else(|error| {
        // `{:#}` prints the whole context chain on one line, without the backtrace `Debug` would add.
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

/// The tests of `scale_out`, ignored by the README's test command because they need two
/// Debian packages; here a missing one fails its test with the command that installs it.
fn scale_out(root: &std::path::Path) -> Result<ExitCode> {
    let status = xtask::cargo::command(root)
        // --workspace, as the README's test command builds: the same features, so nothing is
        // compiled again; of the workspace's `it` binaries only reve-mcp's has these tests.
        .args(["test", "--locked", "--workspace", "--test", "it"])
        .args(["--", "--ignored", "scale_out::"])
        .status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn codegen_task(mode: Mode) -> Result<ExitCode> {
    match codegen::run(&xtask::project_root(), mode)? {
        Outcome::UpToDate => eprintln!(
            "{}/ and {}/ are up to date",
            codegen::OUTPUT_DIR,
            codegen::TOOLS_DIR
        ),
        Outcome::Written(files) => {
            for file in files {
                eprintln!("wrote {file}");
            }
            eprintln!(
                "next: `cargo xtask snapshots` shows which snapshots the change moved (`--accept` records them)"
            );
        }
    }
    settings_reference(mode)?;
    Ok(ExitCode::SUCCESS)
}

/// docs/settings.md's reference is written from reve-mcp's clap definitions, which xtask cannot link (it must build
/// when the generated code it fixes does not), so by reve-mcp's own test of it, after the code it may describe was
/// generated: run as the README's test command runs it (`--workspace`), so that CI, which runs this after that
/// command, builds nothing more.
fn settings_reference(mode: Mode) -> Result<()> {
    let mut command = xtask::cargo::command(&xtask::project_root());
    command.args([
        "test",
        "--workspace",
        "--lib",
        "--locked",
        "--quiet",
        "--",
        "--exact",
        "cli::reference::tests::settings_reference_is_fresh",
    ]);
    if mode == Mode::Write {
        command.env("REVE_WRITE_SETTINGS_REFERENCE", "1");
    }
    if !command.status()?.success() {
        anyhow::bail!(
            "docs/settings.md's settings reference is stale (or reve-mcp's tests do not build): run `cargo xtask codegen`"
        );
    }
    eprintln!("docs/settings.md's settings reference is up to date");
    Ok(())
}

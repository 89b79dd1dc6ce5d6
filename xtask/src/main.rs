//! `cargo xtask <task>`: see `USAGE`.

use std::process::ExitCode;

use anyhow::Result;
use xtask::codegen::{self, Mode, Outcome};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  codegen            regenerate crates/reve-core/src/generated.rs from spec/
  codegen --check    fail if crates/reve-core/src/generated.rs is stale
  demo               run reve-mcp against the fake AIML API and show what an agent gets
  demo --live        the same against the real API (needs AIML_API_KEY; billed)
  fake-api [--port N]  serve the fake AIML API on 127.0.0.1 (default port 8787)
                     for trying reve-mcp in a real MCP client without a key
  bench [--quick]    build in release, measure reve-mcp against its performance
                     budgets and write BENCHMARKS.md (--quick: fewer repetitions)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["codegen"] => codegen_task(Mode::Write),
        ["codegen", "--check"] => codegen_task(Mode::Check),
        ["demo"] => xtask::demo::run(&xtask::project_root(), false),
        ["demo", "--live"] => xtask::demo::run(&xtask::project_root(), true),
        ["bench", rest @ ..] => xtask::bench::run(&xtask::project_root(), rest),
        ["fake-api"] => xtask::fake_api::run(xtask::fake_api::DEFAULT_PORT),
        ["fake-api", "--port", port] => match port.parse() {
            Ok(port) => xtask::fake_api::run(port),
            Err(_) => {
                eprintln!("error: --port takes a number from 0 to 65535, not {port:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line, without the backtrace `Debug` would add.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn codegen_task(mode: Mode) -> Result<()> {
    match codegen::run(&xtask::project_root(), mode)? {
        Outcome::UpToDate => eprintln!("{} is up to date", codegen::OUTPUT_PATH),
        Outcome::Written => eprintln!("wrote {}", codegen::OUTPUT_PATH),
    }
    Ok(())
}

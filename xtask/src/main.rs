//! `cargo xtask <task>`: see `USAGE`.

use std::process::ExitCode;

use anyhow::Result;
use xtask::codegen::{self, Mode, Outcome};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  codegen            regenerate crates/reve-core/src/generated.rs from spec/
  codegen --check    fail if crates/reve-core/src/generated.rs is stale
  demo               run reve-mcp against the fake AIML API and show what an agent gets
  demo --live        the same against the real API (needs AIML_API_KEY; billed)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["codegen"] => codegen_task(Mode::Write),
        ["codegen", "--check"] => codegen_task(Mode::Check),
        ["demo"] => xtask::demo::run(&xtask::project_root(), false),
        ["demo", "--live"] => xtask::demo::run(&xtask::project_root(), true),
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

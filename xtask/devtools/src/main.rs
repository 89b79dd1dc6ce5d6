//! `reve-devtools <task>`: the tasks of `cargo xtask` that run the fake AIML API, started by xtask as
//! `cargo run -p reve-devtools -- <task>` so that xtask itself stays small enough for `cargo xtask codegen` to build
//! quickly.

mod browser;
mod bundle;
mod conformance;
mod demo;
mod fake_api;
mod harness;
mod hosts;
mod package;
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: reve-devtools <task> (normally run as `cargo xtask <task>`)

tasks:
  demo               run reve-mcp against the fake AIML API and show what an agent gets
  demo --live        the same against the real API (needs AIML_API_KEY; billed)
  fake-api [--port N] [--latency-secs S]
                     serve the fake AIML API on 127.0.0.1 (default port 8787), each edit
                     taking S seconds more
  bundle             the Claude Desktop bundle of the reve-mcp binary in REVE_MCP_BIN, validated,
                     packed, unpacked and started as its manifest says
  package --profile P
                     the npm packages, the bundle and the PyPI wheel (built by maturin with cargo's
                     profile P) of the reve-mcp binary in REVE_MCP_BIN, each installed and run
  package --dist DIR the npm packages and bundles of the five binaries in cargo-dist's archives in DIR
  conformance        the MCP conformance suite against reve-mcp over HTTP, stateful and stateless
  browser            the viewer in headless Chromium, hosted by the MCP Apps SDK, against reve-mcp over HTTP
  hosts              five real agent hosts with reve-mcp over stdio and a scripted model: what the model sees";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["demo"] => demo::run(&project_root(), false),
        ["demo", "--live"] => demo::run(&project_root(), true),
        ["bundle"] => bundle::run(&project_root()),
        ["package", "--profile", profile] => match *profile {
            "dev" => package::run(&project_root(), package::Source::Host { profile: "dev" }),
            "release" => package::run(
                &project_root(),
                package::Source::Host { profile: "release" },
            ),
            _ => {
                eprintln!("error: --profile takes dev or release");
                return ExitCode::FAILURE;
            }
        },
        ["package", "--dist", dir] => {
            package::run(&project_root(), package::Source::Dist(PathBuf::from(dir)))
        }
        ["conformance"] => conformance::run(&project_root()),
        ["browser"] => browser::run(&project_root(), None),
        ["browser", "--photo", photo] => {
            browser::run(&project_root(), Some(std::path::Path::new(photo)))
        }
        ["hosts"] => hosts::run(&project_root()),
        ["fake-api", rest @ ..] => match fake_api_options(rest) {
            Ok((port, latency)) => fake_api::run(port, latency),
            Err(message) => {
                eprintln!("error: {message}");
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

/// `fake-api`'s options: the port and the latency added to each generation.
fn fake_api_options(args: &[&str]) -> Result<(u16, std::time::Duration), String> {
    let mut port = fake_api::DEFAULT_PORT;
    let mut latency = std::time::Duration::ZERO;
    let mut args = args.iter();
    while let Some(option) = args.next() {
        let value = args.next().ok_or(format!("{option} needs a value"))?;
        match *option {
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port takes a number from 0 to 65535, not {value:?}"))?;
            }
            "--latency-secs" => {
                latency = std::time::Duration::from_secs(value.parse().map_err(|_| {
                    format!("--latency-secs takes a whole number of seconds, not {value:?}")
                })?);
            }
            _ => return Err(format!("unknown option {option}")),
        }
    }
    Ok((port, latency))
}

/// The workspace root, found from this package's place in it rather than the working directory, so that the demo's
/// files land in the workspace's `target/` however the binary was started.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("reve-devtools sits at xtask/devtools in the workspace")
        .to_path_buf()
}

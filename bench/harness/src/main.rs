//! `reve-bench`: the measuring half of `cargo xtask bench`, built in release
//! and run by it. It measures the real `reve-mcp` binary from outside, as an
//! MCP client feels it, against the budgets the issues set, and writes the
//! figures into `BENCHMARKS.md`.
//!
//! It is a package of its own rather than part of `xtask` so that `xtask`
//! (and with it `cargo xtask codegen`) never depends on the crates codegen
//! writes: a spec change that breaks reve-core must not stop the generator
//! that fixes it from building.

mod compare;
mod hardening;
mod jobs;
mod local;
mod measure;
mod pictures;
mod preview;
mod report;
mod rpc;
mod scale_out;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The prompt every measured call sends; the fake ignores it.
const PROMPT: &str = "Make the sky a warm sunset orange.";

/// Where the bench keeps its pictures and the results reve-mcp saves,
/// relative to the workspace root (the working directory `xtask` gives it).
const WORK_DIR: &str = "target/bench";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["--measure", reve_mcp, baseline, rest @ ..] => {
            let quick = match rest {
                [] => false,
                ["--quick"] => true,
                _ => bail!("unexpected arguments after --measure: {rest:?}"),
            };
            measure::run(
                &std::env::current_dir()?,
                &measure::Binaries {
                    reve_mcp: PathBuf::from(reve_mcp),
                    baseline: PathBuf::from(baseline),
                    harness: std::env::current_exe()?,
                },
                quick,
            )
        }
        ["--compare", ours, theirs, rest @ ..] => compare::run(
            &std::env::current_dir()?,
            Path::new(ours),
            Path::new(theirs),
            match rest {
                [] => compare::Served::Photo,
                ["--large"] => compare::Served::Large,
                _ => bail!("unexpected arguments after --compare: {rest:?}"),
            },
        ),
        ["--probe-local-input", file] => local::probe(Path::new(file)),
        ["--probe-preview", file] => preview::probe(Path::new(file), false),
        ["--probe-preview", file, "--whole-picture"] => preview::probe(Path::new(file), true),
        _ => bail!(
            "usage: reve-bench --measure <reve-mcp> <baseline> [--quick]\n\
             or: reve-bench --compare <reve-mcp> <other reve-mcp> [--large]\n\
             (run it through `cargo xtask bench`, which builds both in release)"
        ),
    }
}

//! `reve-bench --compare <reve-mcp> <other reve-mcp>`: measurement 3 (added latency, 1024x768
//! result) for two builds in one run, their calls taken in turn, each beside a plain client's.
//!
//! Figures on a shared 2-core machine move by tens of percent between runs, more than most
//! changes move them; two builds measured in turn see the same machine at the same moment, so
//! the difference between them is the change's.

use std::path::Path;

use anyhow::Result;
use bytes::Bytes;
use reve_tests::FakeApi;
use reve_tests::fake::ResultFormat;

use crate::measure::{input_url, median, plain_call, remove_saved, server_env};
use crate::pictures::photo_png;
use crate::rpc::{Server, Stderr};

/// Calls per build; the first two of each warm its session up and are not counted.
const RUNS: usize = 60;

pub fn run(root: &Path, ours: &Path, theirs: &Path) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(compare(root, [ours, theirs]))
}

async fn compare(root: &Path, builds: [&Path; 2]) -> Result<()> {
    let output_dir = root.join(crate::WORK_DIR).join("compared");
    std::fs::create_dir_all(&output_dir)?;
    let png = Bytes::from(photo_png(1024, 768)?);
    let fake = FakeApi::builder()
        .canned_result(png, ResultFormat::Png)
        .start()
        .await;
    let env = server_env(&fake, &output_dir, "info");
    let http = reqwest::Client::new();
    let image_url = input_url(&fake);
    let mut servers = Vec::new();
    for build in builds {
        servers.push(Server::start(build, &env, Stderr::Discard).await?.0);
    }
    let mut added = [Vec::new(), Vec::new()];
    for run in 0..RUNS + 2 {
        // Each build goes first in every other round.
        for turn in 0..2 {
            let which = (run + turn) % 2;
            let (request, download) = plain_call(&http, &fake, &image_url).await?;
            let answer = servers[which].edit(&image_url).await?;
            remove_saved(&answer);
            if run >= 2 {
                added[which].push(answer.elapsed().saturating_sub(request + download));
            }
        }
    }
    for server in servers {
        server.stop().await?;
    }
    for (build, added) in builds.iter().zip(added) {
        let median = median(added);
        println!(
            "{}: added latency {:.1} ms (median of {RUNS} calls, each less the plain client's call before it)",
            build.display(),
            median.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

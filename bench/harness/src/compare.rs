//! `reve-bench --compare <reve-mcp> <other reve-mcp> [--large]`: measurement 3 (added latency,
//! 1024x768 result), or 4 (4096x4096), for two builds in one run, their calls taken in turn, each
//! beside a plain client's.
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

/// The result both builds are timed with.
#[derive(Debug, Clone, Copy)]
pub enum Served {
    /// Measurement 3's 1024x768 photo-like PNG.
    Photo,
    /// Measurement 4's 4096x4096 one.
    Large,
}

impl Served {
    /// The result's size, and the calls counted per build (two more are made first, to warm its
    /// session up).
    fn plan(self) -> ((u32, u32), usize) {
        match self {
            Served::Photo => ((1024, 768), 60),
            Served::Large => ((4096, 4096), 16),
        }
    }
}

pub fn run(root: &Path, ours: &Path, theirs: &Path, served: Served) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(compare(root, [ours, theirs], served))
}

async fn compare(root: &Path, builds: [&Path; 2], served: Served) -> Result<()> {
    let output_dir = root.join(crate::WORK_DIR).join("compared");
    std::fs::create_dir_all(&output_dir)?;
    let ((width, height), runs) = served.plan();
    let png = Bytes::from(photo_png(width, height)?);
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
    for run in 0..runs + 2 {
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
            "{}: added latency, {width}x{height} result, {:.1} ms (median of {runs} calls, each less the plain client's call before it)",
            build.display(),
            median.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

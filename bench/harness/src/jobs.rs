//! Measurements 11 to 13: what the job store costs. A job record's writes on one call's path
//! (timed in-process on the bench's own disk, fsync included, as the server makes them),
//! `get_edit` on a finished job through the real binary after a restart (so it is read from
//! the store, not from memory), and the cold start with 1,000 finished jobs in the store.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reve_mcp::{Answer, Destination, Generation, Picture, Saving, Shown};
use reve_mcp::{ClaimRules, Ending, JobRecord, JobState, JobStore, SqliteStore, now_ms};
use serde_json::json;

use crate::measure::median;
use crate::rpc::{Server, Stderr};

/// Finished jobs in the store for measurement 13.
pub const FINISHED_JOBS: usize = 1000;

/// Medians of a job record's cost, of `get_edit`, and of the two cold starts.
#[derive(Default)]
pub struct StoreCosts {
    pub record: Duration,
    pub get_edit: Duration,
    /// Without, then with, [`FINISHED_JOBS`] finished jobs in the store.
    pub cold_start: (Duration, Duration),
}

fn job(id: String) -> JobRecord {
    let destination = Destination {
        folder: "/tmp".into(),
        name: None,
        saves: true,
    };
    JobRecord::queued(
        id,
        "local".into(),
        Generation::new(reve_core::edit_image::MODEL, crate::PROMPT, destination),
        "bench".into(),
    )
}

fn picture(bytes: u64) -> Picture {
    Picture {
        mime_type: "image/png".into(),
        width: 1024,
        height: 768,
        bytes,
        path: None,
        url: None,
        preview: Some(Shown {
            mime_type: "image/jpeg".into(),
            width: 1024,
            height: 768,
        }),
    }
}

/// The writes a call makes to its job record, in order: the record before anything is sent,
/// the claim (with the reuse lookup), the API's answer, the name the result is about to take,
/// and the end.
pub async fn record_one(store: &dyn JobStore, index: usize) -> Result<Duration> {
    let id = format!("bench-{index:06}-{}", now_ms());
    let started = Instant::now();
    let record = job(id.clone());
    let payload = record.payload.clone();
    store.insert(record).await?;
    store
        .claim(
            id.clone(),
            format!("fingerprint-{id}"),
            ClaimRules {
                reuse_window: Duration::from_secs(600),
                reuse_finished: true,
                may_send: true,
                passed_over: Vec::new(),
                daily_limit: None,
                usd_limit: None,
            },
        )
        .await?;
    let payload = payload.next(|generation| {
        generation.answer = Some(Answer {
            url: Some("https://example.com/result.png".into()),
            request_id: Some("req".into()),
            content_violation: Some(false),
            inference_id: Some("inf".into()),
        });
    });
    store.answered(id.clone(), None, payload.clone()).await?;
    let payload = payload.next(|generation| {
        generation.saving = Some(Saving {
            path: "/tmp/bench-result.png".into(),
            bytes: 1_000_000,
        });
    });
    store.update(id.clone(), payload.clone()).await?;
    let payload = payload.next(|generation| {
        generation.inputs = vec![picture(900_000)];
        generation.result = Some(Picture {
            path: Some("/tmp/reve-bench.png".into()),
            url: Some("https://example.com/result.png".into()),
            ..picture(1_000_000)
        });
    });
    store
        .finish(id, Ending::plain(JobState::Succeeded), None, Some(payload))
        .await?;
    Ok(started.elapsed())
}

pub async fn measure(
    binary: &Path,
    env: &[(String, String)],
    work: &Path,
    image_url: &str,
    repetitions: usize,
) -> Result<StoreCosts> {
    let mut costs = StoreCosts::default();

    let state = work.join("jobs-record");
    let _ = std::fs::remove_dir_all(&state);
    let store = SqliteStore::in_folder(&state);
    record_one(&store, 0).await?; // opens the store: not part of a call
    let mut records = Vec::new();
    for index in 1..=repetitions * 5 {
        records.push(record_one(&store, index).await?);
    }
    costs.record = median(records);

    // get_edit on a finished job, read from the store by a server that did not run it.
    let state = work.join("jobs-get");
    let _ = std::fs::remove_dir_all(&state);
    let env = with_state(env, &state);
    let (server, _) = Server::start(binary, &env, Stderr::Discard).await?;
    let done = server.edit(image_url).await?;
    let job_id = done.result["structuredContent"]["job_id"]
        .as_str()
        .context("a job id in the result")?
        .to_owned();
    server.stop().await?;
    let (server, _) = Server::start(binary, &env, Stderr::Discard).await?;
    let mut gets = Vec::new();
    for _ in 0..=repetitions * 5 {
        let answer = server
            .request(
                "tools/call",
                json!({ "name": "get_edit", "arguments": { "job_id": job_id } }),
            )
            .await?;
        if answer.result["structuredContent"] != done.result["structuredContent"] {
            bail!("get_edit answered {} for a finished job", answer.result);
        }
        gets.push(answer.elapsed());
    }
    // The first opened the store.
    gets.remove(0);
    costs.get_edit = median(gets);
    server.stop().await?;

    // Cold start with an empty folder against one holding 1,000 finished jobs, alternating.
    let empty = work.join("jobs-empty");
    let full = work.join("jobs-full");
    for folder in [&empty, &full] {
        let _ = std::fs::remove_dir_all(folder);
    }
    let store = SqliteStore::in_folder(&full);
    for index in 0..FINISHED_JOBS {
        record_one(&store, index).await?;
    }
    drop(store);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..repetitions.max(10) {
        for (folder, times) in [(&empty, &mut without), (&full, &mut with)] {
            let (server, elapsed) =
                Server::start(binary, &with_state(&env, folder), Stderr::Discard).await?;
            times.push(elapsed);
            server.stop().await?;
        }
    }
    costs.cold_start = (median(without), median(with));
    Ok(costs)
}

fn with_state(env: &[(String, String)], state: &Path) -> Vec<(String, String)> {
    env.iter()
        .filter(|(name, _)| name != "REVE_STATE_DIR")
        .cloned()
        .chain([("REVE_STATE_DIR".to_owned(), state.display().to_string())])
        .collect()
}

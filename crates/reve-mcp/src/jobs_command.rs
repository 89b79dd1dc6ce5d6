//! `reve-mcp jobs` and `reve-mcp usage`: what the job store holds, for a person or a script.
//! Both only read; a store that does not exist yet lists nothing.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;

use crate::jobs::{DAY_MS, JobRecord, JobStore};

/// Prints the newest `limit` jobs, one per line: id, state, creation time (UTC), and the saved
/// path, the URL or the error.
pub async fn list(store: &dyn JobStore, limit: u32) -> anyhow::Result<()> {
    let jobs = store.recent(limit).await.context("reading the job store")?;
    if jobs.is_empty() {
        println!("no jobs yet (in {})", store.describe());
    }
    for job in &jobs {
        println!("{}", line(job));
    }
    Ok(())
}

fn line(job: &JobRecord) -> String {
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(job.created_ms));
    let what = match (&job.generation().result, &job.error, &job.reused_from) {
        (Some(result), _, reused) => {
            let place = result
                .path
                .clone()
                .or_else(|| result.url.clone())
                .unwrap_or_default();
            match (reused, job.generation().api_seconds) {
                (Some(other), _) => format!("{place} (reused from {other})"),
                (None, Some(seconds)) => format!("{place} (the API took {seconds:.1} s)"),
                (None, None) => place,
            }
        }
        (None, Some(error), _) => error.clone(),
        (None, None, _) => String::new(),
    };
    format!("{}  {:<11}  {when}  {what}", job.id, job.state.as_str())
}

/// Prints the usage the API reported per UTC day, then the total.
pub async fn usage(store: &dyn JobStore) -> anyhow::Result<()> {
    let days = store
        .usage_by_day()
        .await
        .context("reading the job store")?;
    let (mut jobs, mut credits, mut uncertain) = (0, 0.0, 0);
    for day in &days {
        let date =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(day.day * DAY_MS))
                .to_string();
        println!(
            "{}  {:>5} edits  {:>14} credits{}",
            &date[..10],
            day.jobs,
            format_credits(day.credits),
            uncertain_edits(day.uncertain)
        );
        jobs += day.jobs;
        credits += day.credits;
        uncertain += day.uncertain;
    }
    println!(
        "total       {jobs:>5} edits  {:>14} credits{}",
        format_credits(credits),
        uncertain_edits(uncertain)
    );
    Ok(())
}

/// The edits of a day that may have been charged with no cost reported (interrupted or
/// cancelled after sending), shown apart from the reported usage: the daily limit counts each
/// at the latest edit's cost.
fn uncertain_edits(count: u64) -> String {
    match count {
        0 => String::new(),
        1 => "  + 1 edit that may have been charged".to_owned(),
        n => format!("  + {n} edits that may have been charged"),
    }
}

fn format_credits(credits: f64) -> String {
    if credits.fract() == 0.0 {
        format!("{credits:.0}")
    } else {
        format!("{credits:.2}")
    }
}

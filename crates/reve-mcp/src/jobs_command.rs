//! `reve-mcp jobs` and `reve-mcp usage`: what the job store holds, for a person or a script.
//! With an API key set, both first look after what dead processes left, as a server would
//! ([`look_after_jobs_once`]); otherwise they only read, and a store that does not exist yet
//! lists nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;

use crate::jobs::{DAY_MS, JobRecord, JobState, JobStore};

/// What `reve-mcp jobs` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// How many jobs, newest first.
    pub limit: u32,
    /// Also the jobs refused before anything was sent (a missing file, a prompt too long):
    /// they cost nothing and made nothing, so they are left out unless asked for.
    pub all: bool,
    /// One JSON object per job and line, every field whole, for scripts.
    pub json: bool,
    /// Each job under the one whose result it was made from.
    pub tree: bool,
}

/// Prints the newest jobs: for a person, a table with short ids, how long ago, the prompt and
/// where the result went; with `--json`, one object per line.
pub async fn list(store: &dyn JobStore, listing: Listing) -> anyhow::Result<()> {
    // Refusals are skipped after reading, so ask for enough to fill the page most of the time.
    let asked = if listing.all {
        listing.limit
    } else {
        listing.limit.saturating_mul(4)
    };
    let jobs: Vec<JobRecord> = store
        .recent(asked)
        .await
        .context("reading the job store")?
        .into_iter()
        .filter(|job| listing.all || !refused_before_sending(job))
        .take(listing.limit as usize)
        .collect();
    if listing.json {
        for job in &jobs {
            println!("{}", json_line(job));
        }
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs yet (in {})", store.describe());
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    println!(
        "{:<8}  {:<11}  {:<10}  {:>8}  {:<32}  RESULT",
        "JOB", "STATE", "WHEN", "COST", "PROMPT"
    );
    if listing.tree {
        for (prefix, job) in as_tree(&jobs) {
            println!("{prefix}{}", line(job, now));
        }
    } else {
        for job in &jobs {
            println!("{}", line(job, now));
        }
    }
    Ok(())
}

/// `jobs` (newest first) as lines of versions, oldest root first: each job under its first
/// parent listed, with the branch drawn before it. A job whose parents are not listed is a root.
fn as_tree(jobs: &[JobRecord]) -> Vec<(String, &JobRecord)> {
    let listed = |id: &str| jobs.iter().any(|job| job.id == id);
    let parent_of = |job: &JobRecord| {
        job.generation()
            .parents
            .iter()
            .find(|parent| listed(parent))
            .cloned()
    };
    let children = |id: &str| -> Vec<&JobRecord> {
        let mut children: Vec<&JobRecord> = jobs
            .iter()
            .filter(|job| parent_of(job).as_deref() == Some(id))
            .collect();
        children.sort_by_key(|job| job.created_ms);
        children
    };
    let mut roots: Vec<&JobRecord> = jobs.iter().filter(|job| parent_of(job).is_none()).collect();
    roots.sort_by_key(|job| job.created_ms);
    let mut lines = Vec::new();
    // Depth first, by hand: (the job, the prefix of its children, the drawn branch).
    let mut stack: Vec<(&JobRecord, String, String)> = roots
        .into_iter()
        .rev()
        .map(|root| (root, String::new(), String::new()))
        .collect();
    while let Some((job, indent, branch)) = stack.pop() {
        lines.push((branch, job));
        let under = children(&job.id);
        let last = under.len().saturating_sub(1);
        for (index, child) in under.into_iter().enumerate().rev() {
            let (branch, more) = if index == last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            stack.push((
                child,
                format!("{indent}{more}"),
                format!("{indent}{branch}"),
            ));
        }
    }
    lines
}

/// A job that ended before its request was sent: refused on its input, nothing charged.
fn refused_before_sending(job: &JobRecord) -> bool {
    job.state == JobState::Failed && !job.sent
}

fn line(job: &JobRecord, now_ms: u64) -> String {
    let generation = job.generation();
    let what = match (&generation.result, &job.error, &job.reused_from) {
        (Some(result), _, reused) => {
            let place = result
                .path
                .as_deref()
                .map(home_as_tilde)
                .or_else(|| result.url.clone())
                .unwrap_or_default();
            match (reused, generation.api_seconds) {
                (Some(other), _) => format!("{place} (reused from {})", short_id(other)),
                (None, Some(seconds)) => format!("{place} (the API took {seconds:.1} s)"),
                (None, None) => place,
            }
        }
        // On one line: a settled job's message gains what the usage logs said.
        (None, Some(error), _) => error.replace('\n', " "),
        (None, None, _) => String::new(),
    };
    format!(
        "{:<8}  {:<11}  {:<10}  {:>8}  {:<32}  {what}",
        short_id(&job.id),
        job.state.as_str(),
        ago(now_ms.saturating_sub(job.created_ms)),
        cost(job),
        shorten(&generation.prompt, 32),
    )
}

/// What a job cost, as the API reported it: in dollars when it said, else in its own unit;
/// `?` for one that may have been charged without saying, `$0.000` for one the usage logs
/// say was not charged, `-` for one that cost nothing or was never answered.
fn cost(job: &JobRecord) -> String {
    if job.settled == Some(crate::jobs::store::Settled::NotCharged) {
        return dollars(0.0);
    }
    match job.cost() {
        Some(cost) => match (cost.usd, cost.credits, cost.tokens) {
            (Some(usd), _, _) => dollars(usd),
            (None, Some(credits), _) => format!("{} cr", format_number(credits)),
            (None, None, Some(tokens)) => format!("{} tok", format_number(tokens)),
            (None, None, None) => "-".to_owned(),
        },
        None if job.may_be_charged => "?".to_owned(),
        None => "-".to_owned(),
    }
}

/// US dollars to a tenth of a cent, as prices of pictures are quoted.
fn dollars(usd: f64) -> String {
    format!("${usd:.3}")
}

/// The first characters of a job id: enough to tell the jobs of a listing apart. `--json`
/// gives the whole id, which `get_edit` takes.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// How long ago, in the largest unit that fits.
fn ago(elapsed_ms: u64) -> String {
    let seconds = elapsed_ms / 1000;
    match seconds {
        0..10 => "just now".to_owned(),
        10..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// `text` on one line, cut to `width` characters with an ellipsis.
fn shorten(text: &str, width: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= width {
        return line;
    }
    let kept: String = line.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// A path under the home folder written from `~`, as a person types it.
pub(crate) fn home_as_tilde(path: &str) -> String {
    match std::env::var_os("HOME").map(std::path::PathBuf::from) {
        Some(home) if !home.as_os_str().is_empty() => {
            match std::path::Path::new(path).strip_prefix(&home) {
                Ok(rest) => format!("~/{}", rest.display()),
                Err(_) => path.to_owned(),
            }
        }
        _ => path.to_owned(),
    }
}

/// A job as one JSON object: every field whole (the full id, the full prompt, absolute paths).
fn json_line(job: &JobRecord) -> serde_json::Value {
    let generation = job.generation();
    let created =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(job.created_ms))
            .to_string();
    let picture = |picture: &crate::generation::Picture| {
        serde_json::json!({
            "path": picture.path,
            "url": picture.url,
            "mime_type": picture.mime_type,
            "width": picture.width,
            "height": picture.height,
            "bytes": picture.bytes,
        })
    };
    serde_json::json!({
        "id": job.id,
        "state": job.state.as_str(),
        "created": created,
        "model": generation.model,
        "prompt": generation.prompt,
        "inputs": generation.inputs.iter().map(picture).collect::<Vec<_>>(),
        "result": generation.result.as_ref().map(picture),
        "sent": job.sent,
        "error": job.error,
        "reused_from": job.reused_from,
        "parents": generation.parents,
        "credits_used": job.credits_used,
        "tokens_used": job.tokens_used,
        "usd_spent": job.usd_spent,
        "may_be_charged": job.may_be_charged,
        "settled": job.settled.map(|settled| settled.as_str()),
        "inference_id": generation.answer.as_ref().and_then(|answer| answer.inference_id.clone()),
        "api_seconds": generation.api_seconds,
    })
}

/// Prints what the API reported the edits cost per UTC day, then the total: in US dollars, and
/// in the unit the API counted them in (credits, tokens, or both); then each model's live
/// price, of those that could be read.
pub async fn usage(store: &dyn JobStore, prices: &[(String, f64)]) -> anyhow::Result<()> {
    let days = store
        .usage_by_day()
        .await
        .context("reading the job store")?;
    let mut total = crate::jobs::store::DayUsage {
        day: 0,
        jobs: 0,
        credits: 0.0,
        tokens: 0.0,
        usd: 0.0,
        uncertain: 0,
    };
    for day in &days {
        let date =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(day.day * DAY_MS))
                .to_string();
        println!("{}  {}", &date[..10], usage_line(day));
        total.jobs += day.jobs;
        total.credits += day.credits;
        total.tokens += day.tokens;
        total.usd += day.usd;
        total.uncertain += day.uncertain;
    }
    println!("total       {}", usage_line(&total));
    if !prices.is_empty() {
        let quoted: Vec<String> = prices
            .iter()
            .map(|(model, price)| format!("{model} ${price}"))
            .collect();
        println!("price now   {} per picture", quoted.join(", "));
    }
    Ok(())
}

/// How long `jobs` and `usage` look after what dead processes left before listing.
const LOOK_AFTER_WAIT: Duration = Duration::from_secs(20);

/// Does once what a running server does beside serving, so that `jobs` and `usage` tell the
/// truth with no server running: the jobs of processes that died are taken over (a paid result
/// whose answer was recorded is fetched and saved, the rest marked interrupted), and the edits
/// that may have been charged are settled from the provider's usage logs. Skipped without an
/// API key; bounded in time, after which the listing shows what is known.
pub async fn look_after_jobs_once(store: Arc<dyn JobStore>, state_dir: &Path) {
    let Ok(client) = reve_core::Config::from_env().and_then(reve_core::Client::new) else {
        return;
    };
    // No job yet, nothing to look after: and no state folder made by a listing.
    if store.recent(1).await.is_ok_and(|jobs| jobs.is_empty()) {
        return;
    }
    let jobs = crate::jobs::Jobs::new(
        crate::view_command::bookkeeping_editor(client, state_dir),
        store,
        crate::view_command::viewing_options(),
    );
    let Ok(done) = tokio::time::timeout(LOOK_AFTER_WAIT, jobs.look_after_once()).await else {
        tracing::warn!(
            "looking after the jobs of processes that died took too long; the listing shows what is known so far"
        );
        return;
    };
    if done.charged + done.not_charged > 0 {
        eprintln!(
            "settled from the provider's usage logs: {} charged, {} not charged",
            done.charged, done.not_charged
        );
    }
}

/// Each model's live price per picture, of those the provider answers for within a few
/// seconds; none when it cannot be reached (the figure is then left out).
pub async fn live_prices() -> Vec<(String, f64)> {
    let Ok(client) = reve_core::Config::from_env().and_then(reve_core::Client::new) else {
        return Vec::new();
    };
    let read = async {
        crate::jobs::look_up_prices(&client, |_| None)
            .await
            .into_iter()
            .filter_map(|(model, lookup)| match lookup {
                Ok(reve_core::PriceLookup::Price {
                    usd_per_picture: Some(price),
                    ..
                }) => Some((model.id.to_owned(), price)),
                _ => None,
            })
            .collect()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_default()
}

/// A day's (or the total's) edits, dollars, credits or tokens, and uncertain edits.
fn usage_line(day: &crate::jobs::store::DayUsage) -> String {
    format!(
        "{:>5} edits  {:>9}  {:>16}{}",
        day.jobs,
        dollars(day.usd),
        in_units(day.credits, day.tokens),
        uncertain_edits(day.uncertain)
    )
}

/// Usage in the units the API reported: `12 credits`, `2310000 tokens`, or both.
fn in_units(credits: f64, tokens: f64) -> String {
    match (credits != 0.0, tokens != 0.0) {
        (_, false) => format!("{} credits", format_number(credits)),
        (false, true) => format!("{} tokens", format_number(tokens)),
        (true, true) => format!(
            "{} credits + {} tokens",
            format_number(credits),
            format_number(tokens)
        ),
    }
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

fn format_number(number: f64) -> String {
    if number.fract() == 0.0 {
        format!("{number:.0}")
    } else {
        format!("{number:.2}")
    }
}

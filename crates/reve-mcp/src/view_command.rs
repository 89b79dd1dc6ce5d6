//! `reve-mcp view`: a finished job shown to a person in the viewer (the MCP App a host shows),
//! as a page of its own with its pictures inside, opened in the default browser.
//!
//! The page (`mcp::page`) is what a host renders, filled from the job store. Nothing is sent to
//! the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::edit::{Editor, EditorOptions, ResponseMode};
use crate::jobs::{JobOptions, JobRecord, JobState, JobStore, Jobs};
use crate::preview::PreviewLimits;

/// Which job to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// A job id, or the start of one that no other job shares (what `reve-mcp jobs` prints).
    Id(String),
    /// The newest job that succeeded.
    Last,
}

/// Writes the viewer's page of the job `which` names into `state_dir`'s `views` folder, prints
/// its path, and opens it in the default browser when `open` (saying so when there is none).
pub async fn view(
    store: Arc<dyn JobStore>,
    state_dir: &Path,
    which: Which,
    open: bool,
) -> anyhow::Result<PathBuf> {
    let record = find(store.as_ref(), &which).await?;
    if !record.state.is_finished() {
        bail!(
            "job {} is still {}: `reve-mcp view {}` shows it once it has finished",
            short(&record.id),
            record.state.as_str(),
            short(&record.id)
        );
    }
    let jobs = Jobs::new(viewing_editor(state_dir)?, store, viewing_options());
    let page = crate::mcp::page::job_page(&jobs, &record).await?;
    let folder = state_dir.join("views");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {folder:?}"))?;
    let path = folder.join(format!("{}.html", record.id));
    std::fs::write(&path, page).with_context(|| format!("writing {path:?}"))?;
    println!("{}", path.display());
    if open && let Err(error) = open::that_detached(&path) {
        eprintln!(
            "note: no browser could be started to show it ({error}); open the page above yourself"
        );
    }
    Ok(path)
}

/// The job `which` names.
async fn find(store: &dyn JobStore, which: &Which) -> anyhow::Result<JobRecord> {
    let recent = || async {
        store
            .recent(FOUND_AMONG)
            .await
            .context("reading the job store")
    };
    match which {
        Which::Last => recent()
            .await?
            .into_iter()
            .find(|job| job.state == JobState::Succeeded)
            .context("no job has succeeded yet: `reve-mcp edit` makes one"),
        Which::Id(id) => {
            if let Some(record) = store
                .get(id.clone())
                .await
                .context("reading the job store")?
            {
                return Ok(record);
            }
            let mut matching = recent()
                .await?
                .into_iter()
                .filter(|job| job.id.starts_with(id.as_str()));
            match (matching.next(), matching.next()) {
                (Some(record), None) if !id.is_empty() => Ok(record),
                (Some(_), Some(_)) => bail!(
                    "more than one job starts with {id:?}: give more of its id (`reve-mcp jobs` lists them)"
                ),
                _ => bail!(
                    "no job {id:?} is in this job store (`reve-mcp jobs` lists the {FOUND_AMONG} newest)"
                ),
            }
        }
    }
}

/// How many of the newest jobs an id's start is looked for among.
const FOUND_AMONG: u32 = 1000;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// An editor that only makes previews of files already on disk: no request is ever sent.
fn viewing_editor(state_dir: &Path) -> anyhow::Result<Editor> {
    let client =
        reve_core::Client::new(reve_core::Config::default()).context("building the HTTP client")?;
    Ok(bookkeeping_editor(client, state_dir))
}

/// An editor for a command that makes no edit of its own (`view`, `jobs`, `usage`): it shows
/// pictures as a tool call would, and finishes with `client` what dead processes paid for.
pub(crate) fn bookkeeping_editor(client: reve_core::Client, state_dir: &Path) -> Editor {
    Editor::new(
        client,
        EditorOptions {
            output_dir: state_dir.to_owned(),
            max_input_bytes: reve_core::DEFAULT_MAX_INPUT_BYTES,
            response_mode: ResponseMode::Url,
            saves: false,
            preview: Some(PreviewLimits::default()),
            max_edits_in_flight: 1,
            max_upload_bytes_in_flight: 0,
        },
    )
}

pub(crate) fn viewing_options() -> JobOptions {
    JobOptions {
        max_wait: Some(std::time::Duration::ZERO),
        reuse_window: std::time::Duration::ZERO,
        cancel_aborts: false,
        max_credits_per_day: None,
        max_usd_per_day: None,
        settle_after: crate::jobs::DEFAULT_SETTLE_AFTER,
    }
}

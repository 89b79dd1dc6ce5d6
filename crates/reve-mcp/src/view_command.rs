//! `reve-mcp view`: a finished job shown to a person in the viewer (the MCP App a host shows),
//! as a page of its own with its pictures inside, opened in the default browser.
//!
//! The page is what a host renders, filled from the job store: the job's result as the tool
//! answers it, and its pictures as the resources serve them (its preview, and the input kept by
//! a server; for a job of the command line, which keeps no picture, a preview of the input file
//! is made if it is still there). Nothing is sent to the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::edit::{Editor, EditorOptions, ResponseMode};
use crate::jobs::{JobOptions, JobRecord, JobState, JobStore, Jobs, Outcome, Picture, Waited};
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
    let page = page(&jobs, &record).await?;
    let folder = state_dir.join("views");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let path = folder.join(format!("{}.html", record.id));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
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

/// The viewer filled with the job: its call's arguments, its result as the tool answers it, and
/// each picture the result names as a `data:` URL.
async fn page(jobs: &Jobs, record: &JobRecord) -> anyhow::Result<String> {
    let waited = jobs
        .status(&record.id, &record.principal)
        .await
        .context("reading the job")?;
    // The result's preview, as the tool showed it (made again from the saved file when none
    // was kept, as for a job of the command line).
    let preview = match &waited {
        Waited::Finished {
            outcome: Outcome::Succeeded(succeeded),
            ..
        } => (succeeded.preview.as_ref())
            .map(|bytes| data_url(crate::preview::mime_type_of(bytes), bytes)),
        _ => None,
    };
    let result = crate::mcp::output::job_result(waited, None);
    let result = serde_json::to_value(&result).context("the job's result as JSON")?;
    let structured = result
        .get("structuredContent")
        .cloned()
        .unwrap_or(Value::Null);
    let generation = record.generation();

    let mut pictures = serde_json::Map::new();
    if let (Some(uri), Some(url)) = (structured["preview_uri"].as_str(), preview) {
        pictures.insert(uri.to_owned(), url.into());
    }
    let inputs = structured["input_images"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (index, input) in inputs.iter().enumerate() {
        let Some(uri) = input["uri"].as_str() else {
            continue;
        };
        let url = match kept(jobs, record, Picture::Input(index)).await {
            Some(url) => Some(url),
            // The command line keeps no picture: the input file itself, if it is still there.
            None => match generation
                .inputs
                .get(index)
                .and_then(|input| input.path.as_deref())
            {
                Some(path) => jobs
                    .preview_of_file(Path::new(path))
                    .await
                    .map(|preview| data_url(preview.mime_type, &preview.bytes)),
                None => None,
            },
        };
        if let Some(url) = url {
            pictures.insert(uri.to_owned(), url.into());
        }
    }
    let mut arguments = generation.options.clone();
    arguments.insert("prompt".into(), generation.prompt.clone().into());
    let edit = json!({
        "arguments": arguments,
        "result": result,
        "pictures": pictures,
        // The page shows a path in the home folder from `~`, as a person writes it.
        "home": dirs::home_dir(),
    });
    Ok(crate::mcp::resources::standalone_viewer(&edit))
}

/// One of the job's pictures as the resources serve it, as a `data:` URL.
async fn kept(jobs: &Jobs, record: &JobRecord, picture: Picture) -> Option<String> {
    match jobs.picture(&record.id, &record.principal, picture).await {
        Ok(Some((bytes, mime_type))) => Some(data_url(&mime_type, &bytes)),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, job = %record.id, "a picture of the job could not be read");
            None
        }
    }
}

fn data_url(mime_type: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// An editor that only makes previews of files already on disk: no request is ever sent.
fn viewing_editor(state_dir: &Path) -> anyhow::Result<Editor> {
    let client =
        reve_core::Client::new(reve_core::Config::default()).context("building the HTTP client")?;
    Ok(Editor::new(
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
    ))
}

fn viewing_options() -> JobOptions {
    JobOptions {
        max_wait: Some(std::time::Duration::ZERO),
        reuse_window: std::time::Duration::ZERO,
        cancel_aborts: false,
        max_credits_per_day: None,
    }
}

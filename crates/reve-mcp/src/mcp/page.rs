//! The viewer as a page of its own for one finished job, what `reve-mcp view` writes: the job's
//! result as the tool answers it, and its pictures as the resources serve them (its preview, and
//! the input a server kept; for an input not kept, a preview of its file if it is still there),
//! each as a `data:` URL inside the page, which then needs no host and fetches nothing; and the
//! line of versions it came from, each with its preview.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::jobs::{JobRecord, Jobs, Outcome, Picture, Waited};

/// The viewer filled with the job: its call's arguments, its result as the tool answers it, and
/// each picture the result names as a `data:` URL.
pub async fn job_page(jobs: &Jobs, record: &JobRecord) -> anyhow::Result<String> {
    let mut pictures = serde_json::Map::new();
    let result = shown(jobs, record, &mut pictures).await?;
    let structured = result
        .get("structuredContent")
        .cloned()
        .unwrap_or(Value::Null);
    let generation = record.generation();
    // The line of versions it came from, oldest first, each with its preview: the page shows
    // the same history as the viewer in a host.
    let mut history = Vec::new();
    let mut parent = generation.parents.first().cloned();
    while let Some(id) = parent.take() {
        if history.len() >= MAX_VERSIONS {
            break;
        }
        let Ok(Some(ancestor)) = jobs.store().get(id).await else {
            break;
        };
        if ancestor.principal != record.principal {
            break;
        }
        let shown = shown(jobs, &ancestor, &mut pictures).await?;
        history.insert(0, shown["structuredContent"].clone());
        parent = ancestor.generation().parents.first().cloned();
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
        "history": history,
        // The page shows a path in the home folder from `~`, as a person writes it.
        "home": dirs::home_dir(),
    });
    Ok(super::resources::standalone_viewer(&edit))
}

/// How many versions back a page shows, as the viewer in a host does.
const MAX_VERSIONS: usize = 20;

/// The job's result as the tool answers it, its preview (as the tool showed it, made again from
/// the saved file when none was kept, as for a job of the command line) put in `pictures`.
async fn shown(
    jobs: &Jobs,
    record: &JobRecord,
    pictures: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<Value> {
    let waited = jobs
        .status(&record.id, &record.principal)
        .await
        .context("reading the job")?;
    let preview = match &waited {
        Waited::Finished {
            outcome: Outcome::Succeeded(succeeded),
            ..
        } => (succeeded.preview.as_ref())
            .map(|bytes| data_url(crate::preview::mime_type_of(bytes), bytes)),
        _ => None,
    };
    let result = super::output::job_result(waited, None);
    let result = serde_json::to_value(&result).context("the job's result as JSON")?;
    if let (Some(uri), Some(url)) = (result["structuredContent"]["preview_uri"].as_str(), preview) {
        pictures.insert(uri.to_owned(), url.into());
    }
    Ok(result)
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

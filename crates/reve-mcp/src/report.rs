//! A finished generation as it is reported: the JSON a successful `edit_image` call returns
//! as `structuredContent` and `reve-mcp edit --json` prints, and the same in words. Made from
//! the [generation record](crate::generation) at the edges, once per result; the tool's
//! picture, resource link and schema are added by [`crate::mcp::output`].

use std::path::Path;

use rmcp::schemars::JsonSchema;
use serde::Serialize;

use crate::jobs::{self, Picture};

/// What a successful call returns as `structuredContent`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EditOutput {
    /// Always `succeeded`: the edit is done and this is its result.
    pub status: Succeeded,
    /// The edit job's id, for `get_edit`.
    pub job_id: String,
    /// The model that made the picture, such as `reve/remix-edit-image`.
    pub model: String,
    /// How many pictures it was given: none for a picture made from words alone, one for an
    /// edit, several for a remix.
    pub pictures_given: usize,
    /// Absolute path of the saved full-resolution result.
    // Empty, and so left out of the JSON, when the server does not save
    // (`--no-save`); that server declares `unsaved_output_schema` instead.
    // A sentinel rather than an Option keeps the declared schema of a saving
    // server exactly as it was: `path` a required string.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Where the API published the result, when it returned a URL.
    pub url: Option<String>,
    /// MIME type of the saved file, detected from its bytes.
    pub mime_type: String,
    /// Width of the saved result in pixels.
    pub width: u32,
    /// Height of the saved result in pixels.
    pub height: u32,
    /// Size of the saved file in bytes.
    pub bytes: u64,
    /// The provider's request id, to quote when reporting a problem.
    pub request_id: Option<String>,
    /// The provider's id of the inference, which its usage logs and billing records know the
    /// charge by.
    pub inference_id: Option<String>,
    /// Whether the provider flagged the content.
    pub content_violation: Option<bool>,
    /// What the API reported this edit cost; `null` when it did not say, or when the result
    /// was reused from an identical edit and cost nothing more.
    pub usage: Option<UsageOutput>,
    /// The id of the identical edit job whose result this is, when this call reused it instead
    /// of paying again; otherwise `null`.
    pub reused_from: Option<String>,
    /// The jobs whose results this picture was made from, given by reference
    /// (`reve://jobs/JOB_ID/result` or `job:JOB_ID`), in order: its parents in a line of
    /// versions. Empty when it was made from other pictures or from words alone.
    pub parents: Vec<String>,
    /// The MCP resource of the saved result (`resources/read` returns the file); `null` when
    /// this server does not save results.
    pub result_uri: Option<String>,
    /// The MCP resource of the picture shown here; `null` when none was made.
    pub preview_uri: Option<String>,
    /// The input picture as this server saw it; `null` when it was given by URL (the API
    /// fetches those, this server does not) or could not be read for a preview.
    pub input_image: Option<InputOutput>,
    /// Every input picture as this server saw it, in order (a remix has several): the first
    /// is `input_image`. Pictures given by URL are not among them.
    pub input_images: Vec<InputOutput>,
    /// The result in words, exactly the text beside the picture: where it was saved, its size,
    /// and anything to tell the user. Here too because some hosts show their model this JSON
    /// in place of that text.
    pub message: String,
}

/// The input picture of an edit, as it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct InputOutput {
    /// The MCP resource of its preview, as it was sent.
    pub uri: String,
    /// Its MIME type, detected from its bytes.
    pub mime_type: String,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What the API reported the edit cost, in each unit it reported.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UsageOutput {
    /// Credits charged (the answer's `x-aimlapi-credits-used`, or its `meta.usage`).
    pub credits_used: Option<f64>,
    /// Tokens, as the answer's `meta.usage` reported them.
    pub tokens_used: Option<f64>,
    /// US dollars charged (the answer's `x-aimlapi-usd-spent`).
    pub usd_spent: Option<f64>,
}

/// What a call returns as `structuredContent` while its edit is still running.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunningOutput {
    /// Always `running`: the edit goes on; collect it with `get_edit`.
    pub status: Running,
    /// Pass this to `get_edit` to collect the result.
    pub job_id: String,
    /// What the edit is doing now, for a person.
    pub doing: String,
    /// What to do next, in words: call `get_edit` with this `job_id`. The same text as beside
    /// it, since some hosts show their model this JSON in place of that text.
    pub message: String,
}

/// The `status` of a finished edit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Succeeded {
    Succeeded,
}

/// The `status` of an edit still running.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Running {
    Running,
}

impl EditOutput {
    /// The report of job `job_id`'s success.
    pub fn new(job_id: &str, succeeded: &jobs::Succeeded) -> Self {
        let generation = &succeeded.generation;
        let result = generation.result.clone().unwrap_or_default();
        let answer = generation.answer.clone().unwrap_or_default();
        // A reused result's pictures are those of the job that made it.
        let owner = succeeded.reused_from.as_deref().unwrap_or(job_id);
        let mut output = Self {
            status: Succeeded::Succeeded,
            job_id: job_id.to_owned(),
            model: generation.model.clone(),
            // A record from before models took other than one picture is an edit of one.
            pictures_given: generation.pictures_given.unwrap_or(1),
            result_uri: result.path.as_ref().map(|_| Picture::Result.uri(owner)),
            preview_uri: result.preview.as_ref().map(|_| Picture::Preview.uri(owner)),
            path: result.path.unwrap_or_default(),
            url: result.url,
            mime_type: result.mime_type,
            width: result.width,
            height: result.height,
            bytes: result.bytes,
            request_id: answer.request_id,
            content_violation: answer.content_violation,
            inference_id: answer.inference_id,
            usage: succeeded.cost.map(|cost| UsageOutput {
                credits_used: cost.credits,
                tokens_used: cost.tokens,
                usd_spent: cost.usd,
            }),
            reused_from: succeeded.reused_from.clone(),
            parents: generation.parents.clone(),
            input_image: None,
            input_images: generation
                .inputs
                .iter()
                .enumerate()
                .map(|(index, input)| InputOutput {
                    uri: Picture::Input(index).uri(owner),
                    mime_type: input.mime_type.clone(),
                    width: input.width,
                    height: input.height,
                    bytes: input.bytes,
                })
                .collect(),
            message: String::new(),
        };
        output.input_image = output.input_images.first().cloned();
        output.message = describe(job_id, succeeded, &output);
        output
    }
}

/// The result in words: where it was saved and its size, the URL, the request id, the job, the
/// usage, and anything to tell the user (a name that was taken, a reused result). The text
/// beside the picture and the `message` of the structured JSON.
fn describe(job_id: &str, succeeded: &jobs::Succeeded, output: &EditOutput) -> String {
    let saved = output
        .result_uri
        .as_ref()
        .map(|_| Path::new(output.path.as_str()));
    let (width, height) = (output.width, output.height);
    let mut text = match saved {
        // The user may have moved or deleted it since: never say it is there when it is not.
        Some(path) if path.symlink_metadata().is_err() => format!(
            "Edited image ({}x{}, {}, {} bytes) was saved to {}, which is no longer there \
             (moved or deleted); call edit_image again to make it anew.",
            width, height, output.mime_type, output.bytes, output.path
        ),
        Some(_) => format!(
            "Edited image saved to {} ({}x{}, {}, {} bytes).",
            output.path, width, height, output.mime_type, output.bytes
        ),
        None => format!(
            "Edited image ({}x{}, {}, {} bytes); this server does not save results.",
            width, height, output.mime_type, output.bytes
        ),
    };
    if let Some(asked) = succeeded.generation.name_taken() {
        text.push_str(&format!(
            "\nThe name {asked} was taken by another file by the time the paid result was \
             saved, so it was saved under the fresh name above instead."
        ));
    }
    if let Some(url) = &output.url {
        text.push_str(&format!("\nResult URL: {url}"));
    }
    if let Some(request_id) = &output.request_id {
        text.push_str(&format!("\nRequest id: {request_id}"));
    }
    text.push_str(&format!("\nEdit job: {job_id}"));
    if let Some(usage) = &output.usage {
        let reported: Vec<String> = [
            usage.usd_spent.map(|usd| format!("${usd}")),
            usage
                .credits_used
                .map(|credits| format!("{credits} credits")),
            usage.tokens_used.map(|tokens| format!("{tokens} tokens")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !reported.is_empty() {
            text.push_str(&format!("\nCost the API reported: {}", reported.join(", ")));
        }
    }
    if let Some(other) = &output.reused_from {
        text.push_str(&format!(
            "\nThis is the result of the identical edit job {other}, reused: nothing more was charged."
        ));
    }
    if !output.parents.is_empty() {
        text.push_str(&format!(
            "\nMade from the result of edit job {}.",
            output.parents.join(", ")
        ));
    }
    text.push_str(&format!(
        "\nTo edit this result again, give job:{job_id} as the picture."
    ));
    text
}

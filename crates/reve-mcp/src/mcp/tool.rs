//! The tools: `edit_image` and `get_edit`, their definitions (description, input and output
//! schemas), and the adapter from a `tools/call` to the jobs that run the edit pipeline. The
//! arguments of `edit_image` are the generated [`EditImageArguments`]; which local files a call
//! may read is decided here, since it depends on who the client is.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rmcp::RoleServer;
use rmcp::handler::server::tool::schema_for_type;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken, Tool,
    ToolAnnotations,
};
use rmcp::service::Peer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::access::AllowedDirs;
use crate::edit::{EditError, LocalFiles, Progress, Stage};
use crate::generated::EditImageArguments;
use crate::jobs::{JobError, Jobs};
use crate::mcp::output;

pub const TOOL_NAME: &str = "edit_image";
pub const GET_EDIT_TOOL_NAME: &str = "get_edit";

const TOOL_TITLE: &str = "Edit image";
const TOOL_RETURNS_SAVED: &str = "Returns the edited picture as an image you can see, the \
absolute path where the full-resolution file was saved for the user, the result URL and the \
request id.";
const TOOL_RETURNS_UNSAVED: &str = "Returns the edited picture as an image you can see, the URL \
of the full-resolution result and the request id; this server does not save results.";
const TOOL_COST: &str = "Each call is a paid generation and takes tens of seconds.";
const TOOL_LONG: &str = "If the edit takes longer than this server waits, the result says it is \
still running and gives a job_id: call get_edit with it to collect the picture (calling \
edit_image again with the same arguments is not charged twice).";

/// The arguments of `get_edit`.
#[derive(Debug, Clone, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct GetEditArguments {
    /// The `job_id` an `edit_image` (or an earlier `get_edit`) result gave.
    pub job_id: String,
}

/// Whose files a model's local `image_url` may name.
#[derive(Debug, Clone)]
pub enum LocalFilesRule {
    /// A client of this machine's user (stdio): the configured folders and the client's roots,
    /// or the home folder when there are neither; the output folder always, so a result can be
    /// edited again.
    ThisUsers { configured: Vec<PathBuf> },
    /// A client on another machine (HTTP): its roots name folders on its own disk, this user's
    /// home folder is not its to read, and on a shared server the output folder holds other
    /// clients' results; so only the configured folders, and none when there are none.
    ConfiguredOnly { configured: Vec<PathBuf> },
}

/// The tools, with everything that outlives one call.
pub struct EditImageTool {
    jobs: Jobs,
    local_files_rule: LocalFilesRule,
    hard_links: bool,
    definition: Tool,
    get_edit: Tool,
}

impl EditImageTool {
    pub fn new(jobs: Jobs, local_files_rule: LocalFilesRule) -> Self {
        let saves = jobs.editor().options().saves;
        let definition = definition(saves);
        let get_edit = get_edit_definition(saves);
        Self {
            jobs,
            local_files_rule,
            hard_links: false,
            definition,
            get_edit,
        }
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    pub fn get_edit_definition(&self) -> &Tool {
        &self.get_edit
    }

    /// Lets a local `image_url` name a file with several hard links (see
    /// [`AllowedDirs::with_hard_links`]).
    pub fn allowing_hard_links(mut self, allowed: bool) -> Self {
        self.hard_links = allowed;
        self
    }

    pub fn definition(&self) -> &Tool {
        &self.definition
    }

    pub fn saves_results(&self) -> bool {
        self.jobs.editor().options().saves
    }

    /// Whether this call reads a local file for which the client's roots matter.
    pub fn needs_roots(&self, arguments: &EditImageArguments) -> bool {
        matches!(&self.local_files_rule, LocalFilesRule::ThisUsers { configured } if configured.is_empty())
            && reve_core::ImageSource::local_file(&arguments.image_url, None)
                .is_ok_and(|path| path.is_some())
    }

    fn local_files(&self, client_roots: Vec<PathBuf>) -> LocalFiles {
        match &self.local_files_rule {
            LocalFilesRule::ConfiguredOnly { configured } if configured.is_empty() => {
                LocalFiles::Closed
            }
            LocalFilesRule::ConfiguredOnly { configured } => LocalFiles::Inside(
                AllowedDirs::new(configured.iter().cloned()).with_hard_links(self.hard_links),
            ),
            LocalFilesRule::ThisUsers { configured } => {
                let mut dirs: Vec<PathBuf> =
                    configured.iter().cloned().chain(client_roots).collect();
                if dirs.is_empty() {
                    dirs.extend(dirs::home_dir());
                }
                dirs.push(self.jobs.editor().options().output_dir.clone());
                LocalFiles::Inside(AllowedDirs::new(dirs).with_hard_links(self.hard_links))
            }
        }
    }

    /// Runs one `edit_image` call: starts its job and waits for it as long as this server
    /// waits. Every failure is a tool error the model can read.
    pub async fn call(
        &self,
        arguments: EditImageArguments,
        client_roots: Vec<PathBuf>,
        principal: &str,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, JobError> {
        let job_id = self.start(arguments, client_roots, principal).await?;
        self.get_edit(&job_id, principal, progress, cancel).await
    }

    /// Starts an `edit_image` call's job without waiting for it: what a task is made of.
    pub async fn start(
        &self,
        arguments: EditImageArguments,
        client_roots: Vec<PathBuf>,
        principal: &str,
    ) -> Result<String, JobError> {
        let local_files = self.local_files(client_roots);
        self.jobs.submit(arguments, local_files, principal).await
    }

    /// Runs one `get_edit` call: waits for the job as long as this server waits.
    pub async fn get_edit(
        &self,
        job_id: &str,
        principal: &str,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, JobError> {
        let progress = McpProgress {
            client: progress,
            step: AtomicU32::new(0),
        };
        let waited = self
            .jobs
            .wait(job_id, principal, &progress, Some(cancel))
            .await?;
        Ok(output::job_result(waited, self.jobs.options().max_wait))
    }
}

/// Reads `get_edit`'s arguments.
pub fn parse_get_edit_arguments(arguments: JsonObject) -> Result<GetEditArguments, EditError> {
    serde_path_to_error::deserialize(Value::Object(arguments))
        .map_err(|error| EditError::Arguments(format!("{GET_EDIT_TOOL_NAME}: {error}")))
}

/// Reads a call's arguments. The generated struct refuses what it does not declare; the message
/// then names the argument (shortened: a model can send a name of any length) and the tool's
/// own arguments, rather than serde's wording.
pub fn parse_arguments(arguments: JsonObject) -> Result<EditImageArguments, EditError> {
    let unknown = arguments
        .keys()
        .find(|name| !EditImageArguments::NAMES.contains(&name.as_str()))
        .cloned();
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        EditError::Arguments(match unknown {
            Some(name) => format!(
                "unknown argument {:?}; {TOOL_NAME} takes {}",
                reve_core::workspace::shorten(&name),
                EditImageArguments::NAMES
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => error.to_string(),
        })
    })
}

/// A tool error for the model, from any failure of a call.
pub fn error_result(error: &JobError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

fn definition(saves: bool) -> Tool {
    let mut input_schema = schema_for_type::<EditImageArguments>().as_ref().clone();
    input_schema.remove("$schema");
    input_schema.remove("title");
    input_schema.remove("description");
    let (returns, output_schema) = if saves {
        (TOOL_RETURNS_SAVED, output::output_schema())
    } else {
        // No `output_path`: it would name a file that is never written.
        if let Some(Value::Object(properties)) = input_schema.get_mut("properties") {
            properties.remove("output_path");
        }
        (TOOL_RETURNS_UNSAVED, output::unsaved_output_schema())
    };
    let description = format!(
        "Edit a picture with a plain-language instruction, using the {model} model. Give `prompt` \
         (what to change, e.g. \"put the dinosaur on a lounge chair at sunset\"; up to {max} \
         characters) and `image_url` (an http(s) URL, a data: URI, or an absolute path or \
         file:// URI of a local PNG, JPEG, WebP or GIF). {returns} {TOOL_COST} {TOOL_LONG}",
        model = reve_core::edit_image::MODEL,
        max = reve_core::edit_image::PROMPT_MAX_LENGTH,
    );
    Tool::new(TOOL_NAME, description, Arc::new(input_schema))
        .with_title(TOOL_TITLE)
        .with_raw_output_schema(Arc::new(output_schema))
        .with_annotations(
            ToolAnnotations::with_title(TOOL_TITLE)
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        )
}

fn get_edit_definition(saves: bool) -> Tool {
    let mut input_schema = schema_for_type::<GetEditArguments>().as_ref().clone();
    input_schema.remove("$schema");
    input_schema.remove("title");
    input_schema.remove("description");
    let output_schema = if saves {
        output::output_schema()
    } else {
        output::unsaved_output_schema()
    };
    let title = "Get an edit's result";
    Tool::new(
        GET_EDIT_TOOL_NAME,
        "Collect the result of an edit_image call that was still running when it returned, by \
         its job_id. Waits for the edit as long as edit_image does, then returns exactly what \
         edit_image would have, or says again that it is still running. Costs nothing.",
        Arc::new(input_schema),
    )
    .with_title(title)
    .with_raw_output_schema(Arc::new(output_schema))
    .with_annotations(
        ToolAnnotations::with_title(title)
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    )
}

/// Progress notifications to the client, when it asked for them.
struct McpProgress {
    client: Option<(ProgressToken, Peer<RoleServer>)>,
    step: AtomicU32,
}

impl Progress for McpProgress {
    async fn report(&self, stage: Stage) {
        let Some((token, peer)) = &self.client else {
            return;
        };
        let message = match stage {
            Stage::Queued { waited } => format!(
                "queued behind other edits on this server; nothing sent yet ({} s so far)",
                waited.as_secs()
            ),
            Stage::Waiting { elapsed } => format!(
                "waiting for {} to finish the edit ({} s so far)",
                reve_core::edit_image::MODEL,
                elapsed.as_secs()
            ),
            Stage::Held { waited } => format!(
                "held until the edits in flight report their cost, which the daily spending \
                 limit needs; nothing sent yet ({} s so far)",
                waited.as_secs()
            ),
            Stage::Preparing | Stage::Saving => return,
        };
        let step = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        let mut param = ProgressNotificationParam::new(token.clone(), f64::from(step));
        param.message = Some(message);
        if let Err(error) = peer.notify_progress(param).await {
            tracing::debug!(%error, "could not send a progress notification");
        }
    }
}

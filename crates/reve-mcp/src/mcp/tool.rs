//! The tools: one per model in `spec/` (`edit_image`, `create_image`, `remix_images`, and any
//! model added by its document), and `get_edit`; their definitions (description, input and
//! output schemas), and the adapter from a `tools/call` to the jobs that run the one pipeline.
//! A model's arguments are the generated [`ToolArguments`]; which local files a call may read
//! is decided here, since it depends on who the client is.

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
use crate::generated::{ModelTool, TOOLS, ToolArguments};
use crate::jobs::{JobError, Jobs};
use crate::mcp::output;

/// The tool of `reve/edit-image`, which prompts and messages name.
pub const TOOL_NAME: &str = crate::generated::edit_image::TOOL.tool;
pub const GET_EDIT_TOOL_NAME: &str = "get_edit";

const TOOL_COST: &str = "Each call is a paid generation and takes tens of seconds.";
/// What a tool taking a list of pictures says of the prompt.
const PICTURES_IN_PROMPT: &str = "The published documents do not say how a prompt refers to each \
picture: it is passed to the model as written, so name each by what it shows (\"the dinosaur\", \
\"the café\").";
const PICTURE_FORMS: &str = "an http(s) URL, a data: URI, or an absolute path or file:// URI of a \
local PNG, JPEG, WebP or GIF";

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
    /// One per model, in [`TOOLS`]' order.
    definitions: Vec<Tool>,
    get_edit: Tool,
}

impl EditImageTool {
    pub fn new(jobs: Jobs, local_files_rule: LocalFilesRule) -> Self {
        let saves = jobs.editor().options().saves;
        // Every tool answers with the same result: its schema is made once (most of the work a
        // server does to start) and shared.
        let output_schema = Arc::new(if saves {
            output::output_schema()
        } else {
            output::unsaved_output_schema()
        });
        let definitions = TOOLS
            .iter()
            .map(|tool| definition(tool, saves, &output_schema))
            .collect();
        let get_edit = get_edit_definition(&output_schema);
        Self {
            jobs,
            local_files_rule,
            hard_links: false,
            definitions,
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

    /// The model tools' definitions, `edit_image` first.
    pub fn definitions(&self) -> &[Tool] {
        &self.definitions
    }

    /// The definition of the tool named `name`, a model's or `get_edit`.
    pub fn definition_of(&self, name: &str) -> Option<&Tool> {
        self.definitions
            .iter()
            .chain([&self.get_edit])
            .find(|tool| tool.name == name)
    }

    pub fn saves_results(&self) -> bool {
        self.jobs.editor().options().saves
    }

    /// Whether this call reads a local file for which the client's roots matter.
    pub fn needs_roots(&self, arguments: &ToolArguments) -> bool {
        matches!(&self.local_files_rule, LocalFilesRule::ThisUsers { configured } if configured.is_empty())
            && arguments.pictures().into_iter().any(|picture| {
                reve_core::ImageSource::local_file(picture, None).is_ok_and(|path| path.is_some())
            })
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

    /// Runs one call of a model's tool: starts its job and waits for it as long as this
    /// server waits. Every failure is a tool error the model can read.
    pub async fn call(
        &self,
        arguments: ToolArguments,
        client_roots: Vec<PathBuf>,
        principal: &str,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, JobError> {
        let job_id = self.start(arguments, client_roots, principal).await?;
        self.get_edit(&job_id, principal, progress, cancel).await
    }

    /// Starts a model tool's call without waiting for it: what a task is made of.
    pub async fn start(
        &self,
        arguments: ToolArguments,
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

/// Reads the arguments of a call of the model tool `tool`, or `None` when no model has a tool
/// of that name. The generated structs refuse what they do not declare; the message then names
/// the argument (shortened: a model can send a name of any length) and the tool's own
/// arguments, rather than serde's wording.
pub fn parse_arguments(
    tool: &str,
    arguments: JsonObject,
) -> Option<Result<ToolArguments, EditError>> {
    let model_tool = TOOLS.iter().find(|model_tool| model_tool.tool == tool)?;
    let unknown = arguments
        .keys()
        .find(|name| !model_tool.arguments.contains(&name.as_str()))
        .cloned();
    let parsed = ToolArguments::parse(tool, Value::Object(arguments))?;
    Some(parsed.map_err(|error| {
        EditError::Arguments(match unknown {
            Some(name) => format!(
                "unknown argument {:?}; {tool} takes {}",
                reve_core::workspace::shorten(&name),
                model_tool
                    .arguments
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => error.to_string(),
        })
    }))
}

/// A tool error for the model, from any failure of a call.
pub fn error_result(error: &JobError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

/// A model tool's definition: its generated input schema (without `output_path` when nothing
/// is saved), and a description made from its document: what the model does, each argument with
/// its limits and allowed values, what it returns, that it is paid, and how a long call ends;
/// `output_schema` is the one every tool shares.
fn definition(model_tool: &ModelTool, saves: bool, output_schema: &Arc<JsonObject>) -> Tool {
    let mut input_schema = (model_tool.input_schema)().as_ref().clone();
    input_schema.remove("$schema");
    input_schema.remove("title");
    input_schema.remove("description");
    let model = model_tool.model;
    let made = if model.pictures.is_empty() {
        "new"
    } else {
        "edited"
    };
    let returns = if saves {
        format!(
            "Returns the {made} picture as an image you can see, the absolute path where the \
             full-resolution file was saved for the user, the result URL and the request id."
        )
    } else {
        // No `output_path`: it would name a file that is never written.
        if let Some(Value::Object(properties)) = input_schema.get_mut("properties") {
            properties.remove("output_path");
        }
        format!(
            "Returns the {made} picture as an image you can see, the URL of the full-resolution \
             result and the request id; this server does not save results."
        )
    };
    let mut arguments = vec![match model.max_length("prompt") {
        Some(max) => format!("`prompt` ({}; up to {max} characters)", model_tool.prompt),
        None => format!("`prompt` ({})", model_tool.prompt),
    }];
    for field in model.pictures {
        arguments.push(if field.many {
            format!("`{}` ({}, each {PICTURE_FORMS})", field.name, field.takes())
        } else {
            format!("`{}` ({PICTURE_FORMS})", field.name)
        });
    }
    if let Some(Value::Object(properties)) = input_schema.get("properties") {
        for (name, schema) in properties {
            let Some(Value::Array(values)) = schema.get("enum") else {
                continue;
            };
            let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            let default = schema
                .get("default")
                .and_then(Value::as_str)
                .map(|default| format!("; default {default}"))
                .unwrap_or_default();
            arguments.push(format!(
                "optionally `{name}` (one of {}{default})",
                values.join(", ")
            ));
        }
    }
    let arguments = match arguments.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    let in_prompt = if model.pictures.iter().any(|field| field.many) {
        format!(" {PICTURES_IN_PROMPT}")
    } else {
        String::new()
    };
    let tool = model_tool.tool;
    let description = format!(
        "{summary}, using the {model} model. Give {arguments}.{in_prompt} {returns} {TOOL_COST} If \
         the call takes longer than this server waits, the result says it is still running and \
         gives a job_id: call {GET_EDIT_TOOL_NAME} with it to collect the picture (calling {tool} \
         again with the same arguments is not charged twice).",
        summary = model_tool.summary,
        model = model.id,
    );
    let title = model_tool.title;
    Tool::new(tool, description, Arc::new(input_schema))
        .with_title(title)
        .with_raw_output_schema(Arc::clone(output_schema))
        .with_annotations(
            ToolAnnotations::with_title(title)
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        )
}

fn get_edit_definition(output_schema: &Arc<JsonObject>) -> Tool {
    let mut input_schema = schema_for_type::<GetEditArguments>().as_ref().clone();
    input_schema.remove("$schema");
    input_schema.remove("title");
    input_schema.remove("description");
    let title = "Get an edit's result";
    Tool::new(
        GET_EDIT_TOOL_NAME,
        "Collect the result of an edit_image, create_image or remix_images call (any picture \
         tool of this server) that was still running when it returned, by its job_id. Waits for \
         it as long as that tool does, then returns exactly what the tool would have, or says \
         again that it is still running. Costs nothing.",
        Arc::new(input_schema),
    )
    .with_title(title)
    .with_raw_output_schema(Arc::clone(output_schema))
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
        // The one wording of a stage (the tool's "still running", a task's status, the command
        // line's progress line); preparing and saving are too short to report.
        let message = match stage {
            Stage::Queued { .. } | Stage::Waiting { .. } | Stage::Held { .. } => stage.describe(),
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

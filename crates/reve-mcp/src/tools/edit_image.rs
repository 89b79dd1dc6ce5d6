//! The `edit_image` tool: arguments in, edited picture out.
//!
//! The arguments are the vendor's request fields (as generated from `spec/`)
//! plus `output_path`; the server fills in the fixed ones, turns a local file
//! into a data URI after checking it may be read, calls the API while keeping
//! the client informed, saves the full result and returns a preview.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken, Resource,
};
use rmcp::service::Peer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::access::{self, AccessError, AllowedDirs};
use crate::preview::{self, PreviewBudget, PreviewError};
use crate::settings::ResponseMode;
use crate::tool_schema::{self, EditOutput, IMAGE_URL_ARG, OUTPUT_PATH_ARG};

/// How often a waiting call reports progress; clients reset their request
/// timeouts on each notification, and the MCP spec leaves the cadence to us.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call failed. Every message is written for the model to act on.
#[derive(Debug, thiserror::Error)]
pub enum EditImageError {
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Api(#[from] reve_core::Error),
    #[error("the edit succeeded but saving it failed: {source}{}", ResultUrlHint(.url.as_deref()))]
    Save {
        source: reve_core::Error,
        /// Where the paid result can still be fetched, if the API published it.
        url: Option<String>,
    },
    #[error(
        "{0} already exists; choose another output_path (existing files are never overwritten); nothing was sent to the API"
    )]
    OutputExists(String),
    #[error("the edit succeeded and was saved to {path}, but {source}")]
    Preview {
        path: String,
        #[source]
        source: PreviewError,
    },
    #[error("the edit succeeded, but {0}; this server does not save results")]
    PreviewUnsaved(#[source] PreviewError),
    #[error("output_path cannot be used: this server does not save results")]
    NotSaving,
    #[error("the call was cancelled")]
    Cancelled,
}

/// Names the result URL in a save failure, so the paid result is not lost.
struct ResultUrlHint<'a>(Option<&'a str>);

impl std::fmt::Display for ResultUrlHint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(url) => write!(f, "; the result can still be downloaded from {url}"),
            None => Ok(()),
        }
    }
}

/// The tool, with everything it needs that outlives one call.
pub struct EditImage {
    client: reve_core::Client,
    output_dir: PathBuf,
    configured_dirs: Vec<PathBuf>,
    max_input_bytes: u64,
    preview_budget: PreviewBudget,
    /// Request fields the server sets: the model and the response mode.
    fixed_fields: Vec<(String, Value)>,
    /// The arguments the tool declares, to name in the error about an
    /// unknown one (serde's own message would list the vendor's fields,
    /// including those the server refuses, and omit `output_path`).
    argument_names: Vec<String>,
    /// Previews run here, one thread per core, started on first use.
    /// Decoding and re-encoding a 4096x4096 result takes a core and ~100 MB,
    /// so bounding the previews in flight keeps memory flat when many calls
    /// finish together; and a few long-lived threads reuse the memory their
    /// allocator kept from the previous preview, where blocking-pool threads
    /// by the dozen would each keep their own (see BENCHMARKS.md).
    preview_workers: OnceLock<rayon::ThreadPool>,
    preview_threads: usize,
    /// Whether local reads are confined to `configured_dirs` alone; see
    /// [`EditImage::confine_to_configured_dirs`].
    confined: bool,
    /// Whether results are written to `output_dir`.
    saves: bool,
}

pub struct EditImageSettings {
    pub output_dir: PathBuf,
    pub allowed_dirs: Vec<PathBuf>,
    pub max_input_bytes: u64,
    pub preview_budget: PreviewBudget,
    pub response_mode: ResponseMode,
}

impl EditImage {
    pub fn new(client: reve_core::Client, settings: EditImageSettings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let request_schema = reve_core::edit_image_request_schema();
        let input_schema = tool_schema::input_schema(&request_schema);
        let argument_names = input_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        Self {
            client,
            output_dir: settings.output_dir,
            configured_dirs: settings.allowed_dirs,
            max_input_bytes: settings.max_input_bytes,
            preview_budget: settings.preview_budget,
            fixed_fields: tool_schema::fixed_fields(
                &request_schema,
                settings.response_mode.convert_base64_to_url(),
            ),
            argument_names,
            preview_workers: OnceLock::new(),
            preview_threads: cores,
            confined: false,
            saves: true,
        }
    }

    /// For clients on other machines: local files are readable only inside
    /// the configured folders, and not at all when there are none. Such a
    /// client's roots name folders on its own disk, this user's home folder
    /// is not its to read, and on a shared server the output folder holds
    /// other clients' results.
    pub fn confine_to_configured_dirs(mut self) -> Self {
        self.confined = true;
        self
    }

    /// Returns results (preview and URL) without writing them to disk, for
    /// hosted servers whose disk is nobody's to keep.
    pub fn without_saving(mut self) -> Self {
        self.saves = false;
        self
    }

    pub fn saves_results(&self) -> bool {
        self.saves
    }

    /// Whether this call reads a local file, so the client's roots matter.
    pub fn needs_roots(&self, arguments: &JsonObject) -> bool {
        !self.confined
            && self.configured_dirs.is_empty()
            && arguments
                .get(IMAGE_URL_ARG)
                .and_then(Value::as_str)
                .is_some_and(|image_url| access::local_path(image_url).is_some())
    }

    /// Folders a local input may come from: the configured ones and the
    /// client's roots, or the home folder when there are neither; the output
    /// folder always, so a result can be edited again.
    fn allowed_dirs(&self, client_roots: Vec<PathBuf>) -> AllowedDirs {
        if self.confined {
            return AllowedDirs::new(self.configured_dirs.iter().cloned());
        }
        let mut dirs: Vec<PathBuf> = self
            .configured_dirs
            .iter()
            .cloned()
            .chain(client_roots)
            .collect();
        if dirs.is_empty() {
            dirs.extend(dirs::home_dir());
        }
        dirs.push(self.output_dir.clone());
        AllowedDirs::new(dirs)
    }

    pub async fn run(
        &self,
        mut arguments: JsonObject,
        client_roots: Vec<PathBuf>,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, EditImageError> {
        let output_path = match arguments.remove(OUTPUT_PATH_ARG) {
            None | Some(Value::Null) => None,
            Some(Value::String(path)) => Some(path),
            Some(other) => {
                return Err(EditImageError::Arguments(format!(
                    "output_path must be a string, got {other}"
                )));
            }
        };
        if output_path.is_some() && !self.saves {
            return Err(EditImageError::NotSaving);
        }
        let output_target = output_path
            .as_deref()
            .map(|path| access::output_target(&self.output_dir, path))
            .transpose()?;
        // Checked before the paid call; `persist` still refuses to overwrite
        // when the real type changes the extension onto an existing name.
        if let Some((folder, name)) = &output_target {
            let target = folder.join(name);
            if target.symlink_metadata().is_ok() {
                return Err(EditImageError::OutputExists(target.display().to_string()));
            }
        }
        let fixed = |name: &String| self.fixed_fields.iter().any(|(fixed, _)| fixed == name);
        if let Some(unknown) = arguments
            .keys()
            .find(|name| !fixed(name) && !self.argument_names.contains(name))
        {
            return Err(EditImageError::Arguments(format!(
                "unknown argument {:?}; edit_image takes {}",
                access::shorten(unknown),
                self.argument_names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        let request = build_request(&self.fixed_fields, arguments)?;
        let local_input = match access::local_path(&request.image_url) {
            Some(path) => {
                let path = path?;
                if self.confined && self.configured_dirs.is_empty() {
                    return Err(AccessError::ServerFilesClosed(path.display().to_string()).into());
                }
                Some((self.allowed_dirs(client_roots), path))
            }
            None => None,
        };
        // Off the async threads: a local file is read and encoded here, and
        // a data: URI from the client is checked and copied into the body.
        let max_bytes = self.max_input_bytes;
        let body = tokio::task::spawn_blocking(move || match local_input {
            Some((allowed, path)) => {
                let (file, canonical) = allowed.open(&path)?;
                reve_core::RequestBody::with_image_file(&request, &file, &canonical, max_bytes)
                    .map_err(EditImageError::from)
            }
            None => reve_core::RequestBody::new(&request, max_bytes).map_err(EditImageError::from),
        })
        .await
        .expect("building the request body does not panic")?;

        // The result goes straight to a temporary file where it will be
        // saved (the system's temporary folder when the server does not
        // save), so that many large results finishing together need no memory.
        let (stage_dir, file_name) = match output_target {
            _ if !self.saves => (std::env::temp_dir(), None),
            Some((folder, name)) => (folder, Some(name)),
            None => (self.output_dir.clone(), None),
        };
        let staged = self.call_api(&body, &stage_dir, progress, &cancel).await?;
        drop(body);
        // A failure to reopen costs the preview, never the saved result.
        let reader = staged.open();
        // Sized below from the preview, which reads the image's header anyway.
        let mut output = EditOutput::unsaved(&staged, (0, 0));
        let url = staged.url.clone();

        // Saving (fsync and rename) and the preview (read, decode and
        // encode) are independent: run them side by side. The saved file
        // matters more, so its error wins. The preview waits for a worker
        // thread, so it reads the file only when it can work on it.
        let save = async {
            if !self.saves {
                return Ok(None);
            }
            tokio::task::spawn_blocking(move || staged.persist(file_name.as_deref()))
                .await
                .expect("saving does not panic")
                .map(Some)
                .map_err(|source| EditImageError::Save { source, url })
        };
        let preview = async {
            let reader = reader.map_err(PreviewError::Read)?;
            let budget = self.preview_budget;
            let (done, outcome) = tokio::sync::oneshot::channel();
            self.preview_workers()?.spawn(move || {
                let preview = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    preview::make_preview_from(reader, budget)
                }));
                // The call may have been cancelled meanwhile; then nobody waits.
                let _ = done.send(preview);
            });
            match outcome.await.expect("a preview job always answers") {
                Ok(preview) => preview,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        };
        let (saved, preview) = tokio::join!(save, preview);
        let saved = saved?;
        let preview = preview.map_err(|source| match &saved {
            Some(saved) => EditImageError::Preview {
                path: saved.display().to_string(),
                source,
            },
            None => EditImageError::PreviewUnsaved(source),
        })?;

        (output.width, output.height) = preview.full_size;
        if let Some(saved) = &saved {
            output.path = saved.display().to_string();
        }
        Ok(success_result(output, saved.as_deref(), preview))
    }

    fn preview_workers(&self) -> Result<&rayon::ThreadPool, PreviewError> {
        if let Some(workers) = self.preview_workers.get() {
            return Ok(workers);
        }
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(self.preview_threads)
            .thread_name(|index| format!("reve-preview-{index}"))
            .build()
            .map_err(|error| PreviewError::Workers(error.to_string()))?;
        // Two first previews racing both build a pool; the loser's is dropped.
        Ok(self.preview_workers.get_or_init(|| workers))
    }

    /// Calls the API, sending progress while it works, and drops the HTTP
    /// request (closing the connection) the moment the client cancels.
    async fn call_api(
        &self,
        body: &reve_core::RequestBody,
        stage_dir: &Path,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: &CancellationToken,
    ) -> Result<reve_core::StagedImage, EditImageError> {
        let started = Instant::now();
        let call = self.client.edit_into_dir(body, stage_dir);
        tokio::pin!(call);
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        let mut step = 0u32;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(EditImageError::Cancelled),
                result = &mut call => return Ok(result?),
                _ = ticker.tick() => {
                    if let Some((token, peer)) = &progress {
                        step += 1;
                        let message = format!(
                            "waiting for {} to finish the edit ({} s so far)",
                            reve_core::MODEL,
                            started.elapsed().as_secs()
                        );
                        let mut param = ProgressNotificationParam::new(token.clone(), f64::from(step));
                        param.message = Some(message);
                        if let Err(error) = peer.notify_progress(param).await {
                            tracing::debug!(%error, "could not send a progress notification");
                        }
                    }
                }
            }
        }
    }
}

/// Adds the request fields the server sets (see [`tool_schema::fixed_fields`])
/// to `arguments` and reads them as a request. The command line builds its
/// requests here too, so that both send the same model and response mode.
pub fn build_request(
    fixed_fields: &[(String, Value)],
    mut arguments: JsonObject,
) -> Result<reve_core::EditImageRequest, EditImageError> {
    for (name, value) in fixed_fields {
        if arguments.insert(name.clone(), value.clone()).is_some() {
            return Err(EditImageError::Arguments(format!(
                "`{name}` is set by the server and cannot be passed"
            )));
        }
    }
    serde_path_to_error::deserialize(Value::Object(arguments))
        .map_err(|error| EditImageError::Arguments(error.to_string()))
}

/// The result for the model. `saved` is `None` when the server does not
/// save: the structured output then has no `path`, and the resource link
/// points at the API's URL instead of a file.
fn success_result(
    output: EditOutput,
    saved: Option<&Path>,
    preview: preview::Preview,
) -> CallToolResult {
    let (width, height) = (output.width, output.height);
    let mut text = match saved {
        Some(_) => format!(
            "Edited image saved to {} ({}x{}, {}, {} bytes).",
            output.path, width, height, output.mime_type, output.bytes
        ),
        None => format!(
            "Edited image ({}x{}, {}, {} bytes); this server does not save results.",
            width, height, output.mime_type, output.bytes
        ),
    };
    if let Some(url) = &output.url {
        text.push_str(&format!("\nResult URL: {url}"));
    }
    if let Some(request_id) = &output.request_id {
        text.push_str(&format!("\nRequest id: {request_id}"));
    }
    if (preview.width, preview.height) != (width, height) {
        let full = match (saved, &output.url) {
            (Some(_), _) => "the saved file is full resolution",
            (None, Some(_)) => "the result URL has it in full resolution",
            (None, None) => "the full-resolution result was not kept",
        };
        text.push_str(&format!(
            "\nThe picture shown is a {}x{} preview; {full}.",
            preview.width, preview.height
        ));
    }
    let link = match saved {
        Some(saved) => {
            let file_uri = url::Url::from_file_path(saved)
                .map(String::from)
                .unwrap_or_else(|()| format!("file://{}", output.path));
            Some((file_uri, saved.file_name()))
        }
        None => output.url.clone().map(|url| (url, None)),
    }
    .map(|(uri, file_name)| {
        let name = file_name.map_or_else(
            || "edited image".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        Resource::new(uri, name)
            .with_mime_type(output.mime_type.clone())
            .with_size(output.bytes)
    });

    let mut content = vec![
        ContentBlock::image(preview.base64, preview.mime_type),
        ContentBlock::text(text),
    ];
    content.extend(link.map(ContentBlock::resource_link));
    let mut result = CallToolResult::success(content);
    result.structured_content =
        Some(serde_json::to_value(output).expect("the output serialises to JSON"));
    result
}

//! The one edit pipeline: typed arguments in, a saved (or only previewed) result out. The MCP
//! tool and `reve-mcp edit` run it as jobs ([`crate::jobs`]) through [`Editor::run`], so a check or a fix made
//! here holds for every way in.
//!
//! The order is what keeps money safe: every check that can fail is made before the paid call
//! (arguments, the output name and folder, the local file's access, type and size, the request
//! body), the result streams to a hidden file where it will be saved, and saving and the
//! preview then run side by side, the saved file winning when both fail.

mod error;
mod input;
mod output;

pub use error::EditError;
pub use input::{LocalFiles, input_file};
pub use output::Destination;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reve_core::{RequestBody, StagedImage};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::byte_pool::BytePool;
use crate::generated::ToolArguments;
use crate::generation::{self, Generation, Picture};
use crate::preview::{EarlyPreview, Preview, PreviewLimits, PreviewWorkers};

/// How often a waiting edit reports progress; MCP clients reset their request timeouts on each
/// notification, and the MCP spec leaves the cadence to us.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How the API hands back the result: the vendor's `convert_base64_to_url`, as a choice a user
/// can read. The bytes are saved and previewed the same way in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// The API publishes the image and returns its URL, which is then downloaded.
    Url,
    /// The image comes inline in the response: no URL, one round trip less.
    Base64,
}

/// What an [`Editor`] is set up with, once for all its edits.
#[derive(Debug, Clone)]
pub struct EditorOptions {
    /// Where results are saved, and what an `output_path` is relative to.
    pub output_dir: PathBuf,
    /// Largest local input image, in bytes.
    pub max_input_bytes: u64,
    pub response_mode: ResponseMode,
    /// Whether results are written to `output_dir`; without, they pass through a hidden file in
    /// the system's temporary folder and are returned only as the preview and the API's URL.
    pub saves: bool,
    /// The inline preview to make of each result, or `None` (a terminal shows none).
    pub preview: Option<PreviewLimits>,
    /// Edits past the argument checks at once; the rest wait their turn. Each holds a few file
    /// descriptors (the input, the staged result, connections to the API and its CDN), so this
    /// also bounds descriptors.
    pub max_edits_in_flight: usize,
    /// Request bodies (the input picture as base64) held at once, in bytes, while they are
    /// built and sent; an edit whose body does not fit waits until others are sent.
    pub max_upload_bytes_in_flight: u64,
}

/// The defaults of [`EditorOptions::max_edits_in_flight`] and
/// [`EditorOptions::max_upload_bytes_in_flight`]: 64 edits waiting on the API hold about 512
/// descriptors, within the common limit of 1024, and 256 MiB holds the bodies of nine of the
/// largest (20 MiB) inputs.
pub const DEFAULT_MAX_EDITS_IN_FLIGHT: usize = 64;

pub const DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT: u64 = 256 * 1024 * 1024;

/// Room for a request body's JSON beside its image: the prompt and the other fields.
const BODY_JSON_BYTES: u64 = 64 * 1024;

/// Where an edit has got to, for whoever is watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for one of the [`EditorOptions::max_edits_in_flight`] slots, or for room for the
    /// request body (reported once a second while it waits).
    Queued { waited: Duration },
    /// Reading and checking the input, building the request.
    Preparing,
    /// Waiting for `model` at the API (sent once on sending, then every second).
    Waiting {
        elapsed: Duration,
        model: &'static str,
    },
    /// Held before sending until the edits in flight report what they cost: the spending
    /// limit cannot tell yet whether this one fits (reported once a second while it waits).
    Held { waited: Duration },
    /// Saving the result and making its preview.
    Saving,
}

impl Stage {
    /// What an edit at this stage is doing, in the one wording every way in shows: the
    /// tool's "still running" result, a task's status, the command line's progress line.
    pub fn describe(&self) -> String {
        match self {
            Stage::Queued { waited } => format!(
                "queued behind other edits on this server ({} s so far; nothing sent yet)",
                waited.as_secs()
            ),
            Stage::Preparing => "reading the input pictures and building the request".to_owned(),
            Stage::Waiting { elapsed, model } => {
                format!(
                    "waiting for {model} to finish it ({} s so far)",
                    elapsed.as_secs()
                )
            }
            Stage::Held { waited } => format!(
                "held until the edits in flight report their cost, which the daily spending \
                 limit needs ({} s so far; nothing sent yet)",
                waited.as_secs()
            ),
            Stage::Saving => "saving the result".to_owned(),
        }
    }
}

/// Told of each [`Stage`] an edit reaches.
pub trait Progress: Sync {
    fn report(&self, stage: Stage) -> impl Future<Output = ()> + Send;
}

/// Nobody is watching.
impl Progress for () {
    async fn report(&self, _stage: Stage) {}
}

/// A finished edit: its [`Generation`] with its answer, its input pictures and its result,
/// and what the API reported it used.
#[derive(Debug)]
pub struct Edited {
    pub generation: Generation,
    /// What the API reported it cost.
    pub cost: Option<crate::jobs::Cost>,
    /// The encoded preview of the result, when the editor makes one (base64 is made only at
    /// the MCP edge). Its size and type are the result's [`Picture::preview`].
    pub preview: Option<bytes::Bytes>,
}

/// How often an edit held by the spending limit ([`Stage::Held`]) asks again.
const HOLD_POLL: Duration = Duration::from_millis(250);

/// The picture an edit sent, as a person is shown it beside the result: its preview, and what
/// the original was. A URL input has none: the API fetches it, this server never does.
#[derive(Debug, Clone)]
pub struct InputPicture {
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub preview: Preview,
}

impl InputPicture {
    /// The input as its generation records it.
    fn picture(&self) -> Picture {
        Picture {
            mime_type: self.mime_type.to_owned(),
            width: self.width,
            height: self.height,
            bytes: self.bytes,
            path: None,
            url: None,
            preview: Some(self.preview.shown()),
        }
    }
}

/// Waits for `permit`, reporting [`Stage::Queued`] each second it waits; a cancelled call stops
/// waiting at once. Nothing has been sent or paid for while an edit is queued.
async fn queued<Permit>(
    permit: impl Future<Output = Result<Permit, tokio::sync::AcquireError>>,
    progress: &impl Progress,
    cancel: &CancellationToken,
) -> Result<Permit, EditError> {
    tokio::pin!(permit);
    let started = Instant::now();
    // First tick a second from now: an edit that gets its permit at once reports nothing and
    // never waits for the timer (whose resolution is a millisecond).
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + PROGRESS_INTERVAL,
        PROGRESS_INTERVAL,
    );
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(EditError::Cancelled),
            permit = &mut permit => return Ok(permit.expect("the editor never closes its semaphores")),
            _ = ticker.tick() => progress.report(Stage::Queued { waited: started.elapsed() }).await,
        }
    }
}

/// The pipeline, with everything that outlives one edit.
pub struct Editor {
    client: reve_core::Client,
    options: EditorOptions,
    /// Where previews are made.
    previews: PreviewWorkers,
    edit_slots: Semaphore,
    /// Room for [`EditorOptions::max_upload_bytes_in_flight`].
    uploads: BytePool,
    /// Whether the output folder was logged yet: once, on the first edit, so a person who
    /// set nothing learns where results go.
    told_output_dir: AtomicBool,
}

/// An edit that passed [`Editor::prepare`]: ready to run, nothing read or sent yet.
#[derive(Debug)]
pub struct Prepared {
    arguments: ToolArguments,
    destination: Destination,
    /// Each picture's local file, in the request's order; `None` for one given by URL or as a
    /// `data:` URI.
    inputs: Vec<Option<PathBuf>>,
    local_files: LocalFiles,
    /// Results this server saved, named by reference: read whatever `local_files` says.
    saved_results: Vec<PathBuf>,
    generation: Generation,
}

impl Prepared {
    /// The generation it asks for, as far as it is known before anything is read or sent.
    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    /// The same, recording that its pictures came from the results of `parents`, and allowed
    /// to read `saved_results` wherever the caller may read files: the files of those results
    /// this server saved, which a caller names by reference (`job:ID`) to edit again, even a
    /// client on another machine that may name no file of this one.
    pub fn with_parents(mut self, parents: Vec<String>, saved_results: Vec<PathBuf>) -> Prepared {
        self.generation.parents = parents;
        self.saved_results = saved_results;
        self
    }
}

/// How a run ended well.
#[derive(Debug)]
pub enum Ran {
    Edited(Box<Edited>),
    /// Nothing was sent: the job with this id made, or is making, the same edit.
    Reused(String),
}

/// What [`Journal::before_sending`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the request: it is recorded as sent.
    Send,
    /// Send nothing: the job with this id made, or is making, the same edit.
    Reuse(String),
    /// Ask again shortly: the spending limit waits for the edits in flight to report their
    /// cost before it can tell whether this one fits.
    Hold,
}

/// Told of the moments of an edit that matter for money.
pub trait Journal: Sync {
    /// The request is built and about to be sent to `destination`: record it, and decide
    /// whether it is sent, waits for an identical job instead, or is held. An error stops the
    /// edit unsent.
    fn before_sending(
        &self,
        body: &RequestBody,
        destination: &Destination,
    ) -> impl Future<Output = Result<Decision, EditError>> + Send;

    /// The id the request is sent under as `X-Client-Request-Id`, by which the provider's
    /// usage logs tell afterwards whether it was charged; `None` sends none.
    fn client_request_id(&self) -> Option<reve_core::ClientRequestId>;

    /// The paid result, `bytes` long and flushed to disk, is about to take the name `path`:
    /// record it first, so that a restart after a kill at any moment from here on finds the
    /// saved file instead of paying or saving again.
    fn saving(&self, path: &Path, bytes: u64) -> impl Future<Output = ()> + Send;

    /// The API answered (the generation happened): record what it said, so the result can
    /// still be fetched if this process dies before it is saved.
    fn generated(&self, generated: reve_core::Generated) -> impl Future<Output = ()> + Send;

    /// The preview of input picture `index` (counted as [`Generation::inputs`] lists them) is
    /// made, while the API works: keep it where a viewer of the running edit finds it.
    fn input_seen(&self, index: usize, input: &InputPicture) -> impl Future<Output = ()> + Send;

    /// The request is about to be sent again, as its `attempt`th (2, 3, ...): record it, so
    /// that the usage logs are known to list that many; `false` (not recorded) sends no more.
    fn retrying(&self, attempt: u32) -> impl Future<Output = bool> + Send;
}

/// Nothing recorded; every request is sent, unless its name is taken.
impl Journal for () {
    async fn before_sending(
        &self,
        _body: &RequestBody,
        destination: &Destination,
    ) -> Result<Decision, EditError> {
        match &destination.taken {
            Some(taken) => Err(EditError::OutputExists(taken.display().to_string())),
            None => Ok(Decision::Send),
        }
    }

    fn client_request_id(&self) -> Option<reve_core::ClientRequestId> {
        None
    }

    async fn saving(&self, _path: &Path, _bytes: u64) {}

    async fn generated(&self, _generated: reve_core::Generated) {}

    async fn input_seen(&self, _index: usize, _input: &InputPicture) {}

    async fn retrying(&self, _attempt: u32) -> bool {
        true
    }
}

impl Editor {
    pub fn new(client: reve_core::Client, options: EditorOptions) -> Self {
        Self {
            edit_slots: Semaphore::new(options.max_edits_in_flight.max(1)),
            uploads: BytePool::new(options.max_upload_bytes_in_flight),
            client,
            options,
            previews: PreviewWorkers::default(),
            told_output_dir: AtomicBool::new(false),
        }
    }

    /// The API client edits are sent with; also what reads the provider's usage logs.
    pub fn client(&self) -> &reve_core::Client {
        &self.client
    }

    pub fn options(&self) -> &EditorOptions {
        &self.options
    }

    /// A fingerprint of the API key the edits are paid with (never the key).
    pub fn api_key_fingerprint(&self) -> Option<String> {
        self.client.config().api_key_fingerprint()
    }

    /// Where results are written while they arrive: the output folder, or the system's
    /// temporary folder when nothing is saved.
    pub fn stage_dir(&self) -> PathBuf {
        if self.options.saves {
            self.options.output_dir.clone()
        } else {
            std::env::temp_dir()
        }
    }

    /// The checks an edit makes before it is accepted, with nothing read or sent: the
    /// arguments, the output name and folder, and whether a local input may be named at all.
    pub fn prepare(
        &self,
        mut arguments: ToolArguments,
        local_files: LocalFiles,
    ) -> Result<Prepared, EditError> {
        let destination = self.destination(arguments.output_path().take())?;
        let inputs = arguments
            .pictures()
            .into_iter()
            .map(|picture| input_file(picture, &local_files))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.client.config().has_api_key() {
            return Err(reve_core::Error::MissingApiKey.into());
        }
        let model = arguments.tool().model;
        let pictures_given = arguments.pictures().len();
        let mut generation = Generation::new(
            model.id,
            arguments.prompt(),
            generation::Destination {
                folder: destination.folder.display().to_string(),
                name: destination.name.clone(),
                saves: self.options.saves,
            },
        );
        generation.options = arguments.options();
        generation.pictures_given = Some(pictures_given);
        Ok(Prepared {
            arguments,
            destination,
            inputs,
            local_files,
            saved_results: Vec::new(),
            generation,
        })
    }

    /// Runs one prepared edit. `cancel` drops the HTTP request (closing the connection) the
    /// moment it fires; nothing is left on disk. `journal` hears of the request before it is
    /// sent, and may answer that an identical job already has (or will have) its result.
    pub async fn run(
        &self,
        prepared: Prepared,
        progress: &impl Progress,
        journal: &impl Journal,
        cancel: &CancellationToken,
    ) -> Result<Ran, EditError> {
        let Prepared {
            arguments,
            destination,
            inputs,
            local_files,
            saved_results,
            generation,
        } = prepared;
        if self.options.saves && !self.told_output_dir.swap(true, Ordering::Relaxed) {
            tracing::info!(folder = %self.options.output_dir.display(), "results are saved in this folder");
        }
        let _slot = queued(self.edit_slots.acquire_many(1), progress, cancel).await?;
        progress.report(Stage::Preparing).await;
        let (body, upload) = self
            .body(
                arguments,
                inputs,
                &local_files,
                saved_results,
                progress,
                cancel,
            )
            .await?;
        let body = match journal.client_request_id() {
            Some(id) => body.with_client_request_id(id),
            None => body,
        };
        if cancel.is_cancelled() {
            return Err(EditError::Cancelled);
        }
        let held = Instant::now();
        loop {
            match journal.before_sending(&body, &destination).await? {
                Decision::Send => break,
                Decision::Reuse(job_id) => return Ok(Ran::Reused(job_id)),
                Decision::Hold => {
                    progress
                        .report(Stage::Held {
                            waited: held.elapsed(),
                        })
                        .await;
                    tokio::select! {
                        () = cancel.cancelled() => return Err(EditError::Cancelled),
                        () = tokio::time::sleep(HOLD_POLL) => {}
                    }
                }
            }
        }
        // The inputs' previews are made on a preview thread while the API works and the result
        // is saved, so they add no time to an edit.
        let sent = body.clone();
        let inputs = async move {
            let inputs = self.input_pictures(sent).await;
            // Numbered as the generation lists them: the pictures previewed, in order.
            for (index, input) in inputs.iter().flatten().enumerate() {
                journal.input_seen(index, input).await;
            }
            inputs
        };
        let edit = async move {
            let (staged, early, answered_after) = self
                .call_api(&body, &destination.folder, progress, journal, cancel)
                .await?;
            drop((body, upload));
            progress.report(Stage::Saving).await;
            let generation = Generation {
                api_seconds: answered_after.map(|after| after.as_secs_f64()),
                ..generation
            };
            self.save_and_preview(staged, generation, early, journal)
                .await
        };
        let (edited, inputs) = tokio::join!(edit, inputs);
        let mut edited = edited?;
        edited.generation.inputs = inputs.iter().flatten().map(InputPicture::picture).collect();
        Ok(Ran::Edited(Box::new(edited)))
    }

    /// Fetches and saves the picture of `generation`, which an earlier run of the server paid
    /// for (its answer is recorded) but did not get to save: nothing is sent to the API again.
    pub async fn resume(
        &self,
        generation: Generation,
        journal: &impl Journal,
    ) -> Result<Edited, EditError> {
        let answer = generation.answer.clone().unwrap_or_default();
        let generated = reve_core::Generated {
            url: answer.url,
            request_id: answer.request_id,
            content_violation: answer.content_violation,
            usage: None,
            charge: reve_core::Charge {
                inference_id: answer.inference_id,
                ..reve_core::Charge::default()
            },
        };
        let folder = PathBuf::from(&generation.destination.folder);
        let staged = self
            .client
            .download_into_dir(&generated, &folder)
            .await
            .map_err(|source| EditError::Save {
                source,
                url: generated.url.clone(),
            })?;
        self.save_and_preview(staged, generation, None, journal)
            .await
    }

    /// Calls the API, reporting progress while it works and telling `journal` what it answered
    /// before the image is fetched; drops the HTTP request the moment `cancel` fires. The
    /// preview starts on the image as it downloads. With the staged result, how long the API
    /// took to answer.
    async fn call_api(
        &self,
        body: &RequestBody,
        stage_dir: &Path,
        progress: &impl Progress,
        journal: &impl Journal,
        cancel: &CancellationToken,
    ) -> Result<(StagedImage, Option<EarlyPreview>, Option<Duration>), EditError> {
        let started = Instant::now();
        let early = OnceLock::new();
        let answered_after = OnceLock::new();
        // Known once the API answered: a download or a write that fails after that names it,
        // since the result is paid for and still there to fetch.
        let url = OnceLock::new();
        let staged = {
            // Recorded before the download starts: a restart can then fetch what was paid for.
            let call = self.client.edit_into_dir_announcing(
                body,
                stage_dir,
                |attempt| journal.retrying(attempt),
                |generated, arriving| {
                    let _ = answered_after.set(started.elapsed());
                    if let Some(budget) = self.options.preview
                        && let Some(preview) = self.previews.follow(arriving, budget)
                    {
                        let _ = early.set(preview);
                    }
                    if let Some(published) = &generated.url {
                        let _ = url.set(published.clone());
                    }
                    journal.generated(generated)
                },
            );
            tokio::pin!(call);
            let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(EditError::Cancelled),
                    result = &mut call => break result.map_err(|source| match url.get() {
                        Some(url) => EditError::Save { source, url: Some(url.clone()) },
                        None => EditError::Api(source),
                    })?,
                    _ = ticker.tick() => {
                        progress.report(Stage::Waiting { elapsed: started.elapsed(), model: body.model().id }).await;
                    }
                }
            }
        };
        Ok((staged, early.into_inner(), answered_after.into_inner()))
    }
}

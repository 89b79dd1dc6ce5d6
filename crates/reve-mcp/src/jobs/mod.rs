//! Every edit is a job, recorded before its paid request is sent and run apart from the call
//! that asked for it, so that a paid result outlives the call: a client that gives up after 60
//! seconds, a cancellation after the request went out, a retry of the same call, a restart.
//!
//! A call waits for its job up to a limit and then answers with the job's id, which `get_edit`
//! (or the tasks extension's `tasks/get`) redeems. A call identical to a job still running, or
//! one that succeeded a short while ago, waits for that job instead of paying again. A
//! cancellation stops a job only while nothing has been sent; after that the job finishes and
//! is saved, unless the operator chose otherwise. The tool, the command line and restarts all
//! run jobs here, through the one [`Editor`].

pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reve_core::{RequestBody, Usage};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use store::{
    Claim, ClaimRules, DAY_MS, DayUsage, Ending, JobInput, JobRecord, JobResult, JobState,
    JobStore, KeptPicture, LimitVerdict, STORE_FILE, Spending, SqliteStore, StoreError, now_ms,
};

use crate::edit::{
    Decision, Destination, EditError, Edited, Editor, InputPicture, Journal, LocalFiles, Prepared,
    Progress, Ran, Stage,
};
use crate::generated::EditImageArguments;

/// How often a call waiting on a job that another process runs looks at the store.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The principal of everything that runs on this machine for its one user: stdio clients, the
/// command line, HTTP on loopback without a token.
pub const LOCAL_PRINCIPAL: &str = "local";

/// Who owns a job, when it is not [`LOCAL_PRINCIPAL`]: the holder of a bearer token, known by
/// a hash of it so the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl Principal {
    pub fn of_token(token: &[u8]) -> Principal {
        let digest = Sha256::digest(token);
        let hex: String = digest[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Principal(format!("token:{hex}"))
    }
}

/// The defaults of the job options, and why: most clients give a tool call 60 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(45);
pub const DEFAULT_REUSE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// How jobs are run and waited for.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// How long a call waits for its job before answering that it is still running; `None`
    /// waits until it finishes (the command line).
    pub max_wait: Option<Duration>,
    /// How long after it succeeded an identical call gets a job's result instead of paying
    /// again; zero turns reuse off.
    pub reuse_window: Duration,
    /// Whether a cancellation also stops a job whose request was sent, losing what it paid for.
    pub cancel_aborts: bool,
    /// The usage a UTC day may record before edits are refused.
    pub max_credits_per_day: Option<f64>,
}

/// A job's picture of success, as every caller gets it.
#[derive(Debug, Clone)]
pub struct Succeeded {
    pub result: JobResult,
    /// The inline preview, base64; `None` when none was made or it was not kept.
    pub preview: Option<Arc<str>>,
    pub usage: Option<Usage>,
    /// The job whose result this is, when this one reused it rather than paying.
    pub reused_from: Option<String>,
    /// The name asked for, when another file had taken it by the time the paid result was
    /// saved, so that the result was saved beside it under a fresh name.
    pub name_taken: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(Box<Succeeded>),
    /// Failed, cancelled or interrupted, with a message saying what it cost and what to do.
    Ended {
        state: JobState,
        message: String,
        /// What the end says about money: refused by the API (nothing charged), or paid
        /// with its result unsaved.
        ending: Ending,
    },
}

/// What a wait for a job found.
#[derive(Debug, Clone)]
pub enum Waited {
    Finished {
        job_id: String,
        outcome: Outcome,
    },
    /// Still at work when the wait ran out.
    Running {
        job_id: String,
        stage: Option<Stage>,
    },
}

#[derive(Debug, Clone)]
enum Status {
    Working(Option<Stage>),
    Done(Outcome),
}

/// A job this process runs.
struct Live {
    principal: String,
    status: watch::Receiver<Status>,
    stop: CancellationToken,
    /// Set just before the paid request is sent: from then on a cancellation no longer stops
    /// the job (unless [`JobOptions::cancel_aborts`]).
    sent: Arc<AtomicBool>,
}

/// The jobs of this process, and the store they share with every other.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    editor: Editor,
    store: Arc<dyn JobStore>,
    options: JobOptions,
    live: Mutex<HashMap<String, Live>>,
    /// A random id of this run of the process, so a restart under the same pid (as in a
    /// container) is told apart from the run that owned a job.
    run: String,
    tasks: TaskTracker,
}

impl Jobs {
    /// Jobs kept in `store`, run by `editor`.
    pub fn new(editor: Editor, store: Arc<dyn JobStore>, options: JobOptions) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                editor,
                store,
                options,
                live: Mutex::default(),
                run: uuid::Uuid::new_v4().simple().to_string(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    pub fn editor(&self) -> &Editor {
        &self.inner.editor
    }

    pub fn options(&self) -> &JobOptions {
        &self.inner.options
    }

    pub fn store(&self) -> &dyn JobStore {
        self.inner.store.as_ref()
    }

    /// Checks an edit, records it as a job of `principal` and starts it; returns its id at once.
    /// Every refusal here (bad arguments, the spending limit, a store that cannot be written)
    /// comes before anything is sent.
    pub async fn submit(
        &self,
        arguments: EditImageArguments,
        local_files: LocalFiles,
        principal: &str,
    ) -> Result<String, EditError> {
        let prepared = self.inner.editor.prepare(arguments, local_files)?;
        self.check_spending().await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let destination = prepared.destination();
        let record = JobRecord::queued(
            id.clone(),
            principal.to_owned(),
            prepared.prompt().to_owned(),
            destination.folder.display().to_string(),
            destination.name.clone(),
            self.inner.editor.options().saves,
            self.inner.run.clone(),
        );
        self.inner.store.insert(record).await?;
        self.start(id.clone(), principal.to_owned(), prepared);
        Ok(id)
    }

    async fn check_spending(&self) -> Result<(), EditError> {
        let Some(limit) = self.inner.options.max_credits_per_day else {
            return Ok(());
        };
        let spending = self.inner.store.spending_today().await?;
        // Only a spent day is refused here; one that waits for the edits in flight is held
        // before sending.
        match spending.verdict(limit) {
            LimitVerdict::Over => Err(spending_limit(spending, limit)),
            LimitVerdict::Fits | LimitVerdict::Hold => Ok(()),
        }
    }

    fn start(&self, id: String, principal: String, prepared: Prepared) {
        let (status, receiver) = watch::channel(Status::Working(None));
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicBool::new(false));
        self.lock_live().insert(
            id.clone(),
            Live {
                principal: principal.clone(),
                status: receiver,
                stop: stop.clone(),
                sent: Arc::clone(&sent),
            },
        );
        let jobs = self.clone();
        self.inner.tasks.spawn(async move {
            let journal = StoreJournal {
                jobs: &jobs,
                id: &id,
                principal: &principal,
                sent: &sent,
            };
            let progress = WatchProgress(&status);
            let ran = jobs
                .inner
                .editor
                .run(prepared, &progress, &journal, &stop)
                .await;
            let outcome = match ran {
                Ok(Ran::Edited(edited)) => Ok(jobs.succeeded(&id, edited, None, None).await),
                Ok(Ran::Reused(other)) => tokio::select! {
                    reused = jobs.reuse(&principal, &other, &progress) => reused,
                    () = stop.cancelled() => Err(EditError::Cancelled),
                },
                Err(error) => Err(error),
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => ended(error, sent.load(Ordering::SeqCst)),
            };
            jobs.finish(&id, outcome, status).await;
        });
    }

    /// A finished edit as a job's success: its preview kept beside the store. `name_asked` is
    /// the output name of a job resumed after a restart, whose clash (if any) is read off the
    /// path; a job run whole reports its own.
    async fn succeeded(
        &self,
        id: &str,
        edited: Edited,
        reused_from: Option<String>,
        name_asked: Option<&str>,
    ) -> Outcome {
        let path = edited.path.as_ref().map(|path| path.display().to_string());
        let name_taken = match &edited.name_taken {
            Some(taken) => taken
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            None => name_taken(name_asked, path.as_deref()),
        };
        let result = JobResult {
            path,
            url: edited.metadata.url.clone(),
            request_id: edited.metadata.request_id.clone(),
            content_violation: edited.metadata.content_violation,
            mime_type: edited.metadata.mime_type().to_owned(),
            width: edited.dimensions.0,
            height: edited.dimensions.1,
            bytes: edited.size,
            preview: edited
                .preview
                .as_ref()
                .map(|preview| (preview.mime_type.to_owned(), preview.width, preview.height)),
            input: edited.input.map(|input| JobInput {
                mime_type: input.mime_type.to_owned(),
                width: input.width,
                height: input.height,
                bytes: input.bytes,
            }),
        };
        let preview: Option<Arc<str>> = edited.preview.map(|preview| preview.base64.into());
        if let Some(preview) = &preview {
            self.keep_picture(KeptPicture::Preview, id, preview).await;
        }
        Outcome::Succeeded(Box::new(Succeeded {
            result,
            preview,
            usage: edited.metadata.usage,
            reused_from,
            name_taken,
        }))
    }

    /// Makes the preview of a succeeded job's saved result again when none is kept (the
    /// command line keeps none; a kept one may be gone), and keeps it under `owner`, the job
    /// that made the result: a successful result always carries its picture.
    async fn with_preview(&self, owner: &str, succeeded: &mut Succeeded) {
        if succeeded.preview.is_some() {
            return;
        }
        let Some(path) = succeeded.result.path.clone() else {
            return;
        };
        let Some(preview) = self
            .inner
            .editor
            .preview_of_saved(std::path::Path::new(&path))
            .await
        else {
            return;
        };
        succeeded.result.preview =
            Some((preview.mime_type.to_owned(), preview.width, preview.height));
        let base64: Arc<str> = preview.base64.into();
        self.keep_picture(KeptPicture::Preview, owner, &base64)
            .await;
        succeeded.preview = Some(base64);
    }

    /// Whether job `id` succeeded with a saved file that is no longer there: it is then not
    /// reused, since its result would name a file that is gone.
    async fn result_is_gone(&self, id: &str) -> Result<bool, EditError> {
        let Some(record) = self
            .inner
            .store
            .get(id.to_owned())
            .await
            .map_err(EditError::StoreRead)?
        else {
            return Ok(true);
        };
        let saved = record
            .result
            .filter(|_| record.state == JobState::Succeeded && record.saves)
            .and_then(|result| result.path);
        Ok(match saved {
            Some(path) => tokio::fs::symlink_metadata(&path).await.is_err(),
            None => false,
        })
    }

    /// Up to `limit` results of `principal`'s jobs, newest first, after the job `after` names
    /// (its creation time and id).
    pub async fn results(
        &self,
        principal: &str,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, EditError> {
        if !self.inner.store.exists() {
            return Ok(Vec::new());
        }
        self.inner
            .store
            .results(principal.to_owned(), after, limit)
            .await
            .map_err(EditError::StoreRead)
    }

    /// One picture of job `id` of `principal`, with its MIME type; `None` when the job has
    /// no such picture (yet): it is running, it failed, its input was a URL, or the server
    /// does not save results. A job that reused another's result shows that job's pictures.
    pub async fn picture(
        &self,
        id: &str,
        principal: &str,
        picture: Picture,
    ) -> Result<Option<(Vec<u8>, String)>, EditError> {
        let record = self.record(id, principal).await?;
        let owner = record
            .reused_from
            .clone()
            .unwrap_or_else(|| record.id.clone());
        let result = record
            .result
            .filter(|_| record.state == JobState::Succeeded);
        let (kept, mime_type) = match (picture, result) {
            (Picture::Result, Some(result)) => match result.path {
                Some(path) => return read_saved(id, PathBuf::from(path), result.mime_type).await,
                None => return Ok(None),
            },
            (Picture::Preview, Some(result)) => match result.preview {
                Some((mime_type, ..)) => (KeptPicture::Preview, Some(mime_type)),
                None => return Ok(None),
            },
            (Picture::Result | Picture::Preview, None) => return Ok(None),
            // Kept while the edit runs; its type is the preview's own.
            (Picture::Input, _) => (KeptPicture::Input, None),
        };
        let bytes = self
            .inner
            .store
            .picture(kept, owner)
            .await
            .map_err(EditError::StoreRead)?;
        Ok(bytes.map(|bytes| {
            let mime_type =
                mime_type.unwrap_or_else(|| crate::preview::mime_type_of(&bytes).to_owned());
            (bytes, mime_type)
        }))
    }

    /// Keeps a picture of job `id` where any later caller (or another replica) finds it. A
    /// cache: a failure costs only a picture shown later, never the result.
    async fn keep_picture(&self, picture: KeptPicture, id: &str, base64: &str) {
        // Off the runtime's threads: a preview is hundreds of kilobytes of base64.
        let base64 = base64.to_owned();
        let decoded = tokio::task::spawn_blocking(move || {
            base64::engine::general_purpose::STANDARD.decode(base64.as_bytes())
        })
        .await
        .expect("decoding base64 does not panic");
        let bytes = match decoded {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, job = id, "a preview is not valid base64");
                return;
            }
        };
        if let Err(error) = self
            .inner
            .store
            .keep_picture(picture, id.to_owned(), bytes)
            .await
        {
            tracing::warn!(%error, job = id, "could not keep a preview of the job's pictures");
        }
    }

    /// The outcome of the job this one attached to, as this job's own.
    async fn reuse(
        &self,
        principal: &str,
        other: &str,
        progress: &WatchProgress<'_>,
    ) -> Result<Outcome, EditError> {
        self.retry_unsaved(other, principal).await?;
        let waited = self
            .wait_for(other, principal, None, progress, None)
            .await?;
        let Waited::Finished { outcome, .. } = waited else {
            unreachable!("a wait without a limit ends when the job does")
        };
        Ok(match outcome {
            Outcome::Succeeded(succeeded) => {
                let mut succeeded = Succeeded {
                    usage: None,
                    reused_from: Some(other.to_owned()),
                    ..*succeeded
                };
                self.with_preview(other, &mut succeeded).await;
                Outcome::Succeeded(Box::new(succeeded))
            }
            Outcome::Ended { state, message, .. } => Outcome::Ended {
                state,
                message: format!("{message} (this call reused edit job {other})"),
                // Nothing was sent for this job.
                ending: Ending {
                    refused_by_api: true,
                    unsaved: false,
                },
            },
        })
    }

    /// Records how a job ended and tells whoever waits.
    async fn finish(&self, id: &str, outcome: Outcome, status: watch::Sender<Status>) {
        // Usage and reuse were recorded when they became known.
        let (state, result, error, ending) = match &outcome {
            Outcome::Succeeded(succeeded) => (
                JobState::Succeeded,
                Some(succeeded.result.clone()),
                None,
                Ending::default(),
            ),
            Outcome::Ended {
                state,
                message,
                ending,
            } => (*state, None, Some(message.clone()), *ending),
        };
        let recorded = self
            .inner
            .store
            .finish(id.to_owned(), state, result.clone(), error.clone(), ending)
            .await;
        status.send_replace(Status::Done(outcome));
        // Callers already waiting hold the channel; later ones read the store. An end the store
        // could not take stays in memory (with its preview) until the store takes it.
        match recorded {
            Ok(()) => {
                self.lock_live().remove(id);
            }
            Err(refused) => {
                tracing::error!(error = %refused, job = id, "could not record how the job ended; its result is kept in memory until the store takes it");
                let jobs = self.clone();
                let id = id.to_owned();
                self.inner.tasks.spawn(async move {
                    let recorded = until_stored(&id, refused, || {
                        jobs.inner.store.finish(
                            id.clone(),
                            state,
                            result.clone(),
                            error.clone(),
                            ending,
                        )
                    })
                    .await;
                    if recorded {
                        jobs.lock_live().remove(&id);
                    }
                });
            }
        }
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for job `id` of `principal` up to [`JobOptions::max_wait`], reporting its stages
    /// to `progress`. `cancel` is the caller's: when it fires the caller stops waiting, and the
    /// job stops too unless its request was sent (see [`JobOptions::cancel_aborts`]).
    pub async fn wait(
        &self,
        id: &str,
        principal: &str,
        progress: &impl Progress,
        cancel: Option<&CancellationToken>,
    ) -> Result<Waited, EditError> {
        self.retry_unsaved(id, principal).await?;
        self.wait_for(id, principal, self.inner.options.max_wait, progress, cancel)
            .await
    }

    /// Where job `id` is now, without waiting.
    pub async fn status(&self, id: &str, principal: &str) -> Result<Waited, EditError> {
        self.wait_for(id, principal, Some(Duration::ZERO), &(), None)
            .await
    }

    async fn wait_for(
        &self,
        id: &str,
        principal: &str,
        max_wait: Option<Duration>,
        progress: &impl Progress,
        cancel: Option<&CancellationToken>,
    ) -> Result<Waited, EditError> {
        let deadline = max_wait.map(|wait| tokio::time::Instant::now() + wait);
        let until_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        let cancelled = async {
            match cancel {
                Some(cancel) => cancel.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cancelled);
        let live = {
            let live = self.lock_live();
            live.get(id)
                .filter(|job| job.principal == principal)
                .map(|job| (job.status.clone(), job.stop.clone(), Arc::clone(&job.sent)))
        };
        let Some((mut status, stop, sent)) = live else {
            return self.wait_in_store(id, principal, &mut until_deadline).await;
        };
        loop {
            let current = status.borrow_and_update().clone();
            match current {
                Status::Done(outcome) => {
                    return Ok(Waited::Finished {
                        job_id: id.to_owned(),
                        outcome,
                    });
                }
                Status::Working(stage) => {
                    if let Some(stage) = stage {
                        progress.report(stage).await;
                    }
                    tokio::select! {
                        biased;
                        changed = status.changed() => {
                            if changed.is_err() {
                                // The job's task ended without a word: it panicked.
                                return Err(EditError::Job(format!("edit job {id} stopped unexpectedly; see the server's log")));
                            }
                        }
                        () = &mut cancelled => {
                            if self.inner.options.cancel_aborts || !sent.load(Ordering::SeqCst) {
                                stop.cancel();
                            } else {
                                tracing::info!(job = id, "the call was cancelled after its request was sent; the job finishes in the background");
                            }
                            return Err(EditError::Cancelled);
                        }
                        () = &mut until_deadline => {
                            return Ok(Waited::Running { job_id: id.to_owned(), stage });
                        }
                    }
                }
            }
        }
    }

    /// Waits for a job this process does not run (another process does, or did), by reading
    /// the store.
    async fn wait_in_store(
        &self,
        id: &str,
        principal: &str,
        until_deadline: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Waited, EditError> {
        loop {
            let record = self.record(id, principal).await?;
            if record.state.is_finished() {
                return Ok(Waited::Finished {
                    job_id: id.to_owned(),
                    outcome: self.outcome_of(record).await,
                });
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = until_deadline.as_mut() => {
                    return Ok(Waited::Running { job_id: id.to_owned(), stage: None });
                }
            }
        }
    }

    /// A finished job's outcome from its record, its preview read back from beside the store.
    async fn outcome_of(&self, record: JobRecord) -> Outcome {
        let (JobState::Succeeded, Some(result)) = (record.state, record.result) else {
            return Outcome::Ended {
                state: record.state,
                message: record.error.unwrap_or_else(|| {
                    format!("edit job {} ended {}", record.id, record.state.as_str())
                }),
                ending: Ending {
                    refused_by_api: !record.may_be_charged,
                    unsaved: record.unsaved,
                },
            };
        };
        // A reused result's pictures are kept under the job that made it.
        let owner = record
            .reused_from
            .clone()
            .unwrap_or_else(|| record.id.clone());
        let preview = match result.preview {
            Some(_) => self
                .inner
                .store
                .picture(KeptPicture::Preview, owner.clone())
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, job = %record.id, "could not read a job's preview");
                    None
                }),
            None => None,
        };
        let preview = match preview {
            Some(bytes) => Some(
                tokio::task::spawn_blocking(move || {
                    base64::engine::general_purpose::STANDARD
                        .encode(bytes)
                        .into()
                })
                .await
                .expect("encoding base64 does not panic"),
            ),
            None => None,
        };
        let usage =
            (record.credits_used.is_some() || record.tokens_used.is_some()).then_some(Usage {
                credits_used: record.credits_used,
                tokens_used: record.tokens_used,
            });
        let name_taken = name_taken(record.output_name.as_deref(), result.path.as_deref());
        let mut succeeded = Succeeded {
            preview,
            result,
            usage,
            reused_from: record.reused_from,
            name_taken,
        };
        self.with_preview(&owner, &mut succeeded).await;
        Outcome::Succeeded(Box::new(succeeded))
    }

    /// Job `id`'s record, when it belongs to `principal`; anyone else's is unknown.
    pub async fn record(&self, id: &str, principal: &str) -> Result<JobRecord, EditError> {
        let record = match self.inner.store.exists() {
            true => self
                .inner
                .store
                .get(id.to_owned())
                .await
                .map_err(EditError::StoreRead)?,
            false => None,
        };
        record
            .filter(|record| record.principal == principal)
            .ok_or_else(|| EditError::UnknownJob(reve_core::shorten(id)))
    }

    /// Job `id`'s record and where it is now, with one read of the store: what `tasks/get`
    /// reports.
    pub async fn snapshot(
        &self,
        id: &str,
        principal: &str,
    ) -> Result<(JobRecord, Waited), EditError> {
        let record = self.record(id, principal).await?;
        let live = self
            .lock_live()
            .get(id)
            .map(|job| job.status.borrow().clone());
        let job_id = id.to_owned();
        let waited = match live {
            Some(Status::Done(outcome)) => Waited::Finished { job_id, outcome },
            Some(Status::Working(stage)) => Waited::Running { job_id, stage },
            None if record.state.is_finished() => Waited::Finished {
                job_id,
                outcome: self.outcome_of(record.clone()).await,
            },
            None => Waited::Running {
                job_id,
                stage: None,
            },
        };
        Ok((record, waited))
    }

    /// Stops job `id` of `principal` as a cancellation would: at once while nothing is sent,
    /// otherwise only with [`JobOptions::cancel_aborts`].
    pub async fn cancel(&self, id: &str, principal: &str) -> Result<(), EditError> {
        let live = self
            .lock_live()
            .get(id)
            .filter(|job| job.principal == principal)
            .map(|job| (job.stop.clone(), Arc::clone(&job.sent)));
        match live {
            Some((stop, sent)) => {
                if self.inner.options.cancel_aborts || !sent.load(Ordering::SeqCst) {
                    stop.cancel();
                }
                Ok(())
            }
            None => match self.status(id, principal).await? {
                // Finished already, or run by another process: nothing to stop here.
                Waited::Finished { .. } | Waited::Running { .. } => Ok(()),
            },
        }
    }

    /// Stops every job not yet sent and waits up to `grace` for the rest to finish and be
    /// recorded: how a process ends without losing what it paid for.
    pub async fn drain(&self, grace: Duration) {
        for job in self.lock_live().values() {
            if self.inner.options.cancel_aborts || !job.sent.load(Ordering::SeqCst) {
                job.stop.cancel();
            }
        }
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "edit jobs were still running at exit; a restart resumes those whose result URL is known"
            );
        }
    }

    /// Finds the jobs that a process which has since died (or a replica whose lease lapsed)
    /// left unfinished, and settles each: resumes the download of a result whose URL is known,
    /// and marks the rest interrupted, saying whether it may have been charged for.
    pub async fn recover(&self) {
        if !self.inner.store.exists() {
            return;
        }
        let orphans = self
            .inner
            .store
            .orphans(self.inner.run.clone(), std::process::id())
            .await;
        match orphans {
            Ok(orphans) => {
                for job in orphans {
                    self.settle(job).await;
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for interrupted jobs"),
        }
    }

    /// Settles what dead processes left, once; with a store of leases (shared by replicas),
    /// keeps renewing this run's leases and looking for lapsed ones until the process ends.
    pub async fn look_after_jobs(&self) {
        self.recover().await;
        let Some(lease) = self.inner.store.lease() else {
            return;
        };
        let mut renewals = tokio::time::interval(lease / 3);
        let mut searches = tokio::time::interval(lease / 2);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        searches.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = renewals.tick() => {
                    let ids: Vec<String> = self.lock_live().keys().cloned().collect();
                    if let Err(error) = self.inner.store.renew(self.inner.run.clone(), ids).await {
                        tracing::warn!(%error, "could not renew the leases on this replica's jobs");
                    }
                }
                _ = searches.tick() => self.recover().await,
            }
        }
    }

    async fn settle(&self, job: JobRecord) {
        if job.reused_from.is_none() && self.finish_paid(&job).await {
            return;
        }
        let message = match (&job.reused_from, &job.generated_url) {
            (Some(other), _) => format!(
                "the server stopped while this call waited for the identical edit job {other}; \
                 collect that one with get_edit"
            ),

            (None, _) if !job.sent => {
                "the server stopped before this edit was sent to the API; nothing was charged; \
                 call edit_image again"
                    .to_owned()
            }
            (None, _) => format!(
                "the server stopped while {model} was working on this edit; the provider may \
                 have charged for it{request}. Call edit_image again to retry",
                model = reve_core::MODEL,
                request = job
                    .request_id
                    .as_deref()
                    .map(|id| format!(" (request id {id})"))
                    .unwrap_or_default(),
            ),
        };
        if let Err(error) = self
            .inner
            .store
            .finish(
                job.id.clone(),
                JobState::Interrupted,
                None,
                Some(message),
                Ending::default(),
            )
            .await
        {
            tracing::warn!(%error, job = %job.id, "could not mark the job interrupted");
        }
    }

    /// Finishes in this process a job whose result was paid for and not recorded saved: the file
    /// its run saved (a kill came between the rename and the end's record), or else its URL
    /// fetched and saved. Whether there was such a result to finish.
    async fn finish_paid(&self, job: &JobRecord) -> bool {
        if let Some((path, bytes)) = &job.saving
            && tokio::fs::metadata(path)
                .await
                .is_ok_and(|metadata| metadata.len() == *bytes)
        {
            tracing::info!(job = %job.id, %path, "recording a result saved but not recorded");
            self.adopt_saved(job.clone(), PathBuf::from(path));
            return true;
        }
        match &job.generated_url {
            Some(url) if job.sent => {
                tracing::info!(job = %job.id, "fetching and saving a result paid for earlier");
                self.resume(job.clone(), url.clone());
                true
            }
            _ => false,
        }
    }

    /// Takes up again job `id` of `principal` when it failed with its paid result unsaved (a
    /// full disk, say) and no process runs it: the save is retried, nothing is paid again.
    async fn retry_unsaved(&self, id: &str, principal: &str) -> Result<(), EditError> {
        if self.lock_live().contains_key(id) {
            return Ok(());
        }
        let record = self.record(id, principal).await?;
        if record.state != JobState::Failed || !record.unsaved {
            return Ok(());
        }
        let reopened = self
            .inner
            .store
            .reopen(id.to_owned(), self.inner.run.clone(), std::process::id())
            .await
            .map_err(EditError::StoreRead)?;
        if reopened && !self.finish_paid(&record).await {
            // Cannot happen (an unsaved job has its URL); ended again rather than left running.
            self.settle(record).await;
        }
        Ok(())
    }

    /// Fetches and saves the result of an adopted job, as its own run would have.
    fn resume(&self, job: JobRecord, url: String) {
        self.take_over(job, move |jobs, job, generated| async move {
            let folder = PathBuf::from(&job.stage_dir);
            let sent = AtomicBool::new(true);
            let journal = StoreJournal {
                jobs: &jobs,
                id: &job.id,
                principal: &job.principal,
                sent: &sent,
            };
            let generated = reve_core::Generated {
                url: Some(url),
                ..generated
            };
            jobs.inner
                .editor
                .resume(&generated, &folder, job.output_name.clone(), &journal)
                .await
        });
    }

    /// Records as succeeded an adopted job whose result its own run saved to `path` but did
    /// not record: nothing is fetched or saved again.
    fn adopt_saved(&self, job: JobRecord, path: PathBuf) {
        self.take_over(job, move |jobs, _job, generated| async move {
            jobs.inner.editor.saved_earlier(&generated, path).await
        });
    }

    /// Runs `finish_job` for an adopted job in this process, as its own run would have, and
    /// records how it ended.
    fn take_over<F, Finishing>(&self, job: JobRecord, finish_job: F)
    where
        F: FnOnce(Jobs, JobRecord, reve_core::Generated) -> Finishing + Send + 'static,
        Finishing: Future<Output = Result<Edited, EditError>> + Send,
    {
        let (status, receiver) = watch::channel(Status::Working(Some(Stage::Saving)));
        let stop = CancellationToken::new();
        self.lock_live().insert(
            job.id.clone(),
            Live {
                principal: job.principal.clone(),
                status: receiver,
                stop,
                sent: Arc::new(AtomicBool::new(true)),
            },
        );
        let jobs = self.clone();
        self.inner.tasks.spawn(async move {
            let generated = reve_core::Generated {
                url: job.generated_url.clone(),
                request_id: job.request_id.clone(),
                content_violation: None,
                usage: (job.credits_used.is_some() || job.tokens_used.is_some()).then_some(Usage {
                    credits_used: job.credits_used,
                    tokens_used: job.tokens_used,
                }),
            };
            let id = job.id.clone();
            let name_asked = job.output_name.clone();
            let outcome = match finish_job(jobs.clone(), job, generated).await {
                Ok(edited) => {
                    jobs.succeeded(&id, edited, None, name_asked.as_deref())
                        .await
                }
                Err(error) => ended(error, true),
            };
            jobs.finish(&id, outcome, status).await;
        });
    }
}

/// The pictures of a job, as resources show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// The saved full-resolution result.
    Result,
    /// The preview of the result: the picture the tool's result showed.
    Preview,
    /// The preview of the input picture, as it was sent.
    Input,
}

/// Tries a write that failed with `error` again, less and less often, for as long as the store
/// is unreachable rather than refusing it: how a job in flight while Redis is away is recorded
/// when Redis returns. Whether it was recorded in the end.
async fn until_stored<'a>(
    id: &str,
    mut error: StoreError,
    mut write: impl FnMut() -> store::StoreFuture<'a, ()>,
) -> bool {
    let mut pause = Duration::from_millis(250);
    while error.is_worth_retrying() {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        match write().await {
            Ok(()) => {
                tracing::info!(job = id, "recorded, now that the job store answers");
                return true;
            }
            Err(again) => error = again,
        }
    }
    tracing::error!(%error, job = id, "the job store refuses this record; it stays in memory only");
    false
}

/// The saved result of job `id`, byte for byte. The user may have moved or deleted it since:
/// that is said, with its path, rather than read as no picture.
async fn read_saved(
    id: &str,
    path: PathBuf,
    mime_type: String,
) -> Result<Option<(Vec<u8>, String)>, EditError> {
    let read = tokio::task::spawn_blocking(move || (std::fs::read(&path), path))
        .await
        .expect("reading a picture does not panic");
    match read {
        (Ok(bytes), _) => Ok(Some((bytes, mime_type))),
        (Err(error), path) => Err(EditError::Job(format!(
            "edit job {id} saved its result to {}, which cannot be read now: {error}",
            path.display()
        ))),
    }
}

/// The refusal of an edit at the daily limit, with what today's spending counted.
fn spending_limit(spending: Spending, limit: f64) -> EditError {
    let resets = std::time::UNIX_EPOCH + Duration::from_millis((now_ms() / DAY_MS + 1) * DAY_MS);
    EditError::SpendingLimit {
        spending,
        limit,
        resets: humantime::format_rfc3339_seconds(resets).to_string(),
    }
}

/// The name asked for (`output_name`, its extension corrected as the result's) when the saved
/// `path` is not one of the names it may take: another file had taken it, and the result was
/// saved beside it.
fn name_taken(output_name: Option<&str>, path: Option<&str>) -> Option<String> {
    use std::path::Path;
    let (asked, path) = (output_name?, path?);
    let saved_as = Path::new(path).file_name()?.to_str()?;
    let possible = reve_core::possible_file_names(asked).ok()?;
    if possible.iter().any(|name| name == saved_as) {
        return None;
    }
    let extension = Path::new(saved_as).extension();
    let taken = possible
        .iter()
        .find(|name| Path::new(name).extension() == extension);
    Some(taken.map_or(asked, String::as_str).to_owned())
}

/// How a job that did not succeed ended, and what its message tells the caller.
fn ended(error: EditError, sent: bool) -> Outcome {
    use reve_core::Error as Api;
    // A result the API produced and that was paid for, which could not be saved while its
    // URL may still serve it (a 4xx from its host says it no longer does).
    let unsaved = matches!(
        &error,
        EditError::Save { url: Some(_), source }
            if !matches!(source, Api::Download { status: 400..=499, .. })
    );
    let refused_by_api = !sent
        || matches!(
            error,
            EditError::Api(
                Api::Api { .. }
                    | Api::Authentication { .. }
                    | Api::InsufficientCredits { .. }
                    | Api::RateLimited { .. }
                    | Api::InvalidInput { .. }
                    | Api::MissingApiKey
            )
        );
    match error {
        EditError::Cancelled => Outcome::Ended {
            state: JobState::Cancelled,
            ending: Ending {
                refused_by_api,
                unsaved,
            },
            message: if sent {
                "the edit was cancelled after its request was sent; the provider may have \
                 charged for it"
                    .to_owned()
            } else {
                "the edit was cancelled before anything was sent to the API; nothing was charged"
                    .to_owned()
            },
        },
        error => Outcome::Ended {
            state: JobState::Failed,
            message: if unsaved {
                format!(
                    "{error}; call get_edit with this job's id (or this call again) once that is \
                     fixed, and the paid result is saved without paying again"
                )
            } else {
                error.to_string()
            },
            ending: Ending {
                refused_by_api,
                unsaved,
            },
        },
    }
}

/// What tells two calls apart: who asked, under which API key (a fingerprint of it: results
/// paid under one key are not handed out under another), where the result goes, and the
/// request itself (the input picture's bytes, as base64, the prompt and every vendor field). A
/// hash: neither the picture nor the key is stored.
fn fingerprint(
    principal: &str,
    api_key: &str,
    body: &RequestBody,
    destination: &Destination,
) -> String {
    let mut hasher = Sha256::new();
    for part in [
        principal.as_bytes(),
        api_key.as_bytes(),
        destination.folder.as_os_str().as_encoded_bytes(),
        destination.name.as_deref().unwrap_or("").as_bytes(),
        body.as_json(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A job's stages, for whoever waits on it.
struct WatchProgress<'a>(&'a watch::Sender<Status>);

impl Progress for WatchProgress<'_> {
    async fn report(&self, stage: Stage) {
        self.0.send_replace(Status::Working(Some(stage)));
    }
}

/// Writes a job's two moments into the store.
struct StoreJournal<'a> {
    jobs: &'a Jobs,
    id: &'a str,
    principal: &'a str,
    sent: &'a AtomicBool,
}

impl Journal for StoreJournal<'_> {
    async fn before_sending(
        &self,
        body: &RequestBody,
        destination: &Destination,
    ) -> Result<Decision, EditError> {
        let api_key = self
            .jobs
            .inner
            .editor
            .api_key_fingerprint()
            .unwrap_or_default();
        let fingerprint = fingerprint(self.principal, &api_key, body, destination);
        let options = &self.jobs.inner.options;
        let mut rules = ClaimRules {
            reuse_window: options.reuse_window,
            // The server never fetches a URL input, so the same URL may hold another picture
            // by now: only an identical call still running is the same edit for sure.
            reuse_finished: body.inline_image_base64().is_some(),
            may_send: destination.taken.is_none(),
            passed_over: Vec::new(),
            daily_limit: options.max_credits_per_day,
        };
        loop {
            let claim = self
                .jobs
                .inner
                .store
                .claim(self.id.to_owned(), fingerprint.clone(), rules.clone())
                .await?;
            match claim {
                Claim::Send => {
                    self.sent.store(true, Ordering::SeqCst);
                    return Ok(Decision::Send);
                }
                Claim::Reuse(other) => {
                    // Bounded: each pass leaves out one more job.
                    if rules.passed_over.len() < 8 && self.jobs.result_is_gone(&other).await? {
                        tracing::info!(job = self.id, gone = %other, "not reusing an identical job whose saved result is gone");
                        rules.passed_over.push(other);
                        continue;
                    }
                    return Ok(Decision::Reuse(other));
                }
                Claim::NotSent => {
                    let taken = destination.taken.as_ref().map_or_else(
                        || destination.folder.display().to_string(),
                        |taken| taken.display().to_string(),
                    );
                    return Err(EditError::OutputExists(taken));
                }
                Claim::Hold => return Ok(Decision::Hold),
                Claim::OverLimit(spending) => {
                    return Err(spending_limit(
                        spending,
                        rules.daily_limit.unwrap_or_default(),
                    ));
                }
            }
        }
    }

    async fn saving(&self, path: &std::path::Path, bytes: u64) {
        if let Err(error) = self
            .jobs
            .inner
            .store
            .set_saving(self.id.to_owned(), path.display().to_string(), bytes)
            .await
        {
            // The save goes on: the result matters more than its record.
            tracing::warn!(%error, job = self.id, "could not record the name the result is saved under; a kill before the end's record would save it again");
        }
    }

    async fn generated(&self, generated: reve_core::Generated) {
        let store = &self.jobs.inner.store;
        let Err(error) = store
            .set_generated(self.id.to_owned(), generated.clone())
            .await
        else {
            return;
        };
        tracing::warn!(%error, job = self.id, "could not record the API's answer; until it is, a restart could not resume this download");
        // The download goes on meanwhile.
        let jobs = self.jobs.clone();
        let id = self.id.to_owned();
        self.jobs.inner.tasks.spawn(async move {
            until_stored(&id, error, || {
                jobs.inner
                    .store
                    .set_generated(id.clone(), generated.clone())
            })
            .await;
        });
    }

    async fn input_seen(&self, input: &InputPicture) {
        self.jobs
            .keep_picture(KeptPicture::Input, self.id, &input.preview.base64)
            .await;
    }
}

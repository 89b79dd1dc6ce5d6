//! Running a job: its submission, the pipeline run in the background with a journal that records
//! each step in the store before it matters (the request sent, the result named, the answer
//! received), and how the job ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reve_core::RequestBody;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::store::{
    self, Claim, ClaimRules, DAY_MS, JobInput, JobResult, KeptPicture, LimitVerdict, Spending,
    StoreError, now_ms,
};
use super::{
    Ending, JobError, JobRecord, JobState, Jobs, Live, Outcome, Status, Succeeded, Waited,
};
use crate::edit::{
    Decision, Destination, EditError, Edited, InputPicture, Journal, LocalFiles, Prepared,
    Progress, Ran, Stage,
};
use crate::generated::EditImageArguments;

impl Jobs {
    /// Checks an edit, records it as a job of `principal` and starts it; returns its id at once.
    /// Every refusal here (bad arguments, the spending limit, a store that cannot be written)
    /// comes before anything is sent.
    pub async fn submit(
        &self,
        arguments: EditImageArguments,
        local_files: LocalFiles,
        principal: &str,
    ) -> Result<String, JobError> {
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

    pub(super) async fn check_spending(&self) -> Result<(), JobError> {
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

    pub(super) fn start(&self, id: String, principal: String, prepared: Prepared) {
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
                    reused = jobs.reuse(&principal, &other, &progress) => {
                        reused.map_err(JobError::into_edit_error)
                    }
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
    pub(super) async fn succeeded(
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
        let preview = edited.preview.map(|preview| preview.bytes);
        if let Some(preview) = &preview {
            self.keep_picture(KeptPicture::Preview, id, preview.clone())
                .await;
        }
        Outcome::Succeeded(Box::new(Succeeded {
            result,
            preview,
            usage: edited.metadata.usage,
            reused_from,
            name_taken,
        }))
    }

    /// The outcome of the job this one attached to, as this job's own.
    pub(super) async fn reuse(
        &self,
        principal: &str,
        other: &str,
        progress: &WatchProgress<'_>,
    ) -> Result<Outcome, JobError> {
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
    pub(super) async fn finish(&self, id: &str, outcome: Outcome, status: watch::Sender<Status>) {
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
}

/// Tries a write that failed with `error` again, less and less often, for as long as the store
/// is unreachable rather than refusing it: how a job in flight while Redis is away is recorded
/// when Redis returns. Whether it was recorded in the end.
pub(super) async fn until_stored<'a>(
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

/// The refusal of an edit at the daily limit, with what today's spending counted.
pub(super) fn spending_limit(spending: Spending, limit: f64) -> JobError {
    let resets = std::time::UNIX_EPOCH + Duration::from_millis((now_ms() / DAY_MS + 1) * DAY_MS);
    JobError::SpendingLimit {
        spending,
        limit,
        resets: humantime::format_rfc3339_seconds(resets).to_string(),
    }
}

/// The name asked for (`output_name`, its extension corrected as the result's) when the saved
/// `path` is not one of the names it may take: another file had taken it, and the result was
/// saved beside it.
pub(super) fn name_taken(output_name: Option<&str>, path: Option<&str>) -> Option<String> {
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
pub(super) fn ended(error: EditError, sent: bool) -> Outcome {
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
pub(super) fn fingerprint(
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
pub(super) struct WatchProgress<'a>(&'a watch::Sender<Status>);

impl Progress for WatchProgress<'_> {
    async fn report(&self, stage: Stage) {
        self.0.send_replace(Status::Working(Some(stage)));
    }
}

/// Writes a job's two moments into the store.
pub(super) struct StoreJournal<'a> {
    pub(super) jobs: &'a Jobs,
    pub(super) id: &'a str,
    pub(super) principal: &'a str,
    pub(super) sent: &'a AtomicBool,
}

impl Journal for StoreJournal<'_> {
    async fn before_sending(
        &self,
        body: &RequestBody,
        destination: &Destination,
    ) -> Result<Decision, EditError> {
        self.decide(body, destination)
            .await
            .map_err(JobError::into_edit_error)
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
            .keep_picture(KeptPicture::Input, self.id, input.preview.bytes.clone())
            .await;
    }
}

impl StoreJournal<'_> {
    /// Claims the job's fingerprint in the store: send, reuse an identical job, hold for the
    /// edits in flight, or refuse (a taken name, the spending limit).
    async fn decide(
        &self,
        body: &RequestBody,
        destination: &Destination,
    ) -> Result<Decision, JobError> {
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
                    return Err(EditError::OutputExists(taken).into());
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
}

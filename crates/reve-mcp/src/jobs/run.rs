//! Running a job: its submission, the pipeline run in the background with a journal that records
//! each step in the store before it matters (the request sent, the result named, the answer
//! received), and how the job ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reve_core::RequestBody;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::store::{
    self, Claim, ClaimRules, Cost, DAY_MS, KeptPicture, LimitVerdict, Payload, Spending,
    StoreError, UsdLimit, now_ms,
};
use super::{Ending, JobError, JobRecord, JobState, Jobs, Live, Outcome, Succeeded, Waited};
use crate::edit::{
    Decision, Destination, EditError, Edited, InputPicture, Journal, LocalFiles, Prepared,
    Progress, Ran, Stage,
};
use crate::generated::ToolArguments;
use crate::generation::{Answer, Saving};

impl Jobs {
    /// Checks an edit, records it as a job of `principal` and starts it; returns its id at once.
    /// Every refusal here (bad arguments, the spending limit, a store that cannot be written)
    /// comes before anything is sent.
    pub async fn submit(
        &self,
        mut arguments: ToolArguments,
        local_files: LocalFiles,
        principal: &str,
    ) -> Result<String, JobError> {
        let (parents, saved_files) = self.resolve_references(&mut arguments, principal).await?;
        let prepared = self
            .inner
            .editor
            .prepare(arguments, local_files)?
            .with_parents(parents, saved_files);
        self.check_spending(&prepared.generation().model).await?;
        let id = new_job_id();
        let record = JobRecord::queued(
            id.clone(),
            principal.to_owned(),
            prepared.generation().clone(),
            self.inner.run.clone(),
        );
        let payload = record.payload.clone();
        self.inner.store.insert(record).await?;
        self.start(id.clone(), principal.to_owned(), prepared, payload);
        Ok(id)
    }

    /// Refuses an edit of `model` before it is recorded when today's spending already
    /// reaches a limit (or would pass the one in US dollars at the model's price); one that
    /// waits for the edits in flight is held before sending instead.
    pub(super) async fn check_spending(&self, model: &str) -> Result<(), JobError> {
        let options = &self.inner.options;
        if options.max_credits_per_day.is_none() && options.max_usd_per_day.is_none() {
            return Ok(());
        }
        let spending = self.inner.store.spending_today().await?;
        if let Some(limit) = options.max_credits_per_day
            && spending.verdict(limit) == LimitVerdict::Over
        {
            return Err(spending_limit(spending, limit));
        }
        if let Some(limit) = self.usd_limit()
            && spending.verdict_usd(&limit, model) == LimitVerdict::Over
        {
            return Err(usd_limit(spending, &limit, model));
        }
        Ok(())
    }

    /// The limit in US dollars, with the prices as last read.
    pub(super) fn usd_limit(&self) -> Option<UsdLimit> {
        Some(UsdLimit {
            per_day: self.inner.options.max_usd_per_day?,
            prices: self.prices(),
        })
    }

    pub(super) fn start(
        &self,
        id: String,
        principal: String,
        prepared: Prepared,
        payload: Payload,
    ) {
        self.keep_leases();
        let (status, receiver) = watch::channel(Waited::Running {
            job_id: id.clone(),
            stage: None,
        });
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
            let journal = StoreJournal::new(&jobs, &id, &principal, &sent, payload);
            let progress = WatchProgress(&status);
            let ran = jobs
                .inner
                .editor
                .run(prepared, &progress, &journal, &stop)
                .await;
            let outcome = match ran {
                Ok(Ran::Edited(edited)) => Ok(Jobs::succeeded(*edited)),
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
            jobs.finish(&id, outcome, journal.latest(), status).await;
        });
    }

    /// A finished edit as a job's success (its preview is kept beside the store as the end is
    /// recorded, by [`Self::finish`]).
    pub(super) fn succeeded(edited: Edited) -> Outcome {
        Outcome::Succeeded(Box::new(Succeeded {
            generation: edited.generation,
            preview: edited.preview,
            cost: edited.cost,
            reused_from: None,
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
                    cost: None,
                    reused_from: Some(other.to_owned()),
                    ..*succeeded
                };
                self.with_preview(other, &mut succeeded).await;
                Outcome::Succeeded(Box::new(succeeded))
            }
            Outcome::Ended { ending, message } => Outcome::Ended {
                message: match ending.state {
                    JobState::Cancelled => format!(
                        "{message} (this call joined the identical edit job {other}, which its \
                         caller gave up; nothing was sent for this call: call again to send it)"
                    ),
                    _ => format!("{message} (this call reused edit job {other})"),
                },
                // Nothing was sent for this job.
                ending: Ending {
                    state: ending.state,
                    refused_by_api: true,
                    unsaved: false,
                },
            },
        })
    }

    /// Records how a job ended, with its generation as of `latest` (or a success's), and tells
    /// whoever waits.
    pub(super) async fn finish(
        &self,
        id: &str,
        outcome: Outcome,
        latest: Payload,
        status: watch::Sender<Waited>,
    ) {
        // Usage and reuse were recorded when they became known.
        let (ending, error, payload) = match &outcome {
            Outcome::Succeeded(succeeded) => (
                Ending::plain(JobState::Succeeded),
                None,
                latest.next(|generation| *generation = succeeded.generation.clone()),
            ),
            Outcome::Ended { ending, message } => {
                let ending = Ending {
                    // Unsaved only if there is a URL to fetch the paid result from again.
                    unsaved: ending.unsaved && latest.generation.published_url().is_some(),
                    ..*ending
                };
                (ending, Some(message.clone()), latest.next(|_| {}))
            }
        };
        // A success's preview is kept as its end is recorded, and both are done before anyone
        // hears of the end, so that whoever asks for the job then finds its preview too.
        let preview = match &outcome {
            Outcome::Succeeded(succeeded) => succeeded.preview.clone(),
            Outcome::Ended { .. } => None,
        };
        let keep = async {
            if let Some(preview) = preview {
                self.keep_picture(KeptPicture::Preview, id, preview).await;
            }
        };
        let record =
            self.inner
                .store
                .finish(id.to_owned(), ending, error.clone(), Some(payload.clone()));
        let (recorded, ()) = tokio::join!(record, keep);
        status.send_replace(Waited::Finished {
            job_id: id.to_owned(),
            outcome,
        });
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
                            ending,
                            error.clone(),
                            Some(payload.clone()),
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

/// A new job's id: 128 random bits as 32 hex digits, which `get_edit` takes, and which the
/// provider keeps as a client request id (its usage logs then find the job's request by it).
pub(super) fn new_job_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
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

/// The refusal of an edit of `model` at the limit in US dollars.
pub(super) fn usd_limit(spending: Spending, limit: &UsdLimit, model: &str) -> JobError {
    let resets = std::time::UNIX_EPOCH + Duration::from_millis((now_ms() / DAY_MS + 1) * DAY_MS);
    JobError::UsdLimit {
        price: spending.usd_cost_of(model, limit),
        model: model.to_owned(),
        spending,
        limit: limit.per_day,
        resets: humantime::format_rfc3339_seconds(resets).to_string(),
    }
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
            ending: Ending {
                state: JobState::Cancelled,
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
            message: if unsaved {
                format!(
                    "{error}; call get_edit with this job's id (or this call again) once that is \
                     fixed, and the paid result is saved without paying again"
                )
            } else {
                error.to_string()
            },
            ending: Ending {
                state: JobState::Failed,
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
pub(super) struct WatchProgress<'a>(pub(super) &'a watch::Sender<Waited>);

impl Progress for WatchProgress<'_> {
    async fn report(&self, stage: Stage) {
        self.0.send_modify(|waited| {
            if let Waited::Running { stage: now, .. } = waited {
                *now = Some(stage);
            }
        });
    }
}

/// Writes the moments of a job that matter for money into the store, each with the job's
/// generation as it then is.
pub(super) struct StoreJournal<'a> {
    jobs: &'a Jobs,
    id: &'a str,
    principal: &'a str,
    sent: &'a AtomicBool,
    /// The generation as last written (or about to be).
    payload: Mutex<Payload>,
}

impl<'a> StoreJournal<'a> {
    pub(super) fn new(
        jobs: &'a Jobs,
        id: &'a str,
        principal: &'a str,
        sent: &'a AtomicBool,
        payload: Payload,
    ) -> StoreJournal<'a> {
        StoreJournal {
            jobs,
            id,
            principal,
            sent,
            payload: Mutex::new(payload),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Payload> {
        self.payload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The generation as last recorded.
    pub(super) fn latest(&self) -> Payload {
        self.lock().clone()
    }

    /// The next revision of the generation, changed by `change`.
    fn advance(&self, change: impl FnOnce(&mut crate::generation::Generation)) -> Payload {
        let mut payload = self.lock();
        *payload = payload.next(change);
        payload.clone()
    }
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

    /// The job's id: every id this server makes is one the API keeps (a test proves it).
    fn client_request_id(&self) -> Option<reve_core::ClientRequestId> {
        reve_core::ClientRequestId::new(self.id).ok()
    }

    async fn saving(&self, path: &std::path::Path, bytes: u64) {
        let payload = self.advance(|generation| {
            generation.saving = Some(Saving {
                path: path.display().to_string(),
                bytes,
            });
        });
        if let Err(error) = self
            .jobs
            .inner
            .store
            .update(self.id.to_owned(), payload)
            .await
        {
            // The save goes on: the result matters more than its record.
            tracing::warn!(%error, job = self.id, "could not record the name the result is saved under; a kill before the end's record would save it again");
        }
    }

    async fn generated(&self, generated: reve_core::Generated) {
        let payload = self.advance(|generation| generation.answer = Some(Answer::from(&generated)));
        let cost = Cost::of_answer(generated.usage, &generated.charge);
        let store = &self.jobs.inner.store;
        let Err(error) = store
            .answered(self.id.to_owned(), cost, payload.clone())
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
                jobs.inner.store.answered(id.clone(), cost, payload.clone())
            })
            .await;
        });
    }

    async fn retrying(&self, attempt: u32) -> bool {
        let payload = self.advance(|generation| generation.attempts = Some(attempt));
        match self
            .jobs
            .inner
            .store
            .update(self.id.to_owned(), payload)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                // Unrecorded, a retry charged but never listed could be settled "not charged".
                tracing::warn!(%error, job = self.id, attempt, "could not record a retry of the request; not sending it");
                false
            }
        }
    }

    async fn input_seen(&self, index: usize, input: &InputPicture) {
        self.jobs
            .keep_picture(
                KeptPicture::Input(index),
                self.id,
                input.preview.bytes.clone(),
            )
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
            usd_limit: self.jobs.usd_limit(),
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
                    if rules.passed_over.len() < 8 && self.jobs.is_stopping(&other) {
                        // Its caller gave it up (and its request with it) a moment ago: joining
                        // it would end this call as cancelled too, which no one asked for.
                        tracing::info!(job = self.id, stopping = %other, "not reusing an identical job that is being stopped");
                        rules.passed_over.push(other);
                        continue;
                    }
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
                Claim::OverUsdLimit(spending) => {
                    let limit = rules.usd_limit.as_ref().expect("refused at a limit it has");
                    let model = body.model().id;
                    return Err(usd_limit(spending, limit, model));
                }
            }
        }
    }
}

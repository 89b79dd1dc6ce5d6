//! Waiting for a job: live, through the channel of a job this process runs, or in the store for a
//! job another process runs; and cancelling one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store::Settled;
use super::{
    Ending, JobError, JobRecord, JobState, Jobs, KeptPicture, Outcome, POLL_INTERVAL, Succeeded,
    Waited,
};
use crate::edit::{EditError, Progress};

impl Jobs {
    /// Waits for job `id` of `principal` up to [`JobOptions::max_wait`], reporting its stages
    /// to `progress`. `cancel` is the caller's: when it fires the caller stops waiting, and the
    /// job stops too unless its request was sent (see [`JobOptions::cancel_aborts`]).
    pub async fn wait(
        &self,
        id: &str,
        principal: &str,
        progress: &impl Progress,
        cancel: Option<&CancellationToken>,
    ) -> Result<Waited, JobError> {
        self.retry_unsaved(id, principal).await?;
        self.wait_for(id, principal, self.inner.options.max_wait, progress, cancel)
            .await
    }

    /// Where job `id` is now, without waiting.
    pub async fn status(&self, id: &str, principal: &str) -> Result<Waited, JobError> {
        self.wait_for(id, principal, Some(Duration::ZERO), &(), None)
            .await
    }

    pub(super) async fn wait_for(
        &self,
        id: &str,
        principal: &str,
        max_wait: Option<Duration>,
        progress: &impl Progress,
        cancel: Option<&CancellationToken>,
    ) -> Result<Waited, JobError> {
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
                finished @ Waited::Finished { .. } => return Ok(finished),
                Waited::Running { stage, .. } => {
                    if let Some(stage) = stage {
                        progress.report(stage).await;
                    }
                    tokio::select! {
                        biased;
                        changed = status.changed() => {
                            if changed.is_err() {
                                // The job's task ended without a word: it panicked.
                                return Err(JobError::Stopped(id.to_owned()));
                            }
                        }
                        () = &mut cancelled => {
                            if self.inner.options.cancel_aborts || !sent.load(Ordering::SeqCst) {
                                stop.cancel();
                            } else {
                                tracing::info!(job = id, "the call was cancelled after its request was sent; the job finishes in the background");
                            }
                            return Err(EditError::Cancelled.into());
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
    pub(super) async fn wait_in_store(
        &self,
        id: &str,
        principal: &str,
        until_deadline: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Waited, JobError> {
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
    pub(super) async fn outcome_of(&self, record: JobRecord) -> Outcome {
        let cost = record.cost();
        let JobRecord {
            id,
            state,
            error,
            may_be_charged,
            settled,
            unsaved,
            reused_from,
            payload,
            ..
        } = record;
        let generation = payload.generation;
        let (JobState::Succeeded, Some(result)) = (state, &generation.result) else {
            return Outcome::Ended {
                message: error.unwrap_or_else(|| format!("edit job {id} ended {}", state.as_str())),
                ending: Ending {
                    state,
                    // Nothing was charged: the API refused it, or its logs said so; never one
                    // whose cost was reported.
                    refused_by_api: !may_be_charged
                        && settled != Some(Settled::Charged)
                        && cost.is_none(),
                    unsaved,
                },
            };
        };
        // A reused result's pictures are kept under the job that made it.
        let owner = reused_from.clone().unwrap_or_else(|| id.clone());
        let preview = match result.preview {
            Some(_) => self
                .inner
                .store
                .picture(KeptPicture::Preview, owner.clone())
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, job = %id, "could not read a job's preview");
                    None
                }),
            None => None,
        };
        let mut succeeded = Succeeded {
            preview: preview.map(bytes::Bytes::from),
            generation,
            cost,
            reused_from,
        };
        self.with_preview(&owner, &mut succeeded).await;
        Outcome::Succeeded(Box::new(succeeded))
    }

    /// Job `id`'s record, when it belongs to `principal`; anyone else's is unknown.
    pub async fn record(&self, id: &str, principal: &str) -> Result<JobRecord, JobError> {
        self.inner
            .store
            .get(id.to_owned())
            .await
            .map_err(JobError::StoreRead)?
            .filter(|record| record.principal == principal)
            .ok_or_else(|| JobError::UnknownJob(reve_core::workspace::shorten(id)))
    }

    /// Job `id`'s record and where it is now, with one read of the store: what `tasks/get`
    /// reports.
    pub async fn snapshot(
        &self,
        id: &str,
        principal: &str,
    ) -> Result<(JobRecord, Waited), JobError> {
        let record = self.record(id, principal).await?;
        let live = self
            .lock_live()
            .get(id)
            .map(|job| job.status.borrow().clone());
        let job_id = id.to_owned();
        let waited = match live {
            Some(waited) => waited,
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
    pub async fn cancel(&self, id: &str, principal: &str) -> Result<(), JobError> {
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

    /// Whether job `id` runs in this process and is being stopped: its caller gave it up, and
    /// its end is not recorded yet.
    pub(super) fn is_stopping(&self, id: &str) -> bool {
        self.lock_live()
            .get(id)
            .is_some_and(|job| job.stop.is_cancelled())
    }

    /// Stops every job not yet sent and waits up to `grace` for the rest to finish and be
    /// recorded: how a process ends without losing what it paid for.
    pub async fn drain(&self, grace: Duration) {
        if self.inner.options.cancel_aborts {
            self.stop_all();
        } else {
            self.stop_unsent();
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

    /// Stops every job of this process whose request is not sent yet, and says how many have
    /// sent theirs: those run on, to be saved (the first Ctrl-C of `reve-mcp edit`).
    pub fn stop_unsent(&self) -> usize {
        let mut sent = 0;
        for job in self.lock_live().values() {
            if job.sent.load(Ordering::SeqCst) {
                sent += 1;
            } else {
                job.stop.cancel();
            }
        }
        sent
    }

    /// Stops every job of this process, sent or not, giving up results that are most likely
    /// charged for (the second Ctrl-C of `reve-mcp edit`); says how many had been sent.
    pub fn stop_all(&self) -> usize {
        let live = self.lock_live();
        for job in live.values() {
            job.stop.cancel();
        }
        live.values()
            .filter(|job| job.sent.load(Ordering::SeqCst))
            .count()
    }
}

//! After a restart, or when another process died: jobs whose owner is gone are taken over and
//! settled, finishing what was paid for (a saved file recorded, a published result fetched) and
//! marking the rest interrupted with what they may have cost.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use reve_core::Usage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::run::{StoreJournal, ended};
use super::{Ending, JobError, JobRecord, JobState, Jobs, Live, Status};
use crate::edit::{EditError, Edited, Stage};

impl Jobs {
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

    pub(super) async fn settle(&self, job: JobRecord) {
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
    pub(super) async fn finish_paid(&self, job: &JobRecord) -> bool {
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
    pub(super) async fn retry_unsaved(&self, id: &str, principal: &str) -> Result<(), JobError> {
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
            .map_err(JobError::StoreRead)?;
        if reopened && !self.finish_paid(&record).await {
            // Cannot happen (an unsaved job has its URL); ended again rather than left running.
            self.settle(record).await;
        }
        Ok(())
    }

    /// Fetches and saves the result of an adopted job, as its own run would have.
    pub(super) fn resume(&self, job: JobRecord, url: String) {
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
    pub(super) fn adopt_saved(&self, job: JobRecord, path: PathBuf) {
        self.take_over(job, move |jobs, _job, generated| async move {
            jobs.inner.editor.saved_earlier(&generated, path).await
        });
    }

    /// Runs `finish_job` for an adopted job in this process, as its own run would have, and
    /// records how it ended.
    pub(super) fn take_over<F, Finishing>(&self, job: JobRecord, finish_job: F)
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

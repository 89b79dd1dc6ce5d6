//! After a restart, or when another process died: jobs whose owner is gone are taken over and
//! settled, finishing what was paid for (a saved file recorded, a published result fetched) and
//! marking the rest interrupted with what they may have cost.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::run::{StoreJournal, ended};
use super::{Ending, Inner, JobError, JobRecord, JobState, Jobs, Live, Waited};
use crate::edit::Stage;

impl Jobs {
    /// Finds the jobs that a process which has since died (or a replica whose lease lapsed)
    /// left unfinished, and settles each: resumes the download of a result whose URL is known,
    /// and marks the rest interrupted, saying whether it may have been charged for.
    pub async fn recover(&self) {
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

    /// Settles what dead processes left, then keeps looking for jobs whose owner's lease
    /// ended, every half lease, and settles from the provider's usage logs the jobs that may
    /// have been charged, until the process ends: what a server does beside serving.
    pub async fn look_after_jobs(&self) {
        let recovering = async {
            let mut searches = tokio::time::interval(self.inner.store.lease() / 2);
            searches.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                searches.tick().await;
                self.recover().await;
            }
        };
        // Apart, so that slow logs never delay taking over a dead process's jobs.
        let settling = async {
            let mut passes = tokio::time::interval(super::reconcile::EVERY);
            passes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                passes.tick().await;
                self.reconcile().await;
            }
        };
        tokio::join!(recovering, settling);
    }

    /// What [`Jobs::look_after_jobs`] does, once: for a command that lists jobs with no server
    /// running. What the usage logs settled.
    pub async fn look_after_once(&self) -> super::Reconciled {
        self.recover().await;
        self.reconcile().await
    }

    /// Renews this run's leases on the jobs it runs every third of a lease, from the first job
    /// it starts until `Jobs` is dropped: every process that runs jobs (a server, the command
    /// line) holds them this way, so no survivor takes over a job that is alive.
    pub(super) fn keep_leases(&self) {
        if self.inner.keeping_leases.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.store.lease() / 3;
        tokio::spawn(async move {
            let mut renewals = tokio::time::interval(every);
            renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            renewals.tick().await;
            loop {
                renewals.tick().await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let jobs = Jobs { inner };
                let ids: Vec<String> = jobs.lock_live().keys().cloned().collect();
                if ids.is_empty() {
                    continue;
                }
                if let Err(error) = jobs.inner.store.renew(jobs.inner.run.clone(), ids).await {
                    tracing::warn!(%error, "could not renew the leases on this process's jobs");
                }
            }
        });
    }

    pub(super) async fn settle(&self, job: JobRecord) {
        if job.reused_from.is_none() && self.finish_paid(&job).await {
            return;
        }
        let message = match &job.reused_from {
            Some(other) => format!(
                "the server stopped while this call waited for the identical edit job {other}; \
                 collect that one with get_edit"
            ),

            None if !job.sent => {
                "the server stopped before this edit was sent to the API; nothing was charged; \
                 call edit_image again"
                    .to_owned()
            }
            None => format!(
                "the server stopped while {model} was working on this edit; the provider may \
                 have charged for it{request}. Call edit_image again to retry",
                model = job.generation().model,
                request = job
                    .generation()
                    .request_id()
                    .map(|id| format!(" (request id {id})"))
                    .unwrap_or_default(),
            ),
        };
        if let Err(error) = self
            .inner
            .store
            .finish(
                job.id.clone(),
                Ending::plain(JobState::Interrupted),
                Some(message),
                None,
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
        if let Some(saving) = &job.generation().saving
            && tokio::fs::metadata(&saving.path)
                .await
                .is_ok_and(|metadata| metadata.len() == saving.bytes)
        {
            let path = PathBuf::from(&saving.path);
            tracing::info!(job = %job.id, path = %saving.path, "recording a result saved but not recorded");
            self.adopt_saved(job.clone(), path);
            return true;
        }
        match job.generation().published_url() {
            Some(_) if job.sent => {
                tracing::info!(job = %job.id, "fetching and saving a result paid for earlier");
                self.resume(job.clone());
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
    pub(super) fn resume(&self, job: JobRecord) {
        self.take_over(job, Adoption::Fetch);
    }

    /// Records as succeeded an adopted job whose result its own run saved to `path` but did
    /// not record: nothing is fetched or saved again.
    pub(super) fn adopt_saved(&self, job: JobRecord, path: PathBuf) {
        self.take_over(job, Adoption::Saved(path));
    }

    /// Finishes an adopted job in this process, as its own run would have, and records how it
    /// ended. Its usage is the one its record has: nothing is paid again.
    fn take_over(&self, job: JobRecord, adoption: Adoption) {
        self.keep_leases();
        let (status, receiver) = watch::channel(Waited::Running {
            job_id: job.id.clone(),
            stage: Some(Stage::Saving),
        });
        self.lock_live().insert(
            job.id.clone(),
            Live {
                principal: job.principal.clone(),
                status: receiver,
                stop: CancellationToken::new(),
                sent: Arc::new(AtomicBool::new(true)),
            },
        );
        let jobs = self.clone();
        self.inner.tasks.spawn(async move {
            let sent = AtomicBool::new(true);
            let journal =
                StoreJournal::new(&jobs, &job.id, &job.principal, &sent, job.payload.clone());
            let generation = job.payload.generation.clone();
            let finished = match adoption {
                Adoption::Fetch => jobs.editor().resume(generation, &journal).await,
                Adoption::Saved(path) => jobs.editor().saved_earlier(generation, path).await,
            };
            let outcome = match finished {
                Ok(mut edited) => {
                    edited.cost = job.cost();
                    Jobs::succeeded(edited)
                }
                Err(error) => ended(error, true),
            };
            jobs.finish(&job.id, outcome, journal.latest(), status)
                .await;
        });
    }
}

/// How an adopted job's paid result is finished.
enum Adoption {
    /// Fetched from its published URL and saved.
    Fetch,
    /// Found saved at this path by its own run, and only recorded.
    Saved(PathBuf),
}

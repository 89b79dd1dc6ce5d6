//! Settling from the provider's usage logs the jobs that may have been charged.
//!
//! A job whose request was sent and whose answer never came (a kill while the API worked, a
//! broken connection, a cancellation after sending) may or may not have been charged. Every
//! request carries its job's id as `X-Client-Request-Id`, and the usage logs (`GET /v2/logs`)
//! list every request with that id, failed ones at cost 0. So a job is settled from them:
//! charged (at the cost they give), or not charged once every attempt it made (each retry is
//! recorded before it is sent) is listed as failed and some time has passed. A job not listed
//! yet is asked about again later, less and less often and a bounded number of times: no
//! answer is ever taken as "not charged". What a charged job made cannot be had from the logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reve_core::{LOGS_MAX_PAGE, LOGS_MAX_WINDOW_DAYS, LogRow, LogStatus, LogsQuery};

use super::Jobs;
use super::store::{Cost, JobRecord, Settlement};

/// The jobs looked at per pass, oldest first.
const JOBS_PER_PASS: u32 = 50;
/// Pages of logs read per model and pass, at most: with a pass every [`EVERY`], a few of the
/// logs' 200 requests a minute, which every replica of a shared store spends from.
const PAGES_PER_PASS: u64 = 5;
/// How often a server settles from the logs.
pub(super) const EVERY: Duration = Duration::from_secs(15);
/// How long before a job's creation its window of logs starts: room for the clocks of this
/// machine and of the provider to disagree.
const CLOCK_MARGIN: Duration = Duration::from_secs(5 * 60);
/// The first wait before a job not listed yet is asked about again; it doubles each time.
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between two asks.
const LONGEST_RETRY: Duration = Duration::from_secs(60 * 60);
/// How many times a job not listed is asked about before this process stops asking (about
/// six hours of asking): it stays "may have been charged".
const MAX_ASKS: u32 = 14;
/// How long after the oldest job of a pass's window another job of the same model may have been
/// made to be settled in that window (half an hour).
const WINDOW_SPAN_MS: u64 = 30 * 60 * 1000;
/// The pause after the logs failed to answer (a 429 says its own).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// How long after a job ended its logs may say "not charged": a retried attempt's row may
/// come after the rows of the attempts before it.
pub const DEFAULT_SETTLE_AFTER: Duration = Duration::from_secs(10 * 60);

/// What this process remembers between passes: when to ask about each job again, and when
/// the logs may be asked again at all.
#[derive(Debug, Default)]
pub(super) struct Reconciler {
    asked: Mutex<HashMap<String, Asked>>,
    paused_until: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone, Copy)]
struct Asked {
    times: u32,
    next: Instant,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub charged: usize,
    pub not_charged: usize,
    /// Jobs not listed yet (or not long enough), to be asked about again.
    pub pending: usize,
}

impl Jobs {
    /// One pass over the jobs that may have been charged: each settled from the provider's
    /// usage logs where they tell, the rest asked about again later. Nothing is settled when
    /// the logs cannot be read (no key, a 429, an answer that is not theirs).
    pub async fn reconcile(&self) -> Reconciled {
        let reconciler = &self.inner.reconciler;
        let mut done = Reconciled::default();
        if lock(&reconciler.paused_until).is_some_and(|until| Instant::now() < until) {
            return done;
        }
        // Jobs this process stopped asking about are skipped, not allowed to fill the pass.
        let exhausted = lock(&reconciler.asked)
            .values()
            .filter(|asked| asked.times >= MAX_ASKS)
            .count();
        let wanted = JOBS_PER_PASS.saturating_add(u32::try_from(exhausted).unwrap_or(u32::MAX));
        let jobs = match self.inner.store.unsettled(wanted).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "could not look for jobs to settle from the usage logs");
                return done;
            }
        };
        let now = Instant::now();
        let due: Vec<JobRecord> = {
            let asked = lock(&reconciler.asked);
            jobs.into_iter()
                .filter(|job| {
                    asked
                        .get(&job.id)
                        .is_none_or(|asked| asked.times < MAX_ASKS && asked.next <= now)
                })
                .take(JOBS_PER_PASS as usize)
                .collect()
        };
        let mut models: Vec<&str> = due.iter().map(|job| job.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        for model in models {
            // One window of logs per model and pass, from its oldest job due: the jobs made
            // more than a span after it wait for a later pass, so that the window stays short
            // enough for a pass's pages to cover a busy account's rows.
            let of_model: Vec<&JobRecord> = due.iter().filter(|job| job.model == model).collect();
            let oldest = of_model
                .iter()
                .map(|job| job.created_ms)
                .min()
                .unwrap_or_default();
            let of_model: Vec<&JobRecord> = of_model
                .into_iter()
                .filter(|job| job.created_ms <= oldest.saturating_add(WINDOW_SPAN_MS))
                .collect();
            let (rows, covered) = match self.rows_of(model, &of_model).await {
                Ok(read) => read,
                Err(error) => {
                    let pause = match &error {
                        reve_core::Error::RateLimited { retry_after, .. } => {
                            retry_after.unwrap_or(reve_core::LOGS_RATE_WINDOW)
                        }
                        _ => PAUSE_AFTER_FAILURE,
                    };
                    tracing::warn!(%error, pause_secs = pause.as_secs(), "could not read the usage logs; jobs that may have been charged stay so until they answer");
                    *lock(&reconciler.paused_until) = Some(Instant::now() + pause);
                    return done;
                }
            };
            for job in of_model {
                let mine: Vec<&LogRow> = rows
                    .iter()
                    .filter(|row| row.client_request_id.as_deref() == Some(job.id.as_str()))
                    .collect();
                // Rows read only in part (the pages of a pass ran out) settle nothing: an attempt
                // not read may be the charged one.
                let settlement = covered.then(|| self.settlement(job, &mine)).flatten();
                match settlement {
                    Some(settlement) => {
                        let note = note(job, settlement, &mine);
                        match self
                            .inner
                            .store
                            .settle(job.id.clone(), settlement, note)
                            .await
                        {
                            Ok(false) => {
                                // Settled meanwhile, by another replica.
                                lock(&reconciler.asked).remove(&job.id);
                            }
                            Ok(true) => {
                                lock(&reconciler.asked).remove(&job.id);
                                match settlement {
                                    Settlement::Charged(_) => done.charged += 1,
                                    Settlement::NotCharged => done.not_charged += 1,
                                }
                                tracing::info!(job = %job.id, settled = settlement.settled().as_str(), "settled from the provider's usage logs");
                            }
                            Err(error) => {
                                tracing::warn!(%error, job = %job.id, "could not record what the usage logs said");
                            }
                        }
                    }
                    None => {
                        done.pending += 1;
                        let mut asked = lock(&reconciler.asked);
                        let entry = asked.entry(job.id.clone()).or_insert(Asked {
                            times: 0,
                            next: now,
                        });
                        entry.times += 1;
                        entry.next = now + retry_after(entry.times);
                        if entry.times == MAX_ASKS {
                            tracing::warn!(job = %job.id, "the provider's usage logs never settled this job; whether it was charged stays unknown");
                        }
                    }
                }
            }
        }
        done
    }

    /// The rows of `model`'s requests in a window holding every one of `jobs`, newest first,
    /// read back to the window's start (every attempt of every job, however many) or until
    /// the pages of a pass are spent; and whether the whole window was read.
    async fn rows_of(
        &self,
        model: &str,
        jobs: &[&JobRecord],
    ) -> reve_core::Result<(Vec<LogRow>, bool)> {
        let now = SystemTime::now();
        let oldest = jobs
            .iter()
            .map(|job| job.created_ms)
            .min()
            .unwrap_or_default();
        let longest = Duration::from_secs(LOGS_MAX_WINDOW_DAYS * 86_400 - 3600);
        let start = (SystemTime::UNIX_EPOCH + Duration::from_millis(oldest))
            .checked_sub(CLOCK_MARGIN)
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(now.checked_sub(longest).unwrap_or(SystemTime::UNIX_EPOCH));
        // Every attempt of a job was made between its creation and its end.
        let newest_end = jobs
            .iter()
            .map(|job| job.updated_ms)
            .max()
            .unwrap_or_default();
        let end = (SystemTime::UNIX_EPOCH + Duration::from_millis(newest_end) + CLOCK_MARGIN)
            .min(now + CLOCK_MARGIN);
        let client = self.inner.editor.client();
        let mut rows: Vec<LogRow> = Vec::new();
        let mut covered = false;
        for page in 0..PAGES_PER_PASS {
            let answer = client
                .usage_logs(&LogsQuery {
                    start,
                    end,
                    model: Some(model.to_owned()),
                    limit: LOGS_MAX_PAGE,
                    offset: page * u64::from(LOGS_MAX_PAGE),
                })
                .await?;
            for row in answer.data {
                // Rows move down as new ones arrive: one may be read twice.
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
            if !answer.pagination.has_more {
                covered = true;
                break;
            }
        }
        Ok((rows, covered))
    }

    /// What `rows` (all the logs list of `job`'s requests) settle, if anything: charged if any
    /// attempt succeeded; not charged once every attempt failed and the job ended long enough
    /// ago; nothing while none is listed.
    fn settlement(&self, job: &JobRecord, rows: &[&LogRow]) -> Option<Settlement> {
        if rows.is_empty() {
            return None;
        }
        let charged: Vec<&&LogRow> = rows
            .iter()
            .filter(|row| row.status == LogStatus::Succeeded)
            .collect();
        if !charged.is_empty() {
            return Some(Settlement::Charged(Cost {
                credits: Some(charged.iter().map(|row| row.cost.credits).sum()),
                tokens: None,
                usd: Some(charged.iter().map(|row| row.cost.usd).sum()),
            }));
        }
        // The API answered (or the job even succeeded): the generation happened and was
        // charged, whatever rows are listed so far.
        let answered = job.generation().answer.is_some()
            || job.state == super::JobState::Succeeded
            || job.unsaved;
        // Every attempt sent must be listed, failed: one not listed yet may be the charged one.
        let attempts = job.generation().attempts.unwrap_or(1) as usize;
        let ended_ago =
            Duration::from_millis(super::store::now_ms().saturating_sub(job.updated_ms));
        (!answered && rows.len() >= attempts && ended_ago >= self.inner.options.settle_after)
            .then_some(Settlement::NotCharged)
    }
}

/// What a settled job's message gains.
fn note(job: &JobRecord, settlement: Settlement, rows: &[&LogRow]) -> String {
    match settlement {
        Settlement::Charged(cost) => format!(
            "The provider's usage logs show this {model} request was charged ${usd} \
             ({credits} credits; inference id {ids}). Its picture cannot be had from the logs: \
             ask for it again to make it anew (and pay again).",
            model = job.model,
            usd = cost.usd.unwrap_or_default(),
            credits = cost.credits.unwrap_or_default(),
            ids = rows
                .iter()
                .filter(|row| row.status == LogStatus::Succeeded)
                .map(|row| row.inference_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Settlement::NotCharged => format!(
            "The provider's usage logs show {} of this {} request failed: nothing was charged.",
            match rows.len() {
                1 => "the one attempt".to_owned(),
                n => format!("all {n} attempts"),
            },
            job.model
        ),
    }
}

/// How long to wait before asking about a job not listed for the `times`th time.
fn retry_after(times: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << times.saturating_sub(1).min(16))
        .min(LONGEST_RETRY)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_come_less_and_less_often_up_to_an_hour_and_stop() {
        let waits: Vec<u64> = (1..=MAX_ASKS)
            .map(|times| retry_after(times).as_secs())
            .collect();
        assert_eq!(&waits[..4], [10, 20, 40, 80]);
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(*waits.last().unwrap(), 3600);
        let total: u64 = waits.iter().sum();
        assert!((4 * 3600..12 * 3600).contains(&total), "{total}");
    }
}

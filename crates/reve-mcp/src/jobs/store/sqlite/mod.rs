//! The embedded store, the default: one SQLite file in the per-user data folder, with the
//! pictures it keeps in folders beside it.
//!
//! SQLite (through rusqlite, with the library compiled in) because several processes share the
//! file as a matter of course: two MCP clients each start their own stdio server, `reve-mcp
//! jobs` reads while a server writes, replicas behind a load balancer share a volume. Its
//! write-ahead log lets readers and one writer work at once across processes, a transaction
//! either lands whole or not at all after a crash, and its error codes say locked, corrupt and
//! full apart. redb, the pure-Rust alternative, opens a file for one process at a time.
//!
//! The file is opened on first use, never at start-up, and every call runs on a blocking
//! thread. A reader finding no file answers as an empty store and creates none.
//!
//! A job's lease is a time in its row, as in Redis; on one machine a lease also ends the moment
//! its run's process does, which the run's lock file tells ([`files::RunLocks`]), so a restart
//! settles what a killed process left at once rather than a lease later.

mod connection;
mod files;
mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};

#[cfg(test)]
use self::connection::STORE_FILE;
pub use self::connection::SqliteStore;
use self::connection::unsynced;
use self::files::{private_file, private_folder};
use self::schema::{COLUMNS, record_from_row};
use super::{
    Claim, ClaimRules, Cost, DAY_MS, DayUsage, Ending, JobLifecycle, JobRecord, JobState, JobStore,
    KeptPicture, LimitVerdict, ModelSpending, Payload, PictureCache, Settlement, Spending,
    StoreError, StoreFuture, UsageLedger, now_ms,
};

/// Today's spending, as the daily limit counts it: the usage reported today, and per model its
/// edits in flight, its uncertain ones of today and its latest reported cost.
fn spending(connection: &Connection) -> rusqlite::Result<Spending> {
    let day_start = now_ms() / DAY_MS * DAY_MS;
    let (used, used_usd) = connection.query_row(
        "SELECT TOTAL(COALESCE(credits_used, tokens_used)), TOTAL(usd_spent) FROM jobs \
         WHERE created_ms >= ?1",
        params![day_start],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut models: Vec<ModelSpending> = Vec::new();
    fn part(models: &mut Vec<ModelSpending>, model: String) -> &mut ModelSpending {
        let index = match models.iter().position(|known| known.model == model) {
            Some(index) => index,
            None => {
                models.push(ModelSpending {
                    model,
                    ..ModelSpending::default()
                });
                models.len() - 1
            }
        };
        &mut models[index]
    }
    let mut statement = connection.prepare_cached(
        "SELECT model, CAST(TOTAL(may_be_charged) AS INTEGER) FROM jobs \
         WHERE created_ms >= ?1 AND may_be_charged = 1 GROUP BY model",
    )?;
    for row in statement.query_map(params![day_start], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (model, uncertain): (String, u64) = row?;
        part(&mut models, model).uncertain = uncertain;
    }
    // Answers that reported their cost in one unit only: each limit counts those lacking its
    // unit at the model's price.
    let mut statement = connection.prepare_cached(
        "SELECT model, \
         TOTAL(usd_spent IS NULL AND (credits_used IS NOT NULL OR tokens_used IS NOT NULL)), \
         TOTAL(usd_spent IS NOT NULL AND credits_used IS NULL AND tokens_used IS NULL) \
         FROM jobs WHERE created_ms >= ?1 AND may_be_charged = 0 \
         AND (usd_spent IS NULL) != (credits_used IS NULL AND tokens_used IS NULL) GROUP BY model",
    )?;
    for row in statement.query_map(params![day_start], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })? {
        let (model, usd_missing, units_missing): (String, f64, f64) = row?;
        let part = part(&mut models, model);
        part.usd_missing = usd_missing as u64;
        part.units_missing = units_missing as u64;
    }
    let mut statement = connection.prepare_cached(
        "SELECT model, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') AND sent = 1 \
         AND credits_used IS NULL AND tokens_used IS NULL AND usd_spent IS NULL GROUP BY model",
    )?;
    for row in statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (model, in_flight): (String, u64) = row?;
        part(&mut models, model).in_flight = in_flight;
    }
    // SQLite takes the other columns of an aggregate query with MAX() from the row holding it.
    let mut statement = connection.prepare_cached(
        "SELECT model, COALESCE(credits_used, tokens_used), MAX(updated_ms) FROM jobs \
         WHERE credits_used IS NOT NULL OR tokens_used IS NOT NULL GROUP BY model",
    )?;
    for row in statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (model, cost): (String, f64) = row?;
        part(&mut models, model).cost = Some(cost);
    }
    let mut statement = connection.prepare_cached(
        "SELECT model, usd_spent, MAX(updated_ms) FROM jobs WHERE usd_spent IS NOT NULL \
         GROUP BY model",
    )?;
    for row in statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (model, usd): (String, f64) = row?;
        part(&mut models, model).usd_cost = Some(usd);
    }
    models.sort_by(|a, b| a.model.cmp(&b.model));
    Ok(Spending {
        used,
        used_usd,
        models,
    })
}

impl JobLifecycle for SqliteStore {
    fn lease(&self) -> Duration {
        self.lease
    }

    /// One of the two commits not synced on its own (a success's end is the other, see
    /// [`JobLifecycle::finish`]): nothing is sent before [`JobLifecycle::claim`], whose synced
    /// commit puts this one on disk too (the WAL is written in order), so a call pays for one
    /// fsync less and loses no guarantee.
    fn insert(&self, job: JobRecord) -> StoreFuture<'_, ()> {
        let run = job.owner_run.clone();
        let lease_until = self.lease_until();
        let inserted = self.with(move |connection| {
            unsynced(connection, |connection| {
                connection.execute(
                    "INSERT INTO jobs (id, principal, state, sent, created_ms, updated_ms, \
                     owner_pid, owner_run, lease_until_ms, revision, payload, model) \
                     VALUES (?1, ?2, ?3, 0, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        job.id,
                        job.principal,
                        job.state.as_str(),
                        job.created_ms,
                        job.owner_pid,
                        job.owner_run,
                        lease_until,
                        job.payload.revision,
                        job.payload.to_json(),
                        job.model,
                    ],
                )
            })
            .map(drop)
        });
        self.holding(run, inserted)
    }

    fn claim(&self, id: String, fingerprint: String, rules: ClaimRules) -> StoreFuture<'_, Claim> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_ms();
            let reused: Option<String> = if rules.reuse_window.is_zero() {
                None
            } else {
                let since = now.saturating_sub(rules.reuse_window.as_millis() as u64);
                // Passed-over ids as one JSON array: no statement per count of them.
                let passed_over =
                    serde_json::to_string(&rules.passed_over).expect("a list of strings is JSON");
                transaction
                    .query_row(
                        "SELECT other.id FROM jobs AS other, jobs AS this \
                         WHERE this.id = ?1 AND other.principal = this.principal \
                         AND other.fingerprint = ?2 AND other.id != ?1 \
                         AND other.reused_from IS NULL \
                         AND other.id NOT IN (SELECT value FROM json_each(?5)) \
                         AND (other.state IN ('queued', 'running') \
                              OR (?4 AND other.state = 'succeeded' AND other.finished_ms >= ?3) \
                              OR (?4 AND other.state = 'failed' AND other.unsaved = 1 \
                                  AND other.finished_ms >= ?3)) \
                         ORDER BY other.created_ms DESC LIMIT 1",
                        params![id, fingerprint, since, rules.reuse_finished, passed_over],
                        |row| row.get(0),
                    )
                    .optional()?
            };
            if let Some(other) = reused {
                transaction.execute(
                    "UPDATE jobs SET state = 'running', reused_from = ?2, updated_ms = ?3 \
                     WHERE id = ?1",
                    params![id, other, now],
                )?;
                transaction.commit()?;
                return Ok(Claim::Reuse(other));
            }
            if !rules.may_send {
                return Ok(Claim::NotSent);
            }
            if rules.daily_limit.is_some() || rules.usd_limit.is_some() {
                let spending = spending(&transaction)?;
                if let Some(limit) = rules.daily_limit {
                    match spending.verdict(limit) {
                        LimitVerdict::Fits => {}
                        LimitVerdict::Hold => return Ok(Claim::Hold),
                        LimitVerdict::Over => return Ok(Claim::OverLimit(spending)),
                    }
                }
                if let Some(limit) = &rules.usd_limit {
                    let model: String = transaction.query_row(
                        "SELECT model FROM jobs WHERE id = ?1",
                        params![id],
                        |row| row.get(0),
                    )?;
                    match spending.verdict_usd(limit, &model) {
                        LimitVerdict::Fits => {}
                        LimitVerdict::Hold => return Ok(Claim::Hold),
                        LimitVerdict::Over => return Ok(Claim::OverUsdLimit(spending)),
                    }
                }
            }
            transaction.execute(
                "UPDATE jobs SET state = 'running', sent = 1, fingerprint = ?2, updated_ms = ?3, \
                 reused_from = NULL WHERE id = ?1",
                params![id, fingerprint, now],
            )?;
            transaction.commit()?;
            Ok(Claim::Send)
        })
    }

    fn answered(&self, id: String, cost: Option<Cost>, payload: Payload) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            // A cost is counted once: a second answer (a retried write) leaves it.
            connection.execute(
                "UPDATE jobs SET \
                 usd_spent = CASE WHEN credits_used IS NULL AND tokens_used IS NULL \
                             AND usd_spent IS NULL THEN ?7 ELSE usd_spent END, \
                 credits_used = CASE WHEN credits_used IS NULL AND tokens_used IS NULL \
                                AND usd_spent IS NULL THEN ?2 ELSE credits_used END, \
                 tokens_used = CASE WHEN credits_used IS NULL AND tokens_used IS NULL \
                               AND usd_spent IS NULL THEN ?3 ELSE tokens_used END, \
                 payload = CASE WHEN ?4 > revision THEN ?5 ELSE payload END, \
                 revision = MAX(revision, ?4), updated_ms = ?6 WHERE id = ?1",
                params![
                    id,
                    cost.and_then(|cost| cost.credits),
                    cost.and_then(|cost| cost.tokens),
                    payload.revision,
                    payload.to_json(),
                    now_ms(),
                    cost.and_then(|cost| cost.usd),
                ],
            )?;
            Ok(())
        })
    }

    /// Not synced on its own either: what it records (the name a result is about to take)
    /// guards against the process being killed between the rename and the end's record. A
    /// sync here would add one to every edit for the sake of a power cut, after which the
    /// rename itself may not have survived.
    fn update(&self, id: String, payload: Payload) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            unsynced(connection, |connection| {
                connection.execute(
                    "UPDATE jobs SET payload = ?3, revision = ?2, updated_ms = ?4 \
                     WHERE id = ?1 AND revision < ?2",
                    params![id, payload.revision, payload.to_json(), now_ms()],
                )
            })
            .map(drop)
        })
    }

    /// A success's end is committed without a sync of its own, which the answer would wait for:
    /// what it paid for is already on disk, under the name a synced update recorded before the
    /// rename, and a restart after a power cut that lost this commit finishes the job from that
    /// file (or marks one that sent nothing interrupted). A kill loses nothing: the commit is in
    /// the write-ahead log, which the next synced commit puts on disk. Every other end is synced,
    /// since it may say what was charged.
    fn finish(
        &self,
        id: String,
        ending: Ending,
        error: Option<String>,
        payload: Option<Payload>,
    ) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            let (revision, json) = match &payload {
                Some(payload) => (payload.revision, Some(payload.to_json())),
                None => (0, None),
            };
            let succeeded = ending.state == JobState::Succeeded;
            let commit = |connection: &Connection| {
                connection.execute(
                    "UPDATE jobs SET state = ?2, updated_ms = ?3, finished_ms = ?3, error = ?4, \
                     payload = CASE WHEN ?5 IS NOT NULL AND ?6 > revision THEN ?5 ELSE payload END, \
                     revision = MAX(revision, ?6), \
                     may_be_charged = (sent = 1 AND NOT ?7 AND credits_used IS NULL \
                                       AND tokens_used IS NULL AND usd_spent IS NULL), \
                     unsaved = ?8 \
                     WHERE id = ?1 AND state != 'succeeded'",
                    params![
                        id,
                        ending.state.as_str(),
                        now_ms(),
                        error,
                        json,
                        revision,
                        ending.refused_by_api,
                        ending.unsaved,
                    ],
                )
            };
            if succeeded {
                unsynced(connection, commit)?;
            } else {
                commit(connection)?;
            }
            Ok(())
        })
    }

    fn reopen(&self, id: String, run: String, pid: u32) -> StoreFuture<'_, bool> {
        let owner = run.clone();
        let lease_until = self.lease_until();
        let reopened = self.with(move |connection| {
            let changed = connection.execute(
                "UPDATE jobs SET state = 'running', owner_run = ?2, owner_pid = ?3, \
                 updated_ms = ?4, finished_ms = NULL, error = NULL, unsaved = 0, \
                 lease_until_ms = ?5 WHERE id = ?1 AND state = 'failed' AND unsaved = 1",
                params![id, run, pid, now_ms(), lease_until],
            )?;
            Ok(changed == 1)
        });
        self.holding(owner, reopened)
    }

    fn get(&self, id: String) -> StoreFuture<'_, Option<JobRecord>> {
        self.reading(None, move |connection| {
            connection
                .query_row(
                    &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                    params![id],
                    record_from_row,
                )
                .optional()
        })
    }

    fn recent(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        self.reading(Vec::new(), move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs ORDER BY created_ms DESC LIMIT ?1"
            ))?;
            statement
                .query_map(params![limit], record_from_row)?
                .collect()
        })
    }

    fn results(
        &self,
        principal: String,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<JobRecord>> {
        self.reading(Vec::new(), move |connection| {
            // No `after`: the first page, from the newest.
            let (before_ms, before_id) = after.unwrap_or_default();
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE principal = ?1 AND state = 'succeeded' \
                 AND reused_from IS NULL \
                 AND (?3 = '' OR created_ms < ?2 OR (created_ms = ?2 AND id < ?3)) \
                 ORDER BY created_ms DESC, id DESC LIMIT ?4"
            ))?;
            statement
                .query_map(
                    params![principal, before_ms, before_id, limit],
                    record_from_row,
                )?
                .collect()
        })
    }

    fn orphans(&self, run: String, pid: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        // The run that adopts jobs must be seen alive before it takes any.
        let runs = Arc::clone(&self.runs);
        let adopter = run.clone();
        let lease_until = self.lease_until();
        let adopted = self.reading(Vec::new(), move |connection| {
            let now = now_ms();
            let unfinished: Vec<(JobRecord, u64)> = connection
                .prepare(&format!(
                    "SELECT {COLUMNS}, lease_until_ms FROM jobs \
                     WHERE state IN ('queued', 'running') AND owner_run != ?1"
                ))?
                .query_map(params![run], |row| {
                    Ok((record_from_row(row)?, row.get("lease_until_ms")?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut adopted = Vec::new();
            for (job, until) in unfinished {
                // A lease of 0 was never set: the job was recorded by a release before leases,
                // whose process is judged alive by its run's lock file alone.
                if (until == 0 || until > now) && runs.is_alive(&job.owner_run) {
                    continue;
                }
                // Only if no other survivor took it meanwhile.
                let changed = connection.execute(
                    "UPDATE jobs SET owner_pid = ?2, owner_run = ?3, updated_ms = ?4, \
                     lease_until_ms = ?6 \
                     WHERE id = ?1 AND owner_run = ?5 AND state IN ('queued', 'running')",
                    params![job.id, pid, run, now, job.owner_run, lease_until],
                )?;
                if changed == 1 {
                    adopted.push(job);
                }
            }
            runs.sweep();
            Ok(adopted)
        });
        self.holding(adopter, adopted)
    }

    fn renew(&self, run: String, ids: Vec<String>) -> StoreFuture<'_, ()> {
        let lease_until = self.lease_until();
        self.reading((), move |connection| {
            let ids = serde_json::to_string(&ids).expect("a list of strings is JSON");
            unsynced(connection, |connection| {
                connection.execute(
                    "UPDATE jobs SET lease_until_ms = ?2 WHERE owner_run = ?1 \
                     AND id IN (SELECT value FROM json_each(?3)) \
                     AND state IN ('queued', 'running')",
                    params![run, lease_until, ids],
                )
            })
            .map(drop)
        })
    }
}

impl UsageLedger for SqliteStore {
    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>> {
        self.reading(Vec::new(), |connection| {
            let mut statement = connection.prepare(
                "SELECT created_ms / ?1 AS day, \
                 COUNT(COALESCE(credits_used, tokens_used)), TOTAL(credits_used), \
                 TOTAL(CASE WHEN credits_used IS NULL THEN tokens_used END), \
                 TOTAL(may_be_charged), TOTAL(usd_spent) FROM jobs \
                 WHERE credits_used IS NOT NULL OR tokens_used IS NOT NULL OR may_be_charged = 1 \
                 OR usd_spent IS NOT NULL \
                 GROUP BY day ORDER BY day",
            )?;
            statement
                .query_map(params![DAY_MS], |row| {
                    Ok(DayUsage {
                        day: row.get(0)?,
                        jobs: row.get(1)?,
                        credits: row.get(2)?,
                        tokens: row.get(3)?,
                        uncertain: row.get::<_, f64>(4)? as u64,
                        usd: row.get(5)?,
                    })
                })?
                .collect()
        })
    }

    fn spending_today(&self) -> StoreFuture<'_, Spending> {
        self.reading(Spending::default(), |connection| spending(connection))
    }

    fn unsettled(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        self.reading(Vec::new(), move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE may_be_charged = 1 AND settled IS NULL \
                 ORDER BY created_ms, id LIMIT ?1"
            ))?;
            statement
                .query_map(params![limit], record_from_row)?
                .collect()
        })
    }

    fn settle(&self, id: String, settlement: Settlement, note: String) -> StoreFuture<'_, bool> {
        self.with(move |connection| {
            let cost = match settlement {
                Settlement::Charged(cost) => Some(cost),
                Settlement::NotCharged => None,
            };
            // Usage per day and today's spending are read from these columns: a charge counts
            // from now on at its cost, and the job is no longer uncertain.
            let changed = connection.execute(
                "UPDATE jobs SET settled = ?2, may_be_charged = 0, \
                 credits_used = COALESCE(credits_used, ?3), \
                 usd_spent = COALESCE(usd_spent, ?4), \
                 error = CASE WHEN error IS NULL THEN ?5 ELSE error || char(10) || ?5 END, \
                 updated_ms = ?6 \
                 WHERE id = ?1 AND may_be_charged = 1 AND settled IS NULL",
                params![
                    id,
                    settlement.settled().as_str(),
                    cost.and_then(|cost| cost.credits),
                    cost.and_then(|cost| cost.usd),
                    note,
                    now_ms(),
                ],
            )?;
            Ok(changed == 1)
        })
    }
}

impl PictureCache for SqliteStore {
    fn keep_picture(
        &self,
        picture: KeptPicture,
        id: String,
        bytes: bytes::Bytes,
    ) -> StoreFuture<'_, ()> {
        let path = self.picture_path(picture, &id);
        let store = self.path.display().to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write as _;
                if let Some(folder) = path.parent() {
                    private_folder(folder)?;
                }
                let mut file = private_file(&path)?;
                file.set_len(0)?;
                file.write_all(&bytes)
            })
            .await
            .expect("writing a picture does not panic")
            .map_err(|error| StoreError::Other {
                path: store,
                reason: format!("a picture could not be kept beside it: {error}"),
            })
        })
    }

    fn picture(&self, picture: KeptPicture, id: String) -> StoreFuture<'_, Option<Vec<u8>>> {
        let path = self.picture_path(picture, &id);
        Box::pin(async move {
            Ok(
                tokio::task::spawn_blocking(move || std::fs::read(path).ok())
                    .await
                    .expect("reading a picture does not panic"),
            )
        })
    }
}

impl JobStore for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        self.reading((), |connection| {
            connection.query_row("SELECT 1", [], |_| Ok(()))
        })
    }
}

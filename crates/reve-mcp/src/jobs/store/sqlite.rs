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
//! The file is opened on first use, never at start-up, and every call runs on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    Claim, ClaimRules, DAY_MS, DayUsage, JobInput, JobRecord, JobResult, JobState, JobStore,
    KeptPicture, StoreError, StoreFuture, now_ms,
};

/// How long a write waits for another process's transaction before it reports the store locked.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store's file name inside the state folder.
pub const STORE_FILE: &str = "jobs.sqlite3";

impl StoreError {
    pub(super) fn from_sqlite(path: &Path, error: &rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let path = path.display().to_string();
        let reason = error.to_string();
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Locked { path }
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path, reason }
            }
            Some(ErrorCode::DiskFull) => StoreError::Full { path },
            // SQLite reports a failed write to its shared-memory or journal file as a plain
            // I/O error, though the cause is as often as not a full disk: look.
            Some(ErrorCode::SystemIoFailure) if disk_is_full(Path::new(&path)) => {
                StoreError::Full { path }
            }
            _ => StoreError::Other { path, reason },
        }
    }
}

/// Whether the disk holding `path` has (almost) no room left: less than SQLite needs to grow
/// its files by a page or two.
fn disk_is_full(path: &Path) -> bool {
    #[cfg(unix)]
    {
        let folder = path.parent().unwrap_or(path);
        rustix::fs::statvfs(folder)
            .is_ok_and(|stats| stats.f_bavail.saturating_mul(stats.f_frsize) < 64 * 1024)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    principal TEXT NOT NULL,
    fingerprint TEXT,
    state TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    prompt TEXT NOT NULL,
    stage_dir TEXT NOT NULL,
    output_name TEXT,
    saves INTEGER NOT NULL,
    generated_url TEXT,
    request_id TEXT,
    credits_used REAL,
    tokens_used REAL,
    result_path TEXT,
    result_url TEXT,
    content_violation INTEGER,
    mime_type TEXT,
    width INTEGER,
    height INTEGER,
    bytes INTEGER,
    preview_mime TEXT,
    preview_width INTEGER,
    preview_height INTEGER,
    reused_from TEXT,
    error TEXT,
    owner_pid INTEGER NOT NULL,
    owner_run TEXT NOT NULL,
    input_mime TEXT,
    input_width INTEGER,
    input_height INTEGER,
    input_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_fingerprint ON jobs (principal, fingerprint);
CREATE INDEX IF NOT EXISTS jobs_results ON jobs (principal, created_ms, id) WHERE state = 'succeeded';
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_ms);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');
";

const COLUMNS: &str = "id, principal, state, sent, created_ms, updated_ms, prompt, stage_dir, \
    output_name, saves, generated_url, request_id, credits_used, tokens_used, result_path, \
    result_url, content_violation, mime_type, width, height, bytes, preview_mime, preview_width, \
    preview_height, reused_from, error, owner_pid, owner_run, input_mime, input_width, \
    input_height, input_bytes";

/// Columns added since the first release, each with its type: a store made before them gains
/// them when it is opened, and its jobs read as having no value there.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("input_mime", "TEXT"),
    ("input_width", "INTEGER"),
    ("input_height", "INTEGER"),
    ("input_bytes", "INTEGER"),
];

/// Adds the [`ADDED_COLUMNS`] an older store lacks.
fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    let existing: Vec<String> = connection
        .prepare("SELECT name FROM pragma_table_info('jobs')")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, kind) in ADDED_COLUMNS {
        if !existing.iter().any(|column| column == name) {
            connection.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let mime_type: Option<String> = row.get(17)?;
    let preview_mime: Option<String> = row.get(21)?;
    let input_mime: Option<String> = row.get(28)?;
    let result = match mime_type {
        None => None,
        Some(mime_type) => Some(JobResult {
            path: row.get(14)?,
            url: row.get(15)?,
            request_id: row.get(11)?,
            content_violation: row.get(16)?,
            mime_type,
            width: row.get(18)?,
            height: row.get(19)?,
            bytes: row.get(20)?,
            preview: match preview_mime {
                None => None,
                Some(mime) => Some((mime, row.get(22)?, row.get(23)?)),
            },
            input: match input_mime {
                None => None,
                Some(mime_type) => Some(JobInput {
                    mime_type,
                    width: row.get(29)?,
                    height: row.get(30)?,
                    bytes: row.get(31)?,
                }),
            },
        }),
    };
    Ok(JobRecord {
        id: row.get(0)?,
        principal: row.get(1)?,
        state: JobState::parse(&row.get::<_, String>(2)?),
        sent: row.get(3)?,
        created_ms: row.get(4)?,
        updated_ms: row.get(5)?,
        prompt: row.get(6)?,
        stage_dir: row.get(7)?,
        output_name: row.get(8)?,
        saves: row.get(9)?,
        generated_url: row.get(10)?,
        request_id: row.get(11)?,
        credits_used: row.get(12)?,
        tokens_used: row.get(13)?,
        result,
        reused_from: row.get(24)?,
        error: row.get(25)?,
        owner_pid: row.get(26)?,
        owner_run: row.get(27)?,
    })
}

/// The embedded store. Cheap to clone; the file is opened on first use.
#[derive(Clone)]
pub struct SqliteStore {
    path: Arc<PathBuf>,
    /// The folder holding [`KeptPicture`]s, one file per job, beside the store file.
    folder: Arc<PathBuf>,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// The store kept in `state_dir`, not yet opened.
    pub fn in_folder(state_dir: &Path) -> SqliteStore {
        SqliteStore {
            path: Arc::new(state_dir.join(STORE_FILE)),
            folder: Arc::new(state_dir.to_owned()),
            connection: Arc::default(),
        }
    }

    /// Runs `work` with the connection, on a blocking thread, opening the file first if need be.
    /// A failed open is tried again on the next call, so a store fixed meanwhile is used.
    fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.with_blocking(work))
                .await
                .expect("the job store does not panic")
        })
    }

    /// [`SqliteStore::with`] on the calling thread.
    fn with_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let connection = guard.as_mut().expect("opened above");
        work(connection).map_err(|error| StoreError::from_sqlite(&self.path, &error))
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let path = self.path.as_path();
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|error| StoreError::Other {
                path: path.display().to_string(),
                reason: format!("its folder cannot be created: {error}"),
            })?;
        }
        let fail = |error: rusqlite::Error| StoreError::from_sqlite(path, &error);
        let connection = Connection::open(path).map_err(fail)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // WAL lets other processes read while one writes; FULL syncs each commit (the insert
        // aside, see there), so a job recorded before its request is sent is on disk before
        // the request is.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        connection.execute_batch(SCHEMA).map_err(fail)?;
        add_missing_columns(&connection).map_err(fail)?;
        Ok(connection)
    }

    fn picture_path(&self, picture: KeptPicture, id: &str) -> PathBuf {
        self.folder.join(picture.folder()).join(id)
    }
}

/// Today's usage, and how many sent edits have not reported theirs yet, with what the latest
/// edit that did used: what a claim reserves against the daily limit.
fn spending(connection: &Connection) -> rusqlite::Result<(f64, u64, Option<f64>)> {
    let day_start = now_ms() / DAY_MS * DAY_MS;
    let used = connection.query_row(
        "SELECT TOTAL(COALESCE(credits_used, tokens_used)) FROM jobs WHERE created_ms >= ?1",
        params![day_start],
        |row| row.get(0),
    )?;
    let in_flight = connection.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') AND sent = 1 \
         AND credits_used IS NULL AND tokens_used IS NULL",
        [],
        |row| row.get(0),
    )?;
    let per_edit = connection
        .query_row(
            "SELECT COALESCE(credits_used, tokens_used) FROM jobs \
             WHERE credits_used IS NOT NULL OR tokens_used IS NOT NULL \
             ORDER BY updated_ms DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok((used, in_flight, per_edit))
}

/// Whether an edit sent now could take today's usage past `limit` by more than one edit: the
/// edits in flight are counted at what the latest one used, and while no edit has reported a
/// cost yet, one edit at a time is sent.
pub(super) fn over_limit(limit: f64, used: f64, in_flight: u64, per_edit: Option<f64>) -> bool {
    if used >= limit {
        return true;
    }
    match (in_flight, per_edit) {
        (0, _) => false,
        (_, None) => true,
        (in_flight, Some(per_edit)) => used + in_flight as f64 * per_edit >= limit,
    }
}

impl JobStore for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn lease(&self) -> Option<Duration> {
        None
    }

    /// The one commit not synced on its own: nothing is sent before [`JobStore::claim`], whose
    /// synced commit puts this one on disk too (the WAL is written in order), so a call pays
    /// for one fsync less and loses no guarantee.
    fn insert(&self, job: JobRecord) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            let inserted = connection.execute(
                "INSERT INTO jobs (id, principal, state, sent, created_ms, updated_ms, prompt, \
                 stage_dir, output_name, saves, owner_pid, owner_run) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    job.id,
                    job.principal,
                    job.state.as_str(),
                    job.created_ms,
                    job.prompt,
                    job.stage_dir,
                    job.output_name,
                    job.saves,
                    job.owner_pid,
                    job.owner_run
                ],
            );
            connection.pragma_update(None, "synchronous", "FULL")?;
            inserted.map(drop)
        })
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
                transaction
                    .query_row(
                        "SELECT other.id FROM jobs AS other, jobs AS this \
                         WHERE this.id = ?1 AND other.principal = this.principal \
                         AND other.fingerprint = ?2 AND other.id != ?1 \
                         AND other.reused_from IS NULL \
                         AND (other.state IN ('queued', 'running') \
                              OR (other.state = 'succeeded' AND other.finished_ms >= ?3)) \
                         ORDER BY other.created_ms DESC LIMIT 1",
                        params![id, fingerprint, since],
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
            if let Some(limit) = rules.daily_limit {
                let (used, in_flight, per_edit) = spending(&transaction)?;
                if over_limit(limit, used, in_flight, per_edit) {
                    return Ok(Claim::OverLimit { used, in_flight });
                }
            }
            transaction.execute(
                "UPDATE jobs SET state = 'running', sent = 1, fingerprint = ?2, updated_ms = ?3 \
                 WHERE id = ?1",
                params![id, fingerprint, now],
            )?;
            transaction.commit()?;
            Ok(Claim::Send)
        })
    }

    fn set_generated(&self, id: String, generated: reve_core::Generated) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            let usage = generated.usage;
            connection.execute(
                "UPDATE jobs SET generated_url = ?2, request_id = ?3, credits_used = ?4, \
                 tokens_used = ?5, updated_ms = ?6 WHERE id = ?1",
                params![
                    id,
                    generated.url,
                    generated.request_id,
                    usage.and_then(|usage| usage.credits_used),
                    usage.and_then(|usage| usage.tokens_used),
                    now_ms()
                ],
            )?;
            Ok(())
        })
    }

    fn finish(
        &self,
        id: String,
        state: JobState,
        result: Option<JobResult>,
        error: Option<String>,
    ) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            let now = now_ms();
            let result = result.unwrap_or_default();
            let has_result = result.has_picture();
            let (preview_mime, preview_width, preview_height) = result.preview_fields();
            let input = result.input.as_ref();
            connection.execute(
                "UPDATE jobs SET state = ?2, updated_ms = ?3, finished_ms = ?3, error = ?4, \
                 result_path = ?5, result_url = ?6, content_violation = ?7, mime_type = ?8, \
                 width = ?9, height = ?10, bytes = ?11, preview_mime = ?12, preview_width = ?13, \
                 preview_height = ?14, request_id = COALESCE(?15, request_id), \
                 input_mime = ?16, input_width = ?17, input_height = ?18, input_bytes = ?19 \
                 WHERE id = ?1 AND state != 'succeeded'",
                params![
                    id,
                    state.as_str(),
                    now,
                    error,
                    result.path,
                    result.url,
                    result.content_violation,
                    has_result.then_some(&result.mime_type),
                    has_result.then_some(result.width),
                    has_result.then_some(result.height),
                    has_result.then_some(result.bytes),
                    preview_mime,
                    preview_width,
                    preview_height,
                    result.request_id,
                    input.map(|input| &input.mime_type),
                    input.map(|input| input.width),
                    input.map(|input| input.height),
                    input.map(|input| input.bytes),
                ],
            )?;
            Ok(())
        })
    }

    fn get(&self, id: String) -> StoreFuture<'_, Option<JobRecord>> {
        self.with(move |connection| {
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
        self.with(move |connection| {
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
        self.with(move |connection| {
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
        self.with(move |connection| {
            let unfinished: Vec<JobRecord> = connection
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'running')"
                ))?
                .query_map([], record_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut adopted = Vec::new();
            for job in unfinished {
                if job.owner_run == run || owner_is_alive(&job) {
                    continue;
                }
                // Only if no other survivor took it meanwhile.
                let changed = connection.execute(
                    "UPDATE jobs SET owner_pid = ?2, owner_run = ?3, updated_ms = ?4 \
                     WHERE id = ?1 AND owner_run = ?5 AND state IN ('queued', 'running')",
                    params![job.id, pid, run, now_ms(), job.owner_run],
                )?;
                if changed == 1 {
                    adopted.push(job);
                }
            }
            Ok(adopted)
        })
    }

    fn renew(&self, _run: String, _ids: Vec<String>) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT created_ms / ?1 AS day, COUNT(*), \
                 TOTAL(COALESCE(credits_used, tokens_used)) FROM jobs \
                 WHERE credits_used IS NOT NULL OR tokens_used IS NOT NULL \
                 GROUP BY day ORDER BY day",
            )?;
            statement
                .query_map(params![DAY_MS], |row| {
                    Ok(DayUsage {
                        day: row.get(0)?,
                        jobs: row.get(1)?,
                        credits: row.get(2)?,
                    })
                })?
                .collect()
        })
    }

    fn usage_today(&self) -> StoreFuture<'_, f64> {
        self.with(|connection| Ok(spending(connection)?.0))
    }

    fn keep_picture(
        &self,
        picture: KeptPicture,
        id: String,
        bytes: Vec<u8>,
    ) -> StoreFuture<'_, ()> {
        let path = self.picture_path(picture, &id);
        let store = self.path.display().to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if let Some(folder) = path.parent() {
                    std::fs::create_dir_all(folder)?;
                }
                std::fs::write(&path, bytes)
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

    fn health(&self) -> StoreFuture<'_, ()> {
        if !self.exists() {
            return Box::pin(async { Ok(()) });
        }
        self.with(|connection| connection.query_row("SELECT 1", [], |_| Ok(())))
    }
}

/// Whether the process that owns `job` still runs. A pid the system has since given to another
/// process reads as alive: the job then waits for a later restart rather than being taken from
/// a live owner.
fn owner_is_alive(job: &JobRecord) -> bool {
    if job.owner_pid == std::process::id() {
        // The same pid in another run: a restart (in a container, pid 1 every time).
        return false;
    }
    #[cfg(unix)]
    {
        rustix::process::Pid::from_raw(job.owner_pid as i32)
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(store: &SqliteStore) -> i64 {
        store
            .with_blocking(|connection| {
                connection.pragma_query_value(None, "synchronous", |row| row.get(0))
            })
            .unwrap()
    }

    fn job(id: &str) -> JobRecord {
        JobRecord::queued(
            id.into(),
            "local".into(),
            "p".into(),
            "/tmp".into(),
            None,
            true,
            "run".into(),
        )
    }

    /// 2 is FULL: every commit after an insert is synced again, even after a failed insert.
    #[tokio::test]
    async fn only_the_insert_itself_goes_unsynced() {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::in_folder(folder.path());
        store.insert(job("a")).await.unwrap();
        assert_eq!(synchronous(&store), 2);
        let duplicate = store.insert(job("a")).await;
        assert!(duplicate.is_err(), "{duplicate:?}");
        assert_eq!(synchronous(&store), 2);
        let record = store.get("a".into()).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Queued);
        assert!(!record.sent);
    }

    /// One edit over at most: with 1 used of 2.5 and edits costing 1, a second edit may go
    /// out beside the first (3 at most), not a third; before any edit has reported a cost,
    /// one at a time.
    #[test]
    fn the_limit_reserves_what_the_edits_in_flight_will_use() {
        assert!(!over_limit(2.5, 1.0, 0, Some(1.0)));
        assert!(!over_limit(2.5, 1.0, 1, Some(1.0)));
        assert!(over_limit(2.5, 1.0, 2, Some(1.0)));
        assert!(over_limit(2.5, 2.5, 0, Some(1.0)));
        assert!(!over_limit(2.5, 0.0, 0, None));
        assert!(over_limit(2.5, 0.0, 1, None));
    }
}

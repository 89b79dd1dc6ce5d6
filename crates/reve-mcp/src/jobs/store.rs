//! The durable record of every edit: one SQLite file in the per-user data folder.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension as _, params};

/// How long a write waits for another process's transaction before it reports the store locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store's file name inside the state folder.
pub const STORE_FILE: &str = "jobs.sqlite3";

/// Where an edit job has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for its turn; nothing sent.
    Queued,
    /// Being prepared, sent, or downloaded and saved.
    Running,
    Succeeded,
    Failed,
    /// Its process ended before it finished (see the job's error text for what that cost).
    Interrupted,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Interrupted,
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a finished job produced, as the tool reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobResult {
    /// The saved file, when the server saves.
    pub path: Option<String>,
    pub url: Option<String>,
    pub request_id: Option<String>,
    pub content_violation: Option<bool>,
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// The inline preview's type and size; its bytes are kept beside the store.
    pub preview: Option<(String, u32, u32)>,
    /// What the input picture was, when this server saw it (a local file or a `data:` URI);
    /// its preview is kept beside the store.
    pub input: Option<JobInput>,
}

/// The input picture of a job, as it was sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobInput {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// One job as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub principal: String,
    pub state: JobState,
    /// Whether the paid request was sent.
    pub sent: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub prompt: String,
    /// The folder the result is staged in, and the name asked for: what a restart needs to
    /// save a result whose download it resumes.
    pub stage_dir: String,
    pub output_name: Option<String>,
    pub saves: bool,
    /// What the API answered, once it did: the URL a restart resumes from.
    pub generated_url: Option<String>,
    pub request_id: Option<String>,
    pub credits_used: Option<f64>,
    pub tokens_used: Option<f64>,
    pub result: Option<JobResult>,
    /// The job this one attached to instead of paying again.
    pub reused_from: Option<String>,
    pub error: Option<String>,
    /// The process running it: `pid` and a random id of that process's run.
    pub owner_pid: u32,
    pub owner_run: String,
}

impl JobRecord {
    /// A job just submitted by this process: nothing sent, nothing answered yet.
    pub fn queued(
        id: String,
        principal: String,
        prompt: String,
        stage_dir: String,
        output_name: Option<String>,
        saves: bool,
        owner_run: String,
    ) -> JobRecord {
        let now = now_ms();
        JobRecord {
            id,
            principal,
            state: JobState::Queued,
            sent: false,
            created_ms: now,
            updated_ms: now,
            prompt,
            stage_dir,
            output_name,
            saves,
            generated_url: None,
            request_id: None,
            credits_used: None,
            tokens_used: None,
            result: None,
            reused_from: None,
            error: None,
            owner_pid: std::process::id(),
            owner_run,
        }
    }
}

/// Usage recorded on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    /// Days since 1970-01-01, UTC.
    pub day: u64,
    pub jobs: u64,
    pub credits: f64,
}

/// Why the store could not be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the job store {path} is locked by another process (waited {BUSY_TIMEOUT:?}); try again"
    )]
    Locked { path: String },
    #[error(
        "the job store {path} is damaged ({reason}); move it aside and a new one is made on the next edit"
    )]
    Corrupt { path: String, reason: String },
    #[error("the disk holding the job store {path} is full")]
    Full { path: String },
    #[error("the job store {path} cannot be used: {reason}")]
    Other { path: String, reason: String },
}

impl StoreError {
    fn from_sqlite(path: &Path, error: &rusqlite::Error) -> StoreError {
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The job store. Cheap to clone; the file is opened on first use.
#[derive(Clone)]
pub struct JobStore {
    path: Arc<PathBuf>,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("path", &self.path)
            .finish()
    }
}

impl JobStore {
    /// A store kept in `path`, not yet opened.
    pub fn at(path: PathBuf) -> JobStore {
        JobStore {
            path: Arc::new(path),
            connection: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists: a reader with nothing to read need not create it.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Runs `work` with the connection, on a blocking thread, opening the file first if need be.
    /// A failed open is tried again on the next call, so a store fixed meanwhile is used.
    pub async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.with_blocking(work))
            .await
            .expect("the job store does not panic")
    }

    /// [`JobStore::with`] on the calling thread.
    pub fn with_blocking<T>(
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

    /// Records a new job, queued.
    ///
    /// The one commit not synced on its own: nothing is sent before [`JobStore::claim_or_reuse`],
    /// whose synced commit puts this one on disk too (the WAL is written in order), so a call
    /// pays for one fsync less and loses no guarantee.
    pub async fn insert(&self, job: JobRecord) -> Result<(), StoreError> {
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
        .await
    }

    /// Marks `id` about to be sent, under `fingerprint`; or, when a job of the same principal
    /// with that fingerprint is running or succeeded within `reuse_window`, returns that job's
    /// id instead and marks this one attached to it. One transaction, so of two identical calls
    /// exactly one is sent, even from two processes.
    pub async fn claim_or_reuse(
        &self,
        id: String,
        fingerprint: String,
        reuse_window: Duration,
    ) -> Result<Option<String>, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_ms();
            let reused: Option<String> = if reuse_window.is_zero() {
                None
            } else {
                let since = now.saturating_sub(reuse_window.as_millis() as u64);
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
            match &reused {
                Some(other) => transaction.execute(
                    "UPDATE jobs SET state = 'running', reused_from = ?2, updated_ms = ?3 \
                     WHERE id = ?1",
                    params![id, other, now],
                )?,
                None => transaction.execute(
                    "UPDATE jobs SET state = 'running', sent = 1, fingerprint = ?2, \
                     updated_ms = ?3 WHERE id = ?1",
                    params![id, fingerprint, now],
                )?,
            };
            transaction.commit()?;
            Ok(reused)
        })
        .await
    }

    /// Records what the API answered, before the image is fetched.
    pub async fn set_generated(
        &self,
        id: String,
        generated: reve_core::Generated,
    ) -> Result<(), StoreError> {
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
        .await
    }

    /// Records a finished job: its state, result or error.
    pub async fn finish(
        &self,
        id: String,
        state: JobState,
        result: Option<JobResult>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.with(move |connection| {
            let now = now_ms();
            let result = result.unwrap_or_default();
            let has_result = !result.mime_type.is_empty();
            let (preview_mime, preview_width, preview_height) = match result.preview {
                Some((mime, width, height)) => (Some(mime), Some(width), Some(height)),
                None => (None, None, None),
            };
            let input = result.input;
            connection.execute(
                "UPDATE jobs SET state = ?2, updated_ms = ?3, finished_ms = ?3, error = ?4, \
                 result_path = ?5, result_url = ?6, content_violation = ?7, mime_type = ?8, \
                 width = ?9, height = ?10, bytes = ?11, preview_mime = ?12, preview_width = ?13, \
                 preview_height = ?14, request_id = COALESCE(?15, request_id), \
                 input_mime = ?16, input_width = ?17, input_height = ?18, input_bytes = ?19 \
                 WHERE id = ?1",
                params![
                    id,
                    state.as_str(),
                    now,
                    error,
                    result.path,
                    result.url,
                    result.content_violation,
                    has_result.then_some(result.mime_type),
                    has_result.then_some(result.width),
                    has_result.then_some(result.height),
                    has_result.then_some(result.bytes),
                    preview_mime,
                    preview_width,
                    preview_height,
                    result.request_id,
                    input.as_ref().map(|input| input.mime_type.clone()),
                    input.as_ref().map(|input| input.width),
                    input.as_ref().map(|input| input.height),
                    input.as_ref().map(|input| input.bytes),
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// One job, by id.
    pub async fn get(&self, id: String) -> Result<Option<JobRecord>, StoreError> {
        self.with(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                    params![id],
                    record_from_row,
                )
                .optional()
        })
        .await
    }

    /// The newest `limit` jobs, newest first.
    pub fn recent_blocking(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        self.with_blocking(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs ORDER BY created_ms DESC LIMIT ?1"
            ))?;
            statement
                .query_map(params![limit], record_from_row)?
                .collect()
        })
    }

    /// Up to `limit` succeeded jobs of `principal` that made their own result (not reused
    /// from another), newest first, starting after `after` (a job's creation time and id, as
    /// the previous page ended).
    pub async fn results(
        &self,
        principal: String,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
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
        .await
    }

    /// Jobs not finished: what a process that died left behind, or what others run now.
    pub async fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.with(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'running')"
            ))?;
            statement.query_map([], record_from_row)?.collect()
        })
        .await
    }

    /// Takes over a job a dead process left: this run owns it now.
    pub async fn adopt(&self, id: String, pid: u32, run: String) -> Result<bool, StoreError> {
        self.with(move |connection| {
            let changed = connection.execute(
                "UPDATE jobs SET owner_pid = ?2, owner_run = ?3, updated_ms = ?4 \
                 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id, pid, run, now_ms()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// The usage the API reported per UTC day, oldest first: credits where it reported
    /// credits, tokens otherwise (its published schema says `credits_used` counts tokens).
    pub fn usage_by_day_blocking(&self) -> Result<Vec<DayUsage>, StoreError> {
        self.with_blocking(|connection| {
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

    /// The usage recorded since the start of the current UTC day.
    pub async fn usage_today(&self) -> Result<f64, StoreError> {
        self.with(|connection| {
            let day_start = now_ms() / DAY_MS * DAY_MS;
            connection.query_row(
                "SELECT TOTAL(COALESCE(credits_used, tokens_used)) FROM jobs \
                 WHERE created_ms >= ?1",
                params![day_start],
                |row| row.get(0),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(store: &JobStore) -> i64 {
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
        let store = JobStore::at(folder.path().join(STORE_FILE));
        store.insert(job("a")).await.unwrap();
        assert_eq!(synchronous(&store), 2);
        let duplicate = store.insert(job("a")).await;
        assert!(duplicate.is_err(), "{duplicate:?}");
        assert_eq!(synchronous(&store), 2);
        let record = store.get("a".into()).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Queued);
        assert!(!record.sent);
    }
}

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

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    Claim, ClaimRules, DAY_MS, DayUsage, Ending, JobInput, JobRecord, JobResult, JobState,
    JobStore, KeptPicture, LimitVerdict, Spending, StoreError, StoreFuture, now_ms,
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
    input_bytes INTEGER,
    saving_path TEXT,
    saving_bytes INTEGER,
    may_be_charged INTEGER NOT NULL DEFAULT 0,
    unsaved INTEGER NOT NULL DEFAULT 0
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
    input_height, input_bytes, saving_path, saving_bytes, may_be_charged, unsaved";

/// Columns added since the first release, each with its type: a store made before them gains
/// them when it is opened, and its jobs read as having no value there.
const ADDED_COLUMNS: [(&str, &str); 8] = [
    ("input_mime", "TEXT"),
    ("input_width", "INTEGER"),
    ("input_height", "INTEGER"),
    ("input_bytes", "INTEGER"),
    ("saving_path", "TEXT"),
    ("saving_bytes", "INTEGER"),
    ("may_be_charged", "INTEGER NOT NULL DEFAULT 0"),
    ("unsaved", "INTEGER NOT NULL DEFAULT 0"),
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
        saving: match row.get::<_, Option<String>>(32)? {
            Some(path) => Some((path, row.get(33)?)),
            None => None,
        },
        may_be_charged: row.get(34)?,
        unsaved: row.get(35)?,
    })
}

/// The folder of the state folder where each run that owns jobs holds a lock file.
const RUNS_FOLDER: &str = "runs";

/// The embedded store. Cheap to clone; the file is opened on first use.
#[derive(Clone)]
pub struct SqliteStore {
    path: Arc<PathBuf>,
    /// The folder holding [`KeptPicture`]s, one file per job, beside the store file.
    folder: Arc<PathBuf>,
    connection: Arc<Mutex<Option<Connection>>>,
    /// The lock files of the runs of this process that own jobs, held locked for as long as
    /// the process lives: how another process tells a live owner from a dead one.
    runs: Arc<Mutex<HashMap<String, File>>>,
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
            runs: Arc::default(),
        }
    }

    /// Marks `run` as alive for as long as this process lives: its lock file in
    /// [`RUNS_FOLDER`], created and locked on first need. A process id cannot say this: two
    /// containers sharing the state folder are both pid 1, and a pid is reused after its
    /// process dies. The kernel releases the lock when the process ends, however it ends.
    fn hold_run(&self, run: &str) -> Result<(), StoreError> {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if runs.contains_key(run) {
            return Ok(());
        }
        let fail = |error: std::io::Error| StoreError::Other {
            path: self.path.display().to_string(),
            reason: format!("the lock file of this process cannot be made beside it: {error}"),
        };
        let folder = self.folder.join(RUNS_FOLDER);
        private_folder(&folder).map_err(fail)?;
        let file = private_file(&folder.join(format!("{run}.lock"))).map_err(fail)?;
        file.try_lock()
            .map_err(|error| fail(std::io::Error::other(error)))?;
        runs.insert(run.to_owned(), file);
        Ok(())
    }

    /// `then`, once `run` is held ([`SqliteStore::hold_run`]): a job is never recorded as a
    /// run's before that run can be seen alive. After the first time, no thread hop.
    fn holding<T: Send + 'static>(
        &self,
        run: String,
        then: StoreFuture<'static, T>,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            let held = store
                .runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(&run);
            if !held {
                tokio::task::spawn_blocking(move || store.hold_run(&run))
                    .await
                    .expect("locking a file does not panic")?;
            }
            then.await
        })
    }

    /// Whether the process of `run` still lives: its lock file is locked. A run without a
    /// lock file (a job recorded by a release before lock files) is taken to be gone.
    fn run_is_alive(&self, run: &str) -> bool {
        let path = self.folder.join(RUNS_FOLDER).join(format!("{run}.lock"));
        let Ok(file) = File::options().read(true).write(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                // Gone; its lock file goes too (unlocked when `file` is dropped).
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(std::fs::TryLockError::WouldBlock) => true,
            // A lock that cannot be asked about: assumed alive, so never taken from its owner.
            Err(std::fs::TryLockError::Error(_)) => true,
        }
    }

    /// Removes the lock files of runs that have ended, whether or not they left jobs.
    fn sweep_runs(&self) {
        let Ok(entries) = std::fs::read_dir(self.folder.join(RUNS_FOLDER)) else {
            return;
        };
        let held: Vec<String> = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(run) = name.to_str().and_then(|name| name.strip_suffix(".lock")) else {
                continue;
            };
            if !held.iter().any(|ours| ours == run) {
                self.run_is_alive(run);
            }
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
            private_folder(folder).map_err(|error| StoreError::Other {
                path: path.display().to_string(),
                reason: format!("its folder cannot be created: {error}"),
            })?;
        }
        // Every prompt is in it: readable by its user only, whatever the umask. SQLite gives
        // its journal files the store file's permissions.
        for file in [
            path.to_owned(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
        ] {
            let made = if file == path {
                private_file(&file).map(drop)
            } else {
                make_private(&file)
            };
            made.map_err(|error| StoreError::Other {
                path: path.display().to_string(),
                reason: format!("{} cannot be made private: {error}", file.display()),
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

/// Creates `folder` (and its parents) if need be, and makes it its user's alone (`0700`):
/// the state folder holds prompts and private pictures.
fn private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    make_private(folder)
}

/// Opens `path` for writing, created if need be, readable and writable by its user alone
/// (`0600`) whatever the umask, an existing file included.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = File::options();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    make_private(path)?;
    Ok(file)
}

/// Takes the group's and others' access away from `path`, if it exists.
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mode = metadata.permissions().mode() & 0o7777;
        let private = mode & 0o700;
        if mode != private {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `path` with `suffix` added to its file name (`jobs.sqlite3-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Today's spending, as the daily limit counts it.
fn spending(connection: &Connection) -> rusqlite::Result<Spending> {
    let day_start = now_ms() / DAY_MS * DAY_MS;
    let (used, uncertain) = connection.query_row(
        "SELECT TOTAL(COALESCE(credits_used, tokens_used)), TOTAL(may_be_charged) FROM jobs \
         WHERE created_ms >= ?1",
        params![day_start],
        |row| Ok((row.get(0)?, row.get::<_, f64>(1)? as u64)),
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
    Ok(Spending {
        used,
        in_flight,
        uncertain,
        per_edit,
    })
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
        let run = job.owner_run.clone();
        let inserted = self.with(move |connection| {
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
            if let Some(limit) = rules.daily_limit {
                let spending = spending(&transaction)?;
                match spending.verdict(limit) {
                    LimitVerdict::Fits => {}
                    LimitVerdict::Hold => return Ok(Claim::Hold),
                    LimitVerdict::Over => return Ok(Claim::OverLimit(spending)),
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

    /// Not synced on its own either: what it guards against is the process being killed
    /// between the rename and the end's record, and a commit in the write-ahead log survives
    /// that without a sync (the end's synced commit then puts it on disk too). A sync here
    /// would add one to every edit for the sake of a power cut, after which the rename itself
    /// may not have survived.
    fn set_saving(&self, id: String, path: String, bytes: u64) -> StoreFuture<'_, ()> {
        self.with(move |connection| {
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            let recorded = connection.execute(
                "UPDATE jobs SET saving_path = ?2, saving_bytes = ?3, updated_ms = ?4 \
                 WHERE id = ?1",
                params![id, path, bytes, now_ms()],
            );
            connection.pragma_update(None, "synchronous", "FULL")?;
            recorded.map(drop)
        })
    }

    fn finish(
        &self,
        id: String,
        state: JobState,
        result: Option<JobResult>,
        error: Option<String>,
        ending: Ending,
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
                 input_mime = ?16, input_width = ?17, input_height = ?18, input_bytes = ?19, \
                 may_be_charged = (sent = 1 AND NOT ?20 AND credits_used IS NULL \
                                   AND tokens_used IS NULL), \
                 unsaved = (?21 AND generated_url IS NOT NULL) \
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
                    ending.refused_by_api,
                    ending.unsaved,
                ],
            )?;
            Ok(())
        })
    }

    fn reopen(&self, id: String, run: String, pid: u32) -> StoreFuture<'_, bool> {
        let owner = run.clone();
        let reopened = self.with(move |connection| {
            let changed = connection.execute(
                "UPDATE jobs SET state = 'running', owner_run = ?2, owner_pid = ?3, \
                 updated_ms = ?4, finished_ms = NULL, error = NULL, unsaved = 0 \
                 WHERE id = ?1 AND state = 'failed' AND unsaved = 1",
                params![id, run, pid, now_ms()],
            )?;
            Ok(changed == 1)
        });
        self.holding(owner, reopened)
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
        // The run that adopts jobs must be seen alive before it takes any.
        let store = self.clone();
        let adopter = run.clone();
        let adopted = self.with(move |connection| {
            let unfinished: Vec<JobRecord> = connection
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'running')"
                ))?
                .query_map([], record_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut adopted = Vec::new();
            for job in unfinished {
                if job.owner_run == run || store.run_is_alive(&job.owner_run) {
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
            store.sweep_runs();
            Ok(adopted)
        });
        self.holding(adopter, adopted)
    }

    fn renew(&self, _run: String, _ids: Vec<String>) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT created_ms / ?1 AS day, \
                 COUNT(COALESCE(credits_used, tokens_used)), \
                 TOTAL(COALESCE(credits_used, tokens_used)), TOTAL(may_be_charged) FROM jobs \
                 WHERE credits_used IS NOT NULL OR tokens_used IS NOT NULL OR may_be_charged = 1 \
                 GROUP BY day ORDER BY day",
            )?;
            statement
                .query_map(params![DAY_MS], |row| {
                    Ok(DayUsage {
                        day: row.get(0)?,
                        jobs: row.get(1)?,
                        credits: row.get(2)?,
                        uncertain: row.get::<_, f64>(3)? as u64,
                    })
                })?
                .collect()
        })
    }

    fn spending_today(&self) -> StoreFuture<'_, Spending> {
        self.with(|connection| spending(connection))
    }

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

    fn health(&self) -> StoreFuture<'_, ()> {
        if !self.exists() {
            return Box::pin(async { Ok(()) });
        }
        self.with(|connection| connection.query_row("SELECT 1", [], |_| Ok(())))
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

    fn spending(used: f64, in_flight: u64, uncertain: u64, per_edit: Option<f64>) -> Spending {
        Spending {
            used,
            in_flight,
            uncertain,
            per_edit,
        }
    }

    /// One edit over at most: with 1 used of 2.5 and edits costing 1, a second edit may go
    /// out beside the first (3 at most), a third waits for them; before any edit has
    /// reported a cost, one at a time, the others held (never refused); an edit that may
    /// have been charged counts at the latest cost, and with no cost known refuses the rest.
    #[test]
    fn the_limit_reserves_what_the_edits_in_flight_and_the_uncertain_ones_may_use() {
        use LimitVerdict::{Fits, Hold, Over};
        assert_eq!(spending(1.0, 0, 0, Some(1.0)).verdict(2.5), Fits);
        assert_eq!(spending(1.0, 1, 0, Some(1.0)).verdict(2.5), Fits);
        assert_eq!(spending(1.0, 2, 0, Some(1.0)).verdict(2.5), Hold);
        assert_eq!(spending(2.5, 0, 0, Some(1.0)).verdict(2.5), Over);
        assert_eq!(spending(0.0, 0, 0, None).verdict(2.5), Fits);
        assert_eq!(spending(0.0, 1, 0, None).verdict(2.5), Hold);
        assert_eq!(spending(1.0, 0, 1, Some(1.0)).verdict(2.5), Fits);
        assert_eq!(spending(1.0, 0, 2, Some(1.0)).verdict(2.5), Over);
        assert_eq!(spending(1.0, 1, 1, Some(1.0)).verdict(2.5), Hold);
        assert_eq!(spending(0.0, 0, 1, None).verdict(2.5), Over);
        assert_eq!(spending(1.0, 0, 2, Some(1.0)).counted(), Some(3.0));
    }
}

//! The store's file: opened on first use (never by a reader when it is not there), private to
//! its user, and used on a blocking thread, one connection per process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::super::{DEFAULT_LEASE, KeptPicture, StoreError, StoreFuture, now_ms};
use super::files::{RunLocks, disk_is_full, make_private, private_file, private_folder, sibling};
use super::schema::migrate;

/// How long a write waits for another process's transaction before it reports the store locked.
pub(in crate::jobs::store) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write waits while another process is known to hold the store past a whole
/// [`BUSY_TIMEOUT`]: a job's records (kept in memory until the store takes them) and the
/// server's upkeep would otherwise queue behind one another on the one connection, five
/// seconds each, and keep a paid result from its caller past the tools' wait.
const STILL_LOCKED_TIMEOUT: Duration = Duration::from_millis(250);

/// The store's file name inside the state folder.
pub const STORE_FILE: &str = "jobs.sqlite3";

impl StoreError {
    pub(in crate::jobs::store) fn from_sqlite(
        path: &Path,
        error: &rusqlite::Error,
        waited: Duration,
    ) -> StoreError {
        use rusqlite::ErrorCode;
        let path = path.display().to_string();
        let reason = error.to_string();
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Locked { path, waited }
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

/// The embedded store. Cheap to clone; the file is opened on first use.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) path: Arc<PathBuf>,
    /// The folder holding [`KeptPicture`]s, one file per job, beside the store file.
    folder: Arc<PathBuf>,
    connection: Arc<Mutex<Option<Connection>>>,
    /// Whether the last call found the store locked for a whole [`BUSY_TIMEOUT`]: until a
    /// call goes through, calls wait [`STILL_LOCKED_TIMEOUT`] only.
    held_elsewhere: Arc<AtomicBool>,
    pub(super) runs: Arc<RunLocks>,
    pub(super) lease: Duration,
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
        SqliteStore::with_lease(state_dir, DEFAULT_LEASE)
    }

    /// The store kept in `state_dir`, whose runs hold their jobs for `lease` without renewing.
    pub fn with_lease(state_dir: &Path, lease: Duration) -> SqliteStore {
        SqliteStore {
            path: Arc::new(state_dir.join(STORE_FILE)),
            folder: Arc::new(state_dir.to_owned()),
            connection: Arc::default(),
            held_elsewhere: Arc::default(),
            runs: Arc::new(RunLocks::in_folder(state_dir)),
            lease,
        }
    }

    /// `then`, once `run` is held: a job is never recorded as a run's before that run can be
    /// seen alive. After the first time, no thread hop.
    pub(super) fn holding<T: Send + 'static>(
        &self,
        run: String,
        then: StoreFuture<'static, T>,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            if !store.runs.holds(&run) {
                let runs = Arc::clone(&store.runs);
                tokio::task::spawn_blocking(move || runs.hold(&run))
                    .await
                    .expect("locking a file does not panic")
                    .map_err(|error| StoreError::Other {
                        path: store.path.display().to_string(),
                        reason: format!(
                            "the lock file of this process cannot be made beside it: {error}"
                        ),
                    })?;
            }
            then.await
        })
    }

    /// Runs `work` with the connection, on a blocking thread, opening the file first if need be.
    /// A failed open is tried again on the next call, so a store fixed meanwhile is used.
    pub(super) fn with<T: Send + 'static>(
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

    /// [`SqliteStore::with`] for a reader: with no store file, `empty`, and no file made.
    pub(super) fn reading<T: Send + 'static>(
        &self,
        empty: T,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let opened = store
                    .connection
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some();
                if !opened && !store.path.exists() {
                    return Ok(empty);
                }
                store.with_blocking(work)
            })
            .await
            .expect("the job store does not panic")
        })
    }

    /// [`SqliteStore::with`] on the calling thread.
    pub(super) fn with_blocking<T>(
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
        let held_elsewhere = self.held_elsewhere.load(Ordering::Relaxed);
        let waits = if held_elsewhere {
            STILL_LOCKED_TIMEOUT
        } else {
            BUSY_TIMEOUT
        };
        let fail = |error: rusqlite::Error| StoreError::from_sqlite(&self.path, &error, waits);
        if held_elsewhere {
            connection.busy_timeout(waits).map_err(fail)?;
        }
        let done = work(connection).map_err(fail);
        let locked = matches!(done, Err(StoreError::Locked { .. }));
        if held_elsewhere && !locked {
            connection.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        }
        self.held_elsewhere.store(locked, Ordering::Relaxed);
        done
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
        let fail = |error: rusqlite::Error| StoreError::from_sqlite(path, &error, BUSY_TIMEOUT);
        let mut connection = Connection::open(path).map_err(fail)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // WAL lets other processes read while one writes; FULL syncs each commit (the insert
        // and a success's end aside, see there), so a job recorded before its request is sent
        // is on disk before the request is.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        migrate(&mut connection).map_err(fail)?;
        Ok(connection)
    }

    pub(super) fn picture_path(&self, picture: KeptPicture, id: &str) -> PathBuf {
        self.folder.join(picture.folder()).join(picture.name(id))
    }

    pub(super) fn lease_until(&self) -> u64 {
        now_ms() + self.lease.as_millis() as u64
    }
}

/// Runs `work` in a commit that is not synced on its own: for a record that a kill (not a
/// power cut) must not lose, since a commit in the write-ahead log survives a kill, and the
/// next synced commit puts it on disk too.
pub(super) fn unsynced<T>(
    connection: &mut Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    let done = work(connection);
    connection.pragma_update(None, "synchronous", "FULL")?;
    done
}

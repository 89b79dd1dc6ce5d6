//! The files beside the store's: kept private to their user, and one lock file per run that
//! owns jobs, which is how a process on this machine sees at once that the run holding a
//! lease has ended, without waiting for the lease to lapse.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The folder of the state folder where each run that owns jobs holds a lock file.
const RUNS_FOLDER: &str = "runs";

/// The lock files of the runs of this process that own jobs, held locked for as long as the
/// process lives. A process id cannot say whether a run lives: two containers sharing the
/// state folder are both pid 1, and a pid is reused after its process dies. The kernel
/// releases a lock when its process ends, however it ends.
#[derive(Debug)]
pub(super) struct RunLocks {
    folder: PathBuf,
    held: Mutex<HashMap<String, File>>,
}

impl RunLocks {
    pub(super) fn in_folder(state_dir: &Path) -> RunLocks {
        RunLocks {
            folder: state_dir.join(RUNS_FOLDER),
            held: Mutex::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, File>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this process holds `run`'s lock already (no file to touch, no thread hop).
    pub(super) fn holds(&self, run: &str) -> bool {
        self.held().contains_key(run)
    }

    /// Marks `run` as alive for as long as this process lives: its lock file, created and
    /// locked on first need.
    pub(super) fn hold(&self, run: &str) -> std::io::Result<()> {
        let mut held = self.held();
        if held.contains_key(run) {
            return Ok(());
        }
        private_folder(&self.folder)?;
        let file = private_file(&self.folder.join(format!("{run}.lock")))?;
        file.try_lock().map_err(std::io::Error::other)?;
        held.insert(run.to_owned(), file);
        Ok(())
    }

    /// Whether the process of `run` still lives: its lock file is locked. A run without a
    /// lock file is taken to be gone.
    pub(super) fn is_alive(&self, run: &str) -> bool {
        if self.holds(run) {
            return true;
        }
        let path = self.folder.join(format!("{run}.lock"));
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
            // A lock that cannot be asked about: assumed alive, so never taken from its owner
            // before its lease lapses.
            Err(std::fs::TryLockError::Error(_)) => true,
        }
    }

    /// Removes the lock files of runs that have ended, whether or not they left jobs.
    pub(super) fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(run) = name.to_str().and_then(|name| name.strip_suffix(".lock")) {
                self.is_alive(run);
            }
        }
    }
}

/// Whether the disk holding `path` has (almost) no room left: less than SQLite needs to grow
/// its files by a page or two.
pub(super) fn disk_is_full(path: &Path) -> bool {
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

/// Creates `folder` (and its parents) if need be, and makes it its user's alone (`0700`):
/// the state folder holds prompts and private pictures.
pub(super) fn private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    make_private(folder)
}

/// Opens `path` for writing, created if need be, readable and writable by its user alone
/// (`0600`) whatever the umask, an existing file included.
pub(super) fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = File::options();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    make_private(path)?;
    Ok(file)
}

/// Takes the group's and others' access away from `path`, if it exists.
pub(super) fn make_private(path: &Path) -> std::io::Result<()> {
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
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

//! Which local files the tool may read, and where it may write.
//!
//! The caller is a language model that can be prompt-injected into asking for
//! `~/.ssh/id_rsa` or `/proc/self/environ`, so a local `image_url` is honoured
//! only inside folders the user allowed, after symlinks are resolved, and the
//! `output_path` can only name a place inside the output folder.
//!
//! Paths in messages are quoted with escapes: a symlink's target is text
//! whoever made the link chose, and a newline or an invisible character in it
//! must neither pose as an instruction to the model nor hide a look-alike.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use reve_core::FinalSymlink;
use reve_core::workspace::shorten;

/// Why a local path was refused. Messages are shown to the model verbatim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("cannot read {path:?}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path:?} is outside the folders this server may read ({allowed}); copy the image into one of them, or ask the user to add its folder to REVE_ALLOWED_DIRS"
    )]
    OutsideAllowed { path: String, allowed: String },
    #[error("{path:?} is not a regular file")]
    NotAFile { path: String },
    #[error(
        "{path:?} is a hard link ({links} names for one file), so it may be a file from outside \
         the allowed folders; copy the image instead of linking it, or ask the user to set \
         REVE_ALLOW_HARD_LINKS=true"
    )]
    HardLinked { path: String, links: u64 },
    #[error(
        "image_url {0:?} is a file on the server, which clients over HTTP cannot read unless its \
         operator sets REVE_ALLOWED_DIRS; send the image as an http(s) URL or a data: URI"
    )]
    ServerFilesClosed(String),
    #[error(
        "output_path {0:?} must be a file name or a relative path inside the output folder, without `..`"
    )]
    BadOutputPath(String),
    #[error(
        "output_path {requested:?} leads to {resolved:?} through a symbolic link, outside the output folder; choose another output_path"
    )]
    OutputEscapes { requested: String, resolved: String },
}

/// The folders local reads are confined to, in canonical form.
#[derive(Debug, Clone, Default)]
pub struct AllowedDirs {
    dirs: Vec<PathBuf>,
    hard_links: bool,
}

impl AllowedDirs {
    /// Canonicalises each folder; folders that do not exist are skipped, since
    /// nothing can be read from them anyway.
    pub fn new<I: IntoIterator<Item = PathBuf>>(dirs: I) -> Self {
        let mut canonical: Vec<PathBuf> = dirs
            .into_iter()
            .filter(|dir| !dir.as_os_str().is_empty())
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        canonical.sort();
        canonical.dedup();
        Self {
            dirs: canonical,
            hard_links: false,
        }
    }

    /// Whether a file with more than one link may be read. A hard link carries no trace of
    /// where its other names are: anyone who can write in an allowed folder can link a file
    /// from anywhere on the same disk into it, and resolving paths cannot tell. So they are
    /// refused unless the operator, who knows the folders, allows them.
    pub fn with_hard_links(mut self, allowed: bool) -> Self {
        self.hard_links = allowed;
        self
    }

    pub fn describe(&self) -> String {
        if self.dirs.is_empty() {
            return "none".to_owned();
        }
        self.dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Opens `path` for reading if, symlinks resolved, it is a regular file
    /// inside one of the folders; returns the handle and the canonical path.
    ///
    /// The path is resolved and checked, but what counts is the handle: the
    /// file is opened once, without following a symlink swapped in at the
    /// last component and without waiting on a FIFO, and the handle itself
    /// must be a regular file (on Linux, its own path is checked against the
    /// folders again, which catches a folder swapped for a symlink). Read
    /// from the handle, never from the path again.
    pub fn open(&self, path: &Path) -> Result<(File, PathBuf), AccessError> {
        let unreadable = |path: &Path, error: std::io::Error| AccessError::Unreadable {
            path: shorten(&path.display().to_string()),
            reason: error.to_string(),
        };
        let canonical = path
            .canonicalize()
            .map_err(|error| unreadable(path, error))?;
        self.ensure_inside(&canonical)?;
        let file = reve_core::open_nonblocking(&canonical, FinalSymlink::Refuse)
            .map_err(|error| unreadable(&canonical, error))?;
        let metadata = file
            .metadata()
            .map_err(|error| unreadable(&canonical, error))?;
        if !metadata.is_file() {
            return Err(AccessError::NotAFile {
                path: canonical.display().to_string(),
            });
        }
        #[cfg(unix)]
        {
            let links = std::os::unix::fs::MetadataExt::nlink(&metadata);
            if links > 1 && !self.hard_links {
                return Err(AccessError::HardLinked {
                    path: canonical.display().to_string(),
                    links,
                });
            }
        }
        if let Some(opened) = opened_path(&file) {
            self.ensure_inside(&opened)?;
        }
        Ok((file, canonical))
    }

    fn ensure_inside(&self, canonical: &Path) -> Result<(), AccessError> {
        if self.dirs.iter().any(|dir| canonical.starts_with(dir)) {
            Ok(())
        } else {
            Err(AccessError::OutsideAllowed {
                path: canonical.display().to_string(),
                allowed: self.describe(),
            })
        }
    }
}

/// The path the kernel resolved for an open file.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd as _;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// Not known portably elsewhere; the checks on the path and the handle remain.
#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

/// Splits an `output_path` argument into the sub-folder of the output folder
/// and the file name it names. Absolute paths are accepted only when they lie
/// inside the output folder.
pub fn output_target(
    output_dir: &Path,
    output_path: &str,
) -> Result<(PathBuf, String), AccessError> {
    let bad = || AccessError::BadOutputPath(shorten(output_path));
    let requested = Path::new(output_path);
    let relative = if requested.is_absolute() {
        let canonical_out = output_dir.canonicalize().map_err(|_| bad())?;
        requested
            .strip_prefix(&canonical_out)
            .or_else(|_| requested.strip_prefix(output_dir))
            .map_err(|_| bad())?
            .to_path_buf()
    } else {
        requested.to_path_buf()
    };
    if relative
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(bad());
    }
    let file_name = relative
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(bad)?
        .to_owned();
    let folder = relative.parent().map_or_else(
        || output_dir.to_path_buf(),
        |parent| output_dir.join(parent),
    );
    if let Some(resolved) = escape_through_symlink(output_dir, &folder) {
        return Err(AccessError::OutputEscapes {
            requested: shorten(output_path),
            resolved: resolved.display().to_string(),
        });
    }
    Ok((folder, file_name))
}

/// Where `folder` really is, if a symlink already inside the output folder
/// takes it elsewhere (saving would follow it). Only the part that exists
/// can hold a symlink; the rest is created as plain folders.
fn escape_through_symlink(output_dir: &Path, folder: &Path) -> Option<PathBuf> {
    let canonical_out = output_dir.canonicalize().ok()?;
    let existing = folder
        .ancestors()
        .find(|ancestor| ancestor.symlink_metadata().is_ok())?;
    let resolved = existing.canonicalize().ok()?;
    (!resolved.starts_with(&canonical_out)).then_some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_confined_to_allowed_folders_after_symlinks() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside_file = allowed.path().join("in.png");
        std::fs::write(&inside_file, b"x").unwrap();
        let secret = outside.path().join("secret.png");
        std::fs::write(&secret, b"x").unwrap();
        let link = allowed.path().join("link.png");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let dir_link = allowed.path().join("elsewhere");
        std::os::unix::fs::symlink(outside.path(), &dir_link).unwrap();

        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        assert_eq!(
            dirs.open(&inside_file).unwrap().1,
            inside_file.canonicalize().unwrap()
        );
        for escape in [
            link,
            dir_link.join("secret.png"),
            allowed
                .path()
                .join("..")
                .join(outside.path().file_name().unwrap())
                .join("secret.png"),
        ] {
            assert!(
                matches!(dirs.open(&escape), Err(AccessError::OutsideAllowed { .. })),
                "{escape:?}"
            );
        }
        assert!(matches!(
            dirs.open(allowed.path()),
            Err(AccessError::NotAFile { .. })
        ));
        assert!(matches!(
            AllowedDirs::new([PathBuf::from("/")]).open(Path::new("/dev/zero")),
            Err(AccessError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_symlinked_allowed_folder_allows_what_it_points_to() {
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("pictures");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        std::fs::write(real.path().join("in.png"), b"x").unwrap();
        let dirs = AllowedDirs::new([link.clone()]);
        for path in [link.join("in.png"), real.path().join("in.png")] {
            assert_eq!(
                dirs.open(&path).unwrap().1,
                real.path().join("in.png").canonicalize().unwrap()
            );
        }
    }

    #[test]
    fn the_opened_file_is_what_gets_read_even_if_the_path_is_replaced() {
        let allowed = tempfile::tempdir().unwrap();
        let path = allowed.path().join("in.png");
        std::fs::write(&path, b"checked").unwrap();
        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        let (mut file, _) = dirs.open(&path).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(&mut file, &mut read).unwrap();
        assert_eq!(read, "checked");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let allowed = tempfile::tempdir().unwrap();
        let fifo = allowed.path().join("pipe.png");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(dirs.open(&fifo).map(drop)));
        let result = outcome
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("opening a FIFO returned instead of hanging");
        assert!(
            matches!(result, Err(AccessError::NotAFile { .. })),
            "{result:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_hard_link_to_a_file_elsewhere_is_refused_unless_allowed() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.png");
        std::fs::write(&secret, b"not yours").unwrap();
        let link = allowed.path().join("innocent.png");
        std::fs::hard_link(&secret, &link).unwrap();

        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        let error = dirs.open(&link).unwrap_err();
        assert!(
            matches!(&error, AccessError::HardLinked { links: 2, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("REVE_ALLOW_HARD_LINKS"));
        let (mut file, _) = dirs.with_hard_links(true).open(&link).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(&mut file, &mut read).unwrap();
        assert_eq!(read, "not yours");
    }

    #[test]
    fn look_alike_folders_are_not_the_allowed_one() {
        let parent = tempfile::tempdir().unwrap();
        let allowed = parent.path().join("pictures");
        std::fs::create_dir(&allowed).unwrap();
        let dirs = AllowedDirs::new([allowed.clone()]);
        // A zero-width space, a Cyrillic "р", a longer name with the same start.
        for name in ["pictures\u{200b}", "\u{440}ictures", "pictures-private"] {
            let folder = parent.path().join(name);
            std::fs::create_dir(&folder).unwrap();
            std::fs::write(folder.join("in.png"), b"x").unwrap();
            let error = dirs.open(&folder.join("in.png")).unwrap_err();
            assert!(
                matches!(error, AccessError::OutsideAllowed { .. }),
                "{name}: {error:?}"
            );
            if name.contains('\u{200b}') {
                assert!(error.to_string().contains("pictures\\u{200b}"), "{error}");
            }
        }
    }

    #[test]
    fn output_paths_stay_inside_the_output_folder() {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path();
        assert_eq!(
            output_target(dir, "cat.png").unwrap(),
            (dir.to_path_buf(), "cat.png".to_owned())
        );
        assert_eq!(
            output_target(dir, "pets/cat.png").unwrap(),
            (dir.join("pets"), "cat.png".to_owned())
        );
        assert_eq!(
            output_target(dir, dir.join("cat.png").to_str().unwrap()).unwrap(),
            (dir.to_path_buf(), "cat.png".to_owned())
        );
        for escape in ["../cat.png", "pets/../../cat.png", "/etc/cat.png", "", "."] {
            assert!(output_target(dir, escape).is_err(), "{escape:?} accepted");
        }
    }

    #[test]
    fn output_paths_cannot_leave_through_a_symlinked_folder() {
        let out = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.path().join("shared")).unwrap();
        std::fs::create_dir(out.path().join("pets")).unwrap();
        for escape in ["shared/cat.png", "shared/new/cat.png"] {
            let error = output_target(out.path(), escape).unwrap_err();
            assert!(
                matches!(error, AccessError::OutputEscapes { .. }),
                "{escape}: {error:?}"
            );
        }
        assert_eq!(
            output_target(out.path(), "pets/new/cat.png").unwrap(),
            (out.path().join("pets/new"), "cat.png".to_owned())
        );
    }
}

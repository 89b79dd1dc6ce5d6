//! Which local files the tool may read, and where it may write.
//!
//! The caller is a language model that can be prompt-injected into asking for
//! `~/.ssh/id_rsa` or `/proc/self/environ`, so a local `image_url` is honoured
//! only inside folders the user allowed, after symlinks are resolved, and the
//! `output_path` can only name a place inside the output folder.

use std::path::{Component, Path, PathBuf};

use url::Url;

/// Why a local path was refused. Messages are shown to the model verbatim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("image_url {0:?} is a relative path; give an absolute path or a file:// URI")]
    Relative(String),
    #[error("image_url {0:?} is not a usable file:// URI: {1}")]
    BadFileUri(String, String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path} is outside the folders this server may read ({allowed}); copy the image into one of them, or ask the user to add its folder to REVE_ALLOWED_DIRS"
    )]
    OutsideAllowed { path: String, allowed: String },
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
    #[error(
        "output_path {0:?} must be a file name or a relative path inside the output folder, without `..`"
    )]
    BadOutputPath(String),
}

/// The local forms `image_url` may take: an absolute path, or a `file://` URI
/// naming this host. Anything else (http, data:) is not a local file.
pub fn local_path(image_url: &str) -> Option<Result<PathBuf, AccessError>> {
    if strip_prefix_ignore_case(image_url, "file:").is_some() {
        return Some(file_uri_to_path(image_url));
    }
    if image_url.contains("://") || strip_prefix_ignore_case(image_url, "data:").is_some() {
        return None;
    }
    let path = PathBuf::from(image_url);
    if path.is_absolute() {
        Some(Ok(path))
    } else {
        Some(Err(AccessError::Relative(image_url.to_owned())))
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn file_uri_to_path(uri: &str) -> Result<PathBuf, AccessError> {
    let bad = |reason: &str| AccessError::BadFileUri(uri.to_owned(), reason.to_owned());
    let parsed = Url::parse(uri).map_err(|error| bad(&error.to_string()))?;
    match parsed.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(host) => return Err(bad(&format!("it names the remote host {host:?}"))),
    }
    parsed
        .to_file_path()
        .map_err(|()| bad("it does not name a local path"))
}

/// The folders local reads are confined to, in canonical form.
#[derive(Debug, Clone, Default)]
pub struct AllowedDirs {
    dirs: Vec<PathBuf>,
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
        Self { dirs: canonical }
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

    /// Resolves `path` (symlinks followed) and returns its canonical form if
    /// it is a regular file inside one of the folders.
    pub fn check(&self, path: &Path) -> Result<PathBuf, AccessError> {
        let canonical = path
            .canonicalize()
            .map_err(|error| AccessError::Unreadable {
                path: path.display().to_string(),
                reason: error.to_string(),
            })?;
        if !self.dirs.iter().any(|dir| canonical.starts_with(dir)) {
            return Err(AccessError::OutsideAllowed {
                path: canonical.display().to_string(),
                allowed: self.describe(),
            });
        }
        let metadata = std::fs::metadata(&canonical).map_err(|error| AccessError::Unreadable {
            path: canonical.display().to_string(),
            reason: error.to_string(),
        })?;
        if !metadata.is_file() {
            return Err(AccessError::NotAFile {
                path: canonical.display().to_string(),
            });
        }
        Ok(canonical)
    }
}

/// Splits an `output_path` argument into the sub-folder of the output folder
/// and the file name it names. Absolute paths are accepted only when they lie
/// inside the output folder.
pub fn output_target(
    output_dir: &Path,
    output_path: &str,
) -> Result<(PathBuf, String), AccessError> {
    let bad = || AccessError::BadOutputPath(output_path.to_owned());
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
    Ok((folder, file_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_forms_are_recognised() {
        assert_eq!(local_path("https://example.com/a.png"), None);
        assert_eq!(local_path("data:image/png;base64,AAAA"), None);
        assert_eq!(
            local_path("/tmp/a.png"),
            Some(Ok(PathBuf::from("/tmp/a.png")))
        );
        assert_eq!(
            local_path("file:///tmp/a%20b.png"),
            Some(Ok(PathBuf::from("/tmp/a b.png")))
        );
        assert_eq!(
            local_path("file://localhost/tmp/a.png"),
            Some(Ok(PathBuf::from("/tmp/a.png")))
        );
        assert!(matches!(
            local_path("file://evil.example/etc/passwd"),
            Some(Err(AccessError::BadFileUri(..)))
        ));
        assert!(matches!(
            local_path("a.png"),
            Some(Err(AccessError::Relative(_)))
        ));
    }

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

        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        assert_eq!(
            dirs.check(&inside_file).unwrap(),
            inside_file.canonicalize().unwrap()
        );
        assert!(matches!(
            dirs.check(&link),
            Err(AccessError::OutsideAllowed { .. })
        ));
        assert!(matches!(
            dirs.check(
                &allowed
                    .path()
                    .join("../")
                    .join(outside.path().file_name().unwrap())
                    .join("secret.png")
            ),
            Err(AccessError::OutsideAllowed { .. }) | Err(AccessError::Unreadable { .. })
        ));
        assert!(matches!(
            dirs.check(allowed.path()),
            Err(AccessError::NotAFile { .. })
        ));
        assert!(matches!(
            AllowedDirs::new([PathBuf::from("/")]).check(Path::new("/dev/zero")),
            Err(AccessError::NotAFile { .. })
        ));
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
}

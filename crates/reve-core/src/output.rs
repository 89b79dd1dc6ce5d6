//! Result images: what an edit returns, and saving it to disk without ever losing or clobbering
//! a file.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::billing::Charge;
use crate::error::{Error, Result};
use crate::format::ImageFormat;
use crate::text::shorten;

/// What the API said about a result, beside the image itself: the same for a result held in
/// memory ([`EditedImage`]) and one written to a file ([`StagedImage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMetadata {
    /// The type detected from the image's bytes.
    pub format: ImageFormat,
    /// Where the API published the image, when it returned a URL (these URLs expire).
    pub url: Option<String>,
    /// The provider's id for this generation; quote it when reporting a problem.
    pub request_id: Option<String>,
    /// The API's content-policy flag; `Some(false)` when it reported checking and finding
    /// nothing (a `true` never gets here: it is [`Error::ContentViolation`]).
    pub content_violation: Option<bool>,
    /// What the generation cost, when the API said in the body's `meta.usage`.
    pub usage: Option<Usage>,
    /// What the answer's headers said: the inference's id and its charge, in credits and US
    /// dollars.
    pub charge: Charge,
}

impl ResultMetadata {
    /// The MIME type of the image, such as `image/png`.
    pub fn mime_type(&self) -> &'static str {
        self.format.mime_type()
    }

    /// The file extension for the image's real type, without the dot.
    pub fn extension(&self) -> &'static str {
        self.format.extension()
    }
}

/// An edited image, as the API returned it.
///
/// `Debug` shows the size of `bytes`, not the bytes.
#[derive(Clone, PartialEq)]
pub struct EditedImage {
    /// The image file exactly as the API delivered it (downloaded, or decoded from base64).
    pub bytes: Bytes,
    /// Its type and what the API said about it.
    pub metadata: ResultMetadata,
}

/// What a generation cost, as reported in the response's `meta.usage`.
///
/// The published schema promises `credits_used`; real responses carry `tokens_used` instead
/// (see `spec/README.md`), so both are kept and either may be missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Credits charged, when reported.
    pub credits_used: Option<f64>,
    /// Tokens charged, when reported.
    pub tokens_used: Option<f64>,
}

/// How many fresh generated names to try before giving up; each has 32 random bits, so needing
/// a second is already remarkable.
const NAME_ATTEMPTS: u32 = 8;

/// Extensions taken to be an image type's, so `photo.png` holding a JPEG becomes `photo.jpg`
/// rather than `photo.png.jpg`; any other extension is kept and the right one appended.
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "jfif", "webp", "gif", "bmp", "tif", "tiff", "avif", "heic",
    "heif",
];

impl EditedImage {
    /// Width and height in pixels, read from the image header without decoding the pixels.
    pub fn dimensions(&self) -> Result<(u32, u32)> {
        header_dimensions(Cursor::new(self.bytes.as_ref()), self.metadata.format)
    }

    /// Saves the image in `dir` (created if needed) and returns the path written.
    ///
    /// With no `file_name`, a fresh name `reve-<UTC time>-<random>.<ext>` is made up. A given name
    /// must be a plain file name (no directories); its extension is corrected to the image's real
    /// type (`out.png` holding a JPEG is saved as `out.jpg`).
    ///
    /// Never overwrites: if a given name exists, this fails with [`Error::FileExists`]; a
    /// generated name that happens to exist is replaced by another. The bytes go to a temporary
    /// file in `dir`, are flushed to disk, and only then take the final name in one atomic step
    /// that refuses an existing target, so no reader ever sees a partial file and no error leaves
    /// one behind. Blocking.
    pub fn save_in(&self, dir: &Path, file_name: Option<&str>) -> Result<PathBuf> {
        let wanted = file_name
            .map(|name| corrected_file_name(name, self.metadata.format))
            .transpose()?;
        let mut temp = create_temp_in(dir)?;
        temp.write_all(&self.bytes)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|source| Error::File {
                path: dir.to_owned(),
                action: "write the image into",
                source,
            })?;
        persist_without_clobbering(temp, dir, wanted, self.metadata.format)
    }
}

/// An edited image that [`crate::Client::edit_into_dir`] wrote to a hidden temporary file as it
/// arrived, instead of holding it in memory: a server finishing many large results at once then
/// needs memory for none of them.
///
/// [`StagedImage::persist`] gives it its final name, with the guarantees of
/// [`EditedImage::save_in`]; dropping it unsaved deletes the temporary file.
pub struct StagedImage {
    file: tempfile::NamedTempFile,
    dir: PathBuf,
    /// The image's size in bytes.
    pub size: u64,
    /// Its type and what the API said about it.
    pub metadata: ResultMetadata,
}

impl StagedImage {
    pub(crate) fn new(
        file: tempfile::NamedTempFile,
        dir: PathBuf,
        size: u64,
        metadata: ResultMetadata,
    ) -> StagedImage {
        StagedImage {
            file,
            dir,
            size,
            metadata,
        }
    }

    /// A new read handle on the image, at its start, that stays valid after
    /// [`StagedImage::persist`] (the file is reopened and checked to be the one written, never
    /// trusted by its path alone).
    pub fn open(&self) -> Result<File> {
        self.file.reopen().map_err(|source| Error::File {
            path: self.file.path().to_owned(),
            action: "reopen",
            source,
        })
    }

    /// Width and height in pixels, read from the image header without decoding the pixels.
    pub fn dimensions(&self) -> Result<(u32, u32)> {
        header_dimensions(BufReader::new(self.open()?), self.metadata.format)
    }

    /// The folder the image was staged in, where it is saved.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name the image takes when saved as `file_name`: the caller's name with the extension
    /// of the image's real type, or a fresh generated one (`reve-<UTC time>-<random>.<ext>`).
    pub fn file_name_for(&self, file_name: Option<&str>) -> Result<String> {
        match file_name {
            Some(name) => corrected_file_name(name, self.metadata.format),
            None => Ok(generated_file_name(
                SystemTime::now(),
                fastrand::u32(..),
                self.metadata.format,
            )),
        }
    }

    /// Flushes the image to disk, so that a rename that follows publishes a complete file.
    /// Blocking.
    pub fn sync(&self) -> Result<()> {
        self.file
            .as_file()
            .sync_all()
            .map_err(|source| Error::File {
                path: self.dir.clone(),
                action: "write the image into",
                source,
            })
    }

    /// Gives the image exactly the name `name` (a plain file name) in its folder, in one atomic
    /// step that refuses an existing file ([`Error::FileExists`]), with the permissions the
    /// process's umask gives a new file. Call [`StagedImage::sync`] first. On failure the image
    /// comes back unsaved (boxed, as it is large), so that the caller can choose another name:
    /// a result already paid for is never dropped for its name. Blocking.
    pub fn persist_as(self, name: &str) -> std::result::Result<PathBuf, Box<NotPersisted>> {
        let target = self.dir.join(name);
        if let Err(source) = follow_umask(self.file.as_file()) {
            return Err(Box::new(NotPersisted {
                error: Error::File {
                    path: target,
                    action: "set the permissions of",
                    source,
                },
                image: self,
            }));
        }
        let StagedImage {
            file,
            dir,
            size,
            metadata,
        } = self;
        match file.persist_noclobber(&target) {
            Ok(_) => {
                tracing::info!(path = %target.display(), "saved result image");
                Ok(target)
            }
            Err(error) => Err(Box::new(NotPersisted {
                error: if error.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::FileExists { path: target }
                } else {
                    Error::File {
                        path: target,
                        action: "save",
                        source: error.error,
                    }
                },
                image: StagedImage {
                    file: error.file,
                    dir,
                    size,
                    metadata,
                },
            })),
        }
    }

    /// Flushes the image to disk and gives it its final name in the folder it was staged in,
    /// following the naming rules and guarantees of [`EditedImage::save_in`]. Blocking.
    pub fn persist(self, file_name: Option<&str>) -> Result<PathBuf> {
        let wanted = file_name
            .map(|name| corrected_file_name(name, self.metadata.format))
            .transpose()?;
        self.sync()?;
        persist_without_clobbering(self.file, &self.dir, wanted, self.metadata.format)
    }
}

impl fmt::Debug for StagedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedImage")
            .field("path", &self.file.path())
            .field("size", &self.size)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// A [`StagedImage`] that [`StagedImage::persist_as`] could not save, handed back with the
/// reason, as `tempfile`'s `PersistError` hands back its file.
pub struct NotPersisted {
    /// Why it was not saved: [`Error::FileExists`] when the name is taken.
    pub error: Error,
    /// The image, still staged.
    pub image: StagedImage,
}

impl fmt::Debug for NotPersisted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotPersisted")
            .field("error", &self.error)
            .field("image", &self.image)
            .finish()
    }
}

/// Gives a file about to be published the permissions a new file of the user's gets (`0666`
/// less the umask), as any program's output would: temporary files are made private (`0600`)
/// while they are written, which surprises people who share a results folder.
fn follow_umask(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// The process's umask, read without changing it (setting it, the only other way, races with
/// every thread creating a file): Linux reports it in `/proc/self/status`; elsewhere the
/// common `022` is assumed. Read once: a process sets its umask at start, if ever.
#[cfg(unix)]
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(read_umask)
}

#[cfg(unix)]
fn read_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|mask| u32::from_str_radix(mask.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// A fresh name beside `name` (a corrected file name), for a result whose name was taken
/// after it was paid for: `hat.png` becomes `hat-1a2b3c4d.png`.
pub fn name_beside(name: &str) -> String {
    let random = fastrand::u32(..);
    match name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()) {
        Some((stem, ext)) => format!("{stem}-{random:08x}.{ext}"),
        None => format!("{name}-{random:08x}"),
    }
}

/// Width and height from an image's header, without decoding its pixels.
fn header_dimensions(
    reader: impl std::io::BufRead + std::io::Seek,
    format: ImageFormat,
) -> Result<(u32, u32)> {
    image::ImageReader::with_format(reader, format.image_crate_format())
        .into_dimensions()
        .map_err(|error| Error::Decode {
            reason: format!("the {format} result image's header is unreadable: {error}"),
            body: None,
        })
}

/// How the temporary files of [`create_temp_in`] are named: hidden, and recognisable as ours.
const PARTIAL_PREFIX: &str = ".reve-";
const PARTIAL_SUFFIX: &str = ".partial";

/// How deep [`sweep_stale_partials`] looks below its folder, and how many entries it visits at
/// most: results go into the output folder or a few levels of `output_path` sub-folders, and a
/// folder someone pointed at a huge tree must not stall a start-up.
const SWEEP_MAX_DEPTH: usize = 8;
const SWEEP_MAX_ENTRIES: usize = 100_000;

/// Removes the temporary files a killed process left in `dir` and its sub-folders: only files
/// named as [`crate::Client::edit_into_dir`] names its own (`.reve-*.partial`), and only those
/// last modified more than `older_than` ago, so that a file another process is still writing is
/// never touched. Symbolic links are neither followed nor removed. Returns how many files were
/// removed; a file that cannot be removed is skipped.
///
/// A process that is killed cannot clean up after itself, and each leftover may be as large as a
/// result; a server calls this at start-up.
pub fn sweep_stale_partials(dir: &Path, older_than: std::time::Duration) -> usize {
    let now = SystemTime::now();
    let entries = walkdir::WalkDir::new(dir)
        .max_depth(SWEEP_MAX_DEPTH)
        .into_iter()
        .take(SWEEP_MAX_ENTRIES)
        .filter_map(|entry| entry.ok());
    let mut removed = 0;
    for entry in entries {
        // `file_type` is the entry's own (walkdir does not follow links), so a link is skipped.
        if !entry.file_type().is_file() || !is_partial_name(entry.file_name()) {
            continue;
        }
        let age = entry
            .metadata()
            .ok()
            .and_then(|metadata| metadata.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok());
        if age.is_none_or(|age| age <= older_than) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(error) => tracing::warn!(
                path = %entry.path().display(),
                %error,
                "could not remove a stale temporary file"
            ),
        }
    }
    removed
}

fn is_partial_name(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|name| {
        name.len() > PARTIAL_PREFIX.len() + PARTIAL_SUFFIX.len()
            && name.starts_with(PARTIAL_PREFIX)
            && name.ends_with(PARTIAL_SUFFIX)
    })
}

/// Creates `dir` if needed and a hidden temporary file in it, where an image is written before
/// it takes its final name.
pub(crate) fn create_temp_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir).map_err(|source| Error::File {
        path: dir.to_owned(),
        action: "create directory",
        source,
    })?;
    tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .suffix(PARTIAL_SUFFIX)
        .tempfile_in(dir)
        .map_err(|source| Error::File {
            path: dir.to_owned(),
            action: "create a temporary file in",
            source,
        })
}

/// Gives a complete, flushed temporary file in `dir` its final name in one atomic step that
/// refuses an existing target: `wanted`, or else a fresh generated one.
fn persist_without_clobbering(
    mut temp: tempfile::NamedTempFile,
    dir: &Path,
    wanted: Option<String>,
    format: ImageFormat,
) -> Result<PathBuf> {
    follow_umask(temp.as_file()).map_err(|source| Error::File {
        path: dir.to_owned(),
        action: "set the permissions of a file in",
        source,
    })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let target = dir.join(match &wanted {
            Some(name) => name.clone(),
            None => generated_file_name(SystemTime::now(), fastrand::u32(..), format),
        });
        match temp.persist_noclobber(&target) {
            Ok(_) => {
                tracing::info!(path = %target.display(), "saved result image");
                return Ok(target);
            }
            Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => {
                if wanted.is_some() {
                    return Err(Error::FileExists { path: target });
                }
                if attempt >= NAME_ATTEMPTS {
                    return Err(Error::File {
                        path: target,
                        action: "save",
                        source: error.error,
                    });
                }
                temp = error.file;
            }
            Err(error) => {
                return Err(Error::File {
                    path: target,
                    action: "save",
                    source: error.error,
                });
            }
        }
    }
}

impl fmt::Debug for EditedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EditedImage")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// The longest file name most file systems take, in bytes (ext4, APFS, NTFS in UTF-16 units).
const MAX_FILE_NAME_BYTES: usize = 255;

/// Checks that `name` would be saved as given (its extension corrected to whichever type the
/// result turns out to be), so that a caller can refuse a bad name before paying for an edit:
/// a plain name, no leading dot, no separator, backslash, NUL or other control character, and
/// short enough for the file system once its extension is corrected.
pub fn check_file_name(name: &str) -> Result<()> {
    possible_file_names(name).map(drop)
}

/// Every name that `name` may be saved as, one per type the result may turn out to be (its
/// extension corrected), without repeats: what must all be free before paying for an edit
/// that is to be saved as `name`.
pub fn possible_file_names(name: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(ImageFormat::ALL.len());
    for format in ImageFormat::ALL {
        let corrected = corrected_file_name(name, format)?;
        if !names.contains(&corrected) {
            names.push(corrected);
        }
    }
    Ok(names)
}

/// Checks a caller's file name and gives it the extension of the image's real type.
fn corrected_file_name(name: &str, format: ImageFormat) -> Result<String> {
    let invalid = |reason: String| Error::InvalidInput {
        field: "file_name",
        reason,
    };
    let path = Path::new(name);
    let plain = path.file_name().and_then(|n| n.to_str()) == Some(name);
    let forbidden = name
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == '/');
    if name.trim().is_empty() || !plain || forbidden || name.starts_with('.') {
        return Err(invalid(format!(
            "{:?} is not a plain file name; give a name like \"edited.png\", without directories, a \
             leading dot, backslashes or control characters",
            shorten(name)
        )));
    }
    let stem_and_ext = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty());
    let corrected = match stem_and_ext {
        Some((_, ext)) if format.accepts_extension(ext) => name.to_owned(),
        Some((stem, ext))
            if IMAGE_EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(ext)) =>
        {
            format!("{stem}.{}", format.extension())
        }
        _ => format!("{name}.{}", format.extension()),
    };
    if corrected.len() > MAX_FILE_NAME_BYTES {
        return Err(invalid(format!(
            "{:?} is {} bytes with its extension; the limit is {MAX_FILE_NAME_BYTES} bytes",
            shorten(name),
            corrected.len()
        )));
    }
    Ok(corrected)
}

/// `reve-20250101T120000Z-1a2b3c4d.png`: sortable by time, unique by the random part.
fn generated_file_name(now: SystemTime, random: u32, format: ImageFormat) -> String {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let rest = seconds % 86_400;
    format!(
        "reve-{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{random:08x}.{}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        format.extension()
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) date in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`), to avoid a date-time dependency for one name.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_our_stale_temporary_files_are_swept() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
        let file = |path: &Path, old: bool| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let file = File::create(path).unwrap();
            if old {
                file.set_modified(day_ago).unwrap();
            }
        };
        let stale = dir.path().join(".reve-a1b2c3.partial");
        let nested_stale = dir.path().join("sub/deeper/.reve-zz.partial");
        let fresh = dir.path().join(".reve-d4e5.partial");
        let not_ours = [
            dir.path().join(".other-a1.partial"),
            dir.path().join(".reve-a1.png"),
            dir.path().join("reve-a1.partial"),
            dir.path().join(".reve-.partial"),
        ];
        file(&stale, true);
        file(&nested_stale, true);
        file(&fresh, false);
        for path in &not_ours {
            file(path, true);
        }
        // A link with our name to an old file elsewhere: neither it nor its target goes.
        let target = outside.path().join(".reve-target.partial");
        file(&target, true);
        let link = dir.path().join(".reve-link.partial");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        assert_eq!(
            sweep_stale_partials(dir.path(), Duration::from_secs(3600)),
            2
        );
        assert!(!stale.exists() && !nested_stale.exists());
        assert!(fresh.exists() && target.exists() && link.symlink_metadata().is_ok());
        for path in &not_ours {
            assert!(path.exists(), "{} was removed", path.display());
        }
        assert_eq!(
            sweep_stale_partials(dir.path(), Duration::from_secs(3600)),
            0
        );
    }
    use std::time::Duration;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_254), (2025, 6, 15));
    }

    #[test]
    fn generated_names_carry_utc_time_random_and_extension() {
        let now = UNIX_EPOCH + Duration::from_secs(1_759_282_497);
        assert_eq!(
            generated_file_name(now, 0xabc, ImageFormat::WebP),
            "reve-20251001T013457Z-00000abc.webp"
        );
    }

    #[test]
    fn given_names_get_the_real_extension() {
        let fix = |name| corrected_file_name(name, ImageFormat::Jpeg).unwrap();
        assert_eq!(fix("photo.jpeg"), "photo.jpeg");
        assert_eq!(fix("photo.JPG"), "photo.JPG");
        assert_eq!(fix("photo.png"), "photo.jpg");
        assert_eq!(fix("photo"), "photo.jpg");
        assert_eq!(fix("photo.v2"), "photo.v2.jpg");
    }

    #[test]
    fn names_are_checked_for_every_type_the_result_may_have() {
        // 255 bytes: fits as .png, but not once it becomes .webp.
        let name = format!("{}.png", "n".repeat(251));
        assert!(corrected_file_name(&name, ImageFormat::Png).is_ok());
        assert!(check_file_name(&name).is_err());
        assert!(check_file_name("cat.png").is_ok());
    }

    #[test]
    fn given_names_must_be_plain() {
        let too_long = format!("{}.png", "n".repeat(252));
        for name in [
            "",
            "a/b.png",
            "../b.png",
            "/etc/b.png",
            ".hidden.png",
            "..",
            "a\\b.png",
            "a\0b.png",
            "a\nb.png",
            "tab\t.png",
            &too_long,
        ] {
            let error = corrected_file_name(name, ImageFormat::Png).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::InvalidInput {
                        field: "file_name",
                        ..
                    }
                ),
                "{name}: {error:?}"
            );
        }
    }
}

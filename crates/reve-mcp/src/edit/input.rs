//! The request: which local files a call may read, and the body sent to the API with the input
//! picture inline, read within the upload budget.

use std::path::{Path, PathBuf};

use reve_core::{FinalSymlink, ImageSource, PictureSource, RequestBody};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::{BODY_JSON_BYTES, EditError, Editor, InputPicture, Progress, ResponseMode, queued};
use crate::access::{AccessError, AllowedDirs};
use crate::generated::ToolArguments;
use crate::preview;

/// Which local files an edit may read: decided by who chose the path.
#[derive(Debug, Clone)]
pub enum LocalFiles {
    /// Any file this process can read, a relative path taken from `base`: a person typed it.
    Anywhere { base: PathBuf },
    /// Only files inside these folders, after symlinks are resolved: a model chose the path.
    Inside(AllowedDirs),
    /// None at all: a client on another machine, with no folder opened to it.
    Closed,
}

impl LocalFiles {
    /// Opens `path` as this edit may (blocking): the handle to read and the path to name it by.
    fn open(&self, path: &Path) -> Result<(std::fs::File, PathBuf), EditError> {
        match self {
            LocalFiles::Inside(allowed) => Ok(allowed.open(path)?),
            LocalFiles::Anywhere { .. } => {
                let file =
                    reve_core::open_nonblocking(path, FinalSymlink::Follow).map_err(|source| {
                        reve_core::Error::File {
                            path: path.to_owned(),
                            action: "open",
                            source,
                        }
                    })?;
                Ok((file, path.to_owned()))
            }
            LocalFiles::Closed => Err(AccessError::ServerFilesClosed(
                reve_core::workspace::shorten(&path.display().to_string()),
            )
            .into()),
        }
    }
}

/// Opens a result this server saved (blocking). It was checked to be a file when the call
/// named it; a symlink swapped in since must not redirect the read.
fn open_saved_result(path: PathBuf) -> Result<(std::fs::File, PathBuf), EditError> {
    let file = reve_core::open_nonblocking(&path, FinalSymlink::Refuse).map_err(|source| {
        reve_core::Error::File {
            path: path.clone(),
            action: "open",
            source,
        }
    })?;
    Ok((file, path))
}

/// The local file a picture argument names, or `None` for a URL or a `data:` URI, which the request
/// body checks. Whether the file may be read is [`LocalFiles::open`]'s to say.
pub fn input_file(image_url: &str, local_files: &LocalFiles) -> Result<Option<PathBuf>, EditError> {
    let base = match local_files {
        LocalFiles::Anywhere { base } => Some(base.as_path()),
        LocalFiles::Inside(_) | LocalFiles::Closed => None,
    };
    Ok(ImageSource::local_file(image_url, base)?)
}

impl Editor {
    /// Builds the request body off the async threads, once there is room for it among the
    /// bodies in flight: each local file is opened (as `local_files` allows, or as one of
    /// `saved_results`, this server's own), checked and its base64 written straight into the
    /// body; a `data:` URI from the caller is checked and copied into it. The returned permit
    /// is the body's room; drop it with the body.
    pub(super) async fn body(
        &self,
        arguments: ToolArguments,
        inputs: Vec<Option<PathBuf>>,
        local_files: &LocalFiles,
        saved_results: Vec<PathBuf>,
        progress: &impl Progress,
        cancel: &CancellationToken,
    ) -> Result<(RequestBody, OwnedSemaphorePermit), EditError> {
        let max_bytes = self.options.max_input_bytes;
        let opened = {
            let local_files = local_files.clone();
            tokio::task::spawn_blocking(move || {
                let open = |path: PathBuf| match saved_results.contains(&path) {
                    true => open_saved_result(path),
                    false => local_files.open(&path),
                };
                inputs
                    .into_iter()
                    .map(|input| input.map(open).transpose())
                    .collect::<Result<Vec<_>, EditError>>()
            })
            .await
            .expect("opening a file does not panic")?
        };
        // The body is each picture as base64 (a caller's `data:` URI is that already) and the
        // JSON around them. A file larger than the limit is refused while it is built, unread.
        let pictures = arguments.pictures();
        let body_bytes = opened
            .iter()
            .zip(&pictures)
            .map(|(opened, given)| match opened {
                Some((file, _)) => {
                    file.metadata()
                        .map_or(0, |metadata| metadata.len().min(max_bytes))
                        .div_ceil(3)
                        * 4
                }
                None => given.len() as u64,
            })
            .sum::<u64>()
            + BODY_JSON_BYTES;
        drop(pictures);
        let upload = queued(self.uploads.reserve(body_bytes), progress, cancel).await?;
        let convert_base64_to_url = self.options.response_mode == ResponseMode::Url;
        let body = tokio::task::spawn_blocking(move || {
            let sources: Vec<PictureSource<'_>> = opened
                .iter()
                .map(|opened| match opened {
                    Some((file, path)) => PictureSource::File(file, path),
                    None => PictureSource::AsGiven,
                })
                .collect();
            arguments.body(convert_base64_to_url, &sources, max_bytes)
        })
        .await
        .expect("building the request body does not panic")?;
        Ok((body, upload))
    }

    /// The preview of each picture `body` carries, in the request's order: `None` for one it
    /// names by URL or that cannot be previewed (the edit goes on without), and none at all when
    /// the editor makes no previews.
    pub(super) async fn input_pictures(&self, body: RequestBody) -> Vec<Option<InputPicture>> {
        let Some(budget) = self.options.preview else {
            return Vec::new();
        };
        let inline: Vec<bool> = body
            .inline_images_base64()
            .map(|picture| picture.is_some())
            .collect();
        let mut pictures = Vec::with_capacity(inline.len());
        for (index, inline) in inline.into_iter().enumerate() {
            if !inline {
                pictures.push(None);
                continue;
            }
            let body = body.clone();
            let made = self
                .previews
                .run(move || {
                    use base64::Engine as _;
                    let base64 = body
                        .inline_images_base64()
                        .nth(index)
                        .flatten()
                        .unwrap_or_default();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(base64)
                        .map_err(|error| {
                            image::ImageError::IoError(std::io::Error::other(error))
                        })?;
                    let preview = preview::make_preview(&bytes, budget)?;
                    Ok(InputPicture {
                        mime_type: preview::mime_type_of(&bytes),
                        width: preview.full_size.0,
                        height: preview.full_size.1,
                        bytes: bytes.len() as u64,
                        preview,
                    })
                })
                .await;
            pictures.push(
                made.inspect_err(|error| tracing::info!(%error, "no preview of an input picture"))
                    .ok(),
            );
        }
        pictures
    }
}

//! The request: which local files a call may read, and the body sent to the API with the input
//! picture inline, read within the upload budget.

use std::path::{Path, PathBuf};

use reve_core::{FinalSymlink, ImageSource, RequestBody};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::{BODY_JSON_BYTES, EditError, Editor, InputPicture, Progress, queued};
use crate::access::{AccessError, AllowedDirs};
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

/// The local file `image_url` names, or `None` for a URL or a `data:` URI, which the request
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
    /// bodies in flight: a local file is opened (as `local_files` allows), checked and its
    /// base64 written straight into the body; a `data:` URI from the caller is checked and
    /// copied into it. The returned permit is the body's room; drop it with the body.
    pub(super) async fn body(
        &self,
        request: reve_core::EditImageRequest,
        input: Option<PathBuf>,
        local_files: &LocalFiles,
        progress: &impl Progress,
        cancel: &CancellationToken,
    ) -> Result<(RequestBody, OwnedSemaphorePermit), EditError> {
        let max_bytes = self.options.max_input_bytes;
        let opened = match input {
            None => None,
            Some(path) => {
                let local_files = local_files.clone();
                let opened = tokio::task::spawn_blocking(move || local_files.open(&path))
                    .await
                    .expect("opening a file does not panic")?;
                Some(opened)
            }
        };
        // The body is the image as base64 (a caller's `data:` URI is that already) and the
        // JSON around it. A file larger than the limit is refused while it is built, unread.
        let body_bytes = match &opened {
            Some((file, _)) => {
                file.metadata()
                    .map_or(0, |metadata| metadata.len().min(max_bytes))
                    .div_ceil(3)
                    * 4
            }
            None => request.image_url.len() as u64,
        } + BODY_JSON_BYTES;
        let upload = queued(self.uploads.reserve(body_bytes), progress, cancel).await?;
        let body = tokio::task::spawn_blocking(move || match opened {
            None => RequestBody::new(&request, max_bytes),
            Some((file, path)) => RequestBody::with_image_file(&request, &file, &path, max_bytes),
        })
        .await
        .expect("building the request body does not panic")?;
        Ok((body, upload))
    }

    /// The preview of the picture `body` carries inline, or `None` when it names a URL, the
    /// editor makes no previews, or the picture cannot be previewed: the edit goes on without.
    pub(super) async fn input_picture(&self, body: RequestBody) -> Option<InputPicture> {
        let budget = self.options.preview?;
        body.inline_image_base64()?;
        let made = self
            .previews
            .run(move || {
                use base64::Engine as _;
                let base64 = body.inline_image_base64().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(base64)
                    .map_err(|error| image::ImageError::IoError(std::io::Error::other(error)))?;
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
        made.inspect_err(|error| tracing::info!(%error, "no preview of the input picture"))
            .ok()
    }
}

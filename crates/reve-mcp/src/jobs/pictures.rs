//! A job's pictures: the result, its preview and the input, as the resources show them, and the
//! previews kept in the store for later callers.

use std::path::PathBuf;

use super::{JobError, JobRecord, JobState, Jobs, KeptPicture, Picture, Succeeded};

impl Jobs {
    /// Makes the preview of a succeeded job's saved result again when none is kept (the
    /// command line keeps none; a kept one may be gone), and keeps it under `owner`, the job
    /// that made the result: a successful result always carries its picture.
    pub(super) async fn with_preview(&self, owner: &str, succeeded: &mut Succeeded) {
        if succeeded.preview.is_some() {
            return;
        }
        let Some(result) = &mut succeeded.generation.result else {
            return;
        };
        let Some(path) = result.path.clone() else {
            return;
        };
        let Some(preview) = self
            .inner
            .editor
            .preview_of_saved(std::path::Path::new(&path))
            .await
        else {
            return;
        };
        result.preview = Some(preview.shown());
        self.keep_picture(KeptPicture::Preview, owner, preview.bytes.clone())
            .await;
        succeeded.preview = Some(preview.bytes);
    }

    /// Whether job `id` succeeded with a saved file that is no longer there: it is then not
    /// reused, since its result would name a file that is gone.
    pub(super) async fn result_is_gone(&self, id: &str) -> Result<bool, JobError> {
        let Some(record) = self
            .inner
            .store
            .get(id.to_owned())
            .await
            .map_err(JobError::StoreRead)?
        else {
            return Ok(true);
        };
        let generation = record.payload.generation;
        let saved = generation
            .result
            .filter(|_| record.state == JobState::Succeeded && generation.destination.saves)
            .and_then(|result| result.path);
        Ok(match saved {
            Some(path) => tokio::fs::symlink_metadata(&path).await.is_err(),
            None => false,
        })
    }

    /// Up to `limit` results of `principal`'s jobs, newest first, after the job `after` names
    /// (its creation time and id).
    pub async fn results(
        &self,
        principal: &str,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, JobError> {
        self.inner
            .store
            .results(principal.to_owned(), after, limit)
            .await
            .map_err(JobError::StoreRead)
    }

    /// One picture of job `id` of `principal`, with its MIME type; `None` when the job has
    /// no such picture (yet): it is running, it failed, its input was a URL, or the server
    /// does not save results. A job that reused another's result shows that job's pictures.
    pub async fn picture(
        &self,
        id: &str,
        principal: &str,
        picture: Picture,
    ) -> Result<Option<(Vec<u8>, String)>, JobError> {
        let record = self.record(id, principal).await?;
        let owner = record
            .reused_from
            .clone()
            .unwrap_or_else(|| record.id.clone());
        let result = record
            .payload
            .generation
            .result
            .filter(|_| record.state == JobState::Succeeded);
        let (kept, mime_type) = match (picture, result) {
            (Picture::Result, Some(result)) => match result.path {
                Some(path) => return read_saved(id, PathBuf::from(path), result.mime_type).await,
                None => return Ok(None),
            },
            (Picture::Preview, Some(result)) => match result.preview {
                Some(shown) => (KeptPicture::Preview, Some(shown.mime_type)),
                None => return Ok(None),
            },
            (Picture::Result | Picture::Preview, None) => return Ok(None),
            // Kept while the edit runs; its type is the preview's own.
            (Picture::Input(index), _) => (KeptPicture::Input(index), None),
        };
        let bytes = self
            .inner
            .store
            .picture(kept, owner)
            .await
            .map_err(JobError::StoreRead)?;
        Ok(bytes.map(|bytes| {
            let mime_type =
                mime_type.unwrap_or_else(|| crate::preview::mime_type_of(&bytes).to_owned());
            (bytes, mime_type)
        }))
    }

    /// A preview of the picture in the file at `path`, as a result's is made; `None` when it
    /// cannot be read or decoded (or previews are off).
    pub async fn preview_of_file(&self, path: &std::path::Path) -> Option<crate::preview::Preview> {
        self.inner.editor.preview_of_saved(path).await
    }

    /// Keeps a picture of job `id` where any later caller (or another replica) finds it. A
    /// cache: a failure costs only a picture shown later, never the result.
    pub(super) async fn keep_picture(&self, picture: KeptPicture, id: &str, bytes: bytes::Bytes) {
        if let Err(error) = self
            .inner
            .store
            .keep_picture(picture, id.to_owned(), bytes)
            .await
        {
            tracing::warn!(%error, job = id, "could not keep a preview of the job's pictures");
        }
    }
}

/// The saved result of job `id`, byte for byte. The user may have moved or deleted it since:
/// that is said, with its path, rather than read as no picture.
pub(super) async fn read_saved(
    id: &str,
    path: PathBuf,
    mime_type: String,
) -> Result<Option<(Vec<u8>, String)>, JobError> {
    let read = tokio::task::spawn_blocking(move || (std::fs::read(&path), path))
        .await
        .expect("reading a picture does not panic");
    match read {
        (Ok(bytes), _) => Ok(Some((bytes, mime_type))),
        (Err(error), path) => Err(JobError::ResultUnreadable {
            id: id.to_owned(),
            path: path.display().to_string(),
            reason: error.to_string(),
        }),
    }
}

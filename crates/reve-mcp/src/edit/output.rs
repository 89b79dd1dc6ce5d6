//! The result: where it goes (checked before paying, for every name it may take), how the paid
//! result is saved beside a clash rather than lost, and its preview made alongside.

use crate::jobs::Cost;
use std::path::{Path, PathBuf};

use reve_core::StagedImage;

use super::{EditError, Edited, Editor, Journal};
use crate::access;
use crate::generation::{Answer, Generation, Picture};
use crate::preview::{EarlyPreview, Preview};

/// Where a result is staged and what it is to be called.
#[derive(Debug, Clone)]
pub struct Destination {
    pub folder: PathBuf,
    pub name: Option<String>,
    /// An existing file at one of the names `name` may be saved as (its extension corrected
    /// to the result's type): the edit is then refused unpaid, unless it is identical to the
    /// one that saved that file, which gets that result instead.
    pub taken: Option<PathBuf>,
}

/// How many names a paid result tries before its save fails: a clash is already a race with
/// another writer, and each fresh name has 32 random bits.
pub(super) const NAME_ATTEMPTS: usize = 8;

/// Saves a paid result under `name` (corrected to its real type) or a fresh generated name,
/// telling `journal` each name before it is taken. The name was checked before paying; if a
/// file took it since, the result is saved under a fresh name beside it rather than lost.
pub(super) async fn save(
    staged: StagedImage,
    name: Option<String>,
    journal: &impl Journal,
) -> reve_core::Result<PathBuf> {
    let size = staged.size;
    let mut staged = tokio::task::spawn_blocking(move || staged.sync().map(|()| staged))
        .await
        .expect("syncing does not panic")?;
    let wanted = staged.file_name_for(name.as_deref())?;
    let mut next = wanted.clone();
    for _ in 0..NAME_ATTEMPTS {
        journal.saving(&staged.dir().join(&next), size).await;
        let trying = next.clone();
        let persisted = tokio::task::spawn_blocking(move || staged.persist_as(&trying))
            .await
            .expect("saving does not panic");
        let not_persisted = match persisted {
            Ok(path) => return Ok(path),
            Err(not_persisted) => *not_persisted,
        };
        match not_persisted {
            reve_core::NotPersisted {
                error: reve_core::Error::FileExists { path },
                image,
            } => {
                staged = image;
                next = match name {
                    Some(_) => {
                        tracing::warn!(path = %path.display(), "the name asked for was taken after the edit was paid for; saving the result beside it");
                        reve_core::name_beside(&wanted)
                    }
                    None => staged.file_name_for(None)?,
                };
            }
            reve_core::NotPersisted { error, .. } => return Err(error),
        }
    }
    Err(reve_core::Error::FileExists {
        path: staged.dir().join(next),
    })
}

impl Editor {
    /// The folder and name the result will take, checked as far as they can be before paying:
    /// inside the output folder, a name that saving would accept, not a file that exists.
    pub(super) fn destination(
        &self,
        output_path: Option<String>,
    ) -> Result<Destination, EditError> {
        if !self.options.saves {
            return match output_path {
                Some(_) => Err(EditError::NotSaving),
                None => Ok(Destination {
                    folder: self.stage_dir(),
                    name: None,
                    taken: None,
                }),
            };
        }
        let Some(output_path) = output_path else {
            return Ok(Destination {
                folder: self.stage_dir(),
                name: None,
                taken: None,
            });
        };
        let (folder, name) = access::output_target(&self.options.output_dir, &output_path)?;
        let names = reve_core::possible_file_names(&name)
            .map_err(|error| EditError::Arguments(format!("output_path: {error}")))?;
        // Every name the result may take once its real type corrects the extension (`hat.jpg`
        // may be saved as `hat.png`): a clash found only after paying would cost the result.
        let taken = names
            .iter()
            .map(|name| folder.join(name))
            .find(|target| target.symlink_metadata().is_ok());
        Ok(Destination {
            folder,
            name: Some(name),
            taken,
        })
    }

    /// Saving (fsync and rename) and the preview (read, decode and encode) are independent, so
    /// they run side by side. The saved file matters more, so its error wins. The preview waits
    /// for a worker thread, so it reads the file only when it can work on it.
    pub(super) async fn save_and_preview(
        &self,
        staged: StagedImage,
        mut generation: Generation,
        early: Option<EarlyPreview>,
        journal: &impl Journal,
    ) -> Result<Edited, EditError> {
        let name = generation.destination.name.clone();
        let size = staged.size;
        let metadata = staged.metadata.clone();
        // A failure to reopen or read the header costs the preview or the size, never the
        // saved result.
        let reader = staged.open();
        let header_dimensions = match self.options.preview {
            None => Some(staged.dimensions()),
            Some(_) => None,
        };
        let saves = self.options.saves;
        let url = metadata.url.clone();
        let save = async move {
            if !saves {
                return Ok(None);
            }
            save(staged, name, journal)
                .await
                .map(Some)
                .map_err(|source| EditError::Save { source, url })
        };
        let preview = async {
            let Some(budget) = self.options.preview else {
                return Ok(None);
            };
            if let Some(early) = early
                && let Some(made) = early.finished().await
            {
                return Ok(Some(made));
            }
            self.previews.make(reader, budget).await.map(Some)
        };
        let (saved, preview) = tokio::join!(save, preview);
        // A name taken meanwhile is read off the saved path ([`Generation::name_taken`]).
        let path = saved?;
        let shown_path = || {
            path.as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default()
        };
        let preview = preview.map_err(|source| match &path {
            Some(_) => EditError::Preview {
                path: shown_path(),
                source,
            },
            None => EditError::PreviewUnsaved(source),
        })?;
        let dimensions = match (&preview, header_dimensions) {
            (Some(preview), _) => preview.full_size,
            (None, Some(read)) => read.map_err(|source| EditError::Dimensions {
                path: shown_path(),
                source,
            })?,
            (None, None) => unreachable!("the size comes from the preview or the header"),
        };
        generation.answer = Some(Answer {
            url: metadata.url.clone(),
            request_id: metadata.request_id.clone(),
            content_violation: metadata.content_violation,
            inference_id: metadata.charge.inference_id.clone(),
        });
        generation.result = Some(Picture {
            mime_type: metadata.mime_type().to_owned(),
            width: dimensions.0,
            height: dimensions.1,
            bytes: size,
            path: path.map(|path| path.display().to_string()),
            url: metadata.url,
            preview: preview.as_ref().map(Preview::shown),
        });
        Ok(Edited {
            generation,
            cost: Cost::of_answer(metadata.usage, &metadata.charge),
            preview: preview.map(|preview| preview.bytes),
        })
    }

    /// The result of `generation`, which an earlier run paid for and saved to `path` (as its
    /// journal recorded just before), but did not get to record: read back from the file, so
    /// that nothing is fetched, paid or saved again.
    pub async fn saved_earlier(
        &self,
        mut generation: Generation,
        path: PathBuf,
    ) -> Result<Edited, EditError> {
        let read = path.clone();
        let found = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut file = std::fs::File::open(&read)?;
            let size = file.metadata()?.len();
            let mut head = [0u8; 64];
            let length = file.read(&mut head)?;
            Ok::<_, std::io::Error>((size, reve_core::ImageFormat::detect(&head[..length])))
        })
        .await
        .expect("reading a file does not panic");
        let unreadable = |reason: String| EditError::SavedUnreadable {
            path: path.display().to_string(),
            reason,
        };
        let (size, format) = found.map_err(|error| unreadable(error.to_string()))?;
        let format = format.ok_or_else(|| unreadable("it is not a picture".to_owned()))?;
        // The result is saved and paid for: a preview that fails costs only the picture shown.
        let preview = match self.options.preview {
            Some(_) => self.preview_of_saved(&path).await,
            None => None,
        };
        let (preview, dimensions) = match preview {
            Some(preview) => {
                let size = preview.full_size;
                (Some(preview), size)
            }
            None => {
                let read = path.clone();
                let dimensions = tokio::task::spawn_blocking(move || {
                    image::image_dimensions(&read).map_err(|error| error.to_string())
                })
                .await
                .expect("reading a header does not panic")
                .map_err(unreadable)?;
                (None, dimensions)
            }
        };
        generation.result = Some(Picture {
            mime_type: format.mime_type().to_owned(),
            width: dimensions.0,
            height: dimensions.1,
            bytes: size,
            path: Some(path.display().to_string()),
            url: generation.published_url().map(str::to_owned),
            preview: preview.as_ref().map(Preview::shown),
        });
        Ok(Edited {
            generation,
            cost: None,
            preview: preview.map(|preview| preview.bytes),
        })
    }

    /// The preview of a result saved earlier, made again from its file: for a result whose
    /// preview was never kept (the command line keeps none) or is no longer kept. `None` when
    /// the editor makes no previews or the file cannot be previewed.
    pub async fn preview_of_saved(&self, path: &Path) -> Option<Preview> {
        let budget = self.options.preview?;
        let file = std::fs::File::open(path).map_err(|source| reve_core::Error::File {
            path: path.to_owned(),
            action: "open",
            source,
        });
        self.previews
            .make(file, budget)
            .await
            .inspect_err(|error| {
                tracing::info!(%error, path = %path.display(), "no preview of a saved result")
            })
            .ok()
    }
}

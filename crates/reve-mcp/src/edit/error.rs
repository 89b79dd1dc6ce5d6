//! Why an edit failed, in words written for whoever asked (often a model) to act on.

use crate::access::AccessError;
use crate::preview::PreviewError;

/// Why an edit failed. Every message is written for whoever asked (often a model) to act on.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Api(#[from] reve_core::Error),
    #[error("the edit succeeded but saving it failed: {source}{}", ResultUrlHint(.url.as_deref()))]
    Save {
        source: reve_core::Error,
        /// Where the paid result can still be fetched, if the API published it.
        url: Option<String>,
    },
    #[error(
        "{0:?} already exists; choose another output_path (existing files are never overwritten); nothing was sent to the API"
    )]
    OutputExists(String),
    #[error("the edit succeeded and was saved to {path:?}, but {source}")]
    Preview {
        path: String,
        #[source]
        source: PreviewError,
    },
    #[error("the edit succeeded, but {0}; this server does not save results")]
    PreviewUnsaved(#[source] PreviewError),
    #[error("the edit succeeded and was saved to {path:?}, but its size is unreadable: {source}")]
    Dimensions {
        path: String,
        #[source]
        source: reve_core::Error,
    },
    #[error("output_path cannot be used: this server does not save results")]
    NotSaving,
    #[error("the call was cancelled")]
    Cancelled,
    /// The result saved earlier, which a restart adopts, cannot be read back.
    #[error("the result saved to {path:?} cannot be read back: {reason}")]
    SavedUnreadable { path: String, reason: String },
    /// Whoever runs the edit refused to let it go on (the job layer: the spending limit, a
    /// store that cannot be written), with its own error, carried through unchanged.
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

/// Names the result URL in a save failure, so the paid result is not lost.
pub(super) struct ResultUrlHint<'a>(Option<&'a str>);

impl std::fmt::Display for ResultUrlHint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(url) => write!(f, "; the result can still be downloaded from {url}"),
            None => Ok(()),
        }
    }
}

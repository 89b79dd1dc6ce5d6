//! Where previews are made: two pools of threads, started on first use, and the preview of a
//! result begun while it still downloads.
//!
//! Decoding and re-encoding a 4096x4096 result takes a core and ~100 MB, so bounding the
//! previews in flight keeps memory flat when many edits finish together; and a few long-lived
//! threads reuse the memory their allocator kept from the previous preview, where
//! blocking-pool threads by the dozen would each keep their own (see BENCHMARKS.md). Previews of
//! results still downloading get threads of their own: those mostly wait for the network, and
//! must not hold up the ones that only compute.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use reve_core::ArrivingImage;

use super::{Preview, PreviewError, PreviewLimits, make_preview_from};

/// The preview threads of one editor.
#[derive(Default)]
pub struct PreviewWorkers {
    /// One thread per core, for previews of whole files (and any other picture work).
    computing: OnceLock<rayon::ThreadPool>,
    /// One thread per core, for previews of results still downloading ([`Self::follow`]).
    following: OnceLock<rayon::ThreadPool>,
}

/// A preview started while its result downloads ([`PreviewWorkers::follow`]).
pub struct EarlyPreview {
    /// Set by whichever gets to the work first: the following thread, or the pipeline once the
    /// download is done, which then makes the preview on a computing thread rather than wait
    /// for a following one that other, slower downloads keep busy.
    taken: Arc<AtomicBool>,
    made: tokio::sync::oneshot::Receiver<std::thread::Result<Result<Preview, PreviewError>>>,
}

impl EarlyPreview {
    /// The preview made during the download, once the download is done: `None` when no
    /// following thread had begun it (it is then never begun) or it failed there (the download
    /// started over, say), so that it is made again from the finished file.
    pub async fn finished(self) -> Option<Preview> {
        if !self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        match self.made.await.expect("a started preview always answers") {
            Ok(Ok(made)) => Some(made),
            Ok(Err(error)) => {
                tracing::debug!(%error, "the preview made during the download failed");
                None
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl PreviewWorkers {
    /// Starts the preview of a result that is still downloading, so that decoding overlaps the
    /// download rather than following it; `None` when the threads cannot start (the preview is
    /// then made once the download is done).
    pub fn follow(&self, arriving: ArrivingImage, budget: PreviewLimits) -> Option<EarlyPreview> {
        let workers = pool(&self.following, "reve-following")
            .inspect_err(|error| tracing::warn!(%error, "no preview during the download"))
            .ok()?;
        let taken = Arc::new(AtomicBool::new(false));
        let (done, made) = tokio::sync::oneshot::channel();
        let claim = taken.clone();
        workers.spawn(move || {
            if claim.swap(true, Ordering::AcqRel) {
                return;
            }
            let made =
                std::panic::catch_unwind(AssertUnwindSafe(|| make_preview_from(arriving, budget)));
            // The call may have failed or been cancelled meanwhile; then nobody waits.
            let _ = done.send(made);
        });
        Some(EarlyPreview { taken, made })
    }

    /// The preview of a whole file, made on a computing thread.
    pub async fn make(
        &self,
        reader: reve_core::Result<std::fs::File>,
        budget: PreviewLimits,
    ) -> Result<Preview, PreviewError> {
        let reader = reader.map_err(PreviewError::Read)?;
        self.run(move || make_preview_from(reader, budget)).await
    }

    /// Runs `work` (decoding and encoding pictures) on a computing thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PreviewError> + Send + 'static,
    ) -> Result<T, PreviewError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        pool(&self.computing, "reve-preview")?.spawn(move || {
            let made = std::panic::catch_unwind(AssertUnwindSafe(work));
            // The call may have been cancelled meanwhile; then nobody waits.
            let _ = done.send(made);
        });
        match outcome.await.expect("a preview job always answers") {
            Ok(preview) => preview,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The pool in `cell`, started with one thread per core on first use.
fn pool<'pool>(
    cell: &'pool OnceLock<rayon::ThreadPool>,
    name: &'static str,
) -> Result<&'pool rayon::ThreadPool, PreviewError> {
    if let Some(workers) = cell.get() {
        return Ok(workers);
    }
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(1, usize::from))
        .thread_name(move |index| format!("{name}-{index}"))
        .build()
        .map_err(|error| PreviewError::Workers(error.to_string()))?;
    // Two first previews racing both build a pool; the loser's is dropped.
    Ok(cell.get_or_init(|| workers))
}

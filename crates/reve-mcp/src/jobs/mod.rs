//! Every edit is a job, recorded before its paid request is sent and run apart from the call
//! that asked for it, so that a paid result outlives the call: a client that gives up after 60
//! seconds, a cancellation after the request went out, a retry of the same call, a restart.
//!
//! A call waits for its job up to a limit and then answers with the job's id, which `get_edit`
//! (or the tasks extension's `tasks/get`) redeems. A call identical to a job still running, or
//! one that succeeded a short while ago, waits for that job instead of paying again. A
//! cancellation stops a job only while nothing has been sent; after that the job finishes and
//! is saved, unless the operator chose otherwise. The tool, the command line and restarts all
//! run jobs here, through the one [`Editor`].

mod error;
mod pictures;
mod prices;
mod reconcile;
mod recovery;
mod references;
mod run;
pub mod store;
mod wait;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::generation::Generation;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::JobError;
pub(crate) use prices::look_up_prices;
pub use reconcile::{DEFAULT_SETTLE_AFTER, Reconciled};
pub use references::JOB_REFERENCE_PREFIX;
pub use store::{Cost, DAY_MS, Ending, JobRecord, JobState, JobStore, KeptPicture};

use crate::edit::{Editor, Stage};

/// How often a call waiting on a job that another process runs looks at the store.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The principal of everything that runs on this machine for its one user: stdio clients, the
/// command line, HTTP on loopback without a token.
pub const LOCAL_PRINCIPAL: &str = "local";

/// Who owns a job, when it is not [`LOCAL_PRINCIPAL`]: the holder of a bearer token, known by
/// a hash of it so the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl Principal {
    pub fn of_token(token: &[u8]) -> Principal {
        let digest = Sha256::digest(token);
        let hex: String = digest[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Principal(format!("token:{hex}"))
    }
}

/// The defaults of the job options, and why: most clients give a tool call 60 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(45);
pub const DEFAULT_REUSE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// How jobs are run and waited for.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// How long a call waits for its job before answering that it is still running; `None`
    /// waits until it finishes (the command line).
    pub max_wait: Option<Duration>,
    /// How long after it succeeded an identical call gets a job's result instead of paying
    /// again; zero turns reuse off.
    pub reuse_window: Duration,
    /// Whether a cancellation also stops a job whose request was sent, losing what it paid for.
    pub cancel_aborts: bool,
    /// The usage a UTC day may record before edits are refused.
    pub max_credits_per_day: Option<f64>,
    /// The US dollars a UTC day may spend before edits are refused.
    pub max_usd_per_day: Option<f64>,
    /// How long after a job that may have been charged ended the usage logs may settle it as
    /// not charged ([`DEFAULT_SETTLE_AFTER`]).
    pub settle_after: Duration,
}

/// A job's success, as every caller gets it.
#[derive(Debug, Clone)]
pub struct Succeeded {
    /// What was asked and made: the result, where it is, and the input pictures.
    pub generation: Generation,
    /// The inline preview, encoded (base64 is made only for MCP); `None` when none was made or
    /// it was not kept.
    pub preview: Option<bytes::Bytes>,
    /// What the API reported it cost; `None` when it did not say, or when the result was
    /// reused and cost nothing more.
    pub cost: Option<Cost>,
    /// The job whose result this is, when this one reused it rather than paying.
    pub reused_from: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(Box<Succeeded>),
    /// Failed, cancelled or interrupted, with a message saying what it cost and what to do.
    Ended {
        /// Its state, and what the end says about money: refused by the API (nothing
        /// charged), or paid with its result unsaved.
        ending: Ending,
        message: String,
    },
}

/// Where a job is, for whoever waits on it: what a wait finds, and what a job this process
/// runs tells its waiters as it goes.
#[derive(Debug, Clone)]
pub enum Waited {
    Finished {
        job_id: String,
        outcome: Outcome,
    },
    /// Still at work (when a wait ran out, at the stage it had reached).
    Running {
        job_id: String,
        stage: Option<Stage>,
    },
}

/// A job this process runs.
struct Live {
    principal: String,
    status: watch::Receiver<Waited>,
    stop: CancellationToken,
    /// Set just before the paid request is sent: from then on a cancellation no longer stops
    /// the job (unless [`JobOptions::cancel_aborts`]).
    sent: Arc<AtomicBool>,
}

/// The jobs of this process, and the store they share with every other.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    editor: Editor,
    store: Arc<dyn JobStore>,
    options: JobOptions,
    live: Mutex<HashMap<String, Live>>,
    /// A random id of this run of the process, so a restart under the same pid (as in a
    /// container) is told apart from the run that owned a job.
    run: String,
    tasks: TaskTracker,
    /// Whether this run's leases are being renewed ([`Jobs::keep_leases`]).
    keeping_leases: AtomicBool,
    /// When to ask the usage logs about each job that may have been charged.
    reconciler: reconcile::Reconciler,
    /// Each model's live price, as last read.
    prices: prices::Prices,
}

impl Jobs {
    /// Jobs kept in `store`, run by `editor`.
    pub fn new(editor: Editor, store: Arc<dyn JobStore>, options: JobOptions) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                editor,
                store,
                options,
                live: Mutex::default(),
                run: uuid::Uuid::new_v4().simple().to_string(),
                tasks: TaskTracker::new(),
                keeping_leases: AtomicBool::new(false),
                reconciler: reconcile::Reconciler::default(),
                prices: prices::Prices::default(),
            }),
        }
    }

    pub fn editor(&self) -> &Editor {
        &self.inner.editor
    }

    pub fn options(&self) -> &JobOptions {
        &self.inner.options
    }

    pub fn store(&self) -> &dyn JobStore {
        self.inner.store.as_ref()
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pictures of a job, as resources show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// The saved full-resolution result.
    Result,
    /// The preview of the result: the picture the tool's result showed.
    Preview,
    /// The preview of an input picture as it was sent: the first, second... of those the
    /// generation lists.
    Input(usize),
}

/// Where a job's pictures are named: `reve://jobs/{job_id}/{result,preview,input}`, the URIs
/// its results give and the resources serve.
pub const PICTURES_PREFIX: &str = "reve://jobs/";

/// The most input pictures a job's URIs name: more than any model takes.
const MAX_INPUT_PICTURES: usize = 64;

impl Picture {
    /// Its name in the URI: `result`, `preview`, `input` (the first input), `input-2`...
    pub fn segment(self) -> String {
        match self {
            Picture::Result => "result".to_owned(),
            Picture::Preview => "preview".to_owned(),
            Picture::Input(0) => "input".to_owned(),
            Picture::Input(index) => format!("input-{}", index + 1),
        }
    }

    /// The picture named `segment` in a URI.
    pub fn from_segment(segment: &str) -> Option<Picture> {
        Some(match segment {
            "result" => Picture::Result,
            "preview" => Picture::Preview,
            "input" => Picture::Input(0),
            _ => {
                let number: usize = segment.strip_prefix("input-")?.parse().ok()?;
                // `input-1` is `input`: one name per picture.
                if !(2..=MAX_INPUT_PICTURES).contains(&number)
                    || segment != format!("input-{number}")
                {
                    return None;
                }
                Picture::Input(number - 1)
            }
        })
    }

    /// The URI of this picture of job `job_id`.
    pub fn uri(self, job_id: &str) -> String {
        format!("{PICTURES_PREFIX}{job_id}/{}", self.segment())
    }
}

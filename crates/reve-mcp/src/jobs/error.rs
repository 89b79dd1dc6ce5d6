//! Why a job could not be started, found or waited for: the pipeline's own error, or one of the
//! job layer's (the store, the spending limit, an unknown id). Every message is written for
//! whoever asked (often a model) to act on.

use crate::edit::EditError;

use super::store::{Spending, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The edit itself failed or was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// A job could not be recorded, so it was not started.
    #[error("{0}; nothing was sent to the API")]
    Store(#[from] StoreError),
    /// A job's record could not be read back; the job itself is untouched.
    #[error("{0}; the job is unaffected, ask again once the store is readable")]
    StoreRead(#[source] StoreError),
    #[error(
        "the spending limit {}: {} of the {limit} credits a day allowed by \
         --max-credits-per-day (REVE_MAX_CREDITS_PER_DAY) are used today{}; it resets at \
         {resets} (midnight UTC); nothing was sent to the API",
        if .spending.used >= *.limit { "is reached" } else { "would be passed" },
        .spending.used,
        UncertainHint(.spending)
    )]
    SpendingLimit {
        /// Today's spending as the limit counted it.
        spending: Spending,
        limit: f64,
        resets: String,
    },
    #[error(
        "the spending limit in US dollars {}: ${:.3} of the ${limit} a day allowed by \
         --max-usd-per-day (REVE_MAX_USD_PER_DAY) are spent today{}{}; it resets at {resets} \
         (midnight UTC); nothing was sent to the API",
        if .spending.used_usd >= *.limit { "is reached" } else { "would be passed" },
        .spending.used_usd,
        PriceHint(*.price, .model),
        UncertainHint(.spending)
    )]
    UsdLimit {
        /// Today's spending as the limit counted it.
        spending: Spending,
        limit: f64,
        /// What this edit was counted at.
        price: Option<f64>,
        model: String,
        resets: String,
    },
    #[error(
        "no edit job {0:?} is known here; job ids come from edit_image, and a job made by \
         another user or token is not visible"
    )]
    UnknownJob(String),
    /// A `reve://` URI given as a picture that names something other than a job's result.
    #[error(
        "{0:?} cannot be given as a picture: a previous result is named by its result_uri \
         (reve://jobs/JOB_ID/result) or by job:JOB_ID; nothing was sent to the API"
    )]
    NotAResultReference(String),
    /// A job given as a picture that has no result (yet, or ever).
    #[error(
        "edit job {id} is {state}, not succeeded: only a finished result can be given as a \
         picture (get_edit waits for one still running); nothing was sent to the API"
    )]
    NotFinished { id: String, state: &'static str },
    /// A job given as a picture whose result was neither saved nor published at a URL.
    #[error(
        "edit job {0} kept neither a saved file nor the provider's URL of its result, so it \
         cannot be given as a picture; nothing was sent to the API"
    )]
    NothingToGive(String),
    /// The job's task ended without a word: it panicked.
    #[error("edit job {0} stopped unexpectedly; see the server's log")]
    Stopped(String),
    /// A succeeded job's saved result cannot be read now (moved, deleted, unreadable).
    #[error("edit job {id} saved its result to {path:?}, which cannot be read now: {reason}")]
    ResultUnreadable {
        id: String,
        path: String,
        reason: String,
    },
}

impl JobError {
    /// The error as the pipeline carries it from the journal: its own when it is one, otherwise
    /// this one, unchanged.
    pub fn into_edit_error(self) -> EditError {
        match self {
            JobError::Edit(error) => error,
            other => EditError::Refused(Box::new(other)),
        }
    }

    /// Whether this says the caller cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Edit(EditError::Cancelled))
    }
}

/// What the refused edit would have cost, when a price was known.
struct PriceHint<'a>(Option<f64>, &'a str);

impl std::fmt::Display for PriceHint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(price) => write!(f, ", and this {} picture costs about ${price}", self.1),
            None => Ok(()),
        }
    }
}

/// Names the edits that may have been charged without reporting a cost, which a limit reached
/// counts at their model's latest cost, so that a caller knows why the usage shown is below the
/// limit.
struct UncertainHint<'a>(&'a Spending);

impl std::fmt::Display for UncertainHint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spending = self.0;
        let uncertain = spending.uncertain();
        let edits = if uncertain == 1 { "edit" } else { "edits" };
        if uncertain == 0 {
            return Ok(());
        }
        let counted: Option<Vec<String>> = spending
            .models
            .iter()
            .filter(|model| model.uncertain > 0)
            .map(|model| {
                let cost = spending.cost_of(&model.model)?;
                Some(format!("{} of {} at {cost}", model.uncertain, model.model))
            })
            .collect();
        match counted {
            Some(counted) => write!(
                f,
                ", and {uncertain} {edits} that may have been charged (interrupted or cancelled \
                 after sending, with no cost reported) count at their model's latest cost ({})",
                counted.join(", ")
            ),
            None => write!(
                f,
                ", and {uncertain} {edits} may have been charged (interrupted or cancelled \
                 after sending) at a cost never reported, so no more can be sent safely today"
            ),
        }
    }
}

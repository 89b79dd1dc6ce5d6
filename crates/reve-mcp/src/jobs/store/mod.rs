//! Where jobs are recorded: one trait, [`JobStore`], and its two engines, chosen at start-up.
//!
//! - [`sqlite`], the default: one file in the per-user data folder, for one machine.
//! - [`redis`]: one Redis shared by replicas behind a load balancer, so that any replica can
//!   answer for any job, a reuse fingerprint is claimed once across all of them, the daily
//!   limit is counted once, and a replica that dies leaves its jobs to the others.
//!
//! Everything a caller relies on being atomic (claiming a fingerprint against the spending
//! limit, a state change) is one transaction in SQLite and one script in Redis.

pub mod redis;
pub mod sqlite;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use self::redis::RedisStore;
pub use sqlite::{STORE_FILE, SqliteStore};

/// A boxed future of a store operation: the trait is used as `dyn JobStore`, so that the
/// engine is picked from the command line without making every caller generic.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where an edit job has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for its turn; nothing sent.
    Queued,
    /// Being prepared, sent, or downloaded and saved.
    Running,
    Succeeded,
    Failed,
    /// Its process ended before it finished (see the job's error text for what that cost).
    Interrupted,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Interrupted,
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a finished job produced, as the tool reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobResult {
    /// The saved file, when the server saves.
    pub path: Option<String>,
    pub url: Option<String>,
    pub request_id: Option<String>,
    pub content_violation: Option<bool>,
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// The inline preview's type and size; its bytes are kept by the store ([`Picture`]).
    pub preview: Option<(String, u32, u32)>,
    /// What the input picture was, when this server saw it (a local file or a `data:` URI);
    /// its preview is kept by the store.
    pub input: Option<JobInput>,
}

impl JobResult {
    /// Whether the job produced a picture: a failed or interrupted job's result is empty.
    pub fn has_picture(&self) -> bool {
        !self.mime_type.is_empty()
    }

    /// The preview's type, width and height as the three nullable fields both stores keep.
    pub fn preview_fields(&self) -> (Option<&str>, Option<u32>, Option<u32>) {
        match &self.preview {
            Some((mime, width, height)) => (Some(mime), Some(*width), Some(*height)),
            None => (None, None, None),
        }
    }
}

/// The input picture of a job, as it was sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobInput {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// One job as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub principal: String,
    pub state: JobState,
    /// Whether the paid request was sent.
    pub sent: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub prompt: String,
    /// The folder the result is staged in, and the name asked for: what a restart needs to
    /// save a result whose download it resumes.
    pub stage_dir: String,
    pub output_name: Option<String>,
    pub saves: bool,
    /// What the API answered, once it did: the URL a restart resumes from.
    pub generated_url: Option<String>,
    pub request_id: Option<String>,
    pub credits_used: Option<f64>,
    pub tokens_used: Option<f64>,
    pub result: Option<JobResult>,
    /// The job this one attached to instead of paying again.
    pub reused_from: Option<String>,
    pub error: Option<String>,
    /// The process running it: `pid` and a random id of that process's run.
    pub owner_pid: u32,
    pub owner_run: String,
}

impl JobRecord {
    /// A job just submitted by this process: nothing sent, nothing answered yet.
    pub fn queued(
        id: String,
        principal: String,
        prompt: String,
        stage_dir: String,
        output_name: Option<String>,
        saves: bool,
        owner_run: String,
    ) -> JobRecord {
        let now = now_ms();
        JobRecord {
            id,
            principal,
            state: JobState::Queued,
            sent: false,
            created_ms: now,
            updated_ms: now,
            prompt,
            stage_dir,
            output_name,
            saves,
            generated_url: None,
            request_id: None,
            credits_used: None,
            tokens_used: None,
            result: None,
            reused_from: None,
            error: None,
            owner_pid: std::process::id(),
            owner_run,
        }
    }

    /// What the API reported this job used: credits where it reported credits, tokens
    /// otherwise (its published schema says `credits_used` counts tokens).
    pub fn usage(&self) -> Option<f64> {
        self.credits_used.or(self.tokens_used)
    }
}

/// Usage recorded on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    /// Days since 1970-01-01, UTC.
    pub day: u64,
    pub jobs: u64,
    pub credits: f64,
}

/// The pictures of a job the store keeps: small, made once, read by whichever process (or
/// replica) is asked for them. The saved full-resolution result is a file, not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptPicture {
    /// The preview of the result: the picture the tool's result showed.
    Preview,
    /// The preview of the input picture, as it was sent.
    Input,
}

impl KeptPicture {
    fn folder(self) -> &'static str {
        match self {
            KeptPicture::Preview => "previews",
            KeptPicture::Input => "inputs",
        }
    }
}

/// What [`JobStore::claim`] decided for a job about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Send it: it holds its fingerprint now, and its cost is reserved against the limit.
    Send,
    /// Do not send: attach to this job, identical and running or recently succeeded.
    Reuse(String),
    /// Do not send: today's usage, with what the edits in flight will add, reaches the limit.
    OverLimit { used: f64, in_flight: u64 },
}

/// What [`JobStore::claim`] checks a job against.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    /// How long after it succeeded an identical job is reused; zero turns reuse off.
    pub reuse_window: Duration,
    /// The usage a UTC day may record, if limited.
    pub daily_limit: Option<f64>,
}

/// The operations every engine provides. Each is one atomic step in the engine.
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// The store, for messages and logs: a file's path, or Redis's address without its
    /// password.
    fn describe(&self) -> String;

    /// Whether there can be anything to read: a reader need not create an absent file.
    fn exists(&self) -> bool;

    /// How long a job's owner holds it without renewing; `None` when owners are found alive
    /// by their process id instead (one machine). With a lease, [`JobStore::orphans`] is
    /// asked again every half lease.
    fn lease(&self) -> Option<Duration>;

    /// Records a new job, queued, held by its owner's lease.
    fn insert(&self, job: JobRecord) -> StoreFuture<'_, ()>;

    /// Decides whether job `id`, fingerprinted `fingerprint`, is sent (marking it so), reuses
    /// an identical job of the same principal, or is over the daily limit. Of two identical
    /// calls, even on two replicas, exactly one is sent; of concurrent calls near the limit,
    /// at most one edit's worth goes over it.
    fn claim(&self, id: String, fingerprint: String, rules: ClaimRules) -> StoreFuture<'_, Claim>;

    /// Records what the API answered, before the image is fetched; counts its usage once.
    fn set_generated(&self, id: String, generated: reve_core::Generated) -> StoreFuture<'_, ()>;

    /// Records a finished job: its state, result or error. A success is never overwritten.
    fn finish(
        &self,
        id: String,
        state: JobState,
        result: Option<JobResult>,
        error: Option<String>,
    ) -> StoreFuture<'_, ()>;

    fn get(&self, id: String) -> StoreFuture<'_, Option<JobRecord>>;

    /// The newest `limit` jobs, newest first.
    fn recent(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>>;

    /// Up to `limit` succeeded jobs of `principal` that made their own result (not reused
    /// from another), newest first, starting after `after` (a job's creation time and id, as
    /// the previous page ended).
    fn results(
        &self,
        principal: String,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<JobRecord>>;

    /// Unfinished jobs whose owner is gone (its process died, or its lease lapsed), each
    /// taken over by `run` (of process `pid`) in the same step, so one survivor settles each.
    fn orphans(&self, run: String, pid: u32) -> StoreFuture<'_, Vec<JobRecord>>;

    /// Renews `run`'s lease on the jobs `ids` it runs.
    fn renew(&self, run: String, ids: Vec<String>) -> StoreFuture<'_, ()>;

    /// The usage the API reported per UTC day, oldest first.
    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>>;

    /// The usage recorded since the start of the current UTC day.
    fn usage_today(&self) -> StoreFuture<'_, f64>;

    /// Keeps a picture of job `id`. A cache: its failure costs a picture shown later.
    fn keep_picture(&self, picture: KeptPicture, id: String, bytes: Vec<u8>)
    -> StoreFuture<'_, ()>;

    /// A picture of job `id`, if it was kept (and, in Redis, has not expired).
    fn picture(&self, picture: KeptPicture, id: String) -> StoreFuture<'_, Option<Vec<u8>>>;

    /// Whether the store answers now: what `/healthz` reports.
    fn health(&self) -> StoreFuture<'_, ()>;
}

/// Opens the store `spec` names: a `redis://` or `rediss://` URL, or `None` for the SQLite
/// file in `state_dir`. Nothing is connected or opened until first use.
pub fn open(
    spec: Option<&str>,
    state_dir: &Path,
    redis: self::redis::RedisOptions,
) -> Result<Arc<dyn JobStore>, StoreError> {
    match spec {
        None => Ok(Arc::new(SqliteStore::in_folder(state_dir))),
        Some(url) => Ok(Arc::new(RedisStore::new(url, redis)?)),
    }
}

/// Why the store could not be used. Every message names the store; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the job store {path} is locked by another process (waited {:?}); try again",
        sqlite::BUSY_TIMEOUT
    )]
    Locked { path: String },
    #[error(
        "the job store {path} is damaged ({reason}); move it aside and a new one is made on the next edit"
    )]
    Corrupt { path: String, reason: String },
    #[error("the disk holding the job store {path} is full")]
    Full { path: String },
    /// The shared store did not answer: retryable, and nothing depending on it went ahead.
    #[error("the job store {store} cannot be reached ({reason}); try again in a few seconds")]
    Unreachable { store: String, reason: String },
    #[error("the job store {path} cannot be used: {reason}")]
    Other { path: String, reason: String },
}

impl StoreError {
    /// Whether trying again later can succeed without anyone fixing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Locked { .. } | StoreError::Unreachable { .. }
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

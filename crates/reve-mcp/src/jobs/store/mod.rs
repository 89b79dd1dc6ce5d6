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
use crate::generation::Generation;
pub use sqlite::SqliteStore;

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

/// One job as the store holds it: a small envelope the store's own rules read (who owns it, its
/// state, what it cost, its lease) and the [`Generation`] it is about, kept as one payload the
/// store never reads.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub principal: String,
    /// The model it asks, such as `reve/edit-image`: the daily limit counts a job whose cost
    /// is not reported at its own model's latest cost.
    pub model: String,
    pub state: JobState,
    /// Whether the paid request was sent.
    pub sent: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// What the API reported it used: the usage ledger's figures.
    pub credits_used: Option<f64>,
    pub tokens_used: Option<f64>,
    /// What the API reported it cost in US dollars.
    pub usd_spent: Option<f64>,
    /// The job this one attached to instead of paying again.
    pub reused_from: Option<String>,
    /// Why it did not succeed, and what that cost, for whoever collects it.
    pub error: Option<String>,
    /// The process running it: its id is shown, never trusted (two containers on one volume
    /// are both pid 1); what owns the job is the lease of `owner_run`, a random id of that
    /// process's run.
    pub owner_pid: u32,
    pub owner_run: String,
    /// Sent, ended without a reported cost, and not refused by the API: it may have been
    /// charged, so it counts against the daily limit at its model's latest cost.
    pub may_be_charged: bool,
    /// What the provider's usage logs later said of a job that may have been charged: it is
    /// then no longer uncertain ([`UsageLedger::settle`]).
    pub settled: Option<Settled>,
    /// Failed after the API produced (and was paid for) its result, which was not saved (a
    /// full disk, say) and can still be fetched from its [published
    /// URL](Generation::published_url): `get_edit` and an identical call retry the save
    /// instead of paying again.
    pub unsaved: bool,
    /// The generation, as of its [`Payload::revision`].
    pub payload: Payload,
}

/// A job's [`Generation`] as one write put it: every write carries a revision one higher than
/// the last, and the store keeps the highest, so a write retried late (while the store was
/// away) never overwrites a newer one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    pub revision: u64,
    pub generation: Generation,
}

impl Payload {
    /// The next revision, changed by `change`.
    pub fn next(&self, change: impl FnOnce(&mut Generation)) -> Payload {
        let mut generation = self.generation.clone();
        change(&mut generation);
        Payload {
            revision: self.revision + 1,
            generation,
        }
    }

    /// The generation as JSON, as both engines keep it.
    pub(super) fn to_json(&self) -> String {
        serde_json::to_string(&self.generation).expect("a generation serialises to JSON")
    }

    /// The generation of `json`, as an engine kept it; a payload that cannot be read (written
    /// by a later release, say) reads as an empty generation rather than hiding the job.
    pub(super) fn from_json(revision: u64, json: Option<&str>) -> Payload {
        let generation = json
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        Payload {
            revision,
            generation,
        }
    }
}

impl JobRecord {
    /// A job just submitted by run `owner_run` of this process: nothing sent or answered yet.
    pub fn queued(
        id: String,
        principal: String,
        generation: Generation,
        owner_run: String,
    ) -> JobRecord {
        let now = now_ms();
        JobRecord {
            id,
            principal,
            model: generation.model.clone(),
            state: JobState::Queued,
            sent: false,
            created_ms: now,
            updated_ms: now,
            credits_used: None,
            tokens_used: None,
            usd_spent: None,
            reused_from: None,
            error: None,
            owner_pid: std::process::id(),
            owner_run,
            may_be_charged: false,
            settled: None,
            unsaved: false,
            payload: Payload {
                revision: 0,
                generation,
            },
        }
    }

    /// The generation this job is about.
    pub fn generation(&self) -> &Generation {
        &self.payload.generation
    }

    /// What the API reported this job used: credits where it reported credits, tokens
    /// otherwise (its published schema says `credits_used` counts tokens).
    pub fn usage(&self) -> Option<f64> {
        self.credits_used.or(self.tokens_used)
    }

    /// What the API reported this job cost, when it did.
    pub fn cost(&self) -> Option<Cost> {
        Cost {
            credits: self.credits_used,
            tokens: self.tokens_used,
            usd: self.usd_spent,
        }
        .reported()
    }
}

/// What a job cost, as the API reported it, in each unit it reported it in.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// Credits: the answer's `x-aimlapi-credits-used` header, or else its body's
    /// `meta.usage.credits_used`.
    pub credits: Option<f64>,
    /// Tokens: the body's `meta.usage.tokens_used`, which real answers report where the
    /// schema promises `credits_used`.
    pub tokens: Option<f64>,
    /// US dollars: the answer's `x-aimlapi-usd-spent` header.
    pub usd: Option<f64>,
}

impl Cost {
    /// What an answer reported: its body's usage and its headers' charge.
    pub fn of_answer(usage: Option<reve_core::Usage>, charge: &reve_core::Charge) -> Option<Cost> {
        Cost {
            credits: charge
                .credits_used
                .map(|credits| credits as f64)
                .or(usage.and_then(|usage| usage.credits_used)),
            tokens: usage.and_then(|usage| usage.tokens_used),
            usd: charge.usd_spent,
        }
        .reported()
    }

    /// This cost, if it reports anything.
    fn reported(self) -> Option<Cost> {
        (self.credits.is_some() || self.tokens.is_some() || self.usd.is_some()).then_some(self)
    }

    /// The figure the daily credit limit counts: credits where reported, tokens otherwise.
    pub fn usage(&self) -> Option<f64> {
        self.credits.or(self.tokens)
    }
}

/// What the provider's usage logs said of a job that may have been charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its request is listed as succeeded: it was charged (the cost the logs give).
    Charged,
    /// Every attempt it made is listed as failed: it was charged nothing.
    NotCharged,
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Charged => "charged",
            Settled::NotCharged => "not_charged",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Settled> {
        match text {
            "charged" => Some(Settled::Charged),
            "not_charged" => Some(Settled::NotCharged),
            _ => None,
        }
    }
}

/// What the logs said, with what a charge cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settlement {
    Charged(Cost),
    NotCharged,
}

impl Settlement {
    pub fn settled(self) -> Settled {
        match self {
            Settlement::Charged(_) => Settled::Charged,
            Settlement::NotCharged => Settled::NotCharged,
        }
    }
}

/// Usage recorded on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    /// Days since 1970-01-01, UTC.
    pub day: u64,
    /// Edits that reported what they cost, and the sums, by the unit the API reported it in:
    /// credits, or tokens (which real responses report; the schema says `credits_used` counts
    /// tokens). The daily limit counts the two together.
    pub jobs: u64,
    pub credits: f64,
    pub tokens: f64,
    /// What they cost in US dollars, of the edits that reported it.
    pub usd: f64,
    /// Edits that may have been charged without a cost being reported (see
    /// [`JobRecord::may_be_charged`]).
    pub uncertain: u64,
}

/// What today's spending is, as the daily limit sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spending {
    /// The usage edits reported today.
    pub used: f64,
    /// What edits of today cost in US dollars, as their answers (or the usage logs) said.
    pub used_usd: f64,
    /// Per model, what is not reported yet and what a report of it would likely say; a model
    /// with nothing in flight, nothing uncertain and no cost ever reported is not listed.
    pub models: Vec<ModelSpending>,
}

/// One model's part of [`Spending`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelSpending {
    /// The model, such as `reve/create-image`.
    pub model: String,
    /// Its edits sent that have not reported their usage yet and are still running.
    pub in_flight: u64,
    /// Its edits of today that ended without a reported cost but may have been charged.
    pub uncertain: u64,
    /// Its edits of today whose answer reported a cost in credits or tokens but none in US
    /// dollars (a proxy may drop the cost headers): the limit in money counts them at the
    /// model's price, never as free.
    pub usd_missing: u64,
    /// Its edits of today whose answer reported a cost in US dollars only: the limit in credits
    /// counts them at the model's cost.
    pub units_missing: u64,
    /// What its latest edit that reported its usage used: the cost assumed of its others.
    pub cost: Option<f64>,
    /// What its latest edit that reported a cost in US dollars cost.
    pub usd_cost: Option<f64>,
}

/// A spending limit in US dollars per UTC day, with the live prices that count what is not
/// reported yet.
#[derive(Debug, Clone, PartialEq)]
pub struct UsdLimit {
    /// The US dollars a UTC day may spend.
    pub per_day: f64,
    /// Each model's live price per picture (`GET /model/{id}?include=pricing`), as last read.
    pub prices: Vec<(String, f64)>,
}

impl UsdLimit {
    fn price_of(&self, model: &str) -> Option<f64> {
        self.prices
            .iter()
            .find(|(priced, _)| priced == model)
            .map(|(_, price)| *price)
    }
}

/// The default model of a job recorded before jobs named theirs: every one was an edit.
pub(crate) const MODEL_OF_OLDER_JOBS: &str = "reve/edit-image";

/// What the daily limit says of one more edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitVerdict {
    /// Send it.
    Fits,
    /// Wait: the edits in flight have not reported their cost, and it decides.
    Hold,
    /// Refuse it: the day is spent (or may be, counting the uncertain edits).
    Over,
}

impl Spending {
    /// Edits of all models sent and still running without a reported cost.
    pub fn in_flight(&self) -> u64 {
        self.models.iter().map(|model| model.in_flight).sum()
    }

    /// Edits of all models today that may have been charged without a reported cost.
    pub fn uncertain(&self) -> u64 {
        self.models.iter().map(|model| model.uncertain).sum()
    }

    /// The cost assumed of an edit of `model` whose own is not reported: its model's latest,
    /// or, for a model that never reported one, the highest any model reported (never less
    /// than it may cost); `None` when no cost was ever reported.
    pub fn cost_of(&self, model: &str) -> Option<f64> {
        let own = self
            .models
            .iter()
            .find(|known| known.model == model)
            .and_then(|known| known.cost);
        own.or_else(|| {
            self.models
                .iter()
                .filter_map(|known| known.cost)
                .reduce(f64::max)
        })
    }

    /// Today's spending with each uncertain edit at its model's cost ([`Spending::cost_of`]);
    /// `None` when some edit may have been charged and no cost is known at all, so nothing
    /// can be assumed.
    pub fn counted(&self) -> Option<f64> {
        let mut counted = self.used;
        for model in &self.models {
            let unknown = model.uncertain + model.units_missing;
            if unknown > 0 {
                counted += unknown as f64 * self.cost_of(&model.model)?;
            }
        }
        Some(counted)
    }

    /// The US dollars assumed of an edit of `model` whose cost is not reported: its live price,
    /// else its model's latest reported cost, else the highest any model is priced or reported
    /// at; `None` when nothing at all is known.
    pub fn usd_cost_of(&self, model: &str, limit: &UsdLimit) -> Option<f64> {
        let own = self
            .models
            .iter()
            .find(|known| known.model == model)
            .and_then(|known| known.usd_cost);
        limit.price_of(model).or(own).or_else(|| {
            self.models
                .iter()
                .filter_map(|known| known.usd_cost)
                .chain(limit.prices.iter().map(|(_, price)| *price))
                .reduce(f64::max)
        })
    }

    /// Whether an edit of `model` sent now fits under `limit`: refused when it would take the
    /// day past the limit at its price (each edit that may have been charged counted at its
    /// model's price until the usage logs settle it), held while the edits in flight could.
    /// An edit whose price nothing tells counts as free, so that before anything is known the
    /// day goes over by at most one edit, as with credits.
    pub fn verdict_usd(&self, limit: &UsdLimit, model: &str) -> LimitVerdict {
        let mut counted = self.used_usd;
        for known in &self.models {
            let unknown = known.uncertain + known.usd_missing;
            if unknown == 0 {
                continue;
            }
            match self.usd_cost_of(&known.model, limit) {
                Some(cost) => counted += unknown as f64 * cost,
                None => return LimitVerdict::Over,
            }
        }
        let own = self.usd_cost_of(model, limit).unwrap_or(0.0);
        if counted >= limit.per_day || counted + own > limit.per_day {
            return LimitVerdict::Over;
        }
        let mut coming = counted + own;
        for known in self.models.iter().filter(|known| known.in_flight > 0) {
            match self.usd_cost_of(&known.model, limit) {
                Some(cost) => coming += known.in_flight as f64 * cost,
                None => return LimitVerdict::Hold,
            }
        }
        if coming > limit.per_day {
            LimitVerdict::Hold
        } else {
            LimitVerdict::Fits
        }
    }

    /// Whether an edit sent now fits under `limit`, going over by at most one edit: each edit
    /// that may have been charged counts at its model's cost; the edits in flight are waited
    /// for while they could take the day past the limit, each at its model's cost, since they
    /// may cost less (a failed request costs nothing) and, before any cost is known, say what
    /// one costs.
    pub fn verdict(&self, limit: f64) -> LimitVerdict {
        let Some(counted) = self.counted() else {
            return LimitVerdict::Over;
        };
        if counted >= limit {
            return LimitVerdict::Over;
        }
        let mut coming = counted;
        for model in self.models.iter().filter(|model| model.in_flight > 0) {
            match self.cost_of(&model.model) {
                Some(cost) => coming += model.in_flight as f64 * cost,
                None => return LimitVerdict::Hold,
            }
        }
        if coming >= limit {
            LimitVerdict::Hold
        } else {
            LimitVerdict::Fits
        }
    }
}

/// The pictures of a job the store keeps: small, made once, read by whichever process (or
/// replica) is asked for them. The saved full-resolution result is a file, not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptPicture {
    /// The preview of the result: the picture the tool's result showed.
    Preview,
    /// The preview of an input picture, as it was sent: the first, second... of the pictures
    /// the generation lists ([`crate::generation::Generation::inputs`]).
    Input(usize),
}

impl KeptPicture {
    fn folder(self) -> &'static str {
        match self {
            KeptPicture::Preview => "previews",
            KeptPicture::Input(_) => "inputs",
        }
    }

    /// Its name among the job's pictures of its kind: the job's id, and for a second or later
    /// input its number after it (the first keeps the name it had before jobs had several).
    fn name(self, id: &str) -> String {
        match self {
            KeptPicture::Input(index) if index > 0 => format!("{id}.{}", index + 1),
            _ => id.to_owned(),
        }
    }
}

/// How a job ended, and what that says about money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub state: JobState,
    /// The API turned the request down (an HTTP error, a missing key or credit): nothing was
    /// charged. Otherwise a sent job without a reported cost may have been charged.
    pub refused_by_api: bool,
    /// The result was paid for and produced but not saved, and its URL may still serve it
    /// (see [`JobRecord::unsaved`]).
    pub unsaved: bool,
}

impl Ending {
    /// An ending in `state` with nothing to say about money: a success, or an interruption.
    pub fn plain(state: JobState) -> Ending {
        Ending {
            state,
            refused_by_api: false,
            unsaved: false,
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
    /// Do not send: nothing identical to reuse, and [`ClaimRules::may_send`] is false.
    NotSent,
    /// Do not send yet: ask again once the edits in flight report their cost.
    Hold,
    /// Do not send: today's spending reaches the limit.
    OverLimit(Spending),
    /// Do not send: this edit would take today's spending past the limit in US dollars.
    OverUsdLimit(Spending),
}

/// What [`JobStore::claim`] checks a job against.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// How long after it succeeded an identical job is reused; zero turns reuse off.
    pub reuse_window: Duration,
    /// Whether an identical job that already ended may be reused, or only one still running:
    /// an input given by URL is fingerprinted by the URL, which may show another picture now.
    pub reuse_finished: bool,
    /// Whether the job may be sent when there is nothing to reuse: not when its output name
    /// is taken, which only the identical job that saved it there may answer.
    pub may_send: bool,
    /// Identical jobs not to reuse: their saved result is gone.
    pub passed_over: Vec<String>,
    /// The usage a UTC day may record, if limited.
    pub daily_limit: Option<f64>,
    /// The US dollars a UTC day may spend, if limited.
    pub usd_limit: Option<UsdLimit>,
}

/// A job's life: recorded, claimed (sent, reused or refused against the spending limit), its
/// generation recorded step by step, finished, and taken over by a survivor when its owner's
/// lease ends. Each operation is one atomic step in the engine.
pub trait JobLifecycle: Send + Sync {
    /// How long a run holds its jobs without renewing. Every process that runs jobs renews its
    /// leases every third of this ([`JobLifecycle::renew`]); a job whose lease ended is taken
    /// over by [`JobLifecycle::orphans`].
    fn lease(&self) -> Duration;

    /// Records a new job, queued, under its owner's lease.
    fn insert(&self, job: JobRecord) -> StoreFuture<'_, ()>;

    /// Decides whether job `id`, fingerprinted `fingerprint`, is sent (marking it so), reuses
    /// an identical job of the same principal, or is over the daily limit. Of two identical
    /// calls, even on two replicas, exactly one is sent; of concurrent calls near the limit,
    /// at most one edit's worth goes over it.
    fn claim(&self, id: String, fingerprint: String, rules: ClaimRules) -> StoreFuture<'_, Claim>;

    /// Records what the API answered, before the image is fetched: its `cost` counted in the
    /// ledger once, and the generation with its answer.
    fn answered(&self, id: String, cost: Option<Cost>, payload: Payload) -> StoreFuture<'_, ()>;

    /// Records a newer revision of job `id`'s generation (one about to be saved, say); an older
    /// one than the store has is ignored.
    fn update(&self, id: String, payload: Payload) -> StoreFuture<'_, ()>;

    /// Records a finished job: its state, its error, and its final generation if it changed. A
    /// success is never overwritten. A sent job that ends without a reported cost is counted
    /// as uncertain (see [`JobRecord::may_be_charged`]) unless the ending says the API turned
    /// it down.
    fn finish(
        &self,
        id: String,
        ending: Ending,
        error: Option<String>,
        payload: Option<Payload>,
    ) -> StoreFuture<'_, ()>;

    /// Takes job `id` back up for `run` (of process `pid`) when it failed with its paid result
    /// [unsaved](JobRecord::unsaved): it is running again, under `run`'s lease. Whether it was
    /// taken (a second caller, or another replica, finds it taken already).
    fn reopen(&self, id: String, run: String, pid: u32) -> StoreFuture<'_, bool>;

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

    /// Unfinished jobs whose owner's lease ended, each taken over by `run` (of process `pid`)
    /// under a new lease in the same step, so that one survivor settles each.
    fn orphans(&self, run: String, pid: u32) -> StoreFuture<'_, Vec<JobRecord>>;

    /// Renews `run`'s lease on the jobs `ids` it runs, never on one another run has taken.
    fn renew(&self, run: String, ids: Vec<String>) -> StoreFuture<'_, ()>;
}

/// What the API reported the jobs cost, as the spending limit and `reve-mcp usage` read it.
/// The rule that spends (a claim against the limit) is [`JobLifecycle::claim`]'s, in the same
/// atomic step as the claim.
pub trait UsageLedger: Send + Sync {
    /// The usage the API reported per UTC day, oldest first.
    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>>;

    /// Today's spending (since the start of the current UTC day).
    fn spending_today(&self) -> StoreFuture<'_, Spending>;

    /// Up to `limit` finished jobs that may have been charged and that the provider's logs
    /// have not settled yet, oldest first.
    fn unsettled(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>>;

    /// Records what the provider's logs said of job `id`, once: it is no longer uncertain; a
    /// charge counts in its day's usage (and so against the limit) at the cost the logs give.
    /// `note` is added to its message. Whether it was settled now (not before, and uncertain).
    fn settle(&self, id: String, settlement: Settlement, note: String) -> StoreFuture<'_, bool>;
}

/// The small pictures kept of a job (previews), read by whichever process or replica is asked
/// for them. A cache: losing one costs a picture shown later, never a result.
pub trait PictureCache: Send + Sync {
    /// Keeps a picture of job `id`.
    fn keep_picture(
        &self,
        picture: KeptPicture,
        id: String,
        bytes: bytes::Bytes,
    ) -> StoreFuture<'_, ()>;

    /// A picture of job `id`, if it was kept (and, in Redis, has not expired).
    fn picture(&self, picture: KeptPicture, id: String) -> StoreFuture<'_, Option<Vec<u8>>>;
}

/// A store of jobs: the three concerns, of one engine, chosen at start-up. A reader never
/// creates what is not there: an engine with nothing stored answers as empty.
pub trait JobStore: JobLifecycle + UsageLedger + PictureCache + std::fmt::Debug {
    /// The store, for messages and logs: a file's path, or Redis's address without its
    /// password.
    fn describe(&self) -> String;

    /// Whether the store answers now: what the server's health reports.
    fn health(&self) -> StoreFuture<'_, ()>;
}

/// How long a run's lease on its jobs lasts by default; it renews it every third of that.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Opens the store `spec` names: a `redis://` or `rediss://` URL, or `None` for the SQLite
/// file in `state_dir`. Nothing is connected or opened until first use.
pub fn open(
    spec: Option<&str>,
    state_dir: &Path,
    redis: self::redis::RedisOptions,
) -> Result<Arc<dyn JobStore>, StoreError> {
    match spec {
        None => Ok(Arc::new(SqliteStore::with_lease(state_dir, redis.lease))),
        Some(url) => Ok(Arc::new(RedisStore::new(url, redis)?)),
    }
}

/// Why the store could not be used. Every message names the store; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the job store {path:?} is locked by another process (waited {waited:?}); try again")]
    Locked { path: String, waited: Duration },
    #[error(
        "the job store {path:?} is damaged ({reason}); move it aside and a new one is made on the next edit"
    )]
    Corrupt { path: String, reason: String },
    #[error("the disk holding the job store {path:?} is full")]
    Full { path: String },
    /// The shared store did not answer: retryable, and nothing depending on it went ahead.
    #[error("the job store {store} cannot be reached ({reason}); try again in a few seconds")]
    Unreachable { store: String, reason: String },
    #[error("the job store {path:?} cannot be used: {reason}")]
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

    /// Whether a record of a job already under way is worth trying again in the background
    /// until the store takes it: when it is [transient](StoreError::is_transient), or its disk
    /// is full, which someone freeing space cures.
    pub fn is_worth_retrying(&self) -> bool {
        self.is_transient() || matches!(self, StoreError::Full { .. })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

//! The shared store: one Redis for every replica behind a load balancer.
//!
//! Through the `redis` crate (redis-rs, the community's client, maintained by the Redis
//! organisation), with its tokio connection manager: one multiplexed connection per process,
//! opened on first use and re-opened in the background when Redis goes away, with a timeout on
//! every command so a call fails within seconds, before anything is sent, rather than hang.
//! `fred` does as much with more of its own machinery (pools, a reconnect policy, a command
//! queue kept while Redis is down), which here would hide an outage from the caller who has to
//! know it.
//!
//! Every step that must be atomic across replicas (claiming a fingerprint against the daily
//! limit, finishing, taking over a dead replica's jobs) is one Lua script, which Redis runs
//! alone. The scripts name keys they compute, so the store wants one Redis (with replicas or
//! Sentinel for failover if need be), not Redis Cluster.
//!
//! Keys, all under `reve:`:
//! - `job:{id}`: a hash of the job's envelope (one field per column of the embedded store) and
//!   its generation as one JSON `payload`;
//! - `jobs`: every job id, scored by creation time; `results:{principal}`: a principal's
//!   results, as `{created_ms:016}.{id}` members ordered by name, newest last;
//! - `unfinished` and `in_flight` (sent, usage not yet reported): sets of job ids;
//! - `lease:{id}`: the run holding an unfinished job, expiring unless renewed;
//! - `fp:{fingerprint}`: the job holding a fingerprint, expiring a reuse window after it
//!   succeeded;
//! - `usage:{day}` (`credits`, `tokens`, `usd`, `jobs`, `uncertain`); per model on that day,
//!   `usage:{day}:uncertain`, `usage:{day}:usd_missing` and `usage:{day}:units_missing`
//!   (answers reporting a cost in one unit only);
//!   `usage:days`, `usage:costs` (each model's latest cost), `usage:last` (the latest edit's
//!   usage, which a release before costs per model kept alone);
//! - `picture:preview:{id}`, `picture:input:{id}`: the pictures, bounded in size, expiring.

mod connection;

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncTypedCommands as _, Script, Value};

pub use self::connection::{MAX_PICTURE_BYTES, PICTURE_TTL, RedisOptions, RedisStore};
use super::{
    Claim, ClaimRules, Cost, DAY_MS, DayUsage, Ending, JobLifecycle, JobRecord, JobState, JobStore,
    KeptPicture, MODEL_OF_OLDER_JOBS, ModelSpending, Payload, PictureCache, Settled, Settlement,
    Spending, StoreError, StoreFuture, UsageLedger, now_ms,
};

impl RedisStore {
    async fn records(
        mut connection: ConnectionManager,
        ids: Vec<String>,
    ) -> ::redis::RedisResult<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.hgetall(job_key(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        Ok(hashes.iter().filter_map(record_from_hash).collect())
    }
}

fn job_key(id: &str) -> String {
    format!("reve:job:{id}")
}

fn picture_key(picture: KeptPicture, id: &str) -> String {
    let kind = match picture {
        KeptPicture::Preview => "preview",
        KeptPicture::Input(_) => "input",
    };
    format!("reve:picture:{kind}:{}", picture.name(id))
}

/// A job's place in its principal's results: ordered by name as by creation time, then id.
fn result_member(created_ms: u64, id: &str) -> String {
    format!("{created_ms:016}.{id}")
}

/// The spending `spending.lua` replies with, after its first element: the usage and the usage
/// in US dollars, then seven elements per model (its name, in flight, uncertain, cost or '',
/// cost in US dollars or '', answers lacking US dollars, answers lacking credits or tokens).
fn spending_from_reply(reply: &[Value]) -> Spending {
    let text = |value: &Value| ::redis::from_redis_value_ref::<String>(value).unwrap_or_default();
    let mut models: Vec<ModelSpending> = reply
        .get(3..)
        .unwrap_or_default()
        .chunks_exact(7)
        .map(|part| ModelSpending {
            model: text(&part[0]),
            in_flight: text(&part[1]).parse().unwrap_or_default(),
            uncertain: text(&part[2]).parse().unwrap_or_default(),
            cost: text(&part[3]).parse().ok(),
            usd_cost: text(&part[4]).parse().ok(),
            usd_missing: text(&part[5]).parse().unwrap_or_default(),
            units_missing: text(&part[6]).parse().unwrap_or_default(),
        })
        .collect();
    models.sort_by(|a, b| a.model.cmp(&b.model));
    let figure = |index: usize| {
        reply
            .get(index)
            .map(text)
            .and_then(|figure| figure.parse().ok())
            .unwrap_or_default()
    };
    Spending {
        used: figure(1),
        used_usd: figure(2),
        models,
    }
}

/// A job of the hash Redis holds; `None` for a hash that is not a whole job (Redis lost it).
fn record_from_hash(hash: &HashMap<String, String>) -> Option<JobRecord> {
    let text = |name: &str| hash.get(name).cloned();
    let number = |name: &str| hash.get(name).and_then(|value| value.parse::<u64>().ok());
    let float = |name: &str| hash.get(name).and_then(|value| value.parse::<f64>().ok());
    let flag = |name: &str| hash.get(name).is_some_and(|value| value == "1");
    Some(JobRecord {
        id: text("id")?,
        principal: text("principal")?,
        model: text("model").unwrap_or_else(|| MODEL_OF_OLDER_JOBS.to_owned()),
        state: JobState::parse(hash.get("state")?),
        sent: flag("sent"),
        created_ms: number("created_ms")?,
        updated_ms: number("updated_ms").unwrap_or_default(),
        credits_used: float("credits_used"),
        tokens_used: float("tokens_used"),
        usd_spent: float("usd_spent"),
        reused_from: text("reused_from"),
        error: text("error"),
        owner_pid: number("owner_pid").unwrap_or_default() as u32,
        owner_run: text("owner_run").unwrap_or_default(),
        may_be_charged: flag("may_be_charged"),
        settled: hash
            .get("settled")
            .and_then(|settled| Settled::parse(settled)),
        unsaved: flag("unsaved"),
        payload: match hash.get("payload") {
            Some(json) => Payload::from_json(number("revision").unwrap_or_default(), Some(json)),
            None => legacy_payload(hash),
        },
    })
}

/// The generation of a job recorded by a release before payloads, one field per column: what
/// matters for money (where its result goes, the URL it can still be fetched from, the name it
/// was about to take, the saved result), so that a job under way across an upgrade is finished,
/// not called interrupted.
fn legacy_payload(hash: &HashMap<String, String>) -> Payload {
    use crate::generation::{Answer, Destination, Generation, Picture, Saving};
    let text = |name: &str| hash.get(name).cloned();
    let number = |name: &str| hash.get(name).and_then(|value| value.parse::<u64>().ok());
    let generation = Generation {
        model: "reve/edit-image".to_owned(),
        prompt: text("prompt").unwrap_or_default(),
        destination: Destination {
            folder: text("stage_dir").unwrap_or_default(),
            name: text("output_name"),
            saves: hash.get("saves").is_none_or(|saves| saves == "1"),
        },
        answer: Some(Answer {
            url: text("generated_url"),
            request_id: text("request_id"),
            content_violation: None,
            inference_id: None,
        }),
        saving: text("saving_path").map(|path| Saving {
            path,
            bytes: number("saving_bytes").unwrap_or_default(),
        }),
        result: text("mime_type").map(|mime_type| Picture {
            mime_type,
            width: number("width").unwrap_or_default() as u32,
            height: number("height").unwrap_or_default() as u32,
            bytes: number("bytes").unwrap_or_default(),
            path: text("result_path"),
            url: text("result_url"),
            preview: None,
        }),
        ..Generation::default()
    };
    Payload {
        revision: 0,
        generation,
    }
}

/// Reuses an identical job, holds or refuses at the limit, or claims the fingerprint and
/// sends. The limit's rule is [`Spending::verdict`]'s, written again here because it must run
/// in the same atomic step as the claim.
const CLAIM: &str = concat!(
    include_str!("lua/spending.lua"),
    include_str!("lua/claim.lua")
);

/// Today's spending ([`RedisStore::spending_today`]): `spending.lua`'s reply, alone.
const SPENDING: &str = concat!(
    include_str!("lua/spending.lua"),
    "local used, models, order, used_usd = spending(ARGV[1])\n",
    "return spending_reply('spending', used, models, order, used_usd)\n"
);

/// Records the API's answer and, the first time only, counts its usage on the job's day.
const ANSWERED: &str = include_str!("lua/answered.lua");

/// Records a newer revision of a job's generation.
const UPDATE: &str = include_str!("lua/update.lua");

/// Records how a job ended, unless it already succeeded; frees its fingerprint, or keeps it
/// for the reuse window after a success.
const FINISH: &str = include_str!("lua/finish.lua");

/// Takes a failed job whose paid result is unsaved back up for a run.
const REOPEN: &str = include_str!("lua/reopen.lua");

/// Takes over every unfinished job whose lease lapsed.
const ORPHANS: &str = include_str!("lua/orphans.lua");

/// Renews a run's leases, never one another run has taken.
const RENEW: &str = include_str!("lua/renew.lua");

/// Records what the provider's usage logs said of a job that may have been charged.
const SETTLE: &str = include_str!("lua/settle.lua");

/// `Some` as its text, `None` as absent.
fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

fn flag(value: bool) -> &'static str {
    if value { "1" } else { "0" }
}

impl JobLifecycle for RedisStore {
    fn lease(&self) -> Duration {
        self.lease
    }

    fn insert(&self, job: JobRecord) -> StoreFuture<'_, ()> {
        let lease = self.lease.as_millis() as u64;
        self.with(move |mut connection| {
            let job = job.clone();
            async move {
                let fields = [
                    ("id", job.id.clone()),
                    ("principal", job.principal.clone()),
                    ("model", job.model.clone()),
                    ("state", job.state.as_str().to_owned()),
                    ("sent", "0".to_owned()),
                    ("created_ms", job.created_ms.to_string()),
                    ("updated_ms", job.updated_ms.to_string()),
                    ("owner_pid", job.owner_pid.to_string()),
                    ("owner_run", job.owner_run.clone()),
                    ("revision", job.payload.revision.to_string()),
                    ("payload", job.payload.to_json()),
                ];
                ::redis::pipe()
                    .atomic()
                    .hset_multiple(job_key(&job.id), &fields)
                    .ignore()
                    .zadd("reve:jobs", &job.id, job.created_ms)
                    .ignore()
                    .sadd("reve:unfinished", &job.id)
                    .ignore()
                    .set_options(
                        format!("reve:lease:{}", job.id),
                        &job.owner_run,
                        ::redis::SetOptions::default()
                            .with_expiration(::redis::SetExpiry::PX(lease)),
                    )
                    .ignore()
                    .exec_async(&mut connection)
                    .await
            }
        })
    }

    fn claim(&self, id: String, fingerprint: String, rules: ClaimRules) -> StoreFuture<'_, Claim> {
        let name = self.name.clone();
        self.with(move |mut connection| {
            let id = id.clone();
            let fingerprint = fingerprint.clone();
            let name = name.clone();
            let rules = rules.clone();
            async move {
                let now = now_ms();
                let prices = rules
                    .usd_limit
                    .as_ref()
                    .map(|limit| limit.prices.clone())
                    .unwrap_or_default();
                let reply: Vec<Value> = Script::new(CLAIM)
                    .key(job_key(&id))
                    .key(format!("reve:fp:{fingerprint}"))
                    .arg(&id)
                    .arg(&fingerprint)
                    .arg(now)
                    .arg(rules.reuse_window.as_millis() as u64)
                    .arg(optional(rules.daily_limit))
                    .arg(now / DAY_MS)
                    .arg(flag(rules.reuse_finished))
                    .arg(flag(rules.may_send))
                    .arg(optional(
                        rules.usd_limit.as_ref().map(|limit| limit.per_day),
                    ))
                    .arg(prices.len())
                    .arg(
                        prices
                            .iter()
                            .flat_map(|(model, price)| [model.clone(), price.to_string()])
                            .collect::<Vec<_>>(),
                    )
                    .arg(rules.passed_over.clone())
                    .invoke_async(&mut connection)
                    .await?;
                let text = |index: usize| match reply.get(index) {
                    Some(value) => {
                        ::redis::from_redis_value_ref::<String>(value).unwrap_or_default()
                    }
                    None => String::new(),
                };
                Ok(match text(0).as_str() {
                    "send" => Claim::Send,
                    "reuse" => Claim::Reuse(text(1)),
                    "not_sent" => Claim::NotSent,
                    "hold" => Claim::Hold,
                    "limit" => Claim::OverLimit(spending_from_reply(&reply)),
                    "usd_limit" => Claim::OverUsdLimit(spending_from_reply(&reply)),
                    _ => {
                        return Err(::redis::RedisError::from((
                            ::redis::ErrorKind::Client,
                            "the job's record is missing from Redis (was Redis emptied?)",
                            name,
                        )));
                    }
                })
            }
        })
    }

    fn answered(&self, id: String, cost: Option<Cost>, payload: Payload) -> StoreFuture<'_, ()> {
        let json = payload.to_json();
        self.with(move |mut connection| {
            let id = id.clone();
            let json = json.clone();
            async move {
                Script::new(ANSWERED)
                    .key(job_key(&id))
                    .arg(&id)
                    .arg(now_ms())
                    .arg(optional(cost.and_then(|cost| cost.credits)))
                    .arg(optional(cost.and_then(|cost| cost.tokens)))
                    .arg(optional(cost.and_then(|cost| cost.usd)))
                    .arg(payload.revision)
                    .arg(json)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(drop)
            }
        })
    }

    fn update(&self, id: String, payload: Payload) -> StoreFuture<'_, ()> {
        let json = payload.to_json();
        self.with(move |mut connection| {
            let id = id.clone();
            let json = json.clone();
            async move {
                Script::new(UPDATE)
                    .key(job_key(&id))
                    .arg(now_ms())
                    .arg(payload.revision)
                    .arg(json)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(drop)
            }
        })
    }

    fn finish(
        &self,
        id: String,
        ending: Ending,
        error: Option<String>,
        payload: Option<Payload>,
    ) -> StoreFuture<'_, ()> {
        let (revision, json) = match &payload {
            Some(payload) => (payload.revision.to_string(), payload.to_json()),
            None => (String::new(), String::new()),
        };
        self.with(move |mut connection| {
            let id = id.clone();
            let error = error.clone();
            let (revision, json) = (revision.clone(), json.clone());
            async move {
                Script::new(FINISH)
                    .key(job_key(&id))
                    .arg(&id)
                    .arg(now_ms())
                    .arg(ending.state.as_str())
                    .arg(flag(ending.refused_by_api))
                    .arg(flag(ending.unsaved))
                    .arg(error.unwrap_or_default())
                    .arg(revision)
                    .arg(json)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(drop)
            }
        })
    }

    fn reopen(&self, id: String, run: String, pid: u32) -> StoreFuture<'_, bool> {
        let lease = self.lease.as_millis() as u64;
        self.with(move |mut connection| {
            let id = id.clone();
            let run = run.clone();
            async move {
                Script::new(REOPEN)
                    .key(job_key(&id))
                    .arg(&id)
                    .arg(run)
                    .arg(pid)
                    .arg(now_ms())
                    .arg(lease)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(|taken| taken == 1)
            }
        })
    }

    fn get(&self, id: String) -> StoreFuture<'_, Option<JobRecord>> {
        self.with(move |mut connection| {
            let id = id.clone();
            async move {
                let hash: HashMap<String, String> = connection.hgetall(job_key(&id)).await?;
                Ok(record_from_hash(&hash))
            }
        })
    }

    fn recent(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        self.with(move |mut connection| async move {
            let ids: Vec<String> = ::redis::cmd("ZRANGE")
                .arg("reve:jobs")
                .arg(0)
                .arg(i64::from(limit) - 1)
                .arg("REV")
                .query_async(&mut connection)
                .await?;
            RedisStore::records(connection, ids).await
        })
    }

    fn results(
        &self,
        principal: String,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<JobRecord>> {
        self.with(move |mut connection| {
            let principal = principal.clone();
            let after = after.clone();
            async move {
                let from = match after {
                    Some((created_ms, id)) => format!("({}", result_member(created_ms, &id)),
                    None => "+".to_owned(),
                };
                let members: Vec<String> = ::redis::cmd("ZRANGE")
                    .arg(format!("reve:results:{principal}"))
                    .arg(from)
                    .arg("-")
                    .arg("BYLEX")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut connection)
                    .await?;
                let ids = members
                    .into_iter()
                    .filter_map(|member| member.split_once('.').map(|(_, id)| id.to_owned()))
                    .collect();
                RedisStore::records(connection, ids).await
            }
        })
    }

    fn orphans(&self, run: String, pid: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        let lease = self.lease.as_millis() as u64;
        self.with(move |mut connection| {
            let run = run.clone();
            async move {
                let ids: Vec<String> = Script::new(ORPHANS)
                    .arg(run)
                    .arg(pid)
                    .arg(lease)
                    .arg(now_ms())
                    .invoke_async(&mut connection)
                    .await?;
                RedisStore::records(connection, ids).await
            }
        })
    }

    fn renew(&self, run: String, ids: Vec<String>) -> StoreFuture<'_, ()> {
        let lease = self.lease.as_millis() as u64;
        self.with(move |mut connection| {
            let run = run.clone();
            let ids = ids.clone();
            async move {
                if ids.is_empty() {
                    return Ok(());
                }
                Script::new(RENEW)
                    .arg(run)
                    .arg(lease)
                    .arg(ids)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(drop)
            }
        })
    }
}

impl UsageLedger for RedisStore {
    fn usage_by_day(&self) -> StoreFuture<'_, Vec<DayUsage>> {
        self.with(move |mut connection| async move {
            let days: Vec<u64> = ::redis::cmd("ZRANGE")
                .arg("reve:usage:days")
                .arg(0)
                .arg(-1)
                .query_async(&mut connection)
                .await?;
            // Redis refuses an empty pipeline.
            if days.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = ::redis::pipe();
            for day in &days {
                pipe.hgetall(format!("reve:usage:{day}"));
            }
            let usage: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
            Ok(days
                .into_iter()
                .zip(usage)
                .map(|(day, usage)| {
                    let field = |name: &str| -> f64 {
                        usage
                            .get(name)
                            .and_then(|value| value.parse().ok())
                            .unwrap_or_default()
                    };
                    // `credits` holds the usage in either unit; `tokens` the part in tokens
                    // (absent from days recorded before it was kept apart: all credits then).
                    let (usage_in_either, tokens) = (field("credits"), field("tokens"));
                    DayUsage {
                        day,
                        jobs: field("jobs") as u64,
                        credits: usage_in_either - tokens,
                        tokens,
                        uncertain: field("uncertain") as u64,
                        usd: field("usd"),
                    }
                })
                .collect())
        })
    }

    fn spending_today(&self) -> StoreFuture<'_, Spending> {
        self.with(move |mut connection| async move {
            let reply: Vec<Value> = Script::new(SPENDING)
                .arg(now_ms() / DAY_MS)
                .invoke_async(&mut connection)
                .await?;
            Ok(spending_from_reply(&reply))
        })
    }

    fn unsettled(&self, limit: u32) -> StoreFuture<'_, Vec<JobRecord>> {
        self.with(move |mut connection| async move {
            let ids: Vec<String> = ::redis::cmd("SMEMBERS")
                .arg("reve:unsettled")
                .query_async(&mut connection)
                .await?;
            let mut jobs: Vec<JobRecord> = RedisStore::records(connection, ids)
                .await?
                .into_iter()
                .filter(|job| job.may_be_charged && job.settled.is_none())
                .collect();
            jobs.sort_by_key(|job| (job.created_ms, job.id.clone()));
            jobs.truncate(limit as usize);
            Ok(jobs)
        })
    }

    fn settle(&self, id: String, settlement: Settlement, note: String) -> StoreFuture<'_, bool> {
        self.with(move |mut connection| {
            let id = id.clone();
            let note = note.clone();
            async move {
                let cost = match settlement {
                    Settlement::Charged(cost) => Some(cost),
                    Settlement::NotCharged => None,
                };
                Script::new(SETTLE)
                    .key(job_key(&id))
                    .arg(&id)
                    .arg(now_ms())
                    .arg(settlement.settled().as_str())
                    .arg(optional(cost.and_then(|cost| cost.credits)))
                    .arg(optional(cost.and_then(|cost| cost.usd)))
                    .arg(note)
                    .invoke_async::<i64>(&mut connection)
                    .await
                    .map(|settled| settled == 1)
            }
        })
    }
}

impl PictureCache for RedisStore {
    fn keep_picture(
        &self,
        picture: KeptPicture,
        id: String,
        bytes: bytes::Bytes,
    ) -> StoreFuture<'_, ()> {
        if bytes.len() > MAX_PICTURE_BYTES {
            let error = StoreError::Other {
                path: self.name.clone(),
                reason: format!(
                    "a picture of {} bytes is over the {MAX_PICTURE_BYTES} bytes Redis keeps; \
                     lower --preview-max-bytes",
                    bytes.len()
                ),
            };
            return Box::pin(async move { Err(error) });
        }
        self.with(move |mut connection| {
            let id = id.clone();
            let bytes = bytes.clone();
            async move {
                connection
                    .set_options(
                        picture_key(picture, &id),
                        &bytes[..],
                        ::redis::SetOptions::default().with_expiration(::redis::SetExpiry::PX(
                            PICTURE_TTL.as_millis() as u64,
                        )),
                    )
                    .await
                    .map(drop)
            }
        })
    }

    fn picture(&self, picture: KeptPicture, id: String) -> StoreFuture<'_, Option<Vec<u8>>> {
        self.with(move |mut connection| {
            let id = id.clone();
            async move {
                ::redis::cmd("GET")
                    .arg(picture_key(picture, &id))
                    .query_async(&mut connection)
                    .await
            }
        })
    }
}

impl JobStore for RedisStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        self.with(move |mut connection| async move { connection.ping().await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job an earlier release wrote field by field, under way with its result's URL known,
    /// reads with what a survivor needs to fetch and save that result instead of calling it
    /// interrupted.
    #[test]
    fn a_job_written_field_by_field_keeps_what_its_money_needs() {
        let hash: HashMap<String, String> = [
            ("id", "j"),
            ("principal", "local"),
            ("state", "running"),
            ("sent", "1"),
            ("created_ms", "5"),
            ("prompt", "add a hat"),
            ("stage_dir", "/out"),
            ("output_name", "hat.png"),
            ("saves", "1"),
            ("generated_url", "https://cdn.example/j.png"),
            ("request_id", "req-j"),
            ("saving_path", "/out/hat.png"),
            ("saving_bytes", "1234"),
            ("owner_run", "old"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let record = record_from_hash(&hash).unwrap();
        let generation = record.generation();
        assert_eq!(
            generation.published_url(),
            Some("https://cdn.example/j.png")
        );
        assert_eq!(generation.request_id(), Some("req-j"));
        assert_eq!(generation.prompt, "add a hat");
        assert_eq!(generation.destination.name.as_deref(), Some("hat.png"));
        assert_eq!(
            generation.saving.as_ref().map(|saving| saving.bytes),
            Some(1234)
        );
        assert!(record.sent && generation.result.is_none());
    }
}

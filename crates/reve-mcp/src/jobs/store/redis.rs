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
//! - `usage:{day}` (`credits`, `jobs`), `usage:days`, `usage:last` (the latest edit's usage);
//! - `picture:preview:{id}`, `picture:input:{id}`: the pictures, bounded in size, expiring.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncTypedCommands as _, IntoConnectionInfo as _, Script, Value};
use secrecy::{ExposeSecret as _, SecretString};

use super::{
    Claim, ClaimRules, DAY_MS, DEFAULT_LEASE, DayUsage, Ending, JobLifecycle, JobRecord, JobState,
    JobStore, KeptPicture, Payload, PictureCache, Spending, StoreError, StoreFuture, UsageLedger,
    now_ms,
};

/// How long a command may take before the call that needs it fails: Redis on a local network
/// answers in well under a millisecond, so seconds mean it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a command that met a dropped connection waits for the manager to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The largest picture kept: previews are bounded far below this by the preview budget, so
/// this only guards Redis's memory against a misconfigured budget.
pub const MAX_PICTURE_BYTES: usize = 4 * 1024 * 1024;

/// How long kept pictures stay: they are previews, shown again for a while; the full result is
/// the saved file.
pub const PICTURE_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What the Redis store is opened with besides its URL.
#[derive(Clone)]
pub struct RedisOptions {
    /// A password that overrides the URL's, so it need not be written in the URL.
    pub password: Option<SecretString>,
    /// The certificates (PEM) that a `rediss://` Redis's certificate must chain to, in place of
    /// the system's roots: a team's private CA, trusted for Redis without being trusted for the
    /// API as well (as `SSL_CERT_FILE` would).
    pub ca_file: Option<PathBuf>,
    pub lease: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            password: None,
            ca_file: None,
            lease: DEFAULT_LEASE,
        }
    }
}

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    /// The address and database, never the password.
    name: String,
    lease: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT/DB` or `rediss://`), connected on first use.
    pub fn new(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let invalid = |reason: String| StoreError::Other {
            path: "given by --store (REVE_STORE)".to_owned(),
            reason,
        };
        let mut info = url.into_connection_info().map_err(|error| {
            invalid(format!(
                "it is not a redis:// or rediss:// URL ({})",
                error.category()
            ))
        })?;
        if let Some(password) = &options.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), ::redis::ConnectionAddr::TcpTls { .. });
        let name = format!(
            "Redis at {} (db {}, {})",
            info.addr(),
            info.redis_settings().db(),
            match tls {
                true => "TLS",
                false => "plain TCP",
            }
        );
        let client = match &options.ca_file {
            None => ::redis::Client::open(info),
            Some(ca_file) if tls => {
                let root_cert = Some(read_certificates(ca_file)?);
                ::redis::Client::build_with_tls(
                    info,
                    ::redis::TlsCertificates {
                        client_tls: None,
                        root_cert,
                    },
                )
            }
            Some(_) => {
                return Err(invalid(
                    "--redis-ca-file (REVE_REDIS_CA_FILE) is for a Redis reached over TLS: \
                     write its URL as rediss://"
                        .to_owned(),
                ));
            }
        }
        .map_err(|error| invalid(error.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // Reconnects happen in the background; a call never waits through them.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|error| invalid(error.to_string()))?;
        Ok(RedisStore {
            connection,
            name,
            lease: options.lease,
        })
    }

    fn error(&self, error: &::redis::RedisError) -> StoreError {
        // TLS reports a certificate it cannot trust (or a peer that is not TLS) as invalid
        // data: a setting to fix, which waiting does not mend.
        let refused_handshake =
            io_cause(error).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if !refused_handshake
            && (error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal())
        {
            StoreError::Unreachable {
                store: self.name.clone(),
                reason: error.to_string(),
            }
        } else {
            StoreError::Other {
                path: self.name.clone(),
                reason: error.to_string(),
            }
        }
    }

    /// Runs `work` with a handle on the shared connection, naming the store in its error.
    ///
    /// The first command on a connection Redis dropped (it restarted, say) fails while the
    /// manager reconnects: that one is tried once more on the new connection, so a Redis back
    /// from an outage is not reported as still away. Every operation tolerates running twice.
    fn with<'a, T: Send + 'a, F>(
        &'a self,
        work: impl Fn(ConnectionManager) -> F + Send + Sync + 'a,
    ) -> StoreFuture<'a, T>
    where
        F: Future<Output = ::redis::RedisResult<T>> + Send + 'a,
    {
        Box::pin(async move {
            match work(self.connection.clone()).await {
                Err(error) if error.is_connection_dropped() => {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    work(self.connection.clone()).await
                }
                done => done,
            }
            .map_err(|error| self.error(&error))
        })
    }

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

/// The PEM certificates of `path`, refused before any connection if there are none to trust.
fn read_certificates(path: &Path) -> Result<Vec<u8>, StoreError> {
    use rustls_pki_types::pem::PemObject as _;
    let refuse = |reason: String| StoreError::Other {
        path: format!(
            "CA file {} (--redis-ca-file, REVE_REDIS_CA_FILE)",
            path.display()
        ),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| refuse(error.to_string()))?;
    let mut certificates = rustls_pki_types::CertificateDer::pem_slice_iter(&pem);
    match certificates.try_fold(0, |count, certificate| certificate.map(|_| count + 1)) {
        Ok(0) => Err(refuse(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        )),
        Ok(_) => Ok(pem),
        Err(error) => Err(refuse(format!("it is not PEM: {error}"))),
    }
}

/// The I/O error under a Redis error, if there is one: the crate keeps it behind an `Arc`.
fn io_cause(error: &::redis::RedisError) -> Option<&std::io::Error> {
    let source = std::error::Error::source(error)?;
    source.downcast_ref::<std::io::Error>().or_else(|| {
        source
            .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?
            .downcast_ref()
    })
}

fn job_key(id: &str) -> String {
    format!("reve:job:{id}")
}

fn picture_key(picture: KeptPicture, id: &str) -> String {
    let kind = match picture {
        KeptPicture::Preview => "preview",
        KeptPicture::Input => "input",
    };
    format!("reve:picture:{kind}:{id}")
}

/// A job's place in its principal's results: ordered by name as by creation time, then id.
fn result_member(created_ms: u64, id: &str) -> String {
    format!("{created_ms:016}.{id}")
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
        state: JobState::parse(hash.get("state")?),
        sent: flag("sent"),
        created_ms: number("created_ms")?,
        updated_ms: number("updated_ms").unwrap_or_default(),
        credits_used: float("credits_used"),
        tokens_used: float("tokens_used"),
        reused_from: text("reused_from"),
        error: text("error"),
        owner_pid: number("owner_pid").unwrap_or_default() as u32,
        owner_run: text("owner_run").unwrap_or_default(),
        may_be_charged: flag("may_be_charged"),
        unsaved: flag("unsaved"),
        payload: Payload::from_json(
            number("revision").unwrap_or_default(),
            hash.get("payload").map(String::as_str),
        ),
    })
}

/// Reuses an identical job, holds or refuses at the limit, or claims the fingerprint and
/// sends. The limit's rule is [`Spending::verdict`]'s, written again here because it must run
/// in the same atomic step as the claim.
const CLAIM: &str = include_str!("lua/claim.lua");

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
                    "limit" => Claim::OverLimit(Spending {
                        used: text(1).parse().unwrap_or_default(),
                        in_flight: text(2).parse().unwrap_or_default(),
                        uncertain: text(3).parse().unwrap_or_default(),
                        per_edit: text(4).parse().ok(),
                    }),
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

    fn answered(
        &self,
        id: String,
        usage: Option<reve_core::Usage>,
        payload: Payload,
    ) -> StoreFuture<'_, ()> {
        let json = payload.to_json();
        self.with(move |mut connection| {
            let id = id.clone();
            let json = json.clone();
            async move {
                Script::new(ANSWERED)
                    .key(job_key(&id))
                    .arg(&id)
                    .arg(now_ms())
                    .arg(optional(usage.and_then(|usage| usage.credits_used)))
                    .arg(optional(usage.and_then(|usage| usage.tokens_used)))
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
                .map(|(day, usage)| DayUsage {
                    day,
                    jobs: usage
                        .get("jobs")
                        .and_then(|jobs| jobs.parse().ok())
                        .unwrap_or_default(),
                    credits: usage
                        .get("credits")
                        .and_then(|credits| credits.parse().ok())
                        .unwrap_or_default(),
                    uncertain: usage
                        .get("uncertain")
                        .and_then(|uncertain| uncertain.parse().ok())
                        .unwrap_or_default(),
                })
                .collect())
        })
    }

    fn spending_today(&self) -> StoreFuture<'_, Spending> {
        self.with(move |mut connection| async move {
            let ((used, uncertain), in_flight, per_edit): (
                (Option<f64>, Option<u64>),
                u64,
                Option<f64>,
            ) = ::redis::pipe()
                .cmd("HMGET")
                .arg(format!("reve:usage:{}", now_ms() / DAY_MS))
                .arg("credits")
                .arg("uncertain")
                .scard("reve:in_flight")
                .get("reve:usage:last")
                .query_async(&mut connection)
                .await?;
            Ok(Spending {
                used: used.unwrap_or_default(),
                in_flight,
                uncertain: uncertain.unwrap_or_default(),
                per_edit,
            })
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

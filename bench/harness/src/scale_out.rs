//! Measurements 14 and 15: replicas sharing Redis behind HAProxy. 256 simultaneous calls
//! against a fake that takes 1 s, through the load balancer to three replicas, and the same
//! calls to one replica with the embedded store, in the same run; then what the Redis store's
//! writes cost one call, beside the embedded store's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::future::try_join_all;
use reve_mcp::{RedisOptions, RedisStore, SqliteStore};
use reve_tests::services::{LoadBalancer, Redis, ReplicaUnit};

use crate::hardening::{http_edit, start_http};
use crate::jobs::record_one;
use crate::measure::median;

pub const SIMULTANEOUS_CALLS: usize = 256;
pub const API_LATENCY: Duration = Duration::from_secs(1);

/// One burst of [`SIMULTANEOUS_CALLS`]: its wall time, and the 99th percentile of what each
/// call took beyond the API's own second.
#[derive(Default, Clone, Copy)]
pub struct Burst {
    pub wall: Duration,
    pub p99_added: Duration,
}

#[derive(Default)]
pub struct ScaleOut {
    /// Three replicas on Redis behind HAProxy, and one replica on SQLite.
    pub balanced: Burst,
    pub single: Burst,
    /// Medians of one call's job writes on Redis and on SQLite.
    pub redis_record: Duration,
    pub sqlite_record: Duration,
}

/// Runs both measurements with `env`, whose fake API takes [`API_LATENCY`] to answer.
pub async fn measure(
    binary: &Path,
    env: &[(String, String)],
    image_url: &str,
    work: &Path,
    records: usize,
) -> Result<ScaleOut> {
    let mut costs = ScaleOut::default();
    let _ = std::fs::remove_dir_all(work.join("scale-out"));
    let redis = Redis::start(&work.join("scale-out/redis")).await;

    let unit = ReplicaUnit::read();
    // The unit's own folder for results is the deployment's; the bench's wins.
    let output_dir = env_value(env, "REVE_OUTPUT_DIR").context("REVE_OUTPUT_DIR is set")?;
    let mut replicas = Vec::new();
    for index in 1..=3 {
        let mut env = env.to_vec();
        env.extend(unit.env.iter().cloned());
        env.extend([
            ("REVE_STORE".to_owned(), redis.url()),
            (
                "REVE_STATE_DIR".to_owned(),
                work.join(format!("scale-out/state-{index}"))
                    .display()
                    .to_string(),
            ),
        ]);
        env.push(("REVE_OUTPUT_DIR".to_owned(), output_dir.clone()));
        replicas.push(start_http(binary, &env).await?);
    }
    let addrs: Vec<SocketAddr> = replicas
        .iter()
        .map(|(_, url)| {
            url.trim_start_matches("http://")
                .trim_end_matches("/mcp")
                .parse()
                .context("a replica's address")
        })
        .collect::<Result<_>>()?;
    let balancer = LoadBalancer::start([addrs[0], addrs[1], addrs[2]]).await;
    costs.balanced = burst(&balancer.url("/mcp"), image_url).await?;
    drop(balancer);
    drop(replicas);

    let mut env = env.to_vec();
    env.push((
        "REVE_STATE_DIR".to_owned(),
        work.join("scale-out/single").display().to_string(),
    ));
    let (single, url) = start_http(binary, &env).await?;
    costs.single = burst(&url, image_url).await?;
    drop(single);

    let store = RedisStore::new(&redis.url(), RedisOptions::default())?;
    let sqlite = SqliteStore::in_folder(&work.join("scale-out/records"));
    record_one(&store, 0).await?;
    record_one(&sqlite, 0).await?;
    let (mut on_redis, mut on_sqlite) = (Vec::new(), Vec::new());
    for index in 1..=records {
        on_redis.push(record_one(&store, index).await?);
        on_sqlite.push(record_one(&sqlite, index).await?);
    }
    costs.redis_record = median(on_redis);
    costs.sqlite_record = median(on_sqlite);
    Ok(costs)
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

/// [`SIMULTANEOUS_CALLS`] calls at `url` at once.
async fn burst(url: &str, image_url: &str) -> Result<Burst> {
    let http = reqwest::Client::new();
    // One call first, so that connections and the store are open.
    http_edit(&http, url, image_url).await?;
    let started = Instant::now();
    let calls = (0..SIMULTANEOUS_CALLS).map(|_| http_edit(&http, url, image_url));
    let mut times = try_join_all(calls).await?;
    let wall = started.elapsed();
    times.sort_unstable();
    let p99 = times[(times.len() * 99).div_ceil(100) - 1];
    Ok(Burst {
        wall,
        p99_added: p99.saturating_sub(API_LATENCY),
    })
}

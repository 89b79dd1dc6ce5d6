//! Replicas behind a real load balancer, sharing jobs through a real Redis: three
//! `reve-mcp serve --http --stateless --store redis://...` processes started as
//! `deploy/reve-mcp@.service` starts them, behind HAProxy running `deploy/haproxy.cfg`, with
//! `redis-server` running `deploy/redis.conf`, all on loopback, against the fake API.
//!
//! `cargo xtask scale-out` runs them (and `.ci/run` does): the README's test command stays one
//! that a machine with only the Rust toolchain passes. Run so, a missing `redis-server` or
//! `haproxy` fails the test with the command that installs it.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reve_tests::fake::{data_uri, sample_png};
use reve_tests::services::{LoadBalancer, Redis, RedisAccess, ReplicaUnit};
use reve_tests::{FakeApi, Scenario};
use serde_json::{Value, json};

use crate::mcp_http::{HttpServer, post_to, sse_messages};
use crate::support::{World, command, path_string};

const TOKEN: &str = "tok-team-4b9d2e7f1a";

/// What one edit reports as its usage: the fake answers with the published example's.
const TOKENS_PER_EDIT: f64 = 210_000.0;

/// A fake API, a Redis, three replicas and HAProxy in front of them.
struct Cluster {
    world: World,
    redis: Redis,
    replicas: Vec<HttpServer>,
    balancer: LoadBalancer,
}

impl Cluster {
    /// The whole deployment; `extra` is set on every replica after the unit's own settings.
    async fn start(fake: FakeApi, extra: &[(&str, &str)]) -> Cluster {
        let world = World::with_fake(fake);
        let redis = Redis::start(&world.path("redis")).await;
        let unit = ReplicaUnit::read();
        let flags: Vec<&str> = unit.flags.iter().map(String::as_str).collect();
        let mut replicas = Vec::new();
        for index in 1..=3 {
            let mut env = world.env(&[]);
            env.extend(unit.env.iter().cloned());
            env.extend([
                ("REVE_STORE".to_owned(), redis.url()),
                ("REVE_OUTPUT_DIR".to_owned(), path_string(&world.outputs)),
                (
                    "REVE_STATE_DIR".to_owned(),
                    path_string(&world.path(&format!("state-{index}"))),
                ),
                ("REVE_HTTP_TOKEN".to_owned(), TOKEN.to_owned()),
            ]);
            env.extend(
                extra
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
            );
            replicas.push(HttpServer::start(&env, &flags).await);
        }
        let addrs = [replicas[0].addr, replicas[1].addr, replicas[2].addr];
        let balancer = LoadBalancer::start(addrs).await;
        Cluster {
            world,
            redis,
            replicas,
            balancer,
        }
    }

    fn through_balancer(&self) -> String {
        self.balancer.url("/mcp")
    }

    /// Runs `reve-mcp` on the command line against the cluster's Redis.
    async fn run(&self, args: &[&str]) -> String {
        let env: BTreeMap<String, String> = self
            .world
            .env(&[("REVE_STORE", &self.redis.url())])
            .into_iter()
            .collect();
        let output = command(&env).args(args).output().await.unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}

/// One stateless request of the 2026-07-28 protocol to `url`: its result (or error), and which
/// replica answered when it went through the load balancer. `tasks/*` requests declare the
/// tasks extension; tool calls do not, so that they answer as tools.
async fn rpc(url: &str, method: &str, mut params: Value) -> (Value, Option<String>) {
    let extensions = match method.starts_with("tasks/") {
        true => json!({ "io.modelcontextprotocol/tasks": {} }),
        false => json!({}),
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "reve-tests", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": { "extensions": extensions },
    });
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let mut post = post_to(url, &request)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    // What the request names (a tool, a task) goes in a header too.
    if let Some(name) = params["name"].as_str().or(params["taskId"].as_str()) {
        post = post.header("mcp-name", name);
    }
    let response = post.send().await.unwrap();
    let replica = response
        .headers()
        .get("x-reve-replica")
        .map(|value| value.to_str().unwrap().to_owned());
    let code = response.status();
    let body = response.text().await.unwrap();
    assert!(code.is_success(), "{method}: {code} {body}");
    let message = sse_messages(&body)
        .pop()
        .or_else(|| serde_json::from_str(&body).ok())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {body}"));
    let answer = message
        .get("result")
        .or_else(|| message.get("error"))
        .cloned()
        .unwrap_or_else(|| panic!("neither result nor error: {message}"));
    (answer, replica)
}

async fn call(url: &str, tool: &str, arguments: Value) -> (Value, Option<String>) {
    rpc(
        url,
        "tools/call",
        json!({ "name": tool, "arguments": arguments }),
    )
    .await
}

fn edit(prompt: &str) -> Value {
    json!({ "prompt": prompt, "image_url": data_uri("image/png", &sample_png(24, 16)) })
}

fn status(result: &Value) -> &str {
    result["structuredContent"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status in {result}"))
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `get_edit` at `url` until job `id` is no longer running; at most `polls` times. An
/// answer that says to try again (the store was unreachable) is tried again, as a client does.
async fn settled(url: &str, id: &str, polls: usize) -> Value {
    for _ in 0..polls {
        let (result, _) = call(url, "get_edit", json!({ "job_id": id })).await;
        let retry = text(&result).contains("try again in a few seconds");
        if !retry && (result["isError"] == true || status(&result) != "running") {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("job {id} still running after {polls} polls");
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn two_hundred_calls_through_the_balancer_are_answered_by_any_replica() {
    let fake = FakeApi::builder()
        .latency(Duration::from_millis(1500))
        .start()
        .await;
    let cluster = Cluster::start(fake, &[("REVE_MAX_WAIT_SECS", "0")]).await;
    const JOBS: usize = 40;
    let url = cluster.through_balancer();
    let runs = (0..JOBS).map(|index| {
        let url = url.clone();
        async move {
            let (started, starter) = call(&url, "edit_image", edit(&format!("edit {index}"))).await;
            assert_eq!(status(&started), "running", "{started}");
            let starter = starter.expect("HAProxy names the replica");
            let id = started["structuredContent"]["job_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let (mut calls, mut elsewhere) = (1, BTreeSet::new());
            let mut finished = None;
            // Until the job is done and both ways of asking were answered by another replica.
            for _ in 0..60 {
                let (got, by) = call(&url, "get_edit", json!({ "job_id": id })).await;
                let (task, task_by) = rpc(&url, "tasks/get", json!({ "taskId": id })).await;
                calls += 2;
                assert_eq!(task["taskId"], id.as_str(), "{task}");
                for (way, replica) in [("get_edit", by), ("tasks/get", task_by)] {
                    if replica.as_deref() != Some(starter.as_str()) {
                        elsewhere.insert(way);
                    }
                }
                if status(&got) != "running" {
                    finished = Some(got);
                }
                if finished.is_some() && elsewhere.len() == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let finished = finished.unwrap_or_else(|| panic!("job {id} never finished"));
            assert_eq!(status(&finished), "succeeded", "{finished}");
            assert_eq!(
                elsewhere.len(),
                2,
                "job {id} was only ever answered by {starter}"
            );
            let path = finished["structuredContent"]["path"]
                .as_str()
                .unwrap()
                .to_owned();
            (starter, calls, path)
        }
    });
    let done = futures::future::join_all(runs).await;
    let calls: usize = done.iter().map(|(_, calls, _)| calls).sum();
    assert!(calls >= 200, "{calls} calls");
    let starters: BTreeSet<&String> = done.iter().map(|(starter, ..)| starter).collect();
    assert_eq!(starters.len(), 3, "jobs were started on {starters:?}");
    // Each job paid once and saved once, to the folder every replica shares.
    assert_eq!(cluster.world.fake.generation_attempts(), JOBS);
    let paths: BTreeSet<&String> = done.iter().map(|(.., path)| path).collect();
    assert_eq!(paths.len(), JOBS);
    for path in paths {
        assert_eq!(image::image_dimensions(path).unwrap(), (24, 16));
    }
    // Any replica lists every result, newest first, from Redis.
    let (listed, _) = rpc(&url, "resources/list", json!({})).await;
    let results: Vec<&str> = listed["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|resource| resource["uri"].as_str())
        .filter(|uri| uri.ends_with("/result"))
        .collect();
    assert_eq!(results.len(), JOBS, "{listed}");
    assert_eq!(results.iter().collect::<BTreeSet<_>>().len(), JOBS);
    // The command line reads the same Redis.
    let listed = cluster.run(&["jobs", "-n", "100"]).await;
    assert_eq!(
        listed
            .lines()
            .filter(|line| line.contains("succeeded"))
            .count(),
        JOBS,
        "{listed}"
    );
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn one_call_sent_to_two_replicas_at_once_is_generated_once() {
    let fake = FakeApi::builder()
        .latency(Duration::from_millis(500))
        .start()
        .await;
    let cluster = Cluster::start(fake, &[("REVE_REUSE_WINDOW_SECS", "600")]).await;
    let empty = cluster.run(&["usage"]).await;
    assert!(
        empty
            .lines()
            .any(|line| line.starts_with("total           0 edits")),
        "{empty}"
    );
    let (first, second) = (cluster.replicas[0].url(), cluster.replicas[1].url());
    for round in 0..5 {
        let arguments = edit(&format!("the same edit, round {round}"));
        let ((a, _), (b, _)) = tokio::join!(
            call(&first, "edit_image", arguments.clone()),
            call(&second, "edit_image", arguments),
        );
        assert_eq!(status(&a), "succeeded", "{a}");
        assert_eq!(status(&b), "succeeded", "{b}");
        assert_eq!(cluster.world.fake.generation_attempts(), round + 1);
        let (a, b) = (&a["structuredContent"], &b["structuredContent"]);
        assert_eq!(a["path"], b["path"]);
        let reused: Vec<&Value> = [a, b]
            .into_iter()
            .filter(|result| !result["reused_from"].is_null())
            .collect();
        assert_eq!(reused.len(), 1, "{a} {b}");
        let owner = if reused[0] == a { b } else { a };
        assert_eq!(reused[0]["reused_from"], owner["job_id"]);
    }
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn concurrent_calls_at_the_daily_limit_overshoot_it_by_one_edit_at_most() {
    let fake = FakeApi::builder()
        .latency(Duration::from_millis(800))
        .start()
        .await;
    let limit = TOKENS_PER_EDIT * 2.5;
    let cluster = Cluster::start(fake, &[("REVE_MAX_CREDITS_PER_DAY", &limit.to_string())]).await;
    let url = cluster.through_balancer();
    // The first edit tells the replicas what an edit costs.
    let (warm, _) = call(&url, "edit_image", edit("first")).await;
    assert_eq!(status(&warm), "succeeded", "{warm}");
    let calls = (0..10).map(|index| call(&url, "edit_image", edit(&format!("burst {index}"))));
    let results = futures::future::join_all(calls).await;
    let succeeded = results
        .iter()
        .filter(|(result, _)| result["isError"] != true)
        .count();
    for (result, _) in results
        .iter()
        .filter(|(result, _)| result["isError"] == true)
    {
        let message = text(result);
        assert!(message.contains("spending limit"), "{message}");
        assert!(message.contains("nothing was sent"), "{message}");
    }
    let generations = cluster.world.fake.generation_attempts();
    assert_eq!(generations, 1 + succeeded);
    let used = generations as f64 * TOKENS_PER_EDIT;
    assert!(
        used >= limit,
        "the limit was not reached: {used} of {limit}"
    );
    assert!(
        used - limit < TOKENS_PER_EDIT,
        "{used} used against a limit of {limit}: over by more than one edit"
    );
    // What the store counted is what the API reported.
    let usage = cluster.run(&["usage"]).await;
    assert!(
        usage.contains(&format!("{:>5} edits", generations)) && usage.contains(&format!("{used}")),
        "{usage}"
    );
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn a_killed_replicas_jobs_are_settled_by_the_others_within_the_lease() {
    let fake = FakeApi::builder().start().await;
    let cluster = Cluster::start(
        fake,
        &[("REVE_LEASE_SECS", "2"), ("REVE_MAX_WAIT_SECS", "0")],
    )
    .await;
    let fake = &cluster.world.fake;
    let victim = cluster.replicas[0].url();
    // One edit the API is still working on, one whose answer came and whose download crawls.
    fake.push(Scenario::Latency(Duration::from_secs(30)));
    let (working, _) = call(&victim, "edit_image", edit("still working")).await;
    fake.wait_until(|counters| counters.generation_attempts >= 1)
        .await;
    fake.push(Scenario::SlowBody {
        chunk_delay: Duration::from_millis(700),
    });
    let (downloading, _) = call(&victim, "edit_image", edit("downloading")).await;
    fake.wait_until(|counters| counters.file_downloads >= 1)
        .await;
    let id = |result: &Value| {
        result["structuredContent"]["job_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (working, downloading) = (id(&working), id(&downloading));

    let mut replicas = cluster.replicas.into_iter();
    replicas.next().unwrap().kill().await;
    let survivors: Vec<HttpServer> = replicas.collect();
    let survivor = survivors[0].url();
    // A lease lapses 2 s after its last renewal; the survivors look every second.
    let interrupted = settled(&survivor, &working, 40).await;
    let message = text(&interrupted);
    assert_eq!(interrupted["isError"], true, "{interrupted}");
    assert!(message.contains("may have charged"), "{message}");
    let resumed = settled(&survivor, &downloading, 60).await;
    assert_eq!(status(&resumed), "succeeded", "{resumed}");
    let path = resumed["structuredContent"]["path"].as_str().unwrap();
    assert_eq!(image::image_dimensions(path).unwrap(), (24, 16));
    assert_eq!(fake.generation_attempts(), 2, "nothing paid twice");
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn with_redis_away_calls_fail_fast_and_jobs_in_flight_are_recorded_when_it_returns() {
    let fake = FakeApi::builder().start().await;
    let mut cluster = Cluster::start(
        fake,
        &[("REVE_LEASE_SECS", "10"), ("REVE_MAX_WAIT_SECS", "0")],
    )
    .await;
    let owner = cluster.replicas[0].url();
    let health = |replica: &HttpServer| {
        let url = format!("http://{}/healthz", replica.addr);
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(health(&cluster.replicas[0]).await.0, 200);
    cluster
        .world
        .fake
        .push(Scenario::Latency(Duration::from_secs(3)));
    let (started, _) = call(&owner, "edit_image", edit("in flight")).await;
    assert_eq!(status(&started), "running", "{started}");
    let job = started["structuredContent"]["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster
        .world
        .fake
        .wait_until(|counters| counters.generation_attempts >= 1)
        .await;

    cluster.redis.stop().await;
    let (refused, _) = call(&cluster.through_balancer(), "edit_image", edit("during")).await;
    assert_eq!(refused["isError"], true, "{refused}");
    let message = text(&refused);
    assert!(message.contains("cannot be reached"), "{message}");
    assert!(message.contains("try again"), "{message}");
    assert!(message.contains("nothing was sent"), "{message}");
    assert_eq!(
        health(&cluster.replicas[1]).await,
        (503, "job store unreachable\n".to_owned())
    );
    // The edit in flight finishes meanwhile, with nowhere to record it.
    cluster
        .world
        .fake
        .wait_until(|counters| counters.file_downloads >= 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.redis.restart().await;
    let done = settled(&cluster.replicas[2].url(), &job, 60).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert_eq!(health(&cluster.replicas[1]).await.0, 200);
    assert_eq!(
        cluster.world.fake.generation_attempts(),
        1,
        "the refused call sent nothing"
    );
}

/// A Redis on a network, as a team runs one: TLS with a certificate from the team's private CA
/// (trusted through `REVE_REDIS_CA_FILE`), and a password.
#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server and haproxy)"]
async fn replicas_reach_redis_over_tls_with_a_password_and_a_wrong_setting_stops_their_start() {
    const PASSWORD: &str = "pw-redis-7c1e9a52";
    const WRONG: &str = "pw-wrong-40d6b3e8";
    let world = World::with_fake(FakeApi::builder().start().await);
    let access = RedisAccess {
        password: Some(PASSWORD.to_owned()),
        tls: true,
    };
    let redis = Redis::start_with(&world.path("redis"), access).await;
    assert!(redis.url().starts_with("rediss://127.0.0.1:"));
    let unit = ReplicaUnit::read();
    let flags: Vec<&str> = unit.flags.iter().map(String::as_str).collect();
    let replica_env = |index: u32, store: String, password: Option<&str>, trust_ca: bool| {
        let mut env = world.env(&[]);
        env.extend(unit.env.iter().cloned());
        env.insert("REVE_STORE".to_owned(), store);
        env.insert("REVE_OUTPUT_DIR".to_owned(), path_string(&world.outputs));
        env.insert(
            "REVE_STATE_DIR".to_owned(),
            path_string(&world.path(&format!("state-{index}"))),
        );
        env.insert("REVE_HTTP_TOKEN".to_owned(), TOKEN.to_owned());
        if let Some(password) = password {
            env.insert("REVE_REDIS_PASSWORD".to_owned(), password.to_owned());
        }
        if trust_ca {
            env.insert(
                "REVE_REDIS_CA_FILE".to_owned(),
                path_string(&redis.ca_file()),
            );
        }
        env
    };

    // The password from the environment on one replica, written in the URL on the other.
    let first = HttpServer::start(&replica_env(1, redis.url(), Some(PASSWORD), true), &flags).await;
    let second = HttpServer::start(
        &replica_env(2, redis.url_with_password(), None, true),
        &flags,
    )
    .await;
    let (done, _) = call(&first.url(), "edit_image", edit("over TLS")).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    let job = done["structuredContent"]["job_id"].as_str().unwrap();
    let (seen, _) = call(&second.url(), "get_edit", json!({ "job_id": job })).await;
    assert_eq!(status(&seen), "succeeded", "{seen}");
    assert_eq!(
        seen["structuredContent"]["path"],
        done["structuredContent"]["path"]
    );
    for replica in [&first, &second] {
        let health = reqwest::get(format!("http://{}/healthz", replica.addr))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let log = replica.log();
        assert!(
            log.contains("job store store=Redis at 127.0.0.1:") && log.contains("TLS)"),
            "{log}"
        );
        assert!(
            !log.contains(PASSWORD),
            "the log names the password:\n{log}"
        );
    }

    // A wrong password is a mistake to fix, not an outage to wait out: the replica does not
    // start, and says why without saying the password.
    let refused = start_refused(&replica_env(3, redis.url(), Some(WRONG), true), &flags).await;
    assert!(refused.contains("Redis at 127.0.0.1:"), "{refused}");
    assert!(
        refused.contains("Password authentication failed"),
        "{refused}"
    );
    assert!(
        !refused.contains(WRONG) && !refused.contains(PASSWORD),
        "{refused}"
    );

    // So is a Redis whose certificate the replica does not trust (the system's roots only).
    let untrusted =
        start_refused(&replica_env(4, redis.url(), Some(PASSWORD), false), &flags).await;
    assert!(untrusted.contains("Redis at 127.0.0.1:"), "{untrusted}");
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // And a CA file with nothing to trust in it, refused before any connection.
    let not_pem = world.path("not-a-ca.pem");
    std::fs::write(&not_pem, "a password, not a certificate\n").unwrap();
    let mut env = replica_env(5, redis.url(), Some(PASSWORD), false);
    env.insert("REVE_REDIS_CA_FILE".to_owned(), path_string(&not_pem));
    let empty = start_refused(&env, &flags).await;
    assert!(
        empty.contains("not-a-ca.pem (--redis-ca-file, REVE_REDIS_CA_FILE)")
            && empty.contains("holds no PEM certificate"),
        "{empty}"
    );
    assert!(!empty.contains("a password, not"), "{empty}");
    assert_eq!(
        world.fake.generation_attempts(),
        1,
        "only the first edit was sent"
    );
}

/// The standard error of `reve-mcp serve --http` with `env`, which must refuse to start.
async fn start_refused(env: &BTreeMap<String, String>, flags: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        command(env)
            .args([&["serve", "--http", "127.0.0.1:0"], flags].concat())
            .output(),
    )
    .await
    .expect("a replica whose store refuses it exits")
    .unwrap();
    assert!(!output.status.success(), "the replica started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The shared contract suite ([`crate::store_rules`]) against a real Redis: each part of it
/// in a database of its own, with leases of `lease`.
fn redis_stores(
    url: &str,
    lease: Duration,
) -> impl Fn(&'static str) -> std::future::Ready<std::sync::Arc<dyn reve_mcp::JobStore>> {
    const PARTS: [&str; 10] = [
        "reuse", "limit", "models", "usd", "one-unit", "unsaved", "states", "paging", "leases",
        "takeover",
    ];
    let url = url.strip_suffix("/0").unwrap().to_owned();
    move |name| {
        let database = PARTS.iter().position(|known| *known == name).unwrap() + 1;
        let options = reve_mcp::RedisOptions {
            lease,
            ..Default::default()
        };
        let store = reve_mcp::RedisStore::new(&format!("{url}/{database}"), options).unwrap();
        std::future::ready(std::sync::Arc::new(store) as std::sync::Arc<dyn reve_mcp::JobStore>)
    }
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server)"]
async fn the_redis_store_keeps_the_money_rules() {
    let world = World::new().await;
    let redis = Redis::start(&world.path("redis")).await;
    let lease = reve_mcp::DEFAULT_LEASE;
    crate::store_rules::money_rules(redis_stores(&redis.url(), lease)).await;
}

#[tokio::test]
#[ignore = "run by cargo xtask scale-out (it needs Debian's redis-server)"]
async fn the_redis_store_keeps_a_jobs_life() {
    let world = World::new().await;
    let redis = Redis::start(&world.path("redis")).await;
    // A short lease, so that the takeover needs no long wait.
    let lease = Duration::from_secs(2);
    crate::store_rules::lifecycle_rules(redis_stores(&redis.url(), lease), lease).await;
}

//! Edits that outlive the call, through the real binary over stdio: a result collected after
//! the wait ran out, retries that do not pay twice, cancellations before and after sending,
//! restarts after SIGKILL, the spending limit, the `jobs` and `usage` commands, the tasks
//! extension, and over HTTP, replicas that share the store and jobs that belong to a token.

use std::collections::BTreeMap;
use std::time::Duration;

use reve_tests::Scenario;
use reve_tests::fake::{data_uri, sample_png};
use reve_tests::mcp::{McpSession, TestClient, result_text, structured};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, GetTaskParams,
    GetTaskResult, ProtocolVersion, TaskPayload, TaskStatus,
};
use serde_json::{Value, json};

use crate::mcp_http::{HttpServer, PROTOCOL_VERSION, sse_messages};
use crate::support::{World, command, start};

/// The fake's `meta.usage.tokens_used` for each generation.
pub(crate) const TOKENS_PER_EDIT: f64 = 210_000.0;

/// The server's environment: the defaults of the jobs settings, unless `extra` says otherwise.
pub(crate) fn env(world: &World, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env = world.env(&[("RUST_LOG", "info")]);
    env.remove("REVE_REUSE_WINDOW_SECS");
    env.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    env
}

/// A fresh world, the first scenario pushed (if any), and the server over stdio.
pub(crate) async fn serve(extra: &[(&str, &str)], first: Option<Scenario>) -> (World, McpSession) {
    let world = World::new().await;
    world.fake.push(first.unwrap_or(Scenario::Success));
    let session = start(&env(&world, extra), TestClient::default()).await;
    (world, session)
}

pub(crate) fn input() -> String {
    data_uri("image/png", &sample_png(24, 16))
}

pub(crate) fn status(result: &CallToolResult) -> String {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    structured(result)["status"].as_str().unwrap().to_owned()
}

pub(crate) fn job_id(result: &CallToolResult) -> String {
    structured(result)["job_id"].as_str().unwrap().to_owned()
}

/// Calls `get_edit` until the job is no longer running (each call waits up to the server's
/// limit); at most `calls` times.
pub(crate) async fn collect(session: &McpSession, job: &str, calls: usize) -> CallToolResult {
    for _ in 0..calls {
        let result = session.get_edit(job).await.unwrap();
        if result.is_error == Some(true) || structured(&result)["status"] != "running" {
            return result;
        }
    }
    panic!("job {job} still running after {calls} get_edit calls");
}

#[tokio::test]
async fn an_edit_longer_than_the_wait_is_collected_with_get_edit() {
    let (world, session) = serve(
        &[("REVE_MAX_WAIT_SECS", "1")],
        Some(Scenario::Latency(Duration::from_secs(3))),
    )
    .await;

    let first = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&first), "running");
    let job = job_id(&first);
    assert!(result_text(&first).contains(&format!("get_edit with job_id \"{job}\"")));
    assert_eq!(job.len(), 32, "128 random bits: {job}");

    let done = collect(&session, &job, 10).await;
    assert_eq!(status(&done), "succeeded", "{done:?}");
    let output = structured(&done);
    assert_eq!(output["job_id"], json!(job));
    assert_eq!(output["usage"]["tokens_used"], json!(TOKENS_PER_EDIT));
    // What the answer's headers said: the charge in credits and dollars, under the id the
    // provider's logs know it by; and the request carried the job's id for those logs.
    assert_eq!(output["usage"]["credits_used"], json!(TOKENS_PER_EDIT));
    assert_eq!(output["usage"]["usd_spent"], json!(0.105));
    let charges = world.fake.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].client_request_id.as_deref(), Some(job.as_str()));
    assert_eq!(output["inference_id"], json!(charges[0].inference_id));
    let sent = &world.fake.generation_requests()[0];
    assert_eq!(sent.headers.get("x-client-request-id"), Some(&job));
    assert!(result_text(&done).contains("Cost the API reported: $0.105, 210000 credits"));
    assert_eq!(output["reused_from"], Value::Null);
    let saved = output["path"].as_str().unwrap();
    assert!(std::path::Path::new(saved).is_file());
    assert!(
        done.content[0].as_image().is_some(),
        "the picture comes back"
    );
    assert_eq!(world.fake.generation_attempts(), 1);

    // Collected again later, from the store: the same answer, picture included.
    let again = session.get_edit(&job).await.unwrap();
    assert_eq!(again.structured_content, done.structured_content);
    assert_eq!(
        again.content[0].as_image().unwrap().data,
        done.content[0].as_image().unwrap().data
    );
    session.stop().await;
}

#[tokio::test]
async fn a_client_that_times_out_and_calls_again_causes_one_generation() {
    let (world, session) = serve(&[], Some(Scenario::Latency(Duration::from_secs(3)))).await;
    let arguments = json!({ "prompt": "make it blue", "image_url": input() });
    give_up_after(
        Duration::from_secs(1),
        session.edit_image(arguments.clone()),
    )
    .await;
    world.fake.wait_until(|c| c.generation_attempts == 1).await;
    let retry = session.edit_image(arguments.clone()).await.unwrap();
    assert_eq!(status(&retry), "succeeded", "{retry:?}");
    let output = structured(&retry);
    let original = output["reused_from"].as_str().expect("reused").to_owned();
    assert_ne!(original, job_id(&retry));
    assert_eq!(output["usage"], Value::Null, "nothing more was charged");
    assert!(result_text(&retry).contains("nothing more was charged"));
    // The cancelled call's job finished in the background with the same result.
    let first = session.get_edit(&original).await.unwrap();
    assert_eq!(structured(&first)["path"], output["path"]);
    assert_eq!(world.fake.generation_attempts(), 1);
    assert_eq!(world.fake.cancelled_requests(), 0);
    assert_eq!(world.saved_files().len(), 1, "{:?}", world.saved_files());

    // A third identical call, within the window, is reused too; with another prompt it pays.
    let third = session.edit_image(arguments).await.unwrap();
    assert_eq!(structured(&third)["reused_from"], json!(original));
    let other = session
        .edit_image(json!({ "prompt": "make it red", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(structured(&other)["reused_from"], Value::Null);
    assert_eq!(world.fake.generation_attempts(), 2);
    session.stop().await;
}

#[tokio::test]
async fn reuse_can_be_turned_off() {
    let (world, session) = serve(&[("REVE_REUSE_WINDOW_SECS", "0")], None).await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    for _ in 0..2 {
        let result = session.edit_image(arguments.clone()).await.unwrap();
        assert_eq!(structured(&result)["reused_from"], Value::Null);
    }
    assert_eq!(world.fake.generation_attempts(), 2);
    session.stop().await;
}

#[tokio::test]
async fn a_cancellation_before_sending_stops_the_job_and_after_sending_does_not() {
    // One edit at a time: the second call queues, unsent, behind the first.
    let (world, session) = serve(
        &[("REVE_MAX_EDITS_IN_FLIGHT", "1")],
        Some(Scenario::Latency(Duration::from_secs(3))),
    )
    .await;
    let first = session.edit_image(json!({ "prompt": "first", "image_url": input() }));
    let second = session.edit_image(json!({ "prompt": "second", "image_url": input() }));
    give_up_after(Duration::from_millis(1500), async {
        tokio::join!(first, second)
    })
    .await;
    // The first, sent, finishes and is saved; the second was never sent.
    tokio::time::timeout(Duration::from_secs(20), async {
        while world.saved_files().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the sent edit was saved although its call was cancelled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.fake.generation_attempts(), 1);
    assert_eq!(world.fake.cancelled_requests(), 0);
    session.stop().await;

    let listed = jobs_listing(&world).await;
    // Both calls arrive together, so either job may be the newer one in the listing.
    let mut states: Vec<&str> = listed
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["cancelled", "succeeded"], "{listed}");
    assert!(listed.contains("nothing was charged"), "{listed}");
    // The API took the fake's 3 s to answer the one edit sent, and the listing says so.
    let seconds: f64 = listed
        .split("(the API took ")
        .nth(1)
        .and_then(|rest| rest.split(" s)").next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("no time in {listed}"));
    assert!((3.0..10.0).contains(&seconds), "{listed}");
}

#[tokio::test]
async fn cancel_aborts_stops_a_sent_edit_as_before() {
    let (world, session) = serve(
        &[("REVE_CANCEL_ABORTS", "1")],
        Some(Scenario::Latency(Duration::from_secs(60))),
    )
    .await;
    let call = session.edit_image(json!({ "prompt": "p", "image_url": input() }));
    // Given up once the request was sent (on a loaded machine that may take a while).
    let sent = world.fake.wait_until(|c| c.generation_attempts == 1);
    tokio::select! {
        answered = call => panic!("answered before the request was sent: {answered:?}"),
        _ = sent => {}
    }
    tokio::time::timeout(
        Duration::from_secs(20),
        world.fake.wait_until(|c| c.cancelled_requests == 1),
    )
    .await
    .expect("the API request was abandoned");
    // The server keeps serving.
    let next = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&next), "succeeded");
    session.stop().await;
    assert_eq!(world.saved_files().len(), 1);
    let listed = jobs_listing(&world).await;
    assert!(listed.contains("cancelled"), "{listed}");
    assert!(listed.contains("may have charged"), "{listed}");
}

#[tokio::test]
async fn the_spending_limit_refuses_edits_once_the_day_is_spent() {
    let world = World::new().await;
    // Two edits bring the day to 420,000; the third is refused before anything is sent.
    let limit = (TOKENS_PER_EDIT * 1.5).to_string();
    let session = start(
        &env(&world, &[("REVE_MAX_CREDITS_PER_DAY", &limit)]),
        TestClient::default(),
    )
    .await;
    for prompt in ["one", "two"] {
        let result = session
            .edit_image(json!({ "prompt": prompt, "image_url": input() }))
            .await
            .unwrap();
        assert_eq!(status(&result), "succeeded");
    }
    let refused = session
        .edit_image(json!({ "prompt": "three", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let text = result_text(&refused);
    for part in [
        "spending limit",
        "420000",
        "315000",
        "--max-credits-per-day",
        "T00:00:00Z",
        "nothing was sent",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    assert_eq!(world.fake.generation_attempts(), 2);
    session.stop().await;

    // The answers' headers gave each edit's cost in credits and dollars; a refusal cost
    // nothing.
    let usage = run(&world, &["usage"]).await;
    let total = usage
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap();
    assert!(total.starts_with("total"), "{usage}");
    assert!(
        total.contains(" 2 edits")
            && total.contains(" $0.210 ")
            && total.ends_with(" 420000 credits"),
        "{usage}"
    );
    let jobs = run(&world, &["jobs"]).await;
    assert!(jobs.lines().next().unwrap().contains("COST"), "{jobs}");
    assert_eq!(jobs.matches("  $0.105  ").count(), 2, "{jobs}");
    let listed = run(&world, &["jobs", "--json"]).await;
    for line in listed.lines() {
        let job: Value = serde_json::from_str(line).unwrap();
        assert_eq!(job["usd_spent"], json!(0.105), "{line}");
        assert!(job["inference_id"].is_string(), "{line}");
    }
}

#[tokio::test]
async fn a_result_whose_url_was_known_is_saved_after_sigkill_and_restart() {
    let world = World::new().await;
    // The answer comes at once; the download then crawls, and the server is killed in it.
    world.fake.push(Scenario::SlowBody {
        chunk_delay: Duration::from_millis(700),
    });
    let server_env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
    let session = start(&server_env, TestClient::default()).await;
    let first = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    let job = job_id(&first);
    world.fake.wait_until(|c| c.file_downloads >= 1).await;
    kill(session.pid);
    drop(session);
    assert!(world.saved_files().iter().all(|path| is_partial(path)));

    let session = start(&server_env, TestClient::default()).await;
    let done = collect(&session, &job, 20).await;
    assert_eq!(status(&done), "succeeded", "{done:?}");
    let saved = structured(&done)["path"].as_str().unwrap().to_owned();
    assert_eq!(image::image_dimensions(&saved).unwrap(), (24, 16));
    assert_eq!(world.fake.generation_attempts(), 1, "nothing paid twice");
    session.stop().await;
}

#[tokio::test]
async fn a_job_killed_while_the_api_worked_is_interrupted_with_its_cost_named() {
    let world = World::new().await;
    let server_env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
    let job = killed_while_the_api_works(&server_env, &world).await;

    let session = start(&server_env, TestClient::default()).await;
    let result = collect(&session, &job, 5).await;
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let text = result_text(&result);
    assert!(text.contains("may have charged"), "{text}");
    assert!(text.contains(&job), "{text}");

    // The provider went on and charged for it; its usage logs list the request under the
    // job's id, and the restarted server settles the job from them: charged, at their cost.
    let charges = world.fake.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].client_request_id.as_deref(), Some(job.as_str()));
    let text = settled_text(&session, &job).await;
    assert!(
        text.contains(
            "usage logs show this reve/edit-image request was charged $0.105 (210000 credits"
        ),
        "{text}"
    );
    assert!(text.contains(&charges[0].inference_id), "{text}");
    assert!(text.contains("cannot be had from the logs"), "{text}");
    session.stop().await;
    let listed = jobs_listing(&world).await;
    assert!(
        listed.contains("interrupted") && listed.contains("  $0.105  "),
        "{listed}"
    );
    let usage = run(&world, &["usage"]).await;
    let total = usage
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap();
    assert!(
        total.contains(" 1 edits") && total.contains(" $0.105 "),
        "{usage}"
    );
    assert!(!usage.contains("may have been charged"), "settled: {usage}");
}

/// With no server running, `reve-mcp jobs` does once what a server would: the job of a server
/// killed while the API worked is taken over, marked interrupted, and settled from the usage
/// logs as charged, at their cost.
#[tokio::test]
async fn jobs_settles_what_a_killed_server_left_with_no_server_running() {
    let world = World::new().await;
    let job =
        killed_while_the_api_works(&env(&world, &[("REVE_MAX_WAIT_SECS", "1")]), &world).await;

    // The provider charges once it sees the connection go: its row may come a moment later.
    let mut listed = Value::Null;
    for _ in 0..40 {
        let line = run(&world, &["jobs", "--all", "--json", "-n", "1"]).await;
        listed = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        if listed["settled"] == "charged" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(listed["id"], json!(job), "{listed}");
    assert_eq!(listed["state"], "interrupted", "{listed}");
    assert_eq!(listed["settled"], "charged", "{listed}");
    assert_eq!(listed["usd_spent"], json!(0.105), "{listed}");
    assert_eq!(listed["may_be_charged"], json!(false), "{listed}");
    let charges = world.fake.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].client_request_id.as_deref(), Some(job.as_str()));
    assert!(
        listed["error"]
            .as_str()
            .unwrap()
            .contains(&charges[0].inference_id),
        "{listed}"
    );
}

/// The id of an edit whose server, started with `server_env`, was killed with `SIGKILL` while
/// the API worked on it (for 30 s).
async fn killed_while_the_api_works(
    server_env: &BTreeMap<String, String>,
    world: &World,
) -> String {
    world.fake.push(Scenario::Latency(Duration::from_secs(30)));
    let session = start(server_env, TestClient::default()).await;
    let first = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    kill(session.pid);
    job_id(&first)
}

/// A request the API never answered, cut off after it was sent, may have been charged; the
/// usage logs list its one attempt as failed, so it is settled as not charged, and nothing
/// counts against the day.
#[tokio::test]
async fn a_request_the_logs_list_as_failed_is_settled_as_not_charged() {
    let world = World::new().await;
    world.fake.push(Scenario::DropConnection);
    let (session, first, job) = edit_settled_at_once(&world, "0").await;
    assert!(
        result_text(&first).contains(&job),
        "it may have cost something: {first:?}"
    );
    let charges = world.fake.charges();
    assert_eq!((charges.len(), charges[0].succeeded), (1, false));
    let text = settled_text(&session, &job).await;
    assert!(
        text.contains("usage logs show the one attempt of this reve/edit-image request failed: nothing was charged"),
        "{text}"
    );
    session.stop().await;
    let usage = run(&world, &["usage"]).await;
    assert!(!usage.contains("may have been charged"), "{usage}");
}

/// A request retried once, then cut off: two attempts were sent (the retry recorded before it
/// went), so the usage logs settle it only once they list both, failed; the second attempt's
/// row comes seconds after the first's, and until then the job stays "may have been charged".
#[tokio::test]
async fn a_retried_request_is_not_charged_only_once_every_attempt_is_listed() {
    let world = World::new().await;
    world.fake.push(Scenario::ServerError(500));
    world.fake.push(Scenario::DropConnection);
    world.fake.push_log_delay(Duration::ZERO);
    world.fake.push_log_delay(Duration::from_secs(4));
    let (session, _, job) = edit_settled_at_once(&world, "1").await;
    assert_eq!(world.fake.generation_attempts(), 2);
    let text = settled_text(&session, &job).await;
    assert!(
        text.contains("usage logs show all 2 attempts of this reve/edit-image request failed: nothing was charged"),
        "settled before the second attempt was listed: {text}"
    );
    session.stop().await;
}

/// One edit, through a server that retries `retries` times and settles with the usage logs at
/// once, which fails as the fake's scenarios say: the server, the call's result and its job.
async fn edit_settled_at_once(
    world: &World,
    retries: &str,
) -> (McpSession, CallToolResult, String) {
    let server_env = env(
        world,
        &[
            ("REVE_MAX_RETRIES", retries),
            ("REVE_SETTLE_AFTER_SECS", "0"),
        ],
    );
    let session = start(&server_env, TestClient::default()).await;
    let first = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(first.is_error, Some(true), "{first:?}");
    let job = newest_job_id(world).await;
    (session, first, job)
}

/// The text `get_edit` gives for job `job` once the usage logs settled it (within 20 s).
async fn settled_text(session: &McpSession, job: &str) -> String {
    for _ in 0..80 {
        let result = session.get_edit(job).await.unwrap();
        let text = result_text(&result);
        if text.contains("usage logs") {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("job {job} was never settled from the usage logs");
}

#[tokio::test]
async fn an_unknown_job_id_is_a_tool_error_naming_it() {
    let (_world, session) = serve(&[], None).await;
    let result = session.get_edit("0123456789abcdef").await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(result_text(&result).contains("no edit job \"0123456789abcdef\""));
    session.stop().await;
}

/// Drops `calls` unanswered after `patience`, as a client that times out does: rmcp then sends
/// `notifications/cancelled` for each.
async fn give_up_after(patience: Duration, calls: impl Future) {
    assert!(
        tokio::time::timeout(patience, calls).await.is_err(),
        "answered within {patience:?}"
    );
}

fn is_partial(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.ends_with(".partial"))
}

pub(crate) fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `reve-mcp jobs` against the world's store.
pub(crate) async fn jobs_listing(world: &World) -> String {
    run(world, &["jobs"]).await
}

/// The whole id of the newest job, from `reve-mcp jobs --json`.
pub(crate) async fn newest_job_id(world: &World) -> String {
    let listed = run(world, &["jobs", "--all", "--json", "-n", "1"]).await;
    let newest: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    newest["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn run(world: &World, args: &[&str]) -> String {
    let output = command(&world.env(&[])).args(args).output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Polls `tasks/get` until the task is terminal; at most `polls` times, a poll interval apart.
async fn settle(session: &McpSession, task_id: &str, polls: usize) -> GetTaskResult {
    for _ in 0..polls {
        let got = session
            .client
            .peer()
            .get_task(GetTaskParams::new(task_id.to_owned()))
            .await
            .unwrap();
        if got.task.status().is_terminal() {
            return got;
        }
        assert_eq!(got.task.task.poll_interval_ms, Some(1000));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("task {task_id} not finished after {polls} polls");
}

/// `edit_image` called as it is, whatever the answer: a result, or a task for a client that
/// declared the tasks extension.
async fn edit_once(session: &McpSession, prompt: &str) -> CallToolResponse {
    let arguments = json!({ "prompt": prompt, "image_url": input() });
    session
        .client
        .peer()
        .call_tool_once(
            CallToolRequestParams::new("edit_image")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap()
}

/// A client of 2026-07-28, the revision that defines the tasks extension, declaring it.
fn tasks_client() -> TestClient {
    TestClient {
        tasks: true,
        modern: true,
        ..TestClient::default()
    }
}

/// The MCP Inspector CLI (2.12.0) declares the tasks extension on 2025-11-25 too, where it is
/// not defined, and fails when a call answers with a task: there the call returns its result.
#[tokio::test]
async fn a_client_of_an_earlier_revision_gets_the_result_even_when_it_declares_tasks() {
    let world = World::new().await;
    let client = TestClient {
        tasks: true,
        ..TestClient::default()
    };
    let session = start(&env(&world, &[]), client).await;
    let info = session.client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_11_25);
    let response = edit_once(&session, "p").await;
    let CallToolResponse::Complete(result) = response else {
        panic!("expected the result, got {response:?}")
    };
    let output = result.structured_content.expect("structured content");
    assert_eq!(output["status"], "succeeded", "{output}");
    assert!(std::path::Path::new(output["path"].as_str().unwrap()).is_file());
    assert_eq!(world.fake.generation_attempts(), 1);
    session.stop().await;
}

#[tokio::test]
async fn a_client_with_the_tasks_extension_gets_a_task_for_the_same_job() {
    let (world, session) = {
        let world = World::new().await;
        world.fake.push(Scenario::Latency(Duration::from_secs(1)));
        let session = start(&env(&world, &[]), tasks_client()).await;
        (world, session)
    };
    let capabilities = session.client.peer_info().unwrap().capabilities.clone();
    assert!(capabilities.supports_tasks(), "{capabilities:?}");
    assert_eq!(
        session.client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );

    let response = edit_once(&session, "p").await;
    let CallToolResponse::Task(created) = response else {
        panic!("expected a task, got {response:?}")
    };
    let task_id = created.task.task_id.clone();
    assert_eq!(created.task.status, TaskStatus::Working);
    let done = settle(&session, &task_id, 50).await;
    let TaskPayload::Completed { result } = done.task.payload else {
        panic!("expected a completed task, got {done:?}")
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).unwrap();
    assert_eq!(status(&result), "succeeded");
    assert!(result.content[0].as_image().is_some());
    // The task is the job: get_edit knows it by the same id, with the same result.
    let collected = session.get_edit(&task_id).await.unwrap();
    assert_eq!(collected.structured_content, result.structured_content);
    assert_eq!(world.fake.generation_attempts(), 1);

    let unknown = session
        .client
        .peer()
        .get_task(GetTaskParams::new("no-such-task".to_owned()))
        .await
        .unwrap_err();
    assert!(format!("{unknown:?}").contains("-32602"), "{unknown:?}");
    session.stop().await;
}

#[tokio::test]
async fn tasks_cancel_stops_a_queued_edit_but_not_a_sent_one() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(2)));
    let session = start(
        &env(&world, &[("REVE_MAX_EDITS_IN_FLIGHT", "1")]),
        tasks_client(),
    )
    .await;
    let mut tasks = Vec::new();
    for prompt in ["sent", "queued"] {
        let response = edit_once(&session, prompt).await;
        let CallToolResponse::Task(created) = response else {
            panic!("expected a task, got {response:?}")
        };
        tasks.push(created.task.task_id);
    }
    world.fake.wait_until(|c| c.generation_attempts == 1).await;
    for task_id in &tasks {
        session
            .client
            .peer()
            .cancel_task(CancelTaskParams::new(task_id.clone()))
            .await
            .unwrap();
    }
    let sent = settle(&session, &tasks[0], 50).await;
    assert_eq!(sent.task.status(), TaskStatus::Completed, "{sent:?}");
    let queued = settle(&session, &tasks[1], 50).await;
    assert_eq!(queued.task.status(), TaskStatus::Cancelled, "{queued:?}");
    assert_eq!(world.fake.generation_attempts(), 1);
    assert_eq!(world.fake.cancelled_requests(), 0);
    session.stop().await;
}

/// One stateless `tools/call` of `name` at `server`, as `token`'s holder: the call's result.
async fn http_call(server: &HttpServer, token: &str, name: &str, arguments: Value) -> Value {
    let request = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": name, "arguments": arguments }
    });
    let response = server
        .post(&request)
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let messages = sse_messages(&response.text().await.unwrap());
    messages.last().unwrap()["result"].clone()
}

#[tokio::test]
async fn replicas_sharing_the_store_serve_a_job_to_its_own_token_only() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(3)));
    let (alice, bob) = ("tok-alice-7f3e9a1c5b", "tok-bob-2d8c4e6a0f");
    let replica = |token: &str| {
        let mut env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
        env.insert("REVE_HTTP_TOKEN".into(), token.into());
        env
    };
    let first = HttpServer::start(&replica(alice), &["--stateless"]).await;
    let second = HttpServer::start(&replica(alice), &["--stateless"]).await;
    let other = HttpServer::start(&replica(bob), &["--stateless"]).await;

    let started = http_call(
        &first,
        alice,
        "edit_image",
        json!({ "prompt": "p", "image_url": input() }),
    )
    .await;
    assert_eq!(
        started["structuredContent"]["status"], "running",
        "{started}"
    );
    let job = started["structuredContent"]["job_id"].as_str().unwrap();

    // Another token's holder is told the job does not exist, as for an unknown id.
    let refused = http_call(&other, bob, "get_edit", json!({ "job_id": job })).await;
    assert_eq!(refused["isError"], true, "{refused}");
    let unknown = http_call(&other, bob, "get_edit", json!({ "job_id": "f".repeat(32) })).await;
    let text = |result: &Value| {
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .replace(job, "ID")
    };
    assert_eq!(
        text(&refused),
        text(&unknown).replace(&"f".repeat(32), "ID")
    );

    // The other replica, with no session and not running the job, collects it from the store.
    let mut done = Value::Null;
    for _ in 0..10 {
        done = http_call(&second, alice, "get_edit", json!({ "job_id": job })).await;
        if done["structuredContent"]["status"] != "running" {
            break;
        }
    }
    assert_eq!(done["structuredContent"]["status"], "succeeded", "{done}");
    assert_eq!(
        done["content"][0]["type"], "image",
        "the preview comes from the store"
    );
    assert_eq!(world.fake.generation_attempts(), 1);
    for server in [first, second, other] {
        server.stop().await;
    }
}

/// Asserts that an edit was refused before anything was paid for, with `expected` in its
/// message, and that the server goes on serving.
async fn refused_unpaid(world: &World, session: &McpSession, expected: &str) {
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let text = result_text(&result);
    assert!(text.contains(expected), "{expected:?} missing from {text}");
    assert!(
        text.contains("jobs.sqlite3") && text.contains("nothing was sent"),
        "{text}"
    );
    assert_eq!(world.fake.generation_attempts(), 0);
    assert!(session.client.peer().list_all_tools().await.is_ok());
}

#[tokio::test]
async fn a_damaged_store_refuses_edits_unpaid_until_it_is_moved_aside() {
    let world = World::new().await;
    std::fs::create_dir_all(world.state_dir()).unwrap();
    let store = world.state_dir().join("jobs.sqlite3");
    std::fs::write(&store, vec![0x5a; 8192]).unwrap();
    let session = start(&env(&world, &[]), TestClient::default()).await;
    refused_unpaid(&world, &session, "is damaged").await;
    // The next edit opens the store afresh.
    std::fs::rename(&store, store.with_extension("damaged")).unwrap();
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&result), "succeeded");
    session.stop().await;
}

#[tokio::test]
async fn a_store_locked_by_another_process_refuses_edits_unpaid() {
    let world = World::new().await;
    let session = start(&env(&world, &[]), TestClient::default()).await;
    // One edit creates the store; then another process takes its write lock and keeps it.
    let result = session
        .edit_image(json!({ "prompt": "first", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&result), "succeeded");
    let holder = rusqlite::Connection::open(world.state_dir().join("jobs.sqlite3")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let before = world.fake.generation_attempts();
    let refused = session
        .edit_image(json!({ "prompt": "second", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    assert!(
        result_text(&refused).contains("is locked by another process"),
        "{refused:?}"
    );
    assert_eq!(world.fake.generation_attempts(), before);
    holder.execute_batch("ROLLBACK").unwrap();
    session.stop().await;
}

#[tokio::test]
async fn a_result_the_store_cannot_take_is_still_returned_and_kept_for_get_edit() {
    let (world, session) = serve(&[], Some(Scenario::Latency(Duration::from_secs(2)))).await;
    let call = session.edit_image(json!({ "prompt": "p", "image_url": input() }));
    let lock = async {
        // Once the request is out, another process takes the store's write lock, so neither
        // the API's answer nor the job's end can be recorded.
        world.fake.wait_until(|c| c.generation_attempts == 1).await;
        let holder = rusqlite::Connection::open(world.state_dir().join("jobs.sqlite3")).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        holder
    };
    let (result, holder) = tokio::join!(call, lock);
    let result = result.unwrap();
    assert_eq!(status(&result), "succeeded", "{result:?}");
    let saved = structured(&result)["path"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(&saved).is_file());

    // Still locked: get_edit answers from the process's memory, picture included.
    let again = session.get_edit(&job_id(&result)).await.unwrap();
    assert_eq!(again.structured_content, result.structured_content);
    assert_eq!(
        again.content[0].as_image().unwrap().data,
        result.content[0].as_image().unwrap().data
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(world.fake.generation_attempts(), 1);
    let log = session.stop().await;
    assert!(
        log.contains("could not record how the job ended; its result is kept in memory"),
        "{log}"
    );
    // After one whole wait for the lock, the job's next records wait briefly: they do not
    // queue behind one another five seconds each past the tool's wait.
    assert!(
        log.contains("(waited 5s)") && log.contains("(waited 250ms)"),
        "{log}"
    );
}

#[tokio::test]
async fn a_full_disk_for_the_store_refuses_edits_unpaid() {
    let world = World::new().await;
    std::fs::create_dir_all(world.state_dir()).unwrap();
    // The server runs in a mount namespace of its own where the state folder is a 16 KiB
    // tmpfs: too small for the store (`unshare` is util-linux, on every Debian).
    let wrapper = world.write(
        "full-disk-reve-mcp",
        format!(
            "#!/bin/sh\nexec unshare --mount --map-root-user /bin/sh -c \
             'mount -t tmpfs -o size=16k tmpfs \"$REVE_STATE_DIR\" && exec \"$0\"' {}\n",
            crate::support::binary().display()
        )
        .as_bytes(),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let session = McpSession::start(&wrapper, &env(&world, &[]), TestClient::default()).await;
    refused_unpaid(&world, &session, "is full").await;
    session.stop().await;
}

//! Every fault the fake API can produce, end to end through the real
//! `reve-mcp` binary: how many requests reached the API, what the model is
//! told, that nothing (not even a temporary file) is left in the output
//! folder, and that the server goes on serving.
//!
//! The server runs with its default retry policy (two retries, backoff from
//! 500 ms), so the attempt counts below are the ones a user gets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::support::World;
use futures::StreamExt as _;
use reve_tests::fake::{data_uri, sample_png};
use reve_tests::mcp::{TestClient, result_text};
use reve_tests::{FakeApi, RetryAfter, Scenario};
use serde_json::json;

/// One row of the table.
struct Fault {
    name: &'static str,
    scenario: Scenario,
    /// Every attempt meets the fault (it is the fake's default), rather than
    /// only the first one.
    every_attempt: bool,
    /// `REVE_TIMEOUT_SECS`, when the row is about the deadline.
    timeout_secs: Option<u64>,
    /// `POST /v1/images/generations` requests the fake saw.
    attempts: usize,
    /// `GET /files/...` requests the fake saw.
    downloads: usize,
    outcome: Outcome,
}

enum Outcome {
    /// A tool error whose text holds each phrase.
    Fails(&'static [&'static str]),
    /// The retries absorbed the fault: one saved file.
    Recovers,
}

/// Just over the default result cap of 50 MiB.
const OVER_RESULT_CAP: u64 = 50 * 1024 * 1024 + 1;

fn every(
    name: &'static str,
    scenario: Scenario,
    attempts: usize,
    downloads: usize,
    phrases: &'static [&'static str],
) -> Fault {
    Fault {
        name,
        scenario,
        every_attempt: true,
        timeout_secs: None,
        attempts,
        downloads,
        outcome: Outcome::Fails(phrases),
    }
}

fn once(name: &'static str, scenario: Scenario, attempts: usize, downloads: usize) -> Fault {
    Fault {
        name,
        scenario,
        every_attempt: false,
        timeout_secs: None,
        attempts,
        downloads,
        outcome: Outcome::Recovers,
    }
}

fn table() -> Vec<Fault> {
    let in_two_seconds = SystemTime::now() + Duration::from_secs(2);
    vec![
        every(
            "400 documented body",
            Scenario::BadRequest400,
            1,
            0,
            &[
                "the API returned HTTP 400 after 1 attempt(s)",
                "The provider could not process the reference image",
            ],
        ),
        every(
            "400 echoing the Authorization header",
            Scenario::EchoAuthorization,
            1,
            0,
            &[
                "HTTP 400 after 1 attempt(s)",
                "authorization: Bearer [redacted]",
            ],
        ),
        every(
            "401",
            Scenario::Status401,
            1,
            0,
            &["the API key was rejected (HTTP 401)", "AIML_API_KEY"],
        ),
        every(
            "403 out of credits",
            Scenario::OutOfCredits403,
            1,
            0,
            &[
                "(HTTP 403)",
                "run out of credits",
                "InsufficientCreditsError",
            ],
        ),
        every(
            "404",
            Scenario::NotFound404,
            1,
            0,
            &[
                "the API returned HTTP 404 after 1 attempt(s)",
                "Cannot POST /v1/images/generations",
            ],
        ),
        every(
            "422",
            Scenario::Validation422,
            1,
            0,
            &[
                "the API returned HTTP 422 after 1 attempt(s)",
                "image_url must point to an image the provider accepts",
            ],
        ),
        every(
            "429 Retry-After in seconds",
            Scenario::RateLimited {
                retry_after: Some(RetryAfter::Seconds(1)),
            },
            3,
            0,
            &["rate limiting requests (HTTP 429) after 3 attempt(s); it asked to wait 1s"],
        ),
        every(
            "429 Retry-After as an HTTP date",
            Scenario::RateLimited {
                retry_after: Some(RetryAfter::HttpDate(in_two_seconds)),
            },
            3,
            0,
            &["rate limiting requests (HTTP 429) after 3 attempt(s); it asked to wait"],
        ),
        every(
            "429 Retry-After longer than the client waits",
            Scenario::RateLimited {
                retry_after: Some(RetryAfter::Seconds(3600)),
            },
            1,
            0,
            &["(HTTP 429) after 1 attempt(s); it asked to wait 3600s"],
        ),
        every(
            "429 without Retry-After",
            Scenario::RateLimited { retry_after: None },
            3,
            0,
            &["(HTTP 429) after 3 attempt(s); wait a while before trying again"],
        ),
        every(
            "500",
            Scenario::ServerError(500),
            3,
            0,
            &["the API returned HTTP 500 after 3 attempt(s): Internal server error"],
        ),
        every(
            "502",
            Scenario::ServerError(502),
            3,
            0,
            &["the API returned HTTP 502 after 3 attempt(s)"],
        ),
        every(
            "503",
            Scenario::ServerError(503),
            3,
            0,
            &["the API returned HTTP 503 after 3 attempt(s)"],
        ),
        every(
            "504",
            Scenario::GatewayTimeout504,
            3,
            0,
            &["the API returned HTTP 504 after 3 attempt(s): Gateway Timeout"],
        ),
        every(
            "200 carrying an error field",
            Scenario::ErrorField200,
            1,
            0,
            &[
                "the API returned HTTP 200 after 1 attempt(s)",
                "GenerationError: The provider failed to generate the image",
            ],
        ),
        every(
            "content_violation: true",
            Scenario::ContentViolation,
            1,
            0,
            &["content policy", "(request id rsid-"],
        ),
        every(
            "malformed JSON",
            Scenario::MalformedJson,
            1,
            0,
            &["could not decode the API's response: the response is not the expected JSON"],
        ),
        every(
            "HTML error page",
            Scenario::HtmlErrorPage,
            3,
            0,
            &[
                "the API returned HTTP 502 after 3 attempt(s)",
                "502 Bad Gateway",
            ],
        ),
        every(
            "body truncated mid-JSON",
            Scenario::TruncatedBody,
            1,
            0,
            &["network error while waiting for the API's response after 1 attempt(s)"],
        ),
        every(
            "connection dropped before the headers",
            Scenario::DropConnection,
            3,
            0,
            &["network error while waiting for the API's response after 3 attempt(s)"],
        ),
        every(
            "connection dropped after the headers",
            Scenario::DropAfterHeaders,
            1,
            0,
            &["network error while waiting for the API's response after 1 attempt(s)"],
        ),
        every(
            "result URL 404",
            Scenario::ResultUrl404,
            1,
            1,
            &["downloading the result image failed with HTTP 404 after 1 attempt(s)"],
        ),
        every(
            "result download truncated",
            Scenario::TruncatedResult,
            1,
            3,
            &["network error while downloading the result image after 3 attempt(s)"],
        ),
        every(
            "result larger than the cap, length declared",
            Scenario::HugeResult {
                bytes: OVER_RESULT_CAP,
            },
            1,
            1,
            &["the result image is 52428801 bytes, over the limit of 52428800 bytes"],
        ),
        every(
            "result larger than the cap, chunked",
            Scenario::HugeResultChunked {
                bytes: OVER_RESULT_CAP,
            },
            1,
            1,
            &["the result image exceeds the limit of 52428800 bytes"],
        ),
        Fault {
            timeout_secs: Some(1),
            ..every(
                "body trickling past the deadline",
                Scenario::SlowBody {
                    chunk_delay: Duration::from_millis(400),
                },
                1,
                0,
                &["timed out after 1s while waiting for the API's response"],
            )
        },
        Fault {
            timeout_secs: Some(1),
            ..every(
                "no answer before the deadline",
                Scenario::Latency(Duration::from_secs(30)),
                1,
                0,
                &["timed out after 1s while waiting for the API's response"],
            )
        },
        once("one 503, then success", Scenario::ServerError(503), 2, 1),
        once(
            "one 429 with Retry-After: 0, then success",
            Scenario::RateLimited {
                retry_after: Some(RetryAfter::Seconds(0)),
            },
            2,
            1,
        ),
        once(
            "one dropped connection, then success",
            Scenario::DropConnection,
            2,
            1,
        ),
    ]
}

/// The server's environment: the fake, this output folder, the default
/// retry policy spelled out.
/// Retries as by default, and every log line the server writes unasked, to show none holds a
/// secret.
fn server_env(world: &World) -> BTreeMap<String, String> {
    world.env(&[("REVE_MAX_RETRIES", "2"), ("RUST_LOG", "trace")])
}

async fn run(fault: Fault) -> Result<(), String> {
    let name = fault.name;
    let fail = |what: String| Err(format!("{name}: {what}"));
    let fake = if fault.every_attempt {
        FakeApi::builder()
            .default_scenario(fault.scenario.clone())
            .start()
            .await
    } else {
        let fake = FakeApi::start().await;
        fake.push(fault.scenario.clone());
        fake
    };
    let world = World::with_fake(fake);
    let fake = &world.fake;
    let mut env = server_env(&world);
    if let Some(seconds) = fault.timeout_secs {
        env.insert("REVE_TIMEOUT_SECS".to_owned(), seconds.to_string());
    }
    let session = crate::support::start(&env, TestClient::default()).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let arguments = json!({ "prompt": "make it blue", "image_url": input });
    // Any stretch of the input's base64 would show a request body leaking.
    let input_base64 = input.split_once(',').unwrap().1;
    let input_fragment = &input_base64[input_base64.len() / 2..][..32];

    let result = match session.edit_image(arguments.clone()).await {
        Ok(result) => result,
        Err(error) => return fail(format!("no tool result: {error}")),
    };
    let counters = fake.counters();
    if (counters.generation_attempts, counters.file_downloads) != (fault.attempts, fault.downloads)
    {
        return fail(format!(
            "the fake saw {} attempt(s) and {} download(s), expected {} and {}",
            counters.generation_attempts, counters.file_downloads, fault.attempts, fault.downloads
        ));
    }
    let text = result_text(&result);
    let whole = serde_json::to_string(&result).unwrap();
    if whole.contains(fake.api_key()) || whole.contains(input_fragment) {
        return fail(format!(
            "the result holds the key or the input: {whole:.2000}"
        ));
    }
    let left = reve_tests::entries_under(&world.outputs);
    match fault.outcome {
        Outcome::Fails(phrases) => {
            if result.is_error != Some(true) {
                return fail(format!("not a tool error: {result:?}"));
            }
            if let Some(missing) = phrases.iter().find(|phrase| !text.contains(*phrase)) {
                return fail(format!("{text:?} lacks {missing:?}"));
            }
            if !left.is_empty() {
                return fail(format!("left in the output folder: {left:?}"));
            }
        }
        Outcome::Recovers => {
            if result.is_error == Some(true) {
                return fail(format!("did not recover: {text}"));
            }
            let saved = result.structured_content.as_ref().unwrap()["path"]
                .as_str()
                .map(PathBuf::from);
            if left.iter().map(|path| Some(path.clone())).ne([saved]) {
                return fail(format!("expected only the saved file, found {left:?}"));
            }
        }
    }

    // Still serving: the next call, once the fault is gone, succeeds.
    fake.set_default(Scenario::Success);
    let again = session.edit_image(arguments).await;
    let after = fake.generation_attempts();
    let logs = session.stop().await;
    if logs.contains(fake.api_key()) || logs.contains(input_fragment) {
        return fail("the server's log holds the key or the input".to_owned());
    }
    match again {
        Ok(result) if result.is_error != Some(true) && after == fault.attempts + 1 => Ok(()),
        other => fail(format!(
            "the call after the fault ({after} attempts in all) got {other:?}"
        )),
    }
}

#[tokio::test]
async fn every_api_fault_is_reported_retried_as_documented_and_survived() {
    // A few rows at a time: each runs its own fake and server.
    let failures: Vec<String> = futures::stream::iter(table())
        .map(run)
        .buffer_unordered(4)
        .filter_map(|outcome| async move { outcome.err() })
        .collect()
        .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_call_abandoned_at_the_deadline_is_dropped_at_the_api_too() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::Latency(Duration::from_secs(30)))
        .start()
        .await;
    let world = World::with_fake(fake);
    let fake = &world.fake;
    let mut env = server_env(&world);
    env.insert("REVE_TIMEOUT_SECS".to_owned(), "1".to_owned());
    let session = crate::support::start(&env, TestClient::default()).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    // The server closed its connection, so the API sees the request abandoned
    // rather than leaving a generation running for nobody.
    tokio::time::timeout(
        Duration::from_secs(20),
        fake.wait_until(|counters| counters.cancelled_requests == 1),
    )
    .await
    .expect("the fake saw the request abandoned");
    assert_eq!(fake.generation_attempts(), 1);
    session.stop().await;
}

#[tokio::test]
async fn a_killed_servers_temporary_files_are_swept_at_start_up() {
    let world = World::new().await;
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::create_dir(world.path("outputs/album")).unwrap();
    let file = |relative: &str, old: bool| {
        let path = world.write(relative, b"half a picture");
        if old {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(day_ago)
                .unwrap();
        }
        path
    };
    let stale = [
        file("outputs/.reve-Ab12Cd.partial", true),
        file("outputs/album/.reve-Ef34Gh.partial", true),
    ];
    let kept = [
        // Perhaps another server's, still being written.
        file("outputs/.reve-Ij56Kl.partial", false),
        // Not ours.
        file("outputs/.other.partial", true),
        file("outputs/reve-old.png", true),
    ];
    let session = crate::support::start(&world.env(&[]), TestClient::default()).await;
    // The sweep runs beside the start-up; it is done by the time a tool call is answered.
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": data_uri("image/png", &sample_png(8, 8)) }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{}", result_text(&result));
    reve_tests::bounded(async {
        while stale.iter().any(|path| path.exists()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    session.stop().await;
}

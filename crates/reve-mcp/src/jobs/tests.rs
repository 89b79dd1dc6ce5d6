//! The races of the job layer, against the SQLite engine and the fake API, in a fraction of a
//! second each: a live wait and a stored one, a cancellation before and after sending, and a
//! reuse whose caller gives up.

use std::path::Path;
use std::time::Duration;

use reve_tests::fake::LogsScenario;
use reve_tests::fake::{data_uri, sample_png};
use reve_tests::{FakeApi, Scenario};
use tokio_util::sync::CancellationToken;

use super::reconcile::Reconciled;
use super::store::{Settled, SqliteStore};
use super::{JobOptions, JobState, Jobs, LOCAL_PRINCIPAL, Outcome, Waited};
use crate::edit::{Editor, EditorOptions, LocalFiles, ResponseMode};
use crate::mcp::tool::parse_arguments;

/// A short wait, so that a call answers "running" while the fake works.
const SHORT_WAIT: Duration = Duration::from_millis(50);
/// What the fake takes for one edit, on top of the scenario's.
const LATENCY: Duration = Duration::from_millis(300);

/// Jobs in `folder` (its results and its store), against `fake`, waiting up to `max_wait`.
fn jobs(fake: &FakeApi, folder: &Path, max_wait: Duration, in_flight: usize) -> Jobs {
    let config = reve_core::Config::default()
        .with_api_key(fake.api_key())
        .with_base_url(fake.base_url())
        .unwrap();
    let editor = Editor::new(
        reve_core::Client::new(config).unwrap(),
        EditorOptions {
            output_dir: folder.join("results"),
            max_input_bytes: 1024 * 1024,
            response_mode: ResponseMode::Url,
            saves: true,
            preview: Some(crate::preview::PreviewLimits::default()),
            max_edits_in_flight: in_flight,
            max_upload_bytes_in_flight: 64 * 1024 * 1024,
        },
    );
    let options = JobOptions {
        max_wait: Some(max_wait),
        reuse_window: Duration::from_secs(600),
        cancel_aborts: false,
        max_credits_per_day: None,
        max_usd_per_day: None,
        settle_after: Duration::ZERO,
    };
    Jobs::new(
        editor,
        std::sync::Arc::new(SqliteStore::in_folder(&folder.join("state"))),
        options,
    )
}

async fn submit(jobs: &Jobs, prompt: &str) -> String {
    let arguments = serde_json::json!({
        "prompt": prompt,
        "image_url": data_uri("image/png", &sample_png(24, 16)),
    });
    let arguments = parse_arguments("edit_image", arguments.as_object().unwrap().clone())
        .unwrap()
        .unwrap();
    jobs.submit(arguments, LocalFiles::Closed, LOCAL_PRINCIPAL)
        .await
        .unwrap()
}

/// Waits (each wait up to the jobs' limit) until job `id` is no longer running.
async fn settled(jobs: &Jobs, id: &str, cancel: Option<&CancellationToken>) -> Outcome {
    for _ in 0..100 {
        match jobs.wait(id, LOCAL_PRINCIPAL, &(), cancel).await.unwrap() {
            Waited::Finished { outcome, .. } => return outcome,
            Waited::Running { .. } => {}
        }
    }
    panic!("job {id} still running");
}

fn state(outcome: &Outcome) -> JobState {
    match outcome {
        Outcome::Succeeded(_) => JobState::Succeeded,
        Outcome::Ended { ending, .. } => ending.state,
    }
}

fn saved_path(done: &super::Succeeded) -> &str {
    let result = done
        .generation
        .result
        .as_ref()
        .expect("a success has its result");
    result.path.as_deref().expect("the result was saved")
}

async fn fake() -> FakeApi {
    FakeApi::builder().latency(LATENCY).start().await
}

#[tokio::test]
async fn a_live_wait_answers_running_then_the_result() {
    let fake = fake().await;
    let folder = tempfile::tempdir().unwrap();
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 4);
    let id = submit(&jobs, "live").await;
    let first = jobs.wait(&id, LOCAL_PRINCIPAL, &(), None).await.unwrap();
    assert!(matches!(first, Waited::Running { .. }), "{first:?}");
    let Outcome::Succeeded(done) = settled(&jobs, &id, None).await else {
        panic!("the edit failed")
    };
    assert!(Path::new(saved_path(&done)).is_file());
    assert!(done.preview.is_some(), "a result carries its picture");
    assert_eq!(fake.generation_attempts(), 1);
}

#[tokio::test]
async fn a_stored_wait_follows_a_job_another_process_runs() {
    let fake = fake().await;
    let folder = tempfile::tempdir().unwrap();
    let running = jobs(&fake, folder.path(), SHORT_WAIT, 4);
    // Another process on the same store and folder: it knows the job only from the store.
    let watching = jobs(&fake, folder.path(), SHORT_WAIT, 4);
    let id = submit(&running, "stored").await;
    let outcome = settled(&watching, &id, None).await;
    let Outcome::Succeeded(done) = outcome else {
        panic!("the watcher saw {outcome:?}")
    };
    assert!(Path::new(saved_path(&done)).is_file());
    assert!(done.preview.is_some(), "the kept preview is read back");
    assert_eq!(fake.generation_attempts(), 1, "the watcher sent nothing");
}

#[tokio::test]
async fn a_cancel_before_sending_stops_the_job_and_costs_nothing() {
    let fake = fake().await;
    let folder = tempfile::tempdir().unwrap();
    // One edit at a time: the second waits its turn, nothing sent.
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
    let first = submit(&jobs, "first").await;
    let second = submit(&jobs, "second").await;
    fake.wait_until(|counters| counters.generation_attempts == 1)
        .await;
    jobs.cancel(&second, LOCAL_PRINCIPAL).await.unwrap();
    let cancelled = settled(&jobs, &second, None).await;
    assert_eq!(state(&cancelled), JobState::Cancelled);
    let Outcome::Ended { message, .. } = &cancelled else {
        unreachable!()
    };
    assert!(message.contains("nothing was charged"), "{message}");
    assert_eq!(
        state(&settled(&jobs, &first, None).await),
        JobState::Succeeded
    );
    assert_eq!(
        fake.generation_attempts(),
        1,
        "the cancelled edit was never sent"
    );
}

#[tokio::test]
async fn a_cancel_after_sending_lets_the_paid_edit_finish() {
    let fake = fake().await;
    let folder = tempfile::tempdir().unwrap();
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 4);
    let id = submit(&jobs, "sent").await;
    fake.wait_until(|counters| counters.generation_attempts == 1)
        .await;
    jobs.cancel(&id, LOCAL_PRINCIPAL).await.unwrap();
    assert_eq!(state(&settled(&jobs, &id, None).await), JobState::Succeeded);
    assert_eq!(fake.generation_attempts(), 1);
}

#[tokio::test]
async fn a_reuse_whose_caller_gives_up_leaves_the_paid_edit_alone() {
    let fake = fake().await;
    fake.push(Scenario::Latency(Duration::from_millis(200)));
    let folder = tempfile::tempdir().unwrap();
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 4);
    let paid = submit(&jobs, "same").await;
    fake.wait_until(|counters| counters.generation_attempts == 1)
        .await;
    // The identical call attaches to the paid job; its caller gives up while it waits.
    let attached = submit(&jobs, "same").await;
    let mut reusing = None;
    for _ in 0..200 {
        reusing = jobs
            .record(&attached, LOCAL_PRINCIPAL)
            .await
            .unwrap()
            .reused_from;
        if reusing.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        reusing.as_deref(),
        Some(paid.as_str()),
        "attached to the paid job"
    );
    let gave_up = CancellationToken::new();
    gave_up.cancel();
    let answer = jobs
        .wait(&attached, LOCAL_PRINCIPAL, &(), Some(&gave_up))
        .await;
    assert!(
        answer.as_ref().is_err_and(|error| error.is_cancelled()),
        "{answer:?}"
    );
    let Outcome::Succeeded(done) = settled(&jobs, &paid, None).await else {
        panic!("the paid edit did not succeed")
    };
    assert!(Path::new(saved_path(&done)).is_file());
    // The attached job never sent anything: reused, or stopped at no cost.
    let attached_outcome = settled(&jobs, &attached, None).await;
    match attached_outcome {
        Outcome::Succeeded(reused) => {
            assert_eq!(reused.reused_from.as_deref(), Some(paid.as_str()))
        }
        Outcome::Ended { ending, message } => {
            assert_eq!(ending.state, JobState::Cancelled, "{message}");
            assert!(message.contains("nothing was charged"), "{message}");
        }
    }
    assert_eq!(
        fake.generation_attempts(),
        1,
        "one generation for both calls"
    );
}

/// Every job id is a client request id the provider keeps, so that every request can be found
/// in its usage logs (it silently drops any other, and bills the request all the same).
#[test]
fn every_job_id_is_kept_as_a_client_request_id() {
    for _ in 0..1000 {
        let id = super::run::new_job_id();
        let kept = reve_core::ClientRequestId::new(id.clone()).unwrap();
        assert_eq!(kept.as_str(), id);
    }
}

/// A job cut off after its request was sent, by `fake`, in `folder`: it may have been charged.
async fn cut_off(fake: &FakeApi, folder: &Path) -> String {
    fake.push(Scenario::DropAfterHeaders);
    let jobs = jobs(fake, folder, Duration::from_secs(30), 1);
    let id = submit(&jobs, "p").await;
    assert_eq!(state(&settled(&jobs, &id, None).await), JobState::Failed);
    let record = jobs.store().get(id.clone()).await.unwrap().unwrap();
    assert!(record.may_be_charged && record.settled.is_none());
    id
}

/// The usage logs settle a job only from an answer of theirs: a 500, a 429 or garbage leaves
/// it as it was (never "not charged"); then an answer listing its request settles it charged.
#[tokio::test]
async fn the_usage_logs_settle_a_job_only_from_their_answer() {
    let folder = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let id = cut_off(&fake, folder.path()).await;
    for fault in [
        LogsScenario::Status(500),
        LogsScenario::Status(429),
        LogsScenario::Garbage,
    ] {
        fake.push_logs(fault.clone());
        // A fresh process each time: a failure pauses a process's asking.
        let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
        assert_eq!(jobs.reconcile().await, Reconciled::default(), "{fault:?}");
        let record = jobs.store().get(id.clone()).await.unwrap().unwrap();
        assert!(
            record.may_be_charged && record.settled.is_none(),
            "{fault:?}"
        );
    }
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
    let settled = jobs.reconcile().await;
    assert_eq!((settled.charged, settled.pending), (1, 0));
    let record = jobs.store().get(id.clone()).await.unwrap().unwrap();
    assert_eq!(record.settled, Some(Settled::Charged));
    assert_eq!(record.cost().and_then(|cost| cost.usd), Some(0.105));
    assert!(!record.may_be_charged);
    // Settled once: another pass finds nothing to do.
    assert_eq!(jobs.reconcile().await, Reconciled::default());
}

/// A request the logs do not list yet is asked about again later, not at once, and stays "may
/// have been charged" meanwhile.
#[tokio::test]
async fn a_request_not_listed_yet_is_asked_about_again_later() {
    let folder = tempfile::tempdir().unwrap();
    let fake = FakeApi::builder()
        .log_delay(Duration::from_secs(3600))
        .start()
        .await;
    let id = cut_off(&fake, folder.path()).await;
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
    let first = jobs.reconcile().await;
    assert_eq!((first.pending, first.charged, first.not_charged), (1, 0, 0));
    let asked = fake
        .requests()
        .iter()
        .filter(|request| request.path == "/v2/logs")
        .count();
    assert_eq!(asked, 1);
    // Not due again yet: nothing asked.
    assert_eq!(jobs.reconcile().await, Reconciled::default());
    let again = fake
        .requests()
        .iter()
        .filter(|request| request.path == "/v2/logs")
        .count();
    assert_eq!(again, 1);
    let record = jobs.store().get(id).await.unwrap().unwrap();
    assert!(record.may_be_charged && record.settled.is_none());
}

/// The prices are read with the ETag of the last answer: an unchanged price costs a 304 and is
/// kept; a changed one replaces it; one that cannot be read leaves the last one known.
#[tokio::test]
async fn prices_are_read_again_with_their_etag() {
    let folder = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
    assert_eq!(jobs.price_of("reve/edit-image"), None);
    jobs.refresh_prices().await;
    assert_eq!(jobs.price_of("reve/edit-image"), Some(0.105));
    assert_eq!(jobs.price_of("reve/create-image"), Some(0.063));
    let lookups = |fake: &FakeApi| -> Vec<reve_tests::RecordedRequest> {
        fake.requests()
            .into_iter()
            .filter(|request| request.path == "/model/reve/edit-image")
            .collect()
    };
    assert!(!lookups(&fake)[0].headers.contains_key("if-none-match"));

    jobs.refresh_prices().await;
    let second = lookups(&fake);
    assert!(
        second[1].headers.contains_key("if-none-match"),
        "{:?}",
        second[1]
    );
    assert_eq!(jobs.price_of("reve/edit-image"), Some(0.105));

    fake.set_price_factor(2.0);
    jobs.refresh_prices().await;
    assert_eq!(jobs.price_of("reve/edit-image"), Some(0.21));

    fake.set_pricing_available(false);
    jobs.refresh_prices().await;
    assert_eq!(
        jobs.price_of("reve/edit-image"),
        Some(0.21),
        "the last price known"
    );
}

/// A job the API answered was charged, whatever rows the logs list so far: rows that all
/// failed (an earlier attempt's) never settle it as not charged.
#[tokio::test]
async fn a_job_the_api_answered_is_never_settled_as_not_charged() {
    use super::store::{Ending, JobRecord, JobState};
    use crate::generation::{Answer, Destination, Generation};
    let folder = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let jobs = jobs(&fake, folder.path(), SHORT_WAIT, 1);
    let store = jobs.store();
    let id = super::run::new_job_id();
    let generation = Generation::new(
        "reve/edit-image",
        "p",
        Destination {
            folder: folder.path().display().to_string(),
            name: None,
            saves: true,
        },
    );
    store
        .insert(JobRecord::queued(
            id.clone(),
            LOCAL_PRINCIPAL.into(),
            generation,
            "run".into(),
        ))
        .await
        .unwrap();
    let rules = super::store::ClaimRules {
        reuse_window: Duration::ZERO,
        reuse_finished: false,
        may_send: true,
        passed_over: Vec::new(),
        daily_limit: None,
        usd_limit: None,
    };
    store.claim(id.clone(), "fp".into(), rules).await.unwrap();
    let record = store.get(id.clone()).await.unwrap().unwrap();
    let payload = record.payload.next(|generation| {
        generation.answer = Some(Answer {
            url: Some("https://cdn.example/x.png".into()),
            ..Answer::default()
        });
    });
    store.answered(id.clone(), None, payload).await.unwrap();
    store
        .finish(
            id.clone(),
            Ending::plain(JobState::Failed),
            Some("lost".into()),
            None,
        )
        .await
        .unwrap();
    // The logs list one failed attempt under the job's id (a 500), and nothing else yet.
    fake.push(Scenario::ServerError(500));
    let answer = reqwest::Client::new()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .header("x-client-request-id", &id)
        .json(&serde_json::json!({
            "model": "reve/edit-image",
            "prompt": "p",
            "image_url": data_uri("image/png", &sample_png(8, 8)),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let pass = jobs.reconcile().await;
    assert_eq!((pass.not_charged, pass.pending), (0, 1));
    let record = store.get(id).await.unwrap().unwrap();
    assert!(record.may_be_charged && record.settled.is_none());
}

//! Which failures are retried, how many times, how Retry-After is honoured, and how the overall
//! deadline bounds everything. Counts come from the fake, which sees every attempt.

use std::time::{Duration, SystemTime};

use reve_core::{Error, Phase};
use reve_tests::fake::{FakeApi, RetryAfter, Scenario};

use crate::common::{client, config, request};
use reve_tests::bounded;

async fn attempts_until_failure(scenario: Scenario) -> (usize, Error) {
    let fake = FakeApi::builder().default_scenario(scenario).start().await;
    let error = client(config(&fake))
        .edit_image(&request())
        .await
        .unwrap_err();
    (fake.generation_attempts(), error)
}

#[tokio::test]
async fn transient_statuses_are_retried_twice_by_default() {
    for (scenario, status) in [
        (Scenario::ServerError(408), 408),
        (Scenario::RateLimited { retry_after: None }, 429),
        (Scenario::ServerError(500), 500),
        (Scenario::ServerError(502), 502),
        (Scenario::HtmlErrorPage, 502),
        (Scenario::ServerError(503), 503),
        (Scenario::GatewayTimeout504, 504),
    ] {
        let (attempts, error) = attempts_until_failure(scenario.clone()).await;
        assert_eq!(attempts, 3, "{scenario:?}");
        match error {
            Error::RateLimited { attempts: 3, .. } if status == 429 => {}
            Error::Api {
                status: got,
                attempts: 3,
                ..
            } if got == status => {}
            other => panic!("{scenario:?}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for scenario in [
        Scenario::BadRequest400,
        Scenario::Status401,
        Scenario::OutOfCredits403,
        Scenario::ServerError(404),
        Scenario::Validation422,
    ] {
        let (attempts, error) = attempts_until_failure(scenario.clone()).await;
        assert_eq!(attempts, 1, "{scenario:?}: {error:?}");
    }
}

#[tokio::test]
async fn the_retry_count_is_configurable() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::ServerError(503))
        .start()
        .await;
    let error = client(config(&fake).with_max_retries(0))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Api {
                status: 503,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fake.generation_attempts(), 1);
}

#[tokio::test]
async fn a_transient_failure_then_success_returns_the_image() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::ServerError(503));
    fake.push(Scenario::DropConnection);
    let edited = client(config(&fake)).edit_image(&request()).await.unwrap();
    assert_eq!(edited.dimensions().unwrap(), (40, 30));
    assert_eq!(fake.generation_attempts(), 3);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_and_reported_as_a_network_error() {
    let (attempts, error) = attempts_until_failure(Scenario::DropConnection).await;
    assert_eq!(attempts, 3);
    assert!(
        matches!(
            error,
            Error::Transport {
                phase: Phase::Request,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_body_cut_off_after_a_success_status_is_not_retried() {
    // The generation happened; asking again could pay for it twice.
    let (attempts, error) = attempts_until_failure(Scenario::TruncatedBody).await;
    assert_eq!(attempts, 1);
    assert!(
        matches!(
            error,
            Error::Transport {
                phase: Phase::Request,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
}

/// With a backoff of an hour, a retry inside a 30 s deadline can only happen if the server's
/// Retry-After replaced the backoff, so these tests prove it was honoured without timing anything.
fn config_with_hour_long_backoff(fake: &FakeApi) -> reve_core::Config {
    config(fake)
        .with_timeout(Duration::from_secs(30))
        .with_retry_backoff(Duration::from_secs(3600), Duration::from_secs(3600))
}

#[tokio::test]
async fn retry_after_in_seconds_replaces_the_backoff() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::Seconds(0)),
    });
    let edited = client(config_with_hour_long_backoff(&fake))
        .edit_image(&request())
        .await;
    assert!(edited.is_ok(), "{edited:?}");
    assert_eq!(fake.generation_attempts(), 2);
}

#[tokio::test]
async fn retry_after_as_an_http_date_replaces_the_backoff() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::HttpDate(
            SystemTime::now() - Duration::from_secs(5),
        )),
    });
    let edited = client(config_with_hour_long_backoff(&fake))
        .edit_image(&request())
        .await;
    assert!(edited.is_ok(), "{edited:?}");
    assert_eq!(fake.generation_attempts(), 2);
}

#[tokio::test]
async fn an_unparseable_retry_after_falls_back_to_the_backoff() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::Raw("soon".into())),
    });
    client(config(&fake)).edit_image(&request()).await.unwrap();
    assert_eq!(fake.generation_attempts(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_maximum_fails_at_once_saying_how_long() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::RateLimited {
            retry_after: Some(RetryAfter::Seconds(3600)),
        })
        .start()
        .await;
    let error = client(config(&fake))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert_eq!(fake.generation_attempts(), 1);
    assert!(
        matches!(
            error,
            Error::RateLimited {
                attempts: 1,
                retry_after: Some(wait),
                ..
            } if wait == Duration::from_secs(3600)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_wait_that_would_pass_the_deadline_is_not_started() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::RateLimited {
            retry_after: Some(RetryAfter::Seconds(50)),
        })
        .start()
        .await;
    let error = client(config(&fake).with_timeout(Duration::from_secs(20)))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert_eq!(fake.generation_attempts(), 1);
    assert!(
        matches!(error, Error::RateLimited { attempts: 1, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_deadline_bounds_a_slow_generation_and_the_request_is_abandoned() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::Latency(Duration::from_secs(3600)));
    let timeout = Duration::from_millis(300);
    let error = client(config(&fake).with_timeout(timeout))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Timeout { after, phase: Phase::Request } if after == timeout),
        "{error:?}"
    );
    assert_eq!(fake.generation_attempts(), 1);
    bounded(fake.wait_until(|counters| counters.cancelled_requests == 1)).await;
}

#[tokio::test]
async fn a_failed_download_is_retried_without_generating_again() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::TruncatedResult)
        .start()
        .await;
    let error = client(config(&fake))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                phase: Phase::Download,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fake.generation_attempts(), 1);
    assert_eq!(fake.file_downloads(), 3);
}

#[tokio::test]
async fn a_missing_result_is_not_retried() {
    let (attempts, error) = attempts_until_failure(Scenario::ResultUrl404).await;
    assert_eq!(attempts, 1);
    assert!(
        matches!(
            error,
            Error::Download {
                status: 404,
                attempts: 1
            }
        ),
        "{error:?}"
    );
}

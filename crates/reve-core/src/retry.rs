//! When a failed attempt is tried again, and how long to wait first.
//!
//! Retried: HTTP 408, 429, 500, 502, 503 and 504, and connection failures that happen before the
//! response headers arrive (the connection could not be opened, or was dropped while sending).
//! Never retried: any other status (400, 401, 403, 404, 422 mean the request itself is wrong and
//! will fail the same way), a response whose body broke off, and a timeout.
//!
//! Why this should not bill twice: none of these failures delivered an image. A 429 or 503
//! refuses admission before a generation starts, a 500 or 408 reports that the request failed,
//! and a connection failure before the response headers means no response was produced for us.
//! The honest caveat is 502 and 504 (and a connection dropped after the request went out): they
//! come from a gateway in front of the model, which can give up while the model still finishes a
//! generation that is then billed. That is rare, and it is why retries are few (two by default)
//! and can be turned off with [`crate::Config::with_max_retries`]`(0)`.
//!
//! The loop is deliberately a plain `loop` in `run`: every attempt rebuilds its request, each
//! wait is either the server's `Retry-After` or a capped exponential backoff with jitter, and the
//! call's overall deadline bounds everything, so a wait that would end past it is not started.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::error::Error;

/// How failures are retried; set through [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
    pub(crate) max_retry_after: Duration,
}

/// A failed attempt, and whether another may follow.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) retry: Retry,
}

/// Whether a failure is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Trying again cannot help, or could do harm.
    Never,
    /// Try again, after the server's `Retry-After` when it sent one.
    After(Option<Duration>),
}

impl Failure {
    pub(crate) fn fatal(error: Error) -> Failure {
        Failure {
            error,
            retry: Retry::Never,
        }
    }
}

/// The statuses worth another attempt: a timeout or overload on the server's side.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), or `None` when the server
    /// asked for a longer wait than we are willing to make.
    ///
    /// `jitter` in `[0, 1]` picks the point in the upper half of the backoff window: spreading
    /// clients out avoids them all returning at once, and never waiting less than half keeps
    /// the backoff meaningful. It is a parameter so the computation is testable.
    pub(crate) fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if let Some(requested) = retry_after {
            return (requested <= self.max_retry_after).then_some(requested);
        }
        let window = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.backoff_cap);
        Some(window / 2 + window.mul_f64(jitter.clamp(0.0, 1.0) / 2.0))
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in the past means now).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Runs `attempt` (called with 1, 2, ...) until it succeeds, fails for good, runs out of
/// retries, or the next wait would end past `deadline`; the last failure's error is returned.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    attempt: F,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    run_announcing(policy, deadline, attempt, |_| std::future::ready(true)).await
}

/// [`run`], awaiting `announce` with each retry's number (2, 3, ...) before it is made: when
/// it answers `false`, the retry is not made and the last failure's error is returned.
pub(crate) async fn run_announcing<T, F, Fut, A, Announced>(
    policy: &RetryPolicy,
    deadline: Instant,
    mut attempt: F,
    mut announce: A,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
    A: FnMut(u32) -> Announced,
    Announced: Future<Output = bool>,
{
    let mut number = 1;
    loop {
        let failure = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let Retry::After(retry_after) = failure.retry else {
            return Err(failure.error);
        };
        if number > policy.max_retries {
            tracing::debug!(attempts = number, "no retries left");
            return Err(failure.error);
        }
        let Some(wait) = policy.delay(number, retry_after, fastrand::f64()) else {
            tracing::info!(
                retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                "server asked to wait longer than the configured maximum; not retrying"
            );
            return Err(failure.error);
        };
        if Instant::now() + wait >= deadline {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "the next retry would end past the deadline; not retrying"
            );
            return Err(failure.error);
        }
        tracing::info!(
            attempt = number,
            wait_ms = wait.as_millis() as u64,
            error = %failure.error,
            "attempt failed; retrying"
        );
        tokio::time::sleep(wait).await;
        if !announce(number + 1).await {
            tracing::info!(
                attempt = number + 1,
                "the retry could not be recorded; not retrying"
            );
            return Err(failure.error);
        }
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// Backoff in milliseconds, so the loop's real sleeps keep the tests quick.
    fn quick_policy() -> RetryPolicy {
        RetryPolicy {
            backoff_base: Duration::from_millis(2),
            backoff_cap: Duration::from_millis(8),
            ..policy()
        }
    }

    fn api_error(status: u16) -> Error {
        Error::Api {
            status,
            message: "boom".into(),
            request_id: None,
            attempts: 1,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half_and_is_capped() {
        let p = policy();
        assert_eq!(p.delay(1, None, 0.0), Some(Duration::from_millis(250)));
        assert_eq!(p.delay(1, None, 1.0), Some(Duration::from_millis(500)));
        assert_eq!(p.delay(2, None, 1.0), Some(Duration::from_millis(1000)));
        assert_eq!(p.delay(3, None, 0.5), Some(Duration::from_millis(1500)));
        assert_eq!(p.delay(10, None, 1.0), Some(Duration::from_secs(8)));
        assert_eq!(p.delay(u32::MAX, None, 0.0), Some(Duration::from_secs(4)));
    }

    #[test]
    fn retry_after_replaces_the_backoff_up_to_the_maximum() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30)), 0.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p.delay(1, Some(Duration::ZERO), 1.0), Some(Duration::ZERO));
        assert_eq!(p.delay(1, Some(Duration::from_secs(61)), 0.0), None);
    }

    #[test]
    fn parses_retry_after_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_transient_statuses_are_retryable() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 422, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[tokio::test]
    async fn retries_up_to_the_limit_then_returns_the_last_error() {
        let calls = Cell::new(0);
        let deadline = Instant::now() + Duration::from_secs(300);
        let result: Result<(), Error> = run(&quick_policy(), deadline, |number| {
            calls.set(number);
            async move {
                Err(Failure {
                    error: api_error(500 + number as u16),
                    retry: Retry::After(None),
                })
            }
        })
        .await;
        assert_eq!(calls.get(), 3);
        assert!(matches!(result, Err(Error::Api { status: 503, .. })));
    }

    /// Each retry is announced, with its number, before it is made; one that cannot be
    /// recorded is not made, and the attempt before it gives the error.
    #[tokio::test]
    async fn a_retry_is_announced_first_and_not_made_when_refused() {
        let (calls, announced) = (Cell::new(0), std::cell::RefCell::new(Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(300);
        let result: Result<(), Error> = run_announcing(
            &quick_policy(),
            deadline,
            |number| {
                calls.set(number);
                async move {
                    Err(Failure {
                        error: api_error(500 + number as u16),
                        retry: Retry::After(None),
                    })
                }
            },
            |number| {
                announced.borrow_mut().push(number);
                std::future::ready(number < 3)
            },
        )
        .await;
        assert_eq!(calls.get(), 2);
        assert_eq!(*announced.borrow(), [2, 3]);
        assert!(matches!(result, Err(Error::Api { status: 502, .. })));
    }

    #[tokio::test]
    async fn a_fatal_failure_is_not_retried() {
        let calls = Cell::new(0);
        let deadline = Instant::now() + Duration::from_secs(300);
        let result: Result<(), Error> = run(&policy(), deadline, |number| {
            calls.set(number);
            async { Err(Failure::fatal(api_error(400))) }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert!(matches!(result, Err(Error::Api { status: 400, .. })));
    }

    #[tokio::test]
    async fn honours_retry_after_and_succeeds() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        let result = run(&quick_policy(), deadline, |number| async move {
            if number == 1 {
                Err(Failure {
                    error: api_error(429),
                    retry: Retry::After(Some(Duration::from_millis(50))),
                })
            } else {
                Ok(number)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        // The backoff alone would have waited at most 2 ms.
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_wait_that_would_cross_the_deadline_is_not_started() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let calls = Cell::new(0);
        let result: Result<(), Error> = run(&policy(), deadline, |number| {
            calls.set(number);
            async {
                Err(Failure {
                    error: api_error(503),
                    retry: Retry::After(Some(Duration::from_secs(30))),
                })
            }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert!(matches!(result, Err(Error::Api { status: 503, .. })));
        // Had the wait started, the call would have taken 30 s.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

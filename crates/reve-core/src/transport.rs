//! The wire: one POST of a prepared body, one GET of a result URL, each read within the call's
//! deadline and size limits and classified for the retry loop. What a status and body mean is
//! [`crate::response`]'s job.

use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use tokio::time::{Instant, timeout_at};

use crate::billing::{CLIENT_REQUEST_ID_HEADER, Charge, ClientRequestId};
use crate::config::Config;
use crate::error::{Error, Phase};
use crate::generated::EditImageResponse;
use crate::response;
use crate::retry::{Failure, Retry, is_retryable_status, parse_retry_after};
use crate::sink::Sink;
use crate::text::error_chain;

/// Sent with every request, so the API's operators can tell this client's traffic apart.
pub(crate) const USER_AGENT_VALUE: &str = concat!("reve-core/", env!("CARGO_PKG_VERSION"));

/// How much of an error response is read: enough for any JSON error, little enough that a
/// misbehaving proxy cannot make us buffer a large page.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Room for the JSON around a base64 image in a response body.
const JSON_ENVELOPE_BYTES: u64 = 64 * 1024;

/// What one call needs at every step.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) key: &'a str,
    pub(crate) deadline: Instant,
    pub(crate) config: &'a Config,
}

impl Call<'_> {
    pub(crate) fn timed_out(&self, phase: Phase) -> Error {
        Error::Timeout {
            after: self.config.timeout(),
            phase,
        }
    }
}

/// One attempt at the API call, classified for the retry loop: the answer, and what its
/// headers say of the charge.
pub(crate) async fn post(
    call: &Call<'_>,
    endpoint: &str,
    body: Bytes,
    client_request_id: Option<&ClientRequestId>,
    attempt: u32,
) -> Result<(EditImageResponse, Charge), Failure> {
    tracing::debug!(attempt, "sending the edit request");
    let mut request = call
        .http
        .post(endpoint)
        .bearer_auth(call.key)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONTENT_TYPE, "application/json");
    if let Some(id) = client_request_id {
        request = request.header(CLIENT_REQUEST_ID_HEADER, id.as_str());
    }
    let send = request.body(body).send();
    let mut response = match timeout_at(call.deadline, send).await {
        Err(_) => return Err(Failure::fatal(call.timed_out(Phase::Request))),
        Ok(Err(error)) => return Err(send_failure(&error, Phase::Request, attempt)),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    tracing::info!(attempt, status, "the API responded");
    if response.status().is_success() {
        let charge = Charge::from_headers(response.headers());
        let body = read_success_body(call, &mut response, attempt).await?;
        tracing::debug!(bytes = body.len(), "read the API's response");
        return response::success(status, &body, call.key, attempt).map(|parsed| (parsed, charge));
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    let body = match timeout_at(call.deadline, read_limited(&mut response, ERROR_BODY_LIMIT)).await
    {
        Err(_) => return Err(Failure::fatal(call.timed_out(Phase::Request))),
        Ok(Err(error)) => format!(
            "(the error body could not be read: {})",
            error_chain(&error)
        )
        .into_bytes(),
        Ok(Ok(limited)) => limited.bytes,
    };
    Err(response::failure(
        status,
        retry_after,
        &body,
        call.key,
        attempt,
    ))
}

/// Reads a 200's body, which may hold the image as base64: up to the result limit once encoded.
async fn read_success_body(
    call: &Call<'_>,
    response: &mut reqwest::Response,
    attempt: u32,
) -> Result<Vec<u8>, Failure> {
    let max_result = call.config.max_result_bytes();
    let limit = max_result
        .saturating_mul(4)
        .div_ceil(3)
        .saturating_add(JSON_ENVELOPE_BYTES);
    match timeout_at(call.deadline, read_limited(response, limit)).await {
        Err(_) => Err(Failure::fatal(call.timed_out(Phase::Request))),
        // The generation has happened by now; asking again could pay for it twice.
        Ok(Err(error)) => Err(Failure::fatal(Error::Transport {
            phase: Phase::Request,
            attempts: attempt,
            message: error_chain(&error),
        })),
        Ok(Ok(limited)) if limited.truncated => Err(Failure::fatal(Error::ResultTooLarge {
            size: None,
            limit: max_result,
        })),
        Ok(Ok(limited)) => Ok(limited.bytes),
    }
}

/// One attempt at fetching a result URL into `sink` through the shared client, without the API
/// key (the URL points at a CDN, which must not see it). A GET can always be repeated, so the
/// caller retries it like the API call, and each attempt starts the sink afresh.
pub(crate) async fn download(
    call: &Call<'_>,
    url: &str,
    sink: &tokio::sync::Mutex<&mut Sink>,
    attempt: u32,
) -> Result<(), Failure> {
    tracing::debug!(attempt, "downloading the result image");
    let send = call
        .http
        .get(url)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .send();
    let mut response = match timeout_at(call.deadline, send).await {
        Err(_) => return Err(Failure::fatal(call.timed_out(Phase::Download))),
        Ok(Err(error)) => return Err(send_failure(&error, Phase::Download, attempt)),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    tracing::debug!(
        attempt,
        status,
        size = response.content_length(),
        "download responded"
    );
    if !response.status().is_success() {
        let retry = if is_retryable_status(status) {
            Retry::After(None)
        } else {
            Retry::Never
        };
        let error = Error::Download {
            status,
            attempts: attempt,
        };
        return Err(Failure { error, retry });
    }
    let limit = call.config.max_result_bytes();
    if let Some(size) = response.content_length()
        && size > limit
    {
        return Err(Failure::fatal(Error::ResultTooLarge {
            size: Some(size),
            limit,
        }));
    }
    let mut sink = sink.lock().await;
    let streamed = stream_limited(&mut response, limit, &mut sink);
    match timeout_at(call.deadline, streamed).await {
        Err(_) => Err(Failure::fatal(call.timed_out(Phase::Download))),
        Ok(Err(StreamError::Network(error))) => Err(Failure {
            error: Error::Transport {
                phase: Phase::Download,
                attempts: attempt,
                message: error_chain(&error),
            },
            retry: Retry::After(None),
        }),
        Ok(Err(StreamError::Disk(error))) => Err(Failure::fatal(sink.error(error))),
        Ok(Err(StreamError::TooLarge)) => {
            Err(Failure::fatal(Error::ResultTooLarge { size: None, limit }))
        }
        Ok(Ok(())) => Ok(()),
    }
}

/// Why a download stopped short.
enum StreamError {
    Network(reqwest::Error),
    Disk(std::io::Error),
    TooLarge,
}

/// Streams a body of at most `limit` bytes into a fresh `sink`, counting as it goes, since
/// `Content-Length` may be missing or wrong.
async fn stream_limited(
    response: &mut reqwest::Response,
    limit: u64,
    sink: &mut Sink,
) -> Result<(), StreamError> {
    sink.restart().await.map_err(StreamError::Disk)?;
    sink.expect(response.content_length(), limit);
    while let Some(chunk) = response.chunk().await.map_err(StreamError::Network)? {
        if sink.size() + chunk.len() as u64 > limit {
            return Err(StreamError::TooLarge);
        }
        sink.append(&chunk).await.map_err(StreamError::Disk)?;
    }
    Ok(())
}

/// Classifies a failure to get response headers: a connection that could not be opened or broke
/// before the response started is retryable; a timeout imposed by a caller-supplied client is
/// not, since the server may be busy generating.
fn send_failure(error: &reqwest::Error, phase: Phase, attempt: u32) -> Failure {
    let retryable = !error.is_timeout() && (error.is_connect() || error.is_request());
    tracing::debug!(
        attempt,
        retryable,
        connect = error.is_connect(),
        "request failed before a response"
    );
    let mut message = error_chain(error);
    // Nothing listening where the request went is most often a base URL set wrong (a fake API
    // that is not running, a proxy's address): say which setting decides it.
    if error.is_connect() && phase == Phase::Request {
        // Scheme, host and port only: never a user name or password.
        let address = error
            .url()
            .and_then(|url| {
                let port = url
                    .port()
                    .map(|port| format!(":{port}"))
                    .unwrap_or_default();
                Some(format!("{}://{}{port}", url.scheme(), url.host_str()?))
            })
            .unwrap_or_else(|| "the API's address".to_owned());
        message.push_str(&format!(
            " (nothing answered at {address}; {} sets where requests go)",
            crate::config::BASE_URL_VAR
        ));
    }
    Failure {
        error: Error::Transport {
            phase,
            attempts: attempt,
            message,
        },
        retry: if retryable {
            Retry::After(None)
        } else {
            Retry::Never
        },
    }
}

/// A body read up to a limit.
struct Limited {
    bytes: Vec<u8>,
    /// The body went on past the limit; `bytes` holds only its start.
    truncated: bool,
}

/// Reads at most `limit` bytes of a body, counting as it goes, since `Content-Length` may be
/// missing or wrong.
async fn read_limited(response: &mut reqwest::Response, limit: u64) -> reqwest::Result<Limited> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let expected = response.content_length().unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Limited {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Limited {
        bytes,
        truncated: false,
    })
}

//! The client: validates a request, posts it with retries, and fetches the result image.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use tokio::time::{Instant, timeout_at};

use crate::config::Config;
use crate::error::{Error, Phase, Result, error_chain, parse_api_error, scrub};
use crate::format::{ImageFormat, describe_non_image};
use crate::generated::{EditImageRequest, EditImageResponse, PROMPT_MAX_LENGTH};
use crate::image::{ImageSource, check_data_uri, check_data_uri_size, classify};
use crate::output::{EditedImage, Usage};
use crate::retry::{self, Failure, Retry, is_retryable_status, parse_retry_after};

/// Sent with every request, so the API's operators can tell this client's traffic apart.
const USER_AGENT_VALUE: &str = concat!("reve-core/", env!("CARGO_PKG_VERSION"));

/// How long opening a connection may take before it counts as a (retryable) connection failure,
/// so that one unreachable address does not use up the whole deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of an error response is read: enough for any JSON error, little enough that a
/// misbehaving proxy cannot make us buffer a large page.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Room for the JSON around a base64 image in a response body.
const JSON_ENVELOPE_BYTES: u64 = 64 * 1024;

/// A client for the `reve/edit-image` model.
///
/// Cheap to construct (the HTTP client and its TLS setup are built on first use, which keeps a
/// server's cold start fast) and cheap to clone (clones share one connection pool). The same HTTP
/// client posts requests and downloads result images.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: OnceLock<reqwest::Client>,
}

impl Client {
    /// Creates a client; fails only if the config is unusable (a zero timeout or size limit).
    pub fn new(config: Config) -> Result<Client> {
        Client::build(config, OnceLock::new())
    }

    /// Creates a client that sends through `http`, for callers that need their own proxy, TLS
    /// roots or connection pool. Its own timeouts, if any, apply on top of the config's deadline.
    pub fn with_http_client(config: Config, http: reqwest::Client) -> Result<Client> {
        Client::build(config, OnceLock::from(http))
    }

    fn build(config: Config, http: OnceLock<reqwest::Client>) -> Result<Client> {
        config.validate()?;
        Ok(Client {
            inner: Arc::new(Inner { config, http }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Edits an image as `request.prompt` describes and returns the result.
    ///
    /// Checks the request first (prompt neither blank nor over [`PROMPT_MAX_LENGTH`] characters;
    /// `image_url` an http(s) URL or a valid `data:` image URI within the input size limit) and
    /// sends nothing if it fails. Then posts it, retrying transient failures (HTTP 408, 429,
    /// 500, 502, 503, 504 and connection failures, honouring `Retry-After`; never 400, 401, 403,
    /// 404 or 422), and fetches the image: downloaded through this client when the API returns a
    /// URL, decoded when it returns base64. Everything happens within the configured timeout.
    ///
    /// None of the retried failures delivered an image, but a 502 or 504 comes from a gateway
    /// that may have given up on a generation the model still finished and billed; that rare
    /// case is why retries are few by default and can be disabled with
    /// [`Config::with_max_retries`]`(0)`.
    pub async fn edit_image(&self, request: &EditImageRequest) -> Result<EditedImage> {
        let config = &self.inner.config;
        validate_request(request, config.max_input_bytes())?;
        let key = config.api_key().ok_or(Error::MissingApiKey)?;
        let http = self.http()?;
        let deadline = Instant::now() + config.timeout();
        let endpoint = config.endpoint_url();
        // Sized up front: a local file's data URI makes this tens of megabytes, and growing it
        // by doubling would copy it several times and leave the old buffers resident.
        let mut body = Vec::with_capacity(request.image_url.len() + 2 * request.prompt.len() + 256);
        serde_json::to_writer(&mut body, request).map_err(|error| Error::InvalidInput {
            field: "request",
            reason: format!("the request could not be serialised: {error}"),
        })?;
        let body = Bytes::from(body);
        tracing::info!(
            %endpoint,
            prompt_chars = request.prompt.chars().count(),
            body_bytes = body.len(),
            "requesting an image edit"
        );
        let response = retry::run(config.retry_policy(), deadline, |attempt| {
            self.post(http, &endpoint, key, body.clone(), attempt, deadline)
        })
        .await?;
        self.fetch_result(http, response, key, deadline).await
    }

    fn http(&self) -> Result<&reqwest::Client> {
        if let Some(http) = self.inner.http.get() {
            return Ok(http);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| Error::InvalidConfig {
                reason: format!("could not set up the HTTP client: {}", error_chain(&error)),
            })?;
        // Two first calls racing both build one; the loser's is dropped, which is harmless.
        Ok(self.inner.http.get_or_init(|| built))
    }

    /// One attempt at the API call, classified for the retry loop.
    async fn post(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        key: &str,
        body: Bytes,
        attempt: u32,
        deadline: Instant,
    ) -> Result<EditImageResponse, Failure> {
        tracing::debug!(attempt, "sending the edit request");
        let send = http
            .post(endpoint)
            .bearer_auth(key)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let mut response = match timeout_at(deadline, send).await {
            Err(_) => return Err(Failure::fatal(self.timed_out(Phase::Request))),
            Ok(Err(error)) => return Err(send_failure(&error, Phase::Request, attempt)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        tracing::info!(attempt, status, "the API responded");

        if response.status().is_success() {
            let limit = self
                .inner
                .config
                .max_result_bytes()
                .saturating_mul(4)
                .div_ceil(3)
                .saturating_add(JSON_ENVELOPE_BYTES);
            let body = match timeout_at(deadline, read_limited(&mut response, limit)).await {
                Err(_) => return Err(Failure::fatal(self.timed_out(Phase::Request))),
                // The generation has happened by now; asking again could pay for it twice.
                Ok(Err(error)) => {
                    return Err(Failure::fatal(Error::Transport {
                        phase: Phase::Request,
                        attempts: attempt,
                        message: error_chain(&error),
                    }));
                }
                Ok(Ok(limited)) if limited.truncated => {
                    return Err(Failure::fatal(Error::ResultTooLarge {
                        size: None,
                        limit: self.inner.config.max_result_bytes(),
                    }));
                }
                Ok(Ok(limited)) => limited.bytes,
            };
            tracing::debug!(bytes = body.len(), "read the API's response");
            let parsed: EditImageResponse = serde_json::from_slice(&body).map_err(|error| {
                Failure::fatal(Error::Decode {
                    reason: format!("the response is not the expected JSON: {error}"),
                    body: text_excerpt(&body, key),
                })
            })?;
            // A success status whose body is an error instead of data: a failed generation.
            if parsed.data.is_none() && parsed.extra.contains_key("error") {
                let details = parse_api_error(&body, Some(key));
                return Err(Failure::fatal(Error::Api {
                    status,
                    message: details.message,
                    request_id: details.request_id,
                    attempts: attempt,
                }));
            }
            return Ok(parsed);
        }

        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let body = match timeout_at(
            deadline,
            read_limited(&mut response, ERROR_BODY_LIMIT as u64),
        )
        .await
        {
            Err(_) => return Err(Failure::fatal(self.timed_out(Phase::Request))),
            Ok(Err(error)) => format!(
                "(the error body could not be read: {})",
                error_chain(&error)
            )
            .into_bytes(),
            Ok(Ok(limited)) => limited.bytes,
        };
        let details = parse_api_error(&body, Some(key));
        let message = details.message;
        let error = match status {
            401 => Error::Authentication { message },
            403 => Error::InsufficientCredits { message },
            429 => Error::RateLimited {
                attempts: attempt,
                retry_after,
                message,
            },
            _ => Error::Api {
                status,
                message,
                request_id: details.request_id,
                attempts: attempt,
            },
        };
        let retry = if is_retryable_status(status) {
            Retry::After(retry_after)
        } else {
            Retry::Never
        };
        Err(Failure { error, retry })
    }

    /// Turns a successful response into the image it describes.
    async fn fetch_result(
        &self,
        http: &reqwest::Client,
        response: EditImageResponse,
        key: &str,
        deadline: Instant,
    ) -> Result<EditedImage> {
        let items = response.data.unwrap_or_default();
        if items.len() > 1 {
            tracing::debug!(
                count = items.len(),
                "the response holds several images; using the first"
            );
        }
        let Some(item) = items.into_iter().next() else {
            return Err(Error::Decode {
                reason: "the response holds no image (its data list is missing or empty)".into(),
                body: None,
            });
        };
        if item.content_violation == Some(true) {
            tracing::info!(
                request_id = item.request_id.as_deref(),
                "content violation reported"
            );
            return Err(Error::ContentViolation {
                request_id: item.request_id,
            });
        }
        let usage = response
            .meta
            .and_then(|meta| meta.usage)
            .map(|usage| Usage {
                credits_used: usage.credits_used,
                tokens_used: usage.tokens_used,
            })
            .filter(|usage| usage.credits_used.is_some() || usage.tokens_used.is_some());

        let limit = self.inner.config.max_result_bytes();
        let bytes = match (item.b64_json.as_deref(), item.url.as_deref()) {
            (Some(b64), _) if !b64.is_empty() => decode_base64_image(b64, limit)?,
            (_, Some(url)) if !url.is_empty() => self.download(http, url, deadline).await?,
            _ => {
                return Err(Error::Decode {
                    reason: "the response's image has neither a url nor b64_json".into(),
                    body: None,
                });
            }
        };
        let Some(format) = ImageFormat::detect(&bytes) else {
            return Err(Error::Decode {
                reason: format!(
                    "the result is not a PNG, JPEG, WebP or GIF image; it is {}",
                    describe_non_image(&bytes)
                ),
                body: text_excerpt(&bytes, key),
            });
        };
        tracing::info!(
            bytes = bytes.len(),
            %format,
            request_id = item.request_id.as_deref(),
            "result image ready"
        );
        Ok(EditedImage {
            bytes,
            format,
            url: item.url,
            request_id: item.request_id,
            content_violation: item.content_violation,
            usage,
        })
    }

    /// Fetches a result URL through the shared client, without the API key (the URL points at a
    /// CDN, which must not see it), retrying like the API call: a GET can always be repeated.
    async fn download(
        &self,
        http: &reqwest::Client,
        url: &str,
        deadline: Instant,
    ) -> Result<Bytes> {
        if !matches!(classify(url), Ok(ImageSource::Url(_))) {
            return Err(Error::Decode {
                reason: "the result url is not an http(s) URL".into(),
                body: None,
            });
        }
        let limit = self.inner.config.max_result_bytes();
        retry::run(
            self.inner.config.retry_policy(),
            deadline,
            |attempt| async move {
                tracing::debug!(attempt, "downloading the result image");
                let send = http.get(url).header(USER_AGENT, USER_AGENT_VALUE).send();
                let mut response = match timeout_at(deadline, send).await {
                    Err(_) => return Err(Failure::fatal(self.timed_out(Phase::Download))),
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
                if let Some(size) = response.content_length()
                    && size > limit
                {
                    return Err(Failure::fatal(Error::ResultTooLarge {
                        size: Some(size),
                        limit,
                    }));
                }
                match timeout_at(deadline, read_limited(&mut response, limit)).await {
                    Err(_) => Err(Failure::fatal(self.timed_out(Phase::Download))),
                    Ok(Err(error)) => Err(Failure {
                        error: Error::Transport {
                            phase: Phase::Download,
                            attempts: attempt,
                            message: error_chain(&error),
                        },
                        retry: Retry::After(None),
                    }),
                    Ok(Ok(limited)) if limited.truncated => {
                        Err(Failure::fatal(Error::ResultTooLarge { size: None, limit }))
                    }
                    Ok(Ok(limited)) => Ok(Bytes::from(limited.bytes)),
                }
            },
        )
        .await
    }

    fn timed_out(&self, phase: Phase) -> Error {
        Error::Timeout {
            after: self.inner.config.timeout(),
            phase,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The local checks on a request: nothing that fails them reaches the API.
fn validate_request(request: &EditImageRequest, max_input_bytes: u64) -> Result<()> {
    let invalid = |field, reason| Err(Error::InvalidInput { field, reason });
    if request.prompt.trim().is_empty() {
        return invalid(
            "prompt",
            "prompt is empty; describe the edit to make".into(),
        );
    }
    let chars = request.prompt.chars().count();
    if chars > PROMPT_MAX_LENGTH {
        return invalid(
            "prompt",
            format!("prompt is {chars} characters; the limit is {PROMPT_MAX_LENGTH}"),
        );
    }
    let image_url = request.image_url.as_str();
    if image_url
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"))
    {
        // Checked where it lies: `classify` would copy a URI that a local file makes tens of
        // megabytes long.
        return check_data_uri(image_url)
            .and_then(|()| check_data_uri_size(image_url, max_input_bytes))
            .map_err(|reason| Error::InvalidInput {
                field: "image_url",
                reason,
            });
    }
    match classify(image_url) {
        // A data: URI never gets here: it was checked above.
        Ok(ImageSource::Url(_) | ImageSource::DataUri(_)) => Ok(()),
        Ok(ImageSource::File(_)) => invalid(
            "image_url",
            "image_url is a local file path, which the API cannot read; convert it to a data: URI first (ImageSource::into_image_url)".into(),
        ),
        Err(reason) => invalid("image_url", reason),
    }
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
    Failure {
        error: Error::Transport {
            phase,
            attempts: attempt,
            message: error_chain(error),
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

fn decode_base64_image(b64: &str, limit: u64) -> Result<Bytes> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|error| Error::Decode {
        reason: format!("b64_json is not valid base64: {error}"),
        body: None,
    })?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(Error::ResultTooLarge {
            size: Some(size),
            limit,
        });
    }
    Ok(Bytes::from(bytes))
}

/// A scrubbed excerpt of a body for [`Error::Decode`], when it is text worth keeping.
fn text_excerpt(bytes: &[u8], key: &str) -> Option<String> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut in the middle of a character by the 4096-byte limit: keep what is whole.
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    (!text.trim().is_empty()).then(|| scrub(text, Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(request: &EditImageRequest) -> (&'static str, String) {
        match validate_request(request, 1 << 20).unwrap_err() {
            Error::InvalidInput { field, reason } => (field, reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn prompt_length_is_counted_in_code_points() {
        let url = "https://example.com/a.png";
        let at_limit = "é".repeat(PROMPT_MAX_LENGTH);
        assert!(validate_request(&EditImageRequest::new(url, at_limit), 1).is_ok());
        let over = "é".repeat(PROMPT_MAX_LENGTH + 1);
        assert_eq!(
            reason(&EditImageRequest::new(url, over)),
            (
                "prompt",
                "prompt is 2561 characters; the limit is 2560".into()
            )
        );
        assert_eq!(
            reason(&EditImageRequest::new(url, " \n\t")),
            (
                "prompt",
                "prompt is empty; describe the edit to make".into()
            )
        );
    }

    #[test]
    fn image_url_must_be_a_url_or_a_data_uri() {
        let request = |url: &str| EditImageRequest::new(url, "make it blue");
        assert_eq!(reason(&request("/tmp/a.png")).0, "image_url");
        assert_eq!(reason(&request("ftp://example.com/a.png")).0, "image_url");
        assert_eq!(
            reason(&request("data:text/plain;base64,aGk=")),
            (
                "image_url",
                "the data: URI's media type is \"text/plain\"; it must be an image/* type such as image/png".into()
            )
        );
        assert!(validate_request(&request("data:image/png;base64,aGk="), 2).is_ok());
        assert_eq!(
            validate_request(&request("data:image/png;base64,aGk="), 1)
                .unwrap_err()
                .to_string(),
            "the data: URI holds 2 bytes of image; the limit is 1 bytes"
        );
    }

    #[test]
    fn clients_and_their_calls_can_cross_threads() {
        // Servers run calls on multi-threaded runtimes, which need both to be Send.
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let client = Client::new(Config::default()).unwrap();
        send_sync(&client);
        let request = EditImageRequest::new("https://example.com/a.png", "make it blue");
        send(&client.edit_image(&request));
    }

    #[test]
    fn text_excerpts_are_scrubbed_and_binary_is_dropped() {
        assert_eq!(
            text_excerpt(b"<html>key sk-1</html>", "sk-1").as_deref(),
            Some("<html>key [redacted]</html>")
        );
        assert_eq!(text_excerpt(&[0xff, 0xfe, 0], "k"), None);
    }
}

//! The client: posts a checked request body with retries, and fetches the result image into memory
//! or, as it arrives, into a file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _, BufWriter};
use tokio::time::{Instant, timeout_at};

use crate::body::RequestBody;
use crate::config::Config;
use crate::error::{Error, Phase, Result, error_chain, parse_api_error, scrub};
use crate::format::{ImageFormat, describe_non_image};
use crate::generated::{EditImageRequest, EditImageResponse};
use crate::image::{ImageSource, classify};
use crate::output::{EditedImage, StagedImage, Usage, create_temp_in};
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

/// How much of a download is gathered before it is written to a file: each write is a trip to a
/// blocking thread, which costs more than the write itself for the small chunks a socket yields.
const FILE_WRITE_BUFFER: usize = 1024 * 1024;

/// What stays in memory of a result written to a file: enough to tell its type, or to quote it
/// in an error when it is not an image.
const HEAD_BYTES: usize = 4096;

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

    /// Edits an image as `request.prompt` describes and returns the result, held in memory.
    ///
    /// Checks the request first (see [`RequestBody::new`]) and sends nothing if it fails. Then
    /// posts it, retrying transient failures (HTTP 408, 429, 500, 502, 503, 504 and connection
    /// failures, honouring `Retry-After`; never 400, 401, 403, 404 or 422), and fetches the
    /// image: downloaded through this client when the API returns a URL, decoded when it returns
    /// base64. Everything happens within the configured timeout.
    ///
    /// None of the retried failures delivered an image, but a 502 or 504 comes from a gateway
    /// that may have given up on a generation the model still finished and billed; that rare
    /// case is why retries are few by default and can be disabled with
    /// [`Config::with_max_retries`]`(0)`.
    pub async fn edit_image(&self, request: &EditImageRequest) -> Result<EditedImage> {
        let body = RequestBody::new(request, self.inner.config.max_input_bytes())?;
        self.edit(&body).await
    }

    /// Sends a prepared body, as [`Client::edit_image`] does, and returns the result in memory.
    ///
    /// An inline image over this client's [`Config::max_input_bytes`] is refused unsent, even if
    /// the body was built with a higher limit.
    pub async fn edit(&self, body: &RequestBody) -> Result<EditedImage> {
        let call = self.start(body)?;
        let generation = self.generate(&call, body).await?;
        let mut sink = Sink::Memory(Vec::new());
        let format = self.fetch(&call, &generation.image, &mut sink).await?;
        let Sink::Memory(bytes) = sink else {
            unreachable!("the sink stays in memory")
        };
        Ok(EditedImage {
            bytes: Bytes::from(bytes),
            format,
            url: generation.image.url(),
            request_id: generation.request_id,
            content_violation: generation.content_violation,
            usage: generation.usage,
        })
    }

    /// Sends a prepared body, as [`Client::edit`] does, but writes the result to a hidden
    /// temporary file in `dir` as it arrives instead of holding it in memory; see
    /// [`StagedImage`].
    ///
    /// `dir` is created and the temporary file opened before the request is sent, so a folder
    /// that cannot be written to fails the call before it can cost anything. The file is deleted
    /// on any error, and when the returned image is dropped without being persisted.
    pub async fn edit_into_dir(&self, body: &RequestBody, dir: &Path) -> Result<StagedImage> {
        let call = self.start(body)?;
        let folder = dir.to_owned();
        let temp = tokio::task::spawn_blocking(move || create_temp_in(&folder))
            .await
            .expect("creating a temporary file does not panic")?;
        let writer = temp.as_file().try_clone().map_err(|source| Error::File {
            path: dir.to_owned(),
            action: "write the image into",
            source,
        })?;
        let generation = self.generate(&call, body).await?;
        let mut sink = Sink::File {
            writer: BufWriter::with_capacity(FILE_WRITE_BUFFER, tokio::fs::File::from_std(writer)),
            dir: dir.to_owned(),
            head: Vec::new(),
            size: 0,
        };
        let format = self.fetch(&call, &generation.image, &mut sink).await?;
        let mut staged = StagedImage::new(temp, dir.to_owned(), sink.size(), format);
        staged.url = generation.image.url();
        staged.request_id = generation.request_id;
        staged.content_violation = generation.content_violation;
        staged.usage = generation.usage;
        Ok(staged)
    }

    /// The checks and set-up every call makes before sending anything.
    fn start(&self, body: &RequestBody) -> Result<Call<'_>> {
        let config = &self.inner.config;
        body.check_image_limit(config.max_input_bytes())?;
        Ok(Call {
            key: config.api_key().ok_or(Error::MissingApiKey)?,
            http: self.http()?,
            deadline: Instant::now() + config.timeout(),
        })
    }

    /// Posts the body, with retries, and reads what the API says about the image it made.
    async fn generate(&self, call: &Call<'_>, body: &RequestBody) -> Result<Generation> {
        let endpoint = self.inner.config.endpoint_url();
        tracing::info!(
            %endpoint,
            prompt_chars = body.prompt_chars(),
            body_bytes = body.as_json().len(),
            "requesting an image edit"
        );
        let response = retry::run(self.inner.config.retry_policy(), call.deadline, |attempt| {
            self.post(call, &endpoint, body.bytes(), attempt)
        })
        .await?;
        Generation::from_response(response)
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
        call: &Call<'_>,
        endpoint: &str,
        body: Bytes,
        attempt: u32,
    ) -> Result<EditImageResponse, Failure> {
        let Call {
            http,
            key,
            deadline,
        } = *call;
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

    /// Fetches the result image into `sink` and returns its type, detected from its first bytes.
    async fn fetch(
        &self,
        call: &Call<'_>,
        image: &ResultImage,
        sink: &mut Sink,
    ) -> Result<ImageFormat> {
        let limit = self.inner.config.max_result_bytes();
        match image {
            ResultImage::Base64(b64) => {
                let bytes = decode_base64_image(b64, limit)?;
                sink.append(&bytes)
                    .await
                    .map_err(|error| sink.error(error))?;
            }
            ResultImage::Url(url) => {
                let sink = tokio::sync::Mutex::new(&mut *sink);
                self.download(call, url, &sink).await?;
            }
        }
        sink.finish().await.map_err(|error| sink.error(error))?;
        let Some(format) = ImageFormat::detect(sink.head()) else {
            return Err(Error::Decode {
                reason: format!(
                    "the result is not a PNG, JPEG, WebP or GIF image; it is {}",
                    describe_non_image(sink.head())
                ),
                body: text_excerpt(sink.head(), call.key),
            });
        };
        tracing::info!(bytes = sink.size(), %format, "result image ready");
        Ok(format)
    }

    /// Fetches a result URL into `sink` through the shared client, without the API key (the URL
    /// points at a CDN, which must not see it), retrying like the API call: a GET can always be
    /// repeated, and each attempt starts the sink afresh.
    async fn download(
        &self,
        call: &Call<'_>,
        url: &str,
        sink: &tokio::sync::Mutex<&mut Sink>,
    ) -> Result<()> {
        if !matches!(classify(url), Ok(ImageSource::Url(_))) {
            return Err(Error::Decode {
                reason: "the result url is not an http(s) URL".into(),
                body: None,
            });
        }
        let limit = self.inner.config.max_result_bytes();
        let deadline = call.deadline;
        retry::run(
            self.inner.config.retry_policy(),
            deadline,
            |attempt| async move {
                tracing::debug!(attempt, "downloading the result image");
                let send = call
                    .http
                    .get(url)
                    .header(USER_AGENT, USER_AGENT_VALUE)
                    .send();
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
                let mut sink = sink.lock().await;
                let streamed = stream_limited(&mut response, limit, &mut sink);
                match timeout_at(deadline, streamed).await {
                    Err(_) => Err(Failure::fatal(self.timed_out(Phase::Download))),
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

/// What one call needs at every step.
#[derive(Clone, Copy)]
struct Call<'a> {
    http: &'a reqwest::Client,
    key: &'a str,
    deadline: Instant,
}

/// What a successful response says about the image it made, before the image is fetched.
struct Generation {
    image: ResultImage,
    request_id: Option<String>,
    content_violation: Option<bool>,
    usage: Option<Usage>,
}

/// Where a result image is.
enum ResultImage {
    Base64(String),
    Url(String),
}

impl ResultImage {
    fn url(&self) -> Option<String> {
        match self {
            ResultImage::Url(url) => Some(url.clone()),
            ResultImage::Base64(_) => None,
        }
    }
}

impl Generation {
    fn from_response(response: EditImageResponse) -> Result<Generation> {
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
        let image = match (item.b64_json, item.url) {
            (Some(b64), _) if !b64.is_empty() => ResultImage::Base64(b64),
            (_, Some(url)) if !url.is_empty() => ResultImage::Url(url),
            _ => {
                return Err(Error::Decode {
                    reason: "the response's image has neither a url nor b64_json".into(),
                    body: None,
                });
            }
        };
        tracing::info!(
            request_id = item.request_id.as_deref(),
            "the API made the image"
        );
        Ok(Generation {
            image,
            request_id: item.request_id,
            content_violation: item.content_violation,
            usage,
        })
    }
}

/// Where a result image's bytes go as they arrive.
enum Sink {
    Memory(Vec<u8>),
    /// A temporary file; only the first [`HEAD_BYTES`] stay in memory.
    File {
        writer: BufWriter<tokio::fs::File>,
        /// The folder the file is in, to name in errors.
        dir: PathBuf,
        head: Vec<u8>,
        size: u64,
    },
}

impl Sink {
    async fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.extend_from_slice(chunk),
            Sink::File {
                writer, head, size, ..
            } => {
                let room = HEAD_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..room]);
                *size += chunk.len() as u64;
                writer.write_all(chunk).await?;
            }
        }
        Ok(())
    }

    /// Empties the sink for another attempt.
    async fn restart(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.clear(),
            Sink::File {
                writer, head, size, ..
            } => {
                writer.flush().await?;
                writer.get_mut().set_len(0).await?;
                writer.rewind().await?;
                head.clear();
                *size = 0;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::File { writer, .. } => writer.flush().await,
        }
    }

    fn reserve(&mut self, expected: u64) {
        if let Sink::Memory(bytes) = self {
            bytes.reserve(usize::try_from(expected).unwrap_or(0));
        }
    }

    fn head(&self) -> &[u8] {
        match self {
            Sink::Memory(bytes) => bytes,
            Sink::File { head, .. } => head,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Sink::Memory(bytes) => bytes.len() as u64,
            Sink::File { size, .. } => *size,
        }
    }

    fn error(&self, source: std::io::Error) -> Error {
        match self {
            Sink::File { dir, .. } => Error::File {
                path: dir.clone(),
                action: "write the image into",
                source,
            },
            Sink::Memory(_) => unreachable!("memory takes every write"),
        }
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
    sink.reserve(response.content_length().unwrap_or(0).min(limit));
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

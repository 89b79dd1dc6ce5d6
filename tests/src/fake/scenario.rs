//! What the fake does with one generation request.
//!
//! Each variant reproduces one way the real service (or something between the
//! client and it) has been seen or can be expected to behave, so that a client
//! can be tested against every branch of its error handling without a network.

use std::time::{Duration, SystemTime};

/// How the fake answers one `POST /v1/images/generations`.
///
/// Scenarios are applied after authentication and request validation: a
/// request with a wrong key or an invalid body is rejected (401 / 400) whatever
/// the scenario, exactly as the real API rejects it before doing any work. A
/// queued scenario is consumed by the request either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// Decode the input, edit it and answer 200 like the published example.
    Success,
    /// Wait this long (on top of the fake's configured latency), then succeed.
    /// The wait is where a client's timeout or cancellation lands.
    Latency(Duration),
    /// 401 with the documented error body even though the key is right:
    /// a key revoked between two calls.
    Status401,
    /// 403 with the other error shape AIML uses,
    /// `{"error":{"name":...,"message":...}}`: the account has no credits left.
    OutOfCredits403,
    /// 400 with the documented error body whose `message` is a single string.
    BadRequest400,
    /// 404 with NestJS's body for a route it does not serve, `Cannot POST
    /// /v1/images/generations`: what a withdrawn endpoint or a proxy that
    /// lost its route answers.
    NotFound404,
    /// 422 with the documented error body whose `message` is an array.
    Validation422,
    /// 429, with or without a `Retry-After` header.
    RateLimited {
        /// The `Retry-After` header to send; `None` sends none.
        retry_after: Option<RetryAfter>,
    },
    /// This status (500, 502 and 503 are the interesting ones) with the
    /// documented error body.
    ServerError(u16),
    /// 504 with the documented error body.
    GatewayTimeout504,
    /// 200 whose body is `{"error":{...}}` and no `data`: success status,
    /// failed generation.
    ErrorField200,
    /// 200 with `data[0].content_violation: true` and neither `url` nor
    /// `b64_json`: the provider refused the prompt or image.
    ContentViolation,
    /// 200, `application/json`, body that is not valid JSON.
    MalformedJson,
    /// 502 with a `text/html` page, as a CDN or proxy in front of the API sends.
    HtmlErrorPage,
    /// 200 whose `Content-Length` promises the whole success body but the
    /// connection closes after half of it.
    TruncatedBody,
    /// Read the request, then close the connection without any response.
    DropConnection,
    /// 200 with headers declaring the whole success body, then the connection
    /// closes before any of it: the generation has happened, but its answer
    /// never arrives.
    DropAfterHeaders,
    /// 200 with a `url` that answers 404.
    ResultUrl404,
    /// 200 with a `url` whose download declares the full length, sends half
    /// of the image and closes the connection.
    TruncatedResult,
    /// Like [`Scenario::TruncatedResult`] for the first download only; the
    /// retry gets the whole image, as after a CDN hiccup.
    TruncatedResultOnce,
    /// 200 with a `url` serving this many bytes with `Content-Length` declared,
    /// generated while streaming (never held in memory). The bytes start with
    /// the PNG signature, then zeros.
    HugeResult {
        /// Size of the download.
        bytes: u64,
    },
    /// 200 with a `url` serving exactly these bytes as `image/png`, whatever
    /// they are: a result the provider produced that the client must cope
    /// with (a decompression bomb, a PNG that is not one).
    ResultBytes(bytes::Bytes),
    /// Like [`Scenario::HugeResult`] but sent with chunked encoding and no
    /// `Content-Length`, so only a client that counts while streaming notices.
    HugeResultChunked {
        /// Size of the download.
        bytes: u64,
    },
    /// Success, but the JSON body and the result download each arrive in
    /// [`SLOW_BODY_CHUNKS`] pieces, `chunk_delay` apart.
    SlowBody {
        /// Pause before each piece after the first.
        chunk_delay: Duration,
    },
    /// This redirect status (307 and 308 keep the method and body) with
    /// `Location: location`: a proxy or a compromised DNS entry sending the
    /// request, key and picture included, somewhere else.
    Redirect {
        /// The 3xx status.
        status: u16,
        /// The `Location` header.
        location: String,
    },
    /// 200 whose `url` is exactly this, so a test can point the result at a
    /// redirect ([`crate::fake::FakeApi::serve_redirect`]) or another server.
    ResultAt(String),
    /// 400 whose documented error body quotes the request's `Authorization`
    /// header, to prove a client never repeats an error body's text verbatim
    /// where the key could leak (logs, tool results).
    EchoAuthorization,
}

/// How many pieces a [`Scenario::SlowBody`] body is split into, whatever its size.
pub const SLOW_BODY_CHUNKS: usize = 8;

/// The value of a 429's `Retry-After` header, in each form RFC 9110 allows,
/// plus garbage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <IMF-fixdate>` for this instant.
    HttpDate(SystemTime),
    /// This exact header value, valid or not.
    Raw(String),
}

impl RetryAfter {
    pub(crate) fn header_value(&self) -> String {
        match self {
            Self::Seconds(seconds) => seconds.to_string(),
            Self::HttpDate(at) => httpdate::fmt_http_date(*at),
            Self::Raw(value) => value.clone(),
        }
    }
}

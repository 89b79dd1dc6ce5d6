//! The one error type of this crate, and how the API's error bodies become it.
//!
//! Messages are written for whoever reads them last, often a model driving the MCP server: each
//! says what went wrong with exact numbers and what to change. None of them ever holds the API
//! key, a request body or base64 data: text that came from the server is scrubbed of the key
//! (servers have been known to echo the `Authorization` header back) before it is kept.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{API_KEY_ALIAS_VAR, API_KEY_VAR};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, in variants a caller can match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused locally, before anything was sent.
    #[error("{reason}")]
    InvalidInput {
        /// The field at fault: `prompt`, `image_url`, `image` or `file_name`.
        field: &'static str,
        /// What is wrong, with exact counts, in a sentence that says what to change.
        reason: String,
    },

    /// A configuration value is unusable, such as a base URL that is not http(s).
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and which setting or variable it came from.
        reason: String,
    },

    /// No API key was configured; raised when a call needs one, not when the config is built, so
    /// that a server can start and explain itself without a key.
    #[error(
        "no AIML API key is configured: set {API_KEY_VAR} (or {API_KEY_ALIAS_VAR}) to a key from https://aimlapi.com/app/keys"
    )]
    MissingApiKey,

    /// HTTP 401: the key was rejected.
    #[error(
        "the API key was rejected (HTTP 401): check that {API_KEY_VAR} holds a valid, active AIML API key; the API said: {message}"
    )]
    Authentication {
        /// The API's own message, scrubbed of the key.
        message: String,
    },

    /// HTTP 403: the key is valid but the account may not spend on this model right now.
    #[error(
        "the API refused the request (HTTP 403), usually because the account has run out of credits or lacks access to this model; top up or use another key; the API said: {message}"
    )]
    InsufficientCredits {
        /// The API's own message, scrubbed of the key.
        message: String,
    },

    /// HTTP 429 on the last attempt allowed.
    #[error("the API is rate limiting requests (HTTP 429) after {attempts} attempt(s); {}; the API said: {message}", RetryAfterHint(*.retry_after))]
    RateLimited {
        /// How many requests were sent in total.
        attempts: u32,
        /// How long the API asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The API's own message, scrubbed of the key.
        message: String,
    },

    /// Any other unsuccessful HTTP status from the API.
    #[error("the API returned HTTP {status} after {attempts} attempt(s): {message}{}", RequestIdHint(.request_id.as_deref()))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The API's message (several are joined with "; "), or an excerpt of the raw body.
        message: String,
        /// The API's `requestId`, when the body carried one; quote it to support.
        request_id: Option<String>,
        /// How many requests were sent in total.
        attempts: u32,
    },

    /// The provider refused to produce the image because of its content policy.
    #[error("the provider refused to produce the image because the prompt or image breaches its content policy; rephrase the prompt or use another image{}", RequestIdHint(.request_id.as_deref()))]
    ContentViolation {
        /// The provider's id for the refused generation.
        request_id: Option<String>,
    },

    /// The overall deadline passed.
    #[error(
        "timed out after {after:?} while {phase}; the whole call, retries and download included, must finish within the configured timeout"
    )]
    Timeout {
        /// The configured overall timeout.
        after: Duration,
        /// What was in progress when time ran out.
        phase: Phase,
    },

    /// The network failed: no connection, or the connection broke.
    #[error("network error while {phase} after {attempts} attempt(s): {message}")]
    Transport {
        /// What was in progress.
        phase: Phase,
        /// How many attempts were made.
        attempts: u32,
        /// The underlying error and its causes, joined with ": ".
        message: String,
    },

    /// Downloading the result image from the URL the API returned failed with an HTTP status.
    #[error("downloading the result image failed with HTTP {status} after {attempts} attempt(s)")]
    Download {
        /// The HTTP status code.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
    },

    /// A response (or the result image) could not be understood.
    #[error("could not decode the API's response: {reason}")]
    Decode {
        /// What was wrong with it.
        reason: String,
        /// An excerpt of the raw body, scrubbed of the key and of base64 runs, for debugging.
        body: Option<String>,
    },

    /// The result image is larger than the configured limit; nothing was kept.
    #[error("the result image {} the limit of {limit} bytes", ResultSize(*.size))]
    ResultTooLarge {
        /// The size in bytes, when known before reading it all.
        size: Option<u64>,
        /// The configured limit in bytes.
        limit: u64,
    },

    /// A local input file is larger than the configured limit; nothing was read or sent.
    #[error("{} is {size} bytes; the limit is {limit} bytes", .path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this much, if it grew while being read).
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },

    /// A local input file is not an image of a supported type; nothing was sent.
    #[error("{} is {saw}; expected a PNG, JPEG, WebP or GIF image", .path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// What its bytes look like instead, such as "a PDF document" (never its content).
        saw: String,
    },

    /// A local file could not be opened, read, created or written.
    #[error("could not {action} {}: {source}", .path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What was being done: "open", "read", "create directory", "write", ...
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Saving would have replaced an existing file, which this crate never does.
    #[error("{} already exists; choose another file name (existing files are never overwritten)", .path.display())]
    FileExists {
        /// The file that is already there.
        path: PathBuf,
    },
}

/// What a call was doing when it failed, for timeouts and network errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sending the request to the API and reading its response.
    Request,
    /// Downloading the result image from the URL the API returned.
    Download,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Request => "waiting for the API's response",
            Phase::Download => "downloading the result image",
        })
    }
}

struct RetryAfterHint(Option<Duration>);

impl fmt::Display for RetryAfterHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(wait) => write!(f, "it asked to wait {wait:?} before trying again"),
            None => f.write_str("wait a while before trying again"),
        }
    }
}

struct RequestIdHint<'a>(Option<&'a str>);

impl fmt::Display for RequestIdHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

struct ResultSize(Option<u64>);

impl fmt::Display for ResultSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(size) => write!(f, "is {size} bytes, over"),
            None => f.write_str("exceeds"),
        }
    }
}

/// How many characters of a raw body an error keeps: enough to recognise an HTML error page or a
/// proxy's message, not so much that an error message becomes a dump.
const EXCERPT_CHARS: usize = 500;

/// Runs of base64-looking characters at least this long are replaced in kept text, so that an
/// excerpt of a `b64_json` response never carries image data.
const BASE64_RUN: usize = 64;

/// Makes server-supplied text safe to keep in an error: removes every occurrence of the key,
/// collapses long base64 runs, and truncates to [`EXCERPT_CHARS`].
pub(crate) fn scrub(text: &str, key: Option<&str>) -> String {
    let text = match key {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len().min(EXCERPT_CHARS * 4));
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_') {
            run.push(c);
            continue;
        }
        flush_run(&mut out, &mut run);
        out.push(c);
    }
    flush_run(&mut out, &mut run);
    match out.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}… (truncated)", &out[..cut]),
        None => out,
    }
}

fn flush_run(out: &mut String, run: &mut String) {
    if run.len() >= BASE64_RUN {
        out.push_str(&format!("[{} base64-like characters]", run.len()));
    } else {
        out.push_str(run);
    }
    run.clear();
}

/// The parts of an API error body worth showing: its message(s) and request id.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiErrorBody {
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

/// Reads the error body shapes the AIML API is documented and observed to send, falling back to
/// the raw text.
///
/// Two shapes are known: `{message, path, requestId, statusCode, timestamp}`, where `message` may
/// be a string or an array of strings (validation errors list one per field) and `statusCode` a
/// number or a string (it is ignored: the HTTP status is authoritative); and
/// `{error: {name, message}}`. Parsing goes through `serde_json::Value` so that any other type in
/// any field degrades to the raw text instead of failing.
pub(crate) fn parse_api_error(body: &[u8], key: Option<&str>) -> ApiErrorBody {
    let raw = String::from_utf8_lossy(body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let Some(value) = parsed else {
        return ApiErrorBody {
            message: fallback_message(&raw, key),
            request_id: None,
        };
    };
    let request_id = value
        .get("requestId")
        .or_else(|| value.get("request_id"))
        .and_then(|id| id.as_str())
        .map(|id| scrub(id, key));
    let message = match (value.get("message"), value.get("error")) {
        (Some(message), _) => message_text(message),
        (None, Some(error)) => {
            let name = error.get("name").and_then(|n| n.as_str());
            let message = error
                .get("message")
                .and_then(message_text)
                .or_else(|| error.as_str().map(str::to_owned));
            match (name, message) {
                (Some(name), Some(message)) => Some(format!("{name}: {message}")),
                (None, Some(message)) => Some(message),
                (Some(name), None) => Some(name.to_owned()),
                (None, None) => None,
            }
        }
        (None, None) => None,
    };
    ApiErrorBody {
        message: match message {
            Some(message) if !message.trim().is_empty() => scrub(&message, key),
            _ => fallback_message(&raw, key),
        },
        request_id,
    }
}

fn message_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(items) => {
            let parts: Vec<&str> = items.iter().filter_map(|item| item.as_str()).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

fn fallback_message(raw: &str, key: Option<&str>) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        "(empty response body)".to_owned()
    } else {
        scrub(raw, key)
    }
}

/// Flattens an error and its causes into one line: reqwest's own Display ("error sending request")
/// hides the part that says what actually happened ("connection refused").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_key_base64_and_length() {
        let body = format!(
            "bad header Bearer sk-live-123 for sk-live-123; data {}",
            "QUJD".repeat(40)
        );
        let scrubbed = scrub(&body, Some("sk-live-123"));
        assert_eq!(
            scrubbed,
            "bad header Bearer [redacted] for [redacted]; data [160 base64-like characters]"
        );
        let long = "word ".repeat(200);
        let scrubbed = scrub(&long, None);
        assert!(scrubbed.ends_with("… (truncated)"));
        assert_eq!(
            scrubbed.chars().count(),
            EXCERPT_CHARS + "… (truncated)".len() - 2
        );
    }

    #[test]
    fn parses_the_documented_error_shape_with_string_or_array_message() {
        let body = br#"{"message":"Invalid image_url","path":"/v1/images/generations","requestId":"req-1","statusCode":400,"timestamp":"2025-01-01T00:00:00Z"}"#;
        assert_eq!(
            parse_api_error(body, None),
            ApiErrorBody {
                message: "Invalid image_url".into(),
                request_id: Some("req-1".into())
            }
        );
        let body = br#"{"message":["prompt must be shorter","image_url must be a URL"],"statusCode":"422"}"#;
        assert_eq!(
            parse_api_error(body, None).message,
            "prompt must be shorter; image_url must be a URL"
        );
    }

    #[test]
    fn parses_the_nested_error_shape() {
        let body = br#"{"error":{"name":"UnauthorizedError","message":"Invalid key sk-1"}}"#;
        assert_eq!(
            parse_api_error(body, Some("sk-1")).message,
            "UnauthorizedError: Invalid key [redacted]"
        );
    }

    #[test]
    fn falls_back_to_scrubbed_raw_text() {
        assert_eq!(
            parse_api_error(b"<html>502 Bad Gateway sk-1</html>", Some("sk-1")).message,
            "<html>502 Bad Gateway [redacted]</html>"
        );
        assert_eq!(
            parse_api_error(b"  ", None).message,
            "(empty response body)"
        );
        assert_eq!(
            parse_api_error(br#"{"message":42}"#, None).message,
            r#"{"message":42}"#
        );
    }
}

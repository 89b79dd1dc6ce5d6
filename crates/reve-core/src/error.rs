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
        /// The field at fault: `prompt`, `image_url`, `image`, `file_name` or
        /// `client_request_id`.
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
    #[error("{:?} is {size} bytes; the limit is {limit} bytes", .path)]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this much, if it grew while being read).
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },

    /// A local input file is not an image of a supported type; nothing was sent.
    #[error("{:?} is {saw}; expected a PNG, JPEG, WebP or GIF image", .path)]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// What its bytes look like instead, such as "a PDF document" (never its content).
        saw: String,
    },

    /// A local file could not be opened, read, created or written.
    #[error("could not {action} {:?}: {source}", .path)]
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
    #[error("{:?} already exists; choose another file name (existing files are never overwritten)", .path)]
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
}

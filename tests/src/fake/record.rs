//! What the fake saw, kept for assertions.

use std::collections::BTreeMap;

use axum::http::request::Parts;

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Header names in lowercase; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, whatever the `Content-Type`; `None` when it is
    /// not JSON (or empty).
    pub json: Option<serde_json::Value>,
    /// Length of the raw body in bytes.
    pub body_len: usize,
}

impl RecordedRequest {
    pub(crate) fn new(parts: &Parts, body: &[u8]) -> Self {
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        Self {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            json: serde_json::from_slice(body).ok(),
            body_len: body.len(),
        }
    }

    /// The header's value; `name` is matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Running totals, observable with [`crate::fake::FakeApi::wait_until`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request, whatever its path.
    pub requests: usize,
    /// `POST /v1/images/generations` requests (attempts, including retries).
    pub generation_attempts: usize,
    /// `GET /files/...` requests, found or not.
    pub file_downloads: usize,
    /// Generation requests whose client went away before the fake answered
    /// (the handler was dropped mid-way, typically during the latency).
    pub cancelled_requests: usize,
    /// Generation requests being answered right now.
    pub generations_in_flight: usize,
    /// The most generation requests that were ever being answered at once.
    pub most_generations_in_flight: usize,
}

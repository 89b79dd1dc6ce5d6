//! What the fake charges, and the two platform routes that tell a client about money:
//! `GET /v2/logs` (one row per generation request, failed ones too at cost 0) and
//! `GET /model/{id}?include=pricing` (the live price, with an ETag).
//!
//! Checked against the published contract (`platform/request-tracing-and-cost.md`,
//! `usage-logs.md`, `logs-v2.json`, `complete-model-list.md`):
//! - A generation request's `X-Client-Request-Id` is kept when it is 1–128 characters of
//!   `A-Za-z0-9._:-`, echoed as `x-client-request-id` and reported as `client_request_id`;
//!   any other value is dropped silently (the request runs and is billed as usual).
//! - Every generation answer carries `x-inference-id`; JSON answers carry
//!   `x-aimlapi-credits-used` (an integer) and `x-aimlapi-usd-spent` (the same in USD).
//! - `/v2/logs`: `period` (`24h`, `7d`) or both `start` and `end` (ISO-8601, UTC without an
//!   offset), never both; a window over 92 days, `end` before `start`, a malformed date or
//!   period, or a status outside `succeeded`/`failed` is a 400; `model` and `status` repeat
//!   rather than split on commas; `limit` 1–100 (default 50) and `offset` page the rows, newest
//!   first, with `pagination {limit, offset, total, has_more}`; a 429 past 200 requests per
//!   60 seconds.
//! - `/model/{id}` (singular, not under `/v1`) answers `{"object": "model", "data": {...}}`,
//!   the `pricing` section with `include=pricing`, and a 404 for an unknown model. Its `ETag`,
//!   sent back as `If-None-Match`, gets a 304 with an empty body.
//!
//! Inferred, not published:
//! - Credits are 2,000,000 to the dollar (both published examples say so), and each model is
//!   charged its example's `tokens_used` in credits: $0.105 an edit or a remix, $0.063 a create.
//! - A charge becomes visible in the logs only [`crate::fake::FakeApiBuilder::log_delay`] after
//!   the request ("a ledger entry that is not there yet the moment a call returns is
//!   expected").
//! - A request whose client hung up while the provider worked is still charged: the provider
//!   finishes what it started.
//! - The pricing section of an image model is `{"kind": "fixed", "currency": "USD", "units":
//!   [{"name": "image", "measure": "output", "price": ..., "per": 1}]}`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error_body::{JSON_CONTENT_TYPE, documented, json_response};
use super::generation::authorized;
use super::state::Shared;

/// Credits to one US dollar, as both published examples have it.
pub const CREDITS_PER_USD: f64 = 2_000_000.0;
/// Requests `/v2/logs` answers per window before a 429.
pub const LOGS_REQUESTS_PER_WINDOW: usize = 200;
/// The window of [`LOGS_REQUESTS_PER_WINDOW`].
pub const LOGS_WINDOW: Duration = Duration::from_secs(60);
/// The longest window `/v2/logs` lists.
const MAX_WINDOW: Duration = Duration::from_secs(92 * 24 * 60 * 60);
const LOGS_PATH: &str = "/v2/logs";

/// One row of `/v2/logs`: a generation request and what it was charged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub created: SystemTime,
    pub succeeded: bool,
    pub model: String,
    pub credits: u64,
    pub inference_id: String,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
}

impl LogRow {
    pub fn usd(&self) -> f64 {
        self.credits as f64 / CREDITS_PER_USD
    }

    fn to_json(&self) -> Value {
        json!({
            "created": humantime::format_rfc3339_millis(self.created).to_string(),
            "status": if self.succeeded { "succeeded" } else { "failed" },
            "origin": "api",
            "model": self.model,
            "cost": { "usd": self.usd(), "credits": self.credits },
            "tokens": { "input": 0, "output": 0, "total": 0 },
            "request_id": self.request_id,
            "inference_id": self.inference_id,
            "client_request_id": self.client_request_id,
        })
    }
}

/// How `/v2/logs` answers one request, queued with [`crate::FakeApi::push_logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsScenario {
    /// This status with the documented error body.
    Status(u16),
    /// 200 with a body that is not the documented JSON.
    Garbage,
}

/// The charges and the logs' rate limit.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    rows: Vec<(Instant, LogRow)>,
    logs_calls: VecDeque<Instant>,
    logs_scenarios: VecDeque<LogsScenario>,
    /// How late the next requests' rows appear, each taken by one, before the builder's delay.
    row_delays: VecDeque<Duration>,
}

impl Ledger {
    pub(crate) fn charge(&mut self, row: LogRow, visible_after: Duration) {
        let visible_after = self.row_delays.pop_front().unwrap_or(visible_after);
        self.rows.push((Instant::now() + visible_after, row));
    }

    pub(crate) fn push_row_delay(&mut self, delay: Duration) {
        self.row_delays.push_back(delay);
    }

    /// Every row, visible or not yet, oldest first.
    pub(crate) fn rows(&self) -> Vec<LogRow> {
        self.rows.iter().map(|(_, row)| row.clone()).collect()
    }

    pub(crate) fn push_logs(&mut self, scenario: LogsScenario) {
        self.logs_scenarios.push_back(scenario);
    }
}

/// The charge of one generation of `model` in credits: its published example's
/// `tokens_used`.
pub(crate) fn credits_of(model: &str) -> u64 {
    if model == "reve/create-image" {
        126_000
    } else {
        210_000
    }
}

/// Whether the API keeps `id` as a client request id.
pub(crate) fn kept_client_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// The client request id a generation request carries, if the API keeps it.
pub(crate) fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-client-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| kept_client_request_id(id))
        .map(str::to_owned)
}

/// Adds the tracing and cost headers to a generation's answer.
pub(crate) fn add_headers(
    response: &mut Response,
    inference_id: &str,
    client_request_id: Option<&str>,
    credits: u64,
) {
    let headers = response.headers_mut();
    let mut insert = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    insert("x-inference-id", inference_id.to_owned());
    if let Some(id) = client_request_id {
        insert("x-client-request-id", id.to_owned());
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-aimlapi-credits-used", credits.to_string()),
            (
                "x-aimlapi-usd-spent",
                format!("{:.9}", credits as f64 / CREDITS_PER_USD),
            ),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).expect("ASCII digits"));
        }
    }
}

/// `GET /v2/logs`.
pub(crate) async fn logs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let fail = |status: StatusCode, message: &str| {
        documented(status, LOGS_PATH, shared.ids.uuid(), message)
    };
    if !authorized(&headers, &shared.options.api_key) {
        return fail(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (scenario, rows) = {
        let mut ledger = shared.ledger();
        let now = Instant::now();
        while ledger
            .logs_calls
            .front()
            .is_some_and(|at| now.duration_since(*at) >= LOGS_WINDOW)
        {
            ledger.logs_calls.pop_front();
        }
        if ledger.logs_calls.len() >= shared.options.logs_requests_per_window {
            return fail(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlerException: Too Many Requests",
            );
        }
        ledger.logs_calls.push_back(now);
        let visible: Vec<LogRow> = ledger
            .rows
            .iter()
            .filter(|(visible_at, _)| *visible_at <= now)
            .map(|(_, row)| row.clone())
            .collect();
        (ledger.logs_scenarios.pop_front(), visible)
    };
    match scenario {
        Some(LogsScenario::Status(status)) => {
            return fail(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal server error",
            );
        }
        Some(LogsScenario::Garbage) => {
            return (
                [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
                r#"{"data": "not rows", "pagination": 7}"#,
            )
                .into_response();
        }
        None => {}
    }
    let query = match LogsQuery::parse(query.as_deref().unwrap_or(""), SystemTime::now()) {
        Ok(query) => query,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let mut matching: Vec<&LogRow> = rows.iter().filter(|row| query.matches(row)).collect();
    matching.sort_by_key(|row| std::cmp::Reverse(row.created));
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|row| row.to_json())
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "data": page,
            "pagination": {
                "limit": query.limit,
                "offset": query.offset,
                "total": total,
                "has_more": query.offset + query.limit < total,
            },
        }),
    )
}

/// A `/v2/logs` query, checked as the documented errors say.
struct LogsQuery {
    start: SystemTime,
    end: SystemTime,
    models: Vec<String>,
    statuses: Vec<bool>,
    limit: usize,
    offset: usize,
}

impl LogsQuery {
    fn parse(query: &str, now: SystemTime) -> Result<LogsQuery, String> {
        let (mut period, mut start, mut end) = (None, None, None);
        let mut models = Vec::new();
        let mut statuses = Vec::new();
        let (mut limit, mut offset) = (50, 0);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "period" => period = Some(value.into_owned()),
                "start" => start = Some(value.into_owned()),
                "end" => end = Some(value.into_owned()),
                "model" => models.push(value.into_owned()),
                "status" => statuses.push(match value.as_ref() {
                    "succeeded" => true,
                    "failed" => false,
                    _ => {
                        return Err(
                            "status must be one of the following values: succeeded, failed".into(),
                        );
                    }
                }),
                "limit" => {
                    limit = value
                        .parse()
                        .ok()
                        .filter(|limit| (1..=100).contains(limit))
                        .ok_or("limit must be an integer from 1 to 100")?;
                }
                "offset" => {
                    offset = value
                        .parse()
                        .map_err(|_| "offset must be a non-negative integer".to_owned())?;
                }
                _ => {}
            }
        }
        let (start, end) = match (period, start, end) {
            (Some(period), None, None) => (now - parse_period(&period)?, now),
            (None, Some(start), Some(end)) => (parse_time(&start)?, parse_time(&end)?),
            _ => return Err("provide either period, or both start and end".into()),
        };
        let window = end
            .duration_since(start)
            .map_err(|_| "end must not be earlier than start".to_owned())?;
        if window > MAX_WINDOW {
            return Err("the window must not exceed 92 days".into());
        }
        Ok(LogsQuery {
            start,
            end,
            models,
            statuses,
            limit,
            offset,
        })
    }

    fn matches(&self, row: &LogRow) -> bool {
        row.created >= self.start
            && row.created <= self.end
            && (self.models.is_empty() || self.models.iter().any(|model| names(model, &row.model)))
            && (self.statuses.is_empty() || self.statuses.contains(&row.succeeded))
    }
}

/// Whether `asked` names `model` (`source/alias`): the id itself, or its bare alias.
fn names(asked: &str, model: &str) -> bool {
    asked == model
        || model
            .split_once('/')
            .is_some_and(|(_, alias)| alias == asked)
}

/// `24h` or `7d`.
fn parse_period(period: &str) -> Result<Duration, String> {
    let malformed =
        || format!("period must be a positive integer followed by h or d, not {period:?}");
    let (count, unit) = period.split_at(period.len().saturating_sub(1));
    let count: u64 = count
        .parse()
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(malformed)?;
    match unit {
        "h" => Ok(Duration::from_secs(count * 3600)),
        "d" => Ok(Duration::from_secs(count * 86_400)),
        _ => Err(malformed()),
    }
}

/// An ISO-8601 time: with `Z`, with an offset such as `+02:00`, or without one (UTC).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    let malformed = || format!("{text:?} is not an ISO-8601 date");
    let (local, offset_secs) = match text.len().checked_sub(6).map(|at| text.split_at(at)) {
        Some((local, offset))
            if local.contains('T') && matches!(offset.as_bytes()[0], b'+' | b'-') =>
        {
            let (hours, minutes) = offset[1..].split_once(':').ok_or_else(malformed)?;
            let hours: i64 = hours.parse().map_err(|_| malformed())?;
            let minutes: i64 = minutes.parse().map_err(|_| malformed())?;
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            (local, sign * (hours * 3600 + minutes * 60))
        }
        _ => (text.strip_suffix('Z').unwrap_or(text), 0),
    };
    let utc = humantime::parse_rfc3339_weak(&format!("{local}Z")).map_err(|_| malformed())?;
    // A local time ahead of UTC by the offset.
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    Ok(if offset_secs >= 0 {
        utc - shift
    } else {
        utc + shift
    })
}

/// `GET /model/{id}`: one model of the catalogue, its price with `include=pricing`.
pub(crate) async fn model(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !shared.pricing_available() {
        return documented(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("/model/{id}"),
            shared.ids.uuid(),
            "Service Unavailable",
        );
    }
    let asked = id.to_ascii_lowercase();
    let Some(id) = super::schema::models()
        .find(|model| names(&asked, model))
        .map(str::to_owned)
    else {
        return documented(
            StatusCode::NOT_FOUND,
            &format!("/model/{id}"),
            shared.ids.uuid(),
            format!("Model {asked} not found"),
        );
    };
    let includes: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "include")
        .flat_map(|(_, value)| value.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let mut data = json!({
        "id": id,
        "type": "image",
        "aliases": [id.split('/').next_back().unwrap_or(&id)],
        "tags": ["playground:image"],
    });
    if includes
        .iter()
        .any(|include| include == "pricing" || include == "all")
    {
        data["pricing"] = json!({
            "kind": "fixed",
            "currency": "USD",
            "units": [{
                "name": "image",
                "measure": "output",
                "price": credits_of(&id) as f64 / CREDITS_PER_USD * shared.price_factor(),
                "per": 1,
            }],
        });
    }
    let body = json!({ "object": "model", "data": data }).to_string();
    let etag = format!(
        "W/\"{:x}-{:08x}\"",
        body.len(),
        crc32fast::hash(body.as_bytes())
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes());
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, JSON_CONTENT_TYPE.to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_kept_only_in_the_documented_alphabet() {
        assert!(kept_client_request_id("job-1.a_b:c"));
        assert!(kept_client_request_id(&"a".repeat(128)));
        assert!(!kept_client_request_id(""));
        assert!(!kept_client_request_id(&"a".repeat(129)));
        assert!(!kept_client_request_id("a b"));
        assert!(!kept_client_request_id("a/b"));
    }

    #[test]
    fn a_logs_query_is_checked_as_documented() {
        let now = SystemTime::now();
        let parse = |query: &str| LogsQuery::parse(query, now).map(|query| query.limit);
        assert_eq!(parse("period=7d"), Ok(50));
        assert_eq!(parse("period=24h&limit=100"), Ok(100));
        assert!(parse("").is_err());
        assert!(parse("period=7d&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z").is_err());
        assert!(parse("start=2026-01-01T00:00:00Z").is_err());
        assert!(parse("start=2026-01-02T00:00:00&end=2026-01-01T00:00:00").is_err());
        assert!(parse("start=2026-01-01T00:00:00Z&end=2026-04-04T00:00:00Z").is_err());
        assert_eq!(
            parse("start=2026-01-01T00:00:00&end=2026-04-02T00:00:00Z"),
            Ok(50)
        );
        assert!(parse("period=7w").is_err());
        assert!(parse("period=0d").is_err());
        assert!(parse("period=7d&status=succeeded,failed").is_err());
        assert!(parse("period=7d&limit=0").is_err());
        assert!(parse("period=7d&limit=101").is_err());
        // An offset is read as such: 02:00+02:00 is midnight UTC.
        assert_eq!(
            parse_time("2026-01-01T02:00:00+02:00"),
            parse_time("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_time("2025-12-31T19:00:00-05:00"),
            parse_time("2026-01-01T00:00:00")
        );
        assert!(names("edit-image", "reve/edit-image"));
        assert!(!names("reve/edit", "reve/edit-image"));
    }
}

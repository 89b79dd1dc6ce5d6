//! The AIML API's platform routes about money: the usage logs (`GET /v2/logs`), which list every
//! request made with the key and what it was charged, and a model's live price
//! (`GET /model/{id}?include=pricing`).
//!
//! Both are read, never paid for. A caller that lost a generation's answer (a crash, a broken
//! connection) finds the request in the logs by the client request id it sent
//! ([`crate::RequestBody::with_client_request_id`]) and learns whether it was charged; a caller
//! about to spend reads the price first. The documents are `spec/platform/logs-v2.json` and the
//! platform's model list page; the figures below are theirs, checked against the first by this
//! module's tests.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{CONNECTION, ETAG, IF_NONE_MATCH, RETRY_AFTER, USER_AGENT};
use serde::Deserialize;

use crate::client::Client;
use crate::error::{Error, Phase, Result};
use crate::retry::parse_retry_after;
use crate::text::error_chain;

/// Rows per page the logs give at most (the document's `limit` maximum).
pub const LOGS_MAX_PAGE: u32 = 100;
/// The longest window the logs list, in days (a longer one is a 400).
pub const LOGS_MAX_WINDOW_DAYS: u64 = 92;
/// Requests the logs answer per [`LOGS_RATE_WINDOW`] before a 429.
pub const LOGS_RATE_LIMIT: u32 = 200;
/// The window of [`LOGS_RATE_LIMIT`].
pub const LOGS_RATE_WINDOW: Duration = Duration::from_secs(60);

/// How long one read of a platform route may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of a platform answer read: a page of 100 rows is about 40 KB.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Which requests to list: those made in `start..=end` to one model, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsQuery {
    /// The window's start.
    pub start: SystemTime,
    /// The window's end, at most [`LOGS_MAX_WINDOW_DAYS`] after `start`.
    pub end: SystemTime,
    /// Only requests to this model, as `source/alias` (`reve/edit-image`); `None` lists all.
    pub model: Option<String>,
    /// Rows per page, 1 to [`LOGS_MAX_PAGE`].
    pub limit: u32,
    /// Rows skipped before the page.
    pub offset: u64,
}

/// One page of the usage logs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogsPage {
    /// The rows, newest first.
    pub data: Vec<LogRow>,
    /// Where the page is among all the rows.
    pub pagination: Pagination,
}

/// Where a page of logs is.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Pagination {
    /// Rows asked for.
    pub limit: u64,
    /// Rows skipped.
    pub offset: u64,
    /// Rows matching the query on all pages.
    pub total: u64,
    /// Whether another page follows.
    pub has_more: bool,
}

/// One request as the usage logs list it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogRow {
    /// When the request was made, in UTC (ISO-8601).
    pub created: String,
    /// Whether it succeeded; a failed request is billed nothing.
    pub status: LogStatus,
    /// The model asked, as `source/alias`.
    pub model: String,
    /// What it was charged.
    pub cost: LogCost,
    /// The provider's id of the inference ([`crate::Charge::inference_id`]).
    pub inference_id: String,
    /// The client request id it was sent with, if the API kept one.
    pub client_request_id: Option<String>,
}

/// The outcome of a logged request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// It succeeded, and was charged.
    Succeeded,
    /// It failed, and was charged nothing.
    Failed,
}

/// What a logged request was charged.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct LogCost {
    /// In US dollars.
    pub usd: f64,
    /// In credits (whole numbers in the document; read as a number of any kind, so that one
    /// written with a fraction does not make a page unreadable).
    pub credits: f64,
}

/// What a price lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceLookup {
    /// The price has not changed since the lookup whose ETag was sent.
    Unchanged,
    /// The model's price now.
    Price {
        /// US dollars per picture made, when the model is priced per picture (`fixed`, with a
        /// single unit counted per picture); `None` for a price this client cannot read.
        usd_per_picture: Option<f64>,
        /// The answer's ETag, to send with the next lookup.
        etag: Option<String>,
    },
}

impl Client {
    /// One page of the usage logs of this client's key: the requests made in the query's
    /// window, failed ones too, newest first. Rows appear some time after their request (the
    /// charge is recorded after the answer), so a request not listed yet may still be.
    ///
    /// Sent once, never retried: a 429 (past [`LOGS_RATE_LIMIT`] requests a minute) is
    /// [`Error::RateLimited`] with the wait the API asked for, for the caller to honour.
    pub async fn usage_logs(&self, query: &LogsQuery) -> Result<LogsPage> {
        let window = query.end.duration_since(query.start).unwrap_or_default();
        if window > Duration::from_secs(LOGS_MAX_WINDOW_DAYS * 86_400)
            || !(1..=LOGS_MAX_PAGE).contains(&query.limit)
        {
            return Err(Error::InvalidInput {
                field: "logs_query",
                reason: format!(
                    "a logs query covers at most {LOGS_MAX_WINDOW_DAYS} days in pages of 1 to \
                     {LOGS_MAX_PAGE} rows"
                ),
            });
        }
        let config = self.config();
        let key = config.api_key().ok_or(Error::MissingApiKey)?;
        let mut url =
            url::Url::parse(&format!("{}/v2/logs", config.base_url())).map_err(|error| {
                Error::InvalidConfig {
                    reason: format!("the base URL cannot take a path: {error}"),
                }
            })?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("start", &rfc3339(query.start))
                .append_pair("end", &rfc3339(query.end))
                .append_pair("limit", &query.limit.to_string())
                .append_pair("offset", &query.offset.to_string());
            if let Some(model) = &query.model {
                pairs.append_pair("model", model);
            }
        }
        let request = self.http()?.get(url).bearer_auth(key);
        let (status, retry_after, body) = read(request, None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body.bytes).map_err(|error| Error::Decode {
                reason: format!("the usage logs are not the documented JSON: {error}"),
                body: crate::response::text_excerpt(&body.bytes, key),
            }),
            status => {
                Err(
                    crate::response::failure(status.as_u16(), retry_after, &body.bytes, key, 1)
                        .error,
                )
            }
        }
    }

    /// The live price of `model` (`reve/edit-image`), sending `etag` (from the last lookup) so
    /// that an unchanged price costs an empty answer. Needs no key.
    pub async fn price(&self, model: &str, etag: Option<&str>) -> Result<PriceLookup> {
        let config = self.config();
        let url = format!("{}/model/{model}?include=pricing", config.base_url());
        let request = self.http()?.get(url);
        let (status, retry_after, body) = read(request, etag).await?;
        let key = config.api_key().unwrap_or_default();
        match status {
            StatusCode::NOT_MODIFIED => Ok(PriceLookup::Unchanged),
            StatusCode::OK => {
                let answer: ModelAnswer =
                    serde_json::from_slice(&body.bytes).map_err(|error| Error::Decode {
                        reason: format!("the model's price is not the documented JSON: {error}"),
                        body: crate::response::text_excerpt(&body.bytes, key),
                    })?;
                Ok(PriceLookup::Price {
                    usd_per_picture: answer
                        .data
                        .pricing
                        .and_then(|pricing| pricing.per_picture()),
                    etag: body.etag,
                })
            }
            status => {
                Err(
                    crate::response::failure(status.as_u16(), retry_after, &body.bytes, key, 1)
                        .error,
                )
            }
        }
    }
}

/// `{"object": "model", "data": {...}}`.
#[derive(Deserialize)]
struct ModelAnswer {
    data: ModelData,
}

#[derive(Deserialize)]
struct ModelData {
    pricing: Option<Pricing>,
}

/// A model's `pricing` section: read `kind` first, and `price` always with `per`.
#[derive(Deserialize)]
struct Pricing {
    kind: String,
    currency: Option<String>,
    #[serde(default)]
    units: Vec<PriceUnit>,
}

#[derive(Deserialize)]
struct PriceUnit {
    name: Option<String>,
    price: f64,
    per: f64,
}

impl Pricing {
    /// US dollars per picture, for a fixed price with one unit counted per picture.
    fn per_picture(&self) -> Option<f64> {
        if self.kind != "fixed"
            || self
                .currency
                .as_deref()
                .is_some_and(|currency| currency != "USD")
        {
            return None;
        }
        let [unit] = self.units.as_slice() else {
            return None;
        };
        let per_picture = matches!(
            unit.name.as_deref(),
            Some("image" | "picture" | "generation" | "request")
        );
        (per_picture && unit.per > 0.0 && unit.price.is_finite() && unit.price >= 0.0)
            .then(|| unit.price / unit.per)
    }
}

/// A platform answer: its status, the wait a 429 asked for, and its body and ETag.
async fn read(
    request: reqwest::RequestBuilder,
    etag: Option<&str>,
) -> Result<(StatusCode, Option<Duration>, Body)> {
    // These reads come minutes apart: their connection is closed after each rather than kept
    // in the pool the generations use.
    let mut request = request
        .header(USER_AGENT, crate::transport::USER_AGENT_VALUE)
        .header(CONNECTION, "close")
        .timeout(READ_TIMEOUT);
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let transport = |error: reqwest::Error| Error::Transport {
        phase: Phase::Request,
        attempts: 1,
        message: error_chain(&error),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after =
        header(RETRY_AFTER).and_then(|value| parse_retry_after(&value, SystemTime::now()));
    let etag = header(ETAG);
    let bytes = response.bytes().await.map_err(transport)?;
    if bytes.len() > BODY_LIMIT {
        return Err(Error::Decode {
            reason: format!(
                "a platform answer of {} bytes, over {BODY_LIMIT}",
                bytes.len()
            ),
            body: None,
        });
    }
    Ok((
        status,
        retry_after,
        Body {
            bytes: bytes.to_vec(),
            etag,
        },
    ))
}

/// A platform answer's body, and its ETag.
struct Body {
    bytes: Vec<u8>,
    etag: Option<String>,
}

/// `2026-07-01T00:00:00.000Z`.
fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures above are the document's, and a row of its shape is read.
    #[test]
    fn the_logs_figures_and_row_are_the_documents() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/platform/logs-v2.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        let get = &document["paths"]["/v2/logs"]["get"];
        let limit = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], LOGS_MAX_PAGE);
        let description = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "end")
            .unwrap()["description"]
            .as_str()
            .unwrap();
        assert!(description.contains(&format!("{LOGS_MAX_WINDOW_DAYS} days")));
        let row = &get["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
            ["items"];
        let example: serde_json::Map<String, serde_json::Value> = row["properties"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, field)| {
                let value = match &field["example"] {
                    serde_json::Value::Null => {
                        let example = field["properties"]
                            .as_object()
                            .map(|fields| {
                                fields
                                    .iter()
                                    .map(|(name, field)| (name.clone(), field["example"].clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        serde_json::Value::Object(example)
                    }
                    example => example.clone(),
                };
                (name.clone(), value)
            })
            .collect();
        let read: LogRow = serde_json::from_value(serde_json::Value::Object(example)).unwrap();
        assert_eq!(read.status, LogStatus::Succeeded);
        assert_eq!(
            read.cost,
            LogCost {
                usd: 0.25,
                credits: 500_000.0
            }
        );
        assert_eq!(read.client_request_id.as_deref(), Some("customer-42"));
    }

    #[test]
    fn times_are_written_as_utc_iso_8601() {
        let at = |millis: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_759_282_497_910)), "2025-10-01T01:34:57.910Z");
        assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(4_107_542_399_999)), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn only_a_fixed_price_per_picture_is_read() {
        let read = |json: &str| serde_json::from_str::<Pricing>(json).unwrap().per_picture();
        assert_eq!(
            read(
                r#"{"kind":"fixed","currency":"USD","units":[{"name":"image","price":0.1,"per":1}]}"#
            ),
            Some(0.1)
        );
        assert_eq!(
            read(
                r#"{"kind":"fixed","currency":"USD","units":[{"name":"token","measure":"output","price":3.25,"per":1000000}]}"#
            ),
            None
        );
        assert_eq!(
            read(r#"{"kind":"variants","dimensions":["resolution"]}"#),
            None
        );
        assert_eq!(
            read(
                r#"{"kind":"fixed","currency":"EUR","units":[{"name":"image","price":0.1,"per":1}]}"#
            ),
            None
        );
    }
}

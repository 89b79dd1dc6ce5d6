//! `POST /v1/images/generations`: authentication, body parsing, schema
//! validation, then the scenario's answer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::asked::Asked;
use super::delivery::{self, Delivery};
use super::edit::{edit, encode};
use super::error_body::{JSON_CONTENT_TYPE, documented, error_field, json_response};
use super::input;
use super::ledger::{self, LogRow, credits_of};
use super::samples::sample_image;
use super::scenario::Scenario;
use super::schema;
use super::state::{Shared, StoredFile};

/// The endpoint's path, also the `path` of its error bodies.
pub(crate) const ENDPOINT_PATH: &str = "/v1/images/generations";

pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.count_in_flight(true);
    let trace = Trace::of(&shared, &headers, &body);
    let mut guard = CancelGuard {
        shared: &shared,
        trace: &trace,
        armed: true,
    };
    let scenario = shared.next_scenario();
    let (mut response, charged) = answer(&shared, &headers, &body, scenario).await;
    guard.armed = false;
    let credits = if charged { credits_of(&trace.model) } else { 0 };
    trace.record(&shared, charged);
    ledger::add_headers(
        &mut response,
        &trace.inference_id,
        trace.client_request_id.as_deref(),
        credits,
    );
    response
}

/// What the ledger records of one generation request.
struct Trace {
    /// When the request was made: a row's `created`.
    created: std::time::SystemTime,
    inference_id: String,
    client_request_id: Option<String>,
    model: String,
    /// Whether the request carries the key: the logs list only the key's requests.
    authorized: bool,
    /// Whether it is also valid: what the provider works on.
    accepted: bool,
}

impl Trace {
    fn of(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Trace {
        let request = parse(headers, body).unwrap_or_default();
        let authorized = authorized(headers, &shared.options.api_key);
        Trace {
            created: std::time::SystemTime::now(),
            inference_id: shared.ids.inference_id(),
            client_request_id: ledger::client_request_id(headers),
            model: request["model"].as_str().unwrap_or_default().to_owned(),
            authorized,
            accepted: authorized && schema::violations(&request).is_empty(),
        }
    }

    /// Records the request in the logs, charged or not, if the key made it.
    fn record(&self, shared: &Shared, charged: bool) {
        if !self.authorized {
            return;
        }
        let row = LogRow {
            created: self.created,
            succeeded: charged,
            model: self.model.clone(),
            credits: if charged { credits_of(&self.model) } else { 0 },
            inference_id: self.inference_id.clone(),
            request_id: None,
            client_request_id: self.client_request_id.clone(),
        };
        shared.ledger().charge(row, shared.options.log_delay);
    }
}

/// Counts the request as cancelled if its future is dropped before it has
/// produced a response: that is what hyper does when the client hangs up. A
/// valid request's generation goes on at the provider, and is charged.
struct CancelGuard<'a> {
    shared: &'a Shared,
    trace: &'a Trace,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        self.shared.count_in_flight(false);
        if self.armed {
            self.shared.count_cancelled();
            if self.trace.accepted {
                self.trace.record(self.shared, true);
            }
        }
    }
}

/// The answer, and whether the request is charged: it is when the provider made an image,
/// however it was then delivered.
async fn answer(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    scenario: Scenario,
) -> (Response, bool) {
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }
    if let Scenario::Latency(extra) = scenario {
        tokio::time::sleep(extra).await;
    }
    if !authorized(headers, &shared.options.api_key) {
        return (
            fail(shared, StatusCode::UNAUTHORIZED, "Unauthorized"),
            false,
        );
    }
    let request = match parse(headers, body) {
        Ok(request) => request,
        Err(message) => return (fail(shared, StatusCode::BAD_REQUEST, message), false),
    };
    let violations = schema::violations(&request);
    if !violations.is_empty() {
        return (fail(shared, StatusCode::BAD_REQUEST, violations), false);
    }
    let asked = Asked::of(&request);
    let as_url = request
        .get("convert_base64_to_url")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    match deliver(shared, &scenario, &asked, as_url).await {
        Some(response) => {
            let charged =
                response.status() == StatusCode::OK && scenario != Scenario::ContentViolation;
            (response, charged)
        }
        None => (refuse(shared, scenario, headers), false),
    }
}

/// The answer of a scenario in which the API makes an image (however it then delivers it), or
/// `None` for one in which it refuses.
async fn deliver(
    shared: &Shared,
    scenario: &Scenario,
    asked: &Asked<'_>,
    as_url: bool,
) -> Option<Response> {
    let tokens = asked.tokens_used();
    let whole = Delivery::Whole;
    Some(match scenario.clone() {
        Scenario::Success | Scenario::Latency(_) => {
            succeed(shared, asked, as_url, whole, whole).await
        }
        Scenario::SlowBody { chunk_delay } => {
            let slow = Delivery::Trickle(chunk_delay);
            succeed(shared, asked, as_url, slow, slow).await
        }
        Scenario::TruncatedBody => succeed(shared, asked, as_url, Delivery::Truncated, whole).await,
        Scenario::DropAfterHeaders => {
            succeed(shared, asked, as_url, Delivery::HeadersOnly, whole).await
        }
        Scenario::TruncatedResult => succeed(shared, asked, true, whole, Delivery::Truncated).await,
        Scenario::TruncatedResultOnce => {
            succeed(shared, asked, true, whole, Delivery::TruncatedOnce).await
        }
        Scenario::ResultUrl404 => {
            let missing = shared.file_url(&shared.ids.file_name());
            json_response(
                StatusCode::OK,
                &data_body(shared, Some(missing), None, false, tokens),
            )
        }
        Scenario::ResultBytes(bytes) => {
            let url = shared.store_file(StoredFile::Image {
                bytes,
                content_type: "image/png",
                delivery: whole,
            });
            json_response(
                StatusCode::OK,
                &data_body(shared, Some(url), None, false, tokens),
            )
        }
        Scenario::ResultAt(url) => json_response(
            StatusCode::OK,
            &data_body(shared, Some(url), None, false, tokens),
        ),
        Scenario::HugeResult { bytes } => huge_result(shared, bytes, true, tokens),
        Scenario::HugeResultChunked { bytes } => huge_result(shared, bytes, false, tokens),
        Scenario::ContentViolation => {
            json_response(StatusCode::OK, &data_body(shared, None, None, true, 0))
        }
        _ => return None,
    })
}

/// The answer of a scenario in which the API refuses or fails.
fn refuse(shared: &Shared, scenario: Scenario, headers: &HeaderMap) -> Response {
    match scenario {
        Scenario::Status401 => fail(shared, StatusCode::UNAUTHORIZED, "Unauthorized"),
        Scenario::OutOfCredits403 => error_field(
            StatusCode::FORBIDDEN,
            "InsufficientCreditsError",
            "You have run out of credits. Top up your balance to continue.",
        ),
        Scenario::BadRequest400 => fail(
            shared,
            StatusCode::BAD_REQUEST,
            "The provider could not process the reference image",
        ),
        Scenario::NotFound404 => fail(
            shared,
            StatusCode::NOT_FOUND,
            format!("Cannot POST {ENDPOINT_PATH}"),
        ),
        Scenario::Validation422 => fail(
            shared,
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["image_url must point to an image the provider accepts".to_owned()],
        ),
        Scenario::RateLimited { retry_after } => {
            let mut response = fail(
                shared,
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlerException: Too Many Requests",
            );
            if let Some(value) = retry_after.and_then(|r| r.header_value().parse().ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Scenario::ServerError(status) => fail(
            shared,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Internal server error",
        ),
        Scenario::GatewayTimeout504 => fail(shared, StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"),
        Scenario::ErrorField200 => error_field(
            StatusCode::OK,
            "GenerationError",
            "The provider failed to generate the image",
        ),
        Scenario::MalformedJson => (
            [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
            r#"{"data":[{"url":undefined,"b64_json":null}]"#,
        )
            .into_response(),
        Scenario::HtmlErrorPage => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            HTML_502,
        )
            .into_response(),
        Scenario::DropConnection => delivery::drop_connection(),
        Scenario::Redirect { status, location } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            [(header::LOCATION, location)],
        )
            .into_response(),
        Scenario::EchoAuthorization => {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_default();
            fail(
                shared,
                StatusCode::BAD_REQUEST,
                format!("Invalid request sent with authorization: {authorization}"),
            )
        }
        _ => unreachable!("{scenario:?} delivers an image"),
    }
}

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

/// `Authorization: Bearer <key>`, the scheme matched case-insensitively as
/// RFC 9110 says, the key exactly.
pub(crate) fn authorized(headers: &HeaderMap, api_key: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key == api_key)
}

/// The body as Express's JSON parser sees it: parsed only when the
/// `Content-Type` is JSON, an empty object otherwise or when empty, so a
/// client that forgets the header meets the validation errors it would meet
/// for real.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json || body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|error| {
        format!(
            "Unexpected token in JSON at line {} column {}",
            error.line(),
            error.column()
        )
    })
}

fn fail(shared: &Shared, status: StatusCode, message: impl Into<Value>) -> Response {
    documented(status, ENDPOINT_PATH, shared.ids.uuid(), message)
}

/// Fetch and decode the pictures, make the result, encode it, and answer with a URL or inline
/// base64. An edit's result is its picture edited ([`edit`]); a remix's, its first picture edited
/// at the aspect ratio's size, the others fetched and decoded as the API must; a create's, the
/// sample picture at that size.
async fn succeed(
    shared: &Shared,
    asked: &Asked<'_>,
    as_url: bool,
    body: Delivery,
    file: Delivery,
) -> Response {
    let format = shared.options.result_format;
    let tokens = asked.tokens_used();
    let bytes = if let Some(canned) = &shared.options.canned_result {
        canned.clone()
    } else {
        let mut pictures = Vec::new();
        for url in asked.pictures() {
            match input::load(&shared.http, url).await {
                Ok(image) => pictures.push(image),
                Err(error) => return fail(shared, StatusCode::BAD_REQUEST, error.message()),
            }
        }
        let size = shared.options.result_size.or_else(|| asked.size());
        let encoded = tokio::task::spawn_blocking(move || {
            let made = match pictures.first() {
                Some(first) => edit(first, size),
                None => {
                    let (width, height) = size.unwrap_or((1024, 1024));
                    sample_image(width, height)
                }
            };
            encode(&made, format)
        })
        .await;
        let Ok(Ok(bytes)) = encoded else {
            return fail(
                shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            );
        };
        Bytes::from(bytes)
    };
    let json = if as_url {
        let url = shared.store_file(StoredFile::Image {
            bytes,
            content_type: format.content_type(),
            delivery: file,
        });
        data_body(shared, Some(url), None, false, tokens)
    } else {
        data_body(shared, None, Some(STANDARD.encode(bytes)), false, tokens)
    };
    delivery::deliver(
        StatusCode::OK,
        JSON_CONTENT_TYPE,
        Bytes::from(json.to_string()),
        body,
    )
}

fn huge_result(shared: &Shared, len: u64, declare_length: bool, tokens: u64) -> Response {
    let url = shared.store_file(StoredFile::Huge {
        len,
        declare_length,
    });
    json_response(
        StatusCode::OK,
        &data_body(shared, Some(url), None, false, tokens),
    )
}

/// The success body, key for key and in the order of the published example, reporting
/// `tokens_used` (none for a picture refused for its content).
fn data_body(
    shared: &Shared,
    url: Option<String>,
    b64_json: Option<String>,
    content_violation: bool,
    tokens_used: u64,
) -> Value {
    json!({
        "data": [{
            "url": url,
            "b64_json": b64_json,
            "request_id": shared.ids.rsid(),
            "content_violation": content_violation,
        }],
        "meta": { "usage": { "tokens_used": tokens_used } },
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_but_the_key_is_not() {
        let key = "k-123";
        assert!(authorized(
            &headers(&[(header::AUTHORIZATION, "Bearer k-123")]),
            key
        ));
        assert!(authorized(
            &headers(&[(header::AUTHORIZATION, "bearer k-123")]),
            key
        ));
        assert!(!authorized(
            &headers(&[(header::AUTHORIZATION, "Bearer K-123")]),
            key
        ));
        assert!(!authorized(
            &headers(&[(header::AUTHORIZATION, "k-123")]),
            key
        ));
        assert!(!authorized(
            &headers(&[(header::AUTHORIZATION, "Basic k-123")]),
            key
        ));
        assert!(!authorized(&HeaderMap::new(), key));
    }

    #[test]
    fn bodies_are_parsed_only_when_declared_json() {
        let json = headers(&[(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")]);
        assert_eq!(parse(&json, br#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(parse(&json, b""), Ok(json!({})));
        assert!(
            parse(&json, b"{nope")
                .unwrap_err()
                .starts_with("Unexpected token in JSON")
        );
        let text = headers(&[(header::CONTENT_TYPE, "text/plain")]);
        assert_eq!(parse(&text, br#"{"a":1}"#), Ok(json!({})));
        assert_eq!(parse(&HeaderMap::new(), br#"{"a":1}"#), Ok(json!({})));
    }
}

//! The error bodies AIML sends, in both of its shapes.
//!
//! Most errors come from the NestJS application and carry the documented body
//! `{"message", "path", "requestId", "statusCode", "timestamp"}`, where
//! `message` is a string, or an array of strings for validation failures.
//! Some (billing among them) use `{"error": {"name", "message"}}` instead.

use std::time::SystemTime;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Express's JSON content type, parameters included, so clients must not
/// compare it verbatim to `application/json`.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The documented NestJS error body; `message` is a string or an array.
pub(crate) fn documented(
    status: StatusCode,
    path: &str,
    request_id: String,
    message: impl Into<Value>,
) -> Response {
    let body = json!({
        "message": message.into(),
        "path": path,
        "requestId": request_id,
        "statusCode": status.as_u16(),
        "timestamp": rfc3339(SystemTime::now()),
    });
    json_response(status, &body)
}

/// The other shape: `{"error": {"name", "message"}}`.
pub(crate) fn error_field(status: StatusCode, name: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "name": name, "message": message } }),
    )
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// `2025-10-01T01:34:57.910Z`, what JavaScript's `Date.toISOString` prints.
fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn rfc3339_matches_javascript_iso_strings() {
        let example = UNIX_EPOCH + Duration::from_millis(1_759_282_497_910);
        assert_eq!(rfc3339(example), "2025-10-01T01:34:57.910Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap_day), "2000-02-29T00:00:00.000Z");
    }
}
